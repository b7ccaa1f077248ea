"""Strong-label (SED) training: frame targets from DESED-style TSVs, HTS-AT and ElasticAST frame heads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from audioflex.checkpoints.io import load_checkpoint
from audioflex.data.datasets import SpectrogramDataset, TrainCollator, WaveformDataset
from audioflex.data.readers import read_dataset
from audioflex.data.targets import FrameTargetSpec, is_strong
from audioflex.models.registry import create_model
from audioflex.train import train
from audioflex.train.losses import frame_bce

SR = 16000
CLIP_S = 2.5
TONES = {"beep": 1000.0, "buzz": 3000.0}
HTSAT_KW = {
    "embed_dim": 16,
    "depths": [1, 1, 1, 1],
    "num_heads": [1, 2, 2, 4],
    "spec_size": 128,  # 2 chunks of 64 mel bins: a 256-frame (2.56 s) window, 8 steps of 0.32 s
    "window_size": 4,
    "drop_path": 0.0,
}
ELASTIC_KW = {"depth": 1, "embed_dim": 32, "num_heads": 2, "frame_head": True, "token_drop": 0.0}


def write_desed(root: Path, n: int = 12, seed: int = 0) -> Path:
    """Beeps (1 kHz) and buzzes (3 kHz) at known times in noise + a DESED strong-label TSV.

    Every clip has 1-2 events of 0.4-0.9 s; the last two clips are weakly labelled (label, no times).
    """
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rows = ["filename\tonset\toffset\tevent_label"]
    t = np.arange(int(CLIP_S * SR)) / SR
    for i in range(n):
        x = 0.05 * rng.standard_normal(len(t))
        names = ["beep", "buzz"] if i % 3 == 0 else [("beep", "buzz")[i % 2]]
        for name in names:
            dur = rng.uniform(0.4, 0.9)
            onset = round(float(rng.uniform(0.0, CLIP_S - dur)), 3)
            offset = round(onset + dur, 3)
            on = (t >= onset) & (t < offset)
            x = x + 0.5 * on * np.sin(2 * np.pi * TONES[name] * t)
            if i >= n - 2:
                rows.append(f"clip{i:02d}.wav\t\t\t{name}")  # weak label only
            else:
                rows.append(f"clip{i:02d}.wav\t{onset}\t{offset}\t{name}")
        sf.write(audio / f"clip{i:02d}.wav", x.astype(np.float32), SR)
    tsv = root / "strong.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    return tsv


@pytest.fixture(scope="module")
def desed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_desed(tmp_path_factory.mktemp("desed"))


def _cfg(tsv: Path, out: Path, model: dict[str, Any], frontend: dict[str, Any], **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": model,
        "frontend": frontend,
        "data": {
            "train": {"path": str(tsv), "kind": "strong", "options": {"audio_dir": str(tsv.parent / "audio")}},
            "max_tokens": 400,
            "batch_size": 5,
            "max_seconds": None,
        },
        "sed": {"frame_weight": 0.7},
        "optim": {"lr": 3e-3, "schedule": "constant", "weight_decay": 0.0},
        "loss": "bce",
        "max_steps": 24,
        "eval_every": 0,
        "save_every": 0,
        "log_every": 1,
        "out_dir": str(out),
        "progress": False,
        "tensorboard": False,
    }
    cfg.update(top)
    return cfg


def test_reader_and_strong_flags(desed: Path) -> None:
    res = read_dataset(desed, kind="strong", audio_dir=desed.parent / "audio")
    assert res.labels.names == ("beep", "buzz") and len(res.records) == 12
    flags = [is_strong(r) for r in res.records]
    assert flags == [True] * 10 + [False] * 2
    from audioflex.data.records import ClipRecord

    assert is_strong(ClipRecord(Path("x.wav")))  # no labels, no events: a known-empty clip


def _frame_loss(model: torch.nn.Module, items: list[Any], packed: bool) -> tuple[float, float]:
    """(frame BCE over valid steps, mean prob on event steps - mean prob off them) of strong clips."""
    batch = TrainCollator(packed=packed).build([it for it in items if it[2]["strong"]])
    model.eval()
    with torch.no_grad():
        out = model(batch.inputs) if packed else model(batch.inputs, batch.frames)
    loss = float(frame_bce(out.frame_logits, batch.frame_targets, batch.frame_mask))
    p = torch.sigmoid(out.frame_logits)
    m = batch.frame_mask[..., None].expand_as(p)
    on = (batch.frame_targets > 0.5) & m
    off = (batch.frame_targets < 0.5) & m
    return loss, float(p[on].mean() - p[off].mean())


def _train_and_check(cfg: dict[str, Any], model_name: str, kwargs: dict[str, Any], packed: bool) -> None:
    res = train(cfg)
    recs = [json.loads(x) for x in res.metrics_path.read_text().splitlines() if '"train"' in x]
    first, last = np.mean([r["loss"] for r in recs[:4]]), np.mean([r["loss"] for r in recs[-4:]])
    assert last < 0.8 * first, (first, last)
    ck = load_checkpoint(res.last_checkpoint)
    assert ck.labels == ["beep", "buzz"] and ck.meta["extra"]["loss"] == "bce"

    # frame outputs on the (strong) training clips: the trained frame head follows the events
    tsv = Path(cfg["data"]["train"]["path"])
    data = read_dataset(tsv, kind="strong", audio_dir=tsv.parent / "audio")
    model = ck.model
    c = model.contract
    spec = FrameTargetSpec(
        tuple(data.labels.names),
        step_frames=c.frame_step_frames,
        num_steps=c.frame_steps,
        column_frames=c.column_frames if packed else None,
    )
    ds = SpectrogramDataset(
        WaveformDataset(data.records, data.labels, sample_rate=ck.frontend.config.sample_rate),
        ck.frontend.config,
        frame_targets=spec,
    )
    items = [ds[i] for i in range(len(ds))]
    trained_loss, trained_gap = _frame_loss(model, items, packed)
    torch.manual_seed(0)
    init = create_model(model_name, num_classes=2, **kwargs, **({"num_mel_bins": 32} if packed else {}))
    init_loss, init_gap = _frame_loss(init, items, packed)
    assert trained_loss < 0.8 * init_loss, (init_loss, trained_loss)
    assert trained_gap > 0.1 and trained_gap > init_gap + 0.1, (init_gap, trained_gap)


def test_htsat_strong_label_training(desed: Path, tmp_path: Path) -> None:
    model = {"name": "htsat_mini", "kwargs": HTSAT_KW}
    cfg = _cfg(desed, tmp_path / "htsat", model, {}, max_steps=14)
    _train_and_check(cfg, "htsat_mini", HTSAT_KW, packed=False)


@pytest.mark.parametrize("substeps", [1, 2])
def test_elastic_ast_frame_head_strong_label_training(desed: Path, tmp_path: Path, substeps: int) -> None:
    """The frame head learns the events, with one step per column or (frame_substeps=2) two."""
    kw = {**ELASTIC_KW, "frame_substeps": substeps}
    model = {"name": "elastic_ast_tiny", "kwargs": kw}
    cfg = _cfg(desed, tmp_path / "east", model, {"num_mel_bins": 32}, max_steps=30)
    cfg["data"]["random_crop_frames"] = [96, 200]  # frame targets must follow the crops
    cfg["augment"] = {"frame_shifts_ms": [10, 12], "overlay_prob": 0.5}  # event overlay: targets follow the excerpts
    cfg["sed"]["weak_frame_loss"] = True
    _train_and_check(cfg, "elastic_ast_tiny", kw, packed=True)


def test_frame_targets_follow_crops_and_shifts(desed: Path) -> None:
    from audioflex.audio.frontend.kaldi import KaldiFbankConfig

    data = read_dataset(desed, kind="strong", audio_dir=desed.parent / "audio")
    waves = WaveformDataset(data.records, data.labels, sample_rate=SR, train=True, max_seconds=2.0, seed=1)
    ds = SpectrogramDataset(
        waves,
        KaldiFbankConfig(num_mel_bins=32),
        frame_shifts_ms=[10, 20],
        random_crop_frames=[40, 150],
        max_tokens=400,
        frame_targets=FrameTargetSpec(("beep", "buzz"), step_frames=16),
    )
    crops = set()
    for epoch in range(2):
        ds.set_epoch(epoch)
        counts = ds.token_counts(epoch)
        for i in range(10):
            spec, _, meta = ds[i]
            hop = meta["frame_shift_ms"] / 1000
            cols = math.ceil(spec.shape[1] / 16)
            assert counts[i] == 2 * cols == meta["tokens"]
            target = meta["frame_target"]
            assert target.shape == (cols, 2) and meta["frame_valid"] == cols and meta["strong"]
            start = meta["offset_s"] + meta["crop_start"] * hop  # seconds of the crop's first frame
            crops.add(round(start, 3))
            for t in range(cols):
                lo, hi = start + t * 16 * hop, start + (t + 1) * 16 * hop
                for c, name in enumerate(("beep", "buzz")):
                    on = any(e.label == name and e.onset < hi and e.offset > lo for e in data.records[i].events)
                    assert bool(target[t, c]) == on, (i, t, name)
    assert len(crops) > 5
    # weak clips: zero targets, not strong
    _, _, meta = ds[11]
    assert not meta["strong"] and float(meta["frame_target"].abs().sum()) == 0.0


def test_sed_config_errors(desed: Path, tmp_path: Path) -> None:
    model = {"name": "elastic_ast_tiny", "kwargs": {**ELASTIC_KW, "frame_head": False}}
    cfg = _cfg(desed, tmp_path / "x", model, {"num_mel_bins": 32}, max_steps=1)
    with pytest.raises(ValueError, match="frame_head=true"):
        train(cfg)
    cfg["model"]["kwargs"]["frame_head"] = True
    cfg["augment"] = {"mixup_alpha": 0.5}
    with pytest.raises(ValueError, match="mixup_alpha=0"):
        train(cfg)
    cfg["augment"] = {"overlay_prob": 1.5}
    with pytest.raises(ValueError, match=r"augment.overlay_prob must be in \[0, 1\]"):
        train(cfg)
    cfg["augment"] = {"overlay_prob": 0.5}
    cfg["sed"] = {"frame_weight": 0.0}
    with pytest.raises(ValueError, match="augment.overlay_prob overlays strongly labelled clips"):
        train(cfg)
    cfg["sed"] = {"frame_weight": 0.7}
    cfg["augment"] = {}
    cfg["model"] = {"name": "ast_tiny", "kwargs": {"depth": 1, "embed_dim": 32, "num_heads": 2}}
    cfg["frontend"] = {"num_mel_bins": 32, "target_length": 64}
    with pytest.raises(ValueError, match="no frame-wise output"):
        train(cfg)


def test_strong_clip_target_is_what_the_crop_holds() -> None:
    """A strong clip cropped away from one of its events: its clip BCE targets only the events in
    the crop (the max of its frame targets), not every label of the record; weak clips keep theirs."""
    from audioflex.data.datasets.collate import Batch
    from audioflex.models.outputs import AudioOutput
    from audioflex.train.losses import sed_loss, sed_per_clip_loss

    gen = torch.Generator().manual_seed(0)
    out = AudioOutput(clip_logits=torch.randn(2, 2, generator=gen), embedding=torch.zeros(2, 4),
                      frame_logits=torch.randn(2, 5, 2, generator=gen), frame_hop_s=0.16)
    frames = torch.zeros(2, 5, 2)
    frames[0, 1:3, 0] = 1.0  # clip 0 (strong): only class 0 inside the crop; the record also has class 1
    record_labels = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    batch = Batch(inputs=None, targets=record_labels, index=(0, 1), frame_targets=frames,
                  frame_mask=torch.ones(2, 5, dtype=torch.bool), strong=torch.tensor([True, False]))
    weak_loss = torch.tensor([0.25, 0.5])
    got = sed_per_clip_loss(out, batch, weak_loss, frame_weight=0.5)
    seen = sed_loss(out, torch.tensor([[1.0, 0.0], [0.0, 0.0]]), frames, valid_mask=batch.frame_mask,
                    frame_weight=0.5, reduction="none")
    wrong = sed_loss(out, record_labels, frames, valid_mask=batch.frame_mask, frame_weight=0.5, reduction="none")
    assert torch.allclose(got[0], seen[0]) and not torch.allclose(got[0], wrong[0])
    assert got[1] == weak_loss[1]


def test_frame_targets_with_substeps_cover_whole_columns(desed: Path) -> None:
    """step_frames=4 within 16-frame columns: targets fill every step of the clip's columns (the
    model gives logits for all of them), frame_valid counts the steps inside the clip, and each
    step's target is the events over its own 4 frames."""
    from audioflex.audio.frontend.kaldi import KaldiFbankConfig

    data = read_dataset(desed, kind="strong", audio_dir=desed.parent / "audio")
    waves = WaveformDataset(data.records, data.labels, sample_rate=SR, train=True, max_seconds=2.0, seed=1)
    spec = FrameTargetSpec(("beep", "buzz"), step_frames=4, column_frames=16)
    ds = SpectrogramDataset(waves, KaldiFbankConfig(num_mel_bins=32), random_crop_frames=[37, 150], max_tokens=400,
                            frame_targets=spec)
    items = [ds[i] for i in range(10)]
    for i, (x, _, meta) in enumerate(items):
        frames, hop = x.shape[1], meta["frame_shift_ms"] / 1000
        cols = math.ceil(frames / 16)
        target = meta["frame_target"]
        assert target.shape == (4 * cols, 2) and meta["frame_valid"] == math.ceil(frames / 4)
        start = meta["offset_s"] + meta["crop_start"] * hop
        for t in range(meta["frame_valid"]):
            lo, hi = start + t * 4 * hop, start + (t + 1) * 4 * hop
            for c, name in enumerate(("beep", "buzz")):
                on = any(e.label == name and e.onset < hi and e.offset > lo for e in data.records[i].events)
                assert bool(target[t, c]) == on, (i, t, name)
    batch = TrainCollator(packed=True).build(items)
    cols = [g[1] for g in batch.inputs.grid_sizes]
    assert batch.frame_targets.shape[1] == 4 * max(cols)
    assert batch.frame_mask.sum(1).tolist() == [math.ceil(x.shape[1] / 4) for x, _, _ in items]
    from audioflex.train.losses import packed_frame_mask

    assert packed_frame_mask(batch.inputs, steps_per_column=4).sum(1).tolist() == [4 * c for c in cols]
