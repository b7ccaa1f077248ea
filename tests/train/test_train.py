"""End-to-end training on tiny synthetic data: checkpoints, exact resume, SIGKILL, bad files, AST/BCE."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from audioflex.checkpoints.io import load_checkpoint
from audioflex.data.datasets import SpectrogramDataset, TrainCollator, WaveformDataset
from audioflex.data.readers import read_dataset
from audioflex.train import load_config, train

SR = 16000
ROOT = Path(__file__).resolve().parents[2]


def write_dataset(root: Path, per_class: int = 6, valid: int = 2, multilabel: bool = False, seed: int = 0) -> Path:
    """Two tone classes (300 Hz, 2.5 kHz) of 0.3-0.8 s clips + ``manifest.csv``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in (("train", per_class), ("valid", valid)):
        for c, f in (("low", 300.0), ("high", 2500.0)):
            for i in range(n):
                t = np.arange(int(rng.uniform(0.3, 0.8) * SR)) / SR
                x = 0.5 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(len(t))
                label = c
                if multilabel and i % 2:
                    x = x + 0.3 * rng.standard_normal(len(t))
                    label = f"{c};noisy"
                name = f"{split}_{c}_{i}.wav"
                sf.write(root / name, x.astype(np.float32), SR)
                rows.append((name, label, split))
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "labels", "split"])
        w.writerows(rows)
    return root / "manifest.csv"


def tiny_config(manifest: Path, out: Path, **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": {"name": "elastic_ast_tiny", "kwargs": {"depth": 1, "embed_dim": 32, "num_heads": 2}},
        "frontend": {"num_mel_bins": 32},
        "data": {
            "train": {"path": str(manifest), "split": "train"},
            "valid": {"path": str(manifest), "split": "valid"},
            "max_tokens": 40,
        },
        "augment": {"freq_mask": 4, "time_mask": 10, "mixup_alpha": 0.5, "frame_shifts_ms": [10, 20, 30]},
        "optim": {"lr": 2e-3, "schedule": "constant"},
        "max_steps": 6,
        "eval_every": 3,
        "log_every": 1,
        "out_dir": str(out),
        "progress": False,
        "tensorboard": False,
    }
    cfg.update(top)
    return cfg


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"))


def _params(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "model.safetensors"))


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=0), f"{k}: max diff {(a[k] - b[k]).abs().max()}"


def test_train_checkpoint_resume_equals_uninterrupted(manifest: Path, tmp_path: Path) -> None:
    full = train(tiny_config(manifest, tmp_path / "full", max_steps=4, eval_every=2))
    assert full.steps == 4 and full.metric_name == "accuracy" and full.best_checkpoint is not None
    # the interrupted run: 2 steps, then resumed to 4 (mid-epoch, with RNG/optimiser/sampler state)
    part = train(tiny_config(manifest, tmp_path / "part", max_steps=2, eval_every=2))
    state = json.loads((part.last_checkpoint / "train_state.json").read_text())
    assert state["step"] == 2 and state["position"] > 0  # really mid-epoch
    before = _params(part.last_checkpoint)
    cfg = tiny_config(manifest, tmp_path / "part", max_steps=4, eval_every=2)
    resumed = train(cfg, [f"resume={tmp_path / 'part'}"])
    assert resumed.steps == 4
    after = _params(resumed.last_checkpoint)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it did train further
    _assert_same(after, _params(full.last_checkpoint))

    # metrics.jsonl has train and valid records; the checkpoint carries labels and multilabel
    recs = [json.loads(line) for line in full.metrics_path.read_text().splitlines()]
    assert {r["split"] for r in recs} == {"train", "valid"}
    assert all({"loss", "lr", "clips_per_s"} <= r.keys() for r in recs if r["split"] == "train")
    ck = load_checkpoint(full.last_checkpoint)
    assert ck.labels == ["high", "low"] and ck.meta["extra"]["multilabel"] is False
    assert ck.frontend.config.num_mel_bins == 32

    # evaluate the checkpoint independently: it reproduces the run's last validation accuracy
    res = read_dataset(manifest)
    valid = res.select(split="valid")
    vds = SpectrogramDataset(
        WaveformDataset(valid, res.labels, sample_rate=SR, max_seconds=None), ck.frontend.config
    )
    batch = TrainCollator(packed=True)([vds[i] for i in range(len(vds))])
    with torch.no_grad():
        pred = ck.model(batch.inputs).clip_logits.argmax(1)
    acc = float((pred == batch.targets.argmax(1)).float().mean())
    assert acc == pytest.approx(full.last_metrics["accuracy"])


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(manifest: Path, tmp_path: Path) -> None:
    cfg = tiny_config(manifest, tmp_path / "killed", max_steps=40, eval_every=0, save_every=2)
    path = tmp_path / "cfg.yaml"
    load_config(cfg).to_yaml(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from audioflex.train import train; train(sys.argv[1])", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state_file = tmp_path / "killed" / "last" / "train_state.json"
    deadline = time.time() + 60
    while not state_file.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    killed_at = json.loads(state_file.read_text())["step"]
    assert 0 < killed_at < 40
    stop = killed_at + 2
    resumed = train(path, [f"resume={tmp_path / 'killed'}", f"max_steps={stop}"])
    assert resumed.steps == stop
    ref = train(path, [f"out_dir={tmp_path / 'ref'}", f"max_steps={stop}"])
    _assert_same(_params(resumed.last_checkpoint), _params(ref.last_checkpoint))


def test_bad_files_are_skipped_listed_and_counted(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "data", per_class=3, valid=1)
    data = tmp_path / "data"
    (data / "garbage.wav").write_bytes(b"RIFF\x00\x00 definitely not audio")
    sf.write(data / "nan.wav", np.full(8000, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    with open(manifest, "a", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["garbage.wav", "low", "train"])
        w.writerow(["nan.wav", "high", "train"])
    res = train(tiny_config(manifest, tmp_path / "run", max_steps=4, eval_every=4))
    assert res.steps == 4
    listed = (tmp_path / "run" / "bad_files.txt").read_text()
    assert "garbage.wav" in listed and "nan.wav" in listed
    assert res.bad_files >= 2
    assert any(r.get("bad_files", 0) >= 1 for r in map(json.loads, res.metrics_path.read_text().splitlines()))


def test_fixed_length_ast_multilabel_bce(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "data", per_class=3, valid=2, multilabel=True)
    cfg = tiny_config(manifest, tmp_path / "run", max_steps=3, eval_every=3)
    cfg["model"] = {"name": "ast_tiny", "kwargs": {"depth": 1, "embed_dim": 32, "num_heads": 2}}
    cfg["frontend"] = {"num_mel_bins": 32, "target_length": 48}
    cfg["data"]["batch_size"] = 4
    cfg["augment"]["frame_shifts_ms"] = []
    res = train(cfg)
    assert res.metric_name == "mAP" and 0.0 <= res.best_metric <= 1.0
    ck = load_checkpoint(res.best_checkpoint)
    assert ck.meta["extra"]["multilabel"] is True and ck.meta["extra"]["loss"] == "bce"
    assert ck.model.max_length == 48 and sorted(ck.labels) == ["high", "low", "noisy"]


def test_recipes_load_and_name_registered_models() -> None:
    from audioflex.data.readers import READERS
    from audioflex.models.registry import list_models

    paths = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(paths) >= 8
    for p in paths:
        cfg = load_config(p)
        assert cfg.model.name in list_models(), p
        for spec in (cfg.data.train, cfg.data.valid):
            assert spec.kind is None or spec.kind in READERS or spec.kind == "shards", p


@pytest.mark.parametrize("model", ["elastic", "ast"])
def test_frontend_on_device_equals_frontend_in_workers(
    manifest: Path, tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data.frontend_device=device (waveforms from the workers, front end batched per frame shift in
    the loop) trains exactly like the per-clip front end in the workers."""
    cfg = tiny_config(manifest, tmp_path / "w", max_steps=2, eval_every=0, save_every=0)
    if model == "elastic":
        cfg["data"]["random_crop_frames"] = [20, 60]  # crops and shifts planned in the workers
        cfg["data"]["max_tokens"] = 60
    else:
        cfg["model"] = {"name": "ast_tiny", "kwargs": {"depth": 1, "embed_dim": 32, "num_heads": 2}}
        cfg["frontend"] = {"num_mel_bins": 32, "target_length": 64}
        cfg["data"]["batch_size"] = 4
        cfg["augment"]["frame_shifts_ms"] = [10, 20]
    workers = train(cfg)
    from audioflex.data.datasets import DeviceFrontend

    calls: list[int] = []
    orig = DeviceFrontend.__call__

    def counting(self: DeviceFrontend, batch: Any) -> Any:
        calls.append(len(batch.waves))
        groups = {it[2]["shift_key"] for it in batch.waves}
        calls.append(-len(groups))
        return orig(self, batch)

    monkeypatch.setattr(DeviceFrontend, "__call__", counting)
    dev_cfg = {**cfg, "out_dir": str(tmp_path / "d"), "data": {**cfg["data"], "frontend_device": "device"}}
    device = train(dev_cfg)
    assert sum(c for c in calls if c > 0) >= 4 and min(calls) <= -2  # waveforms batched, several shift groups
    a, b = _params(workers.last_checkpoint), _params(device.last_checkpoint)
    _assert_same(a, b, atol=1e-6)
    la, lb = ([r["loss"] for r in map(json.loads, res.metrics_path.read_text().splitlines()) if r["split"] == "train"]
              for res in (workers, device))
    assert la == pytest.approx(lb, abs=1e-6) and len(la) == 2
    torch.manual_seed(0)
    assert any(not torch.equal(a[k], v) for k, v in ck_init(cfg).items())  # it trained


def ck_init(cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    from audioflex.models.registry import create_model

    torch.manual_seed(0)
    extra = {"max_length": cfg["frontend"]["target_length"]} if "target_length" in cfg["frontend"] else {}
    m = create_model(cfg["model"]["name"], **cfg["model"]["kwargs"], num_classes=2, num_mel_bins=32, **extra)
    return m.state_dict()


def test_frontend_device_option_is_checked(manifest: Path, tmp_path: Path) -> None:
    cfg = tiny_config(manifest, tmp_path / "x", max_steps=1)
    cfg["data"]["frontend_device"] = "gpu"
    with pytest.raises(ValueError, match="frontend_device"):
        train(cfg)
    cfg["data"]["frontend_device"] = "workers"
    cfg["data"]["random_crop_frames"] = [100, 50]
    with pytest.raises(ValueError, match="random_crop_frames"):
        train(cfg)


def test_model_kwargs_typo_is_a_config_error(manifest: Path, tmp_path: Path) -> None:
    from audioflex.train.config import ConfigError

    cfg = tiny_config(manifest, tmp_path / "x")
    cfg["model"]["kwargs"]["depht"] = 2
    path = tmp_path / "typo.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"model\.kwargs: unknown key\(s\) \['depht'\]") as e:
        load_config(path)
    assert str(path) in str(e.value) and "depth" in str(e.value).split("known keys:")[1]
    with pytest.raises(ConfigError, match="depht"):
        load_config(tiny_config(manifest, tmp_path / "x"), ["model.kwargs.depht=2"])
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        load_config(tiny_config(manifest, tmp_path / "x"), ["model.name=nope"])
    # the CLI: one line naming the key, exit 1
    from typer.testing import CliRunner

    from audioflex.cli import app

    r = CliRunner().invoke(app, ["train", str(path)])
    assert r.exit_code == 1 and "depht" in r.stderr and "Traceback" not in r.output + r.stderr
    # PaSST's builder takes **kwargs: its class's arguments are the known keys
    load_config({"model": {"name": "passt_tiny", "kwargs": {"u_patchout": 10}}})
    with pytest.raises(ConfigError, match="u_patchot"):
        load_config({"model": {"name": "passt_tiny", "kwargs": {"u_patchot": 10}}})


def test_resume_cleans_partial_checkpoints_and_truncates_metrics(manifest: Path, tmp_path: Path) -> None:
    """What a run killed during a checkpoint write leaves (a .last.tmp-* partial checkpoint, metrics
    rows past the last checkpoint, a torn last row) is cleaned when the run resumes."""
    run = tmp_path / "run"
    train(tiny_config(manifest, run, max_steps=4, eval_every=0, save_every=2))
    assert json.loads((run / "last" / "train_state.json").read_text())["step"] == 4
    partial = run / ".last.tmp-abc123"
    (partial / "last").mkdir(parents=True)
    (partial / "last" / "model.safetensors").write_bytes(b"half a checkpoint")
    (run / ".best.tmp-xyz").mkdir()
    outside = tmp_path / "keep_me"
    outside.mkdir()
    (run / ".last.tmp-link").symlink_to(outside)  # not ours to delete
    with open(run / "metrics.jsonl", "a") as fh:  # steps 5, 6 trained after the checkpoint, then killed
        fh.write(json.dumps({"split": "train", "step": 5, "loss": 1.0}) + "\n")
        fh.write(json.dumps({"split": "train", "step": 6, "loss": 1.0}) + "\n")
        fh.write('{"split": "train", "st')
    res = train(tiny_config(manifest, run, max_steps=7, eval_every=0, save_every=2), [f"resume={run}"])
    assert res.steps == 7
    assert not partial.exists() and not (run / ".best.tmp-xyz").exists()
    assert (run / ".last.tmp-link").is_symlink() and outside.is_dir()
    rows = [json.loads(line) for line in res.metrics_path.read_text().splitlines()]
    steps = [r["step"] for r in rows if r["split"] == "train"]
    assert steps == list(range(1, 8))  # every step once
    assert not list(run.glob(".metrics.jsonl.*"))


def test_truncated_and_too_short_clips_are_trained_on_with_a_warning(tmp_path: Path, caplog) -> None:
    manifest = write_dataset(tmp_path / "data", per_class=3, valid=1)
    data = tmp_path / "data"
    sf.write(data / "tiny.wav", np.full(8, 0.1, dtype=np.float32), SR)  # 8 samples
    sf.write(data / "full.wav", 0.1 * np.ones(SR, dtype=np.float32), SR, subtype="PCM_16")
    (data / "cut.wav").write_bytes((data / "full.wav").read_bytes()[: 44 + 2 * 6000])  # header 1 s, data 0.375 s
    with open(manifest, "a", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["tiny.wav", "low", "train"])
        w.writerow(["cut.wav", "high", "train"])
    with caplog.at_level("WARNING"):
        res = train(tiny_config(manifest, tmp_path / "run", max_steps=4, eval_every=4))
    assert res.steps == 4 and res.bad_files == 0  # used, not skipped
    lines = (tmp_path / "run" / "bad_files.txt").read_text().splitlines()
    tiny = [ln for ln in lines if ln.startswith(str(data / "tiny.wav"))]
    cut = [ln for ln in lines if ln.startswith(str(data / "cut.wav"))]
    assert len(tiny) == 1 and "warning: too short" in tiny[0] and "8 samples" in tiny[0] and "padded" in tiny[0]
    assert len(cut) == 1 and "warning: truncated" in cut[0] and "promises 1.000 s" in cut[0]
    assert "holds 0.375 s" in cut[0]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("tiny.wav" in m and "too short" in m for m in logged) == 1
    assert sum("cut.wav" in m and "truncated" in m for m in logged) == 1
