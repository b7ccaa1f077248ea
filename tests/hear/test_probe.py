"""Shallow probe on tiny synthetic HEAR tasks (scene: tones vs noise; event: beeps in noise)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioflex.apps.probe import probe_task
from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.checkpoints.io import save_checkpoint
from audioflex.hear.probe import (
    ProbeConfig,
    TaskError,
    hear_events,
    onset_f_measure,
    read_task,
)
from audioflex.models.registry import create_model

SR = 16000
FAST = ProbeConfig(learning_rates=(1e-3, 3.2e-3), hidden_layers=(1,), initializations=("xavier_uniform",),
                   hidden_dim=128, max_epochs=90, patience=20)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    m = create_model("elastic_ast_tiny", embed_dim=32, depth=1, num_heads=2, num_classes=4, num_mel_bins=32,
                     max_time_patches=8)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "east", m, frontend=KaldiFbankConfig(num_mel_bins=32))


def _write_task(
    root: Path, meta: dict, labels: list[str], splits: dict[str, dict], audio: dict[str, np.ndarray]
) -> Path:
    root.mkdir(parents=True)
    (root / "task_metadata.json").write_text(json.dumps(meta))
    (root / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{lab}\n" for i, lab in enumerate(labels)))
    for split, items in splits.items():
        (root / f"{split}.json").write_text(json.dumps(items))
        (root / str(SR) / split).mkdir(parents=True)
        for f in items:
            sf.write(root / str(SR) / split / f, audio[f], SR)
    return root


def _scene_task(root: Path, folds: bool = False) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    names = ["fold00", "fold01", "fold02"] if folds else ["train", "valid", "test"]
    counts = [8, 8, 8] if folds else [16, 8, 8]
    splits, audio = {}, {}
    for split, n in zip(names, counts):
        splits[split] = {}
        for i in range(n):
            f = f"{split}_{i}.wav"
            if i % 2:
                x = 0.3 * np.sin(2 * np.pi * rng.uniform(500, 2000) * t) + 0.01 * rng.standard_normal(SR)
                splits[split][f] = ["tone"]
            else:
                x = 0.3 * rng.standard_normal(SR)
                splits[split][f] = ["noise"]
            audio[f] = x.astype(np.float32)
    meta = {"task_name": "tones", "embedding_type": "scene", "prediction_type": "multiclass",
            "split_mode": "presplit_kfold" if folds else "trainvaltest", "sample_duration": 1.0}
    return _write_task(root, meta, ["noise", "tone"], splits, audio)


def test_scene_task_accuracy(ckpt: Path, tmp_path: Path) -> None:
    root = _scene_task(tmp_path / "scene")
    res = probe_task(root, ckpt, config=FAST)
    assert res["metric"] == "top1_acc" and res["score"] >= 0.85
    assert len(res["folds"]) == 1 and res["hparams"]["lr"] in FAST.learning_rates
    assert len(res["grid"]) == 2 and res["scores"] == {"top1_acc": res["score"]}
    json.dumps(res)  # JSON-ready
    assert (root / "embeddings" / "elastic_ast_tiny" / "train" / "train_0.npy").is_file()  # cached


def test_kfold_task(ckpt: Path, tmp_path: Path) -> None:
    res = probe_task(_scene_task(tmp_path / "kf", folds=True), ckpt, config=FAST)
    assert len(res["folds"]) == 3
    assert {r["test"] for r in res["folds"]} == {"fold00", "fold01", "fold02"}
    assert res["score"] >= 0.75


def test_event_task_f_measure(ckpt: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 2 * SR
    t = np.arange(n) / SR
    splits, audio = {}, {}
    for split, count in (("train", 12), ("valid", 4), ("test", 4)):
        splits[split] = {}
        for i in range(count):
            f = f"{split}_{i}.wav"
            x = 0.05 * rng.standard_normal(n)
            events = []
            for start in (rng.uniform(0.1, 0.6), rng.uniform(1.1, 1.5)):
                dur = rng.uniform(0.25, 0.4)
                m = (t >= start) & (t < start + dur)
                x[m] += 0.4 * np.sin(2 * np.pi * 1000 * t[m])
                events.append({"label": "beep", "start": 1000 * start, "end": 1000 * (start + dur)})
            splits[split][f] = events
            audio[f] = x.astype(np.float32)
    meta = {"task_name": "beeps", "embedding_type": "event", "prediction_type": "multilabel",
            "split_mode": "trainvaltest"}
    root = _write_task(tmp_path / "ev", meta, ["beep"], splits, audio)
    # stop_on_nan=False: early validations without any event (F = NaN) would end the kit's training
    res = probe_task(root, ckpt, config=replace(FAST, stop_on_nan=False), hop_ms=50)
    assert res["metric"] == "event_onset_200ms_fms" and res["score"] > 0.5
    assert res["folds"][0]["postprocessing"]["min_duration"] in (125.0, 250.0)


def test_event_postprocessing_and_metric() -> None:
    ts = np.arange(40) * 50.0  # 2 s at 50 ms
    p = np.zeros((40, 2))
    p[4:12, 0] = 0.9  # 200..550 ms (HEAR: an event ends at its last active timestamp)
    p[20, 0] = 0.9  # a one-frame blip: removed by the median filter
    p[30:34, 1] = 0.8  # 1500..1650 ms: 150 ms
    p[36, 1] = 0.5  # not above the threshold (HEAR: prob > 0.5)
    ev = hear_events(p, ts, ["a", "b"], median_ms=150, min_ms=125)
    assert ev == [{"label": "a", "start": 200.0, "end": 550.0}, {"label": "b", "start": 1500.0, "end": 1650.0}]
    assert [e["label"] for e in hear_events(p, ts, ["a", "b"], median_ms=150, min_ms=200)] == ["a"]
    # an even median width (HEAR does not force it odd): 100 ms / 50 ms = 2 frames
    q = np.zeros((10, 1))
    q[3:6, 0] = 0.9
    from scipy.ndimage import median_filter

    want = median_filter(q, size=(2, 1))[:, 0] > 0.5
    got = hear_events(q, ts[:10], ["a"], median_ms=100, min_ms=0)
    idx = np.flatnonzero(want)
    assert got == [{"label": "a", "start": ts[idx[0]], "end": ts[idx[-1]]}]
    ref = {"f": [{"label": "a", "start": 250.0, "end": 400.0}, {"label": "a", "start": 1000.0, "end": 1200.0},
                 {"label": "b", "start": 1500.0, "end": 1600.0}]}
    est = {"f": [{"label": "a", "start": 200.0, "end": 300.0}, {"label": "a", "start": 1300.0, "end": 1400.0},
                 {"label": "b", "start": 1600.0, "end": 1700.0}]}
    m = onset_f_measure(ref, est)
    assert m["f_measure"] == pytest.approx(2 / 3) and m["n_ref"] == m["n_est"] == 3
    # one-to-one matching: two estimates near one reference count once
    two = [{"label": "a", "start": 10.0, "end": 60.0}, {"label": "a", "start": 20.0, "end": 70.0}]
    m2 = onset_f_measure({"f": [{"label": "a", "start": 0.0, "end": 50.0}]}, {"f": two})
    assert m2["precision"] == pytest.approx(0.5) and m2["recall"] == pytest.approx(1.0)
    assert onset_f_measure(ref, {"f": []})["f_measure"] == 0.0  # a silent system scores 0, not NaN


def test_probe_event_score_equals_direct_sed_eval() -> None:
    """The probe's event score on some predictions == sed_eval's EventBasedMetrics (HEAR's
    event_onset_200ms_fms parameters) fed the same events directly."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dcase_util imports the deprecated pkg_resources
        import sed_eval

    from audioflex.hear.probe import HearTask
    from audioflex.hear.probe.splits import SplitData, split_score

    rng = np.random.default_rng(3)
    labels = ["a", "b", "c"]
    files, stamps, probs, refs = [], [], [], {}
    for i in range(4):
        ts = np.arange(60) * 50.0
        f = f"f{i}.wav"
        refs[f] = [{"label": labels[k % 3], "start": float(s), "end": float(s) + 400.0}
                   for k, s in enumerate(rng.uniform(0, 2500, 5))]
        p = rng.random((60, 3)) * 0.45
        p[rng.integers(0, 60, 4), rng.integers(0, 3, 4)] = 0.9  # blips (mostly filtered out)
        for e in refs[f]:  # detections with onset errors of up to ~0.35 s, so some miss the collar
            on = e["start"] + rng.uniform(-350, 350)
            p[(ts >= on) & (ts <= on + 400.0), labels.index(e["label"])] = 0.8
        files.append(f)
        stamps.append(ts)
        probs.append(p)
    task = HearTask(Path("."), {"embedding_type": "event"}, labels, {"test": refs}, {})
    offsets = np.cumsum([0] + [len(t) for t in stamps]).tolist()
    d = SplitData(np.zeros((offsets[-1], 1)), np.zeros((offsets[-1], 3)), files, offsets, stamps)
    score = split_score(task, "event_onset_200ms_fms", d, np.concatenate(probs), (250.0, 125.0), ["test"])

    def rows(events: dict, f: str) -> list[dict]:  # as heareval's EventBasedScore: seconds, per file
        return [{"event_label": e["label"], "event_onset": e["start"] / 1000.0, "event_offset": e["end"] / 1000.0,
                 "file": f} for e in events.get(f, [])]

    est = {f: hear_events(p, t, labels, median_ms=250.0, min_ms=125.0) for f, p, t in zip(files, probs, stamps)}
    assert sum(map(len, est.values())) > 0
    metric = sed_eval.sound_event.EventBasedMetrics(event_label_list=labels, evaluate_onset=True,
                                                    evaluate_offset=False, t_collar=0.2, percentage_of_length=0.5)
    for f in files:
        metric.evaluate(reference_event_list=rows(refs, f), estimated_event_list=rows(est, f))
    direct = metric.results_overall_metrics()["f_measure"]["f_measure"]
    assert 0.0 < direct < 1.0
    assert score == pytest.approx(direct, abs=1e-12)


def test_task_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="task_metadata.json"):
        read_task(tmp_path)
    root = _scene_task(tmp_path / "t")
    (root / "valid.json").write_text(json.dumps({"valid_0.wav": ["cat"]}))
    with pytest.raises(TaskError, match="cat"):
        read_task(root)


def test_probe_mlp_is_the_kits() -> None:
    """Linear -> BatchNorm -> Dropout -> ReLU per hidden layer, Xavier weights with the kit's gains."""
    from torch import nn

    from audioflex.hear.probe import ProbeMLP

    torch.manual_seed(0)
    m = ProbeMLP(600, 5, hidden_layers=2, hidden_dim=1024, initialization="xavier_normal")
    kinds = [type(x) for x in m.net]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.Dropout, nn.ReLU] * 2 + [nn.Linear]
    assert m.net[2].p == 0.1
    first, second = m.net[0].weight, m.net[4].weight
    assert float(first.detach().std()) == pytest.approx((2 / (600 + 1024)) ** 0.5, rel=0.02)  # gain 1
    assert float(second.detach().std()) == pytest.approx(2**0.5 * (2 / (1024 + 1024)) ** 0.5, rel=0.02)  # gain sqrt(2)
    u = ProbeMLP(600, 5, hidden_layers=1, initialization="xavier_uniform").net[0].weight
    assert float(u.abs().max()) <= (6 / (600 + 1024)) ** 0.5
    with pytest.raises(ValueError, match="initialization"):
        ProbeMLP(4, 2, initialization="kaiming")


def test_grid_and_task_overrides() -> None:
    from audioflex.hear.probe import HearTask, grid, postprocessing_grid

    task = HearTask(Path("."), {"task_name": "t"}, ["a"], {}, {})
    confs = grid(task, ProbeConfig())
    assert len(confs) == 8  # 8 of 4 lr x 2 depths x 2 initialisations, seeded
    assert confs == grid(task, ProbeConfig())
    assert len({(c["lr"], c["hidden_layers"], c["initialization"]) for c in confs}) == 8
    assert all(c["check_val_every_n_epoch"] == 3 and c["patience"] == 20 and c["max_epochs"] == 500 for c in confs)
    assert len(grid(task, ProbeConfig(grid_points=100))) == 16
    # the 8 points (in order) heareval 2021.1.3's predictions runner logged for a task ("Grid point i of 8")
    kit = [(1, "xavier_normal", 1e-4), (2, "xavier_uniform", 1e-3), (1, "xavier_normal", 1e-3),
           (1, "xavier_normal", 3.2e-4), (2, "xavier_normal", 3.2e-4), (2, "xavier_uniform", 3.2e-4),
           (2, "xavier_normal", 3.2e-3), (2, "xavier_uniform", 3.2e-3)]
    assert [(c["hidden_layers"], c["initialization"], c["lr"]) for c in confs] == kit
    meta = {"task_name": "t", "evaluation_params": {"task_specific_param_grid": {"lr": [0.5], "hidden_layers": [3]},
                                                     "event_postprocessing_grid": {"median_filter_ms": [0, 500],
                                                                                   "min_duration": [60]}}}
    t2 = HearTask(Path("."), meta, ["a"], {}, {})
    assert {(c["lr"], c["hidden_layers"]) for c in grid(t2, ProbeConfig())} == {(0.5, 3)}
    assert postprocessing_grid(t2, ProbeConfig()) == [(0.0, 60.0), (500.0, 60.0)]
    assert postprocessing_grid(task, ProbeConfig()) == [(250.0, 125.0), (250.0, 250.0)]
    dcase = HearTask(Path("."), {"task_name": "dcase2016_task2"}, ["a"], {}, {})
    assert {c["check_val_every_n_epoch"] for c in grid(dcase, ProbeConfig())} == {10}


def test_scene_scores_are_sklearns() -> None:
    from scipy.stats import norm
    from sklearn.metrics import average_precision_score, roc_auc_score

    from audioflex.hear.probe import scene_score

    rng = np.random.default_rng(0)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 40)]
    p = rng.random((40, 4)) + y * rng.random((40, 1))
    assert scene_score("top1_acc", p, y) == pytest.approx(np.mean(p.argmax(1) == y.argmax(1)))
    assert scene_score("mAP", p, y) == pytest.approx(average_precision_score(y, p, average="macro"))
    assert scene_score("aucroc", p, y) == pytest.approx(roc_auc_score(y, p, average="macro"))
    dp = np.mean(norm.ppf(roc_auc_score(y, p, average=None)) * np.sqrt(2))
    assert scene_score("d_prime", p, y) == pytest.approx(dp)
    y13 = np.eye(24, dtype=np.float32)[[0, 13]]
    p13 = np.eye(24)[[12, 1]]  # octave errors only
    assert scene_score("chroma_acc", p13, y13) == 1.0 and scene_score("pitch_acc", p13, y13) == 0.0
    assert np.isnan(scene_score("aucroc", p, np.zeros_like(y)))  # no positives: not scorable


def test_event_scores() -> None:
    from audioflex.hear.probe import event_score

    ref = {"f": [{"label": "a", "start": 0.0, "end": 1500.0}, {"label": "b", "start": 2000.0, "end": 2500.0}]}
    est = {"f": [{"label": "a", "start": 150.0, "end": 400.0}, {"label": "b", "start": 2040.0, "end": 2500.0}]}
    assert event_score("event_onset_200ms_fms", ref, est, ["a", "b"]) == 1.0
    assert event_score("event_onset_50ms_fms", ref, est, ["a", "b"]) == pytest.approx(0.5)
    # onset+offset within 50 ms / 20 % of the length: only b matches
    assert event_score("event_onset_offset_50ms_20perc_fms", ref, est, ["a", "b"]) == pytest.approx(0.5)
    assert event_score("segment_1s_er", ref, ref, ["a", "b"]) == 0.0
    assert event_score("segment_1s_er", ref, {"f": []}, ["a", "b"]) == 1.0
    with pytest.raises(ValueError, match="unknown event score"):
        event_score("f1", ref, est, ["a"])


def _fake_heareval_dir(root: Path, event: bool) -> None:
    """The layout heareval.embeddings.runner writes, with separable random embeddings."""
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    meta = {"task_name": "fake", "embedding_type": "event" if event else "scene", "prediction_type":
            "multilabel" if event else "multiclass", "split_mode": "trainvaltest",
            "splits": ["train", "valid", "test"],
            "evaluation": ["event_onset_200ms_fms", "segment_1s_er"] if event else ["top1_acc", "mAP"]}
    root.mkdir(parents=True)
    (root / "task_metadata.json").write_text(json.dumps(meta))
    (root / "labelvocabulary.csv").write_text("idx,label\n0,a\n1,b\n2,c\n")
    for split, n in (("train", 60), ("valid", 20), ("test", 20)):
        items = {}
        (root / split).mkdir()
        for i in range(n):
            f = f"{split}{i}.wav"
            k = i % 3
            if event:
                ts = np.arange(60) * 50.0
                emb = rng.normal(size=(60, 16)).astype(np.float32)
                s0 = float(rng.integers(5, 30)) * 50.0
                on = (ts >= s0) & (ts <= s0 + 600.0)
                emb[on, k] += 3.0
                items[f] = [{"label": labels[k], "start": s0, "end": s0 + 600.0}]
                (root / split / f"{f}.timestamps.json").write_text(json.dumps(ts.tolist()))
            else:
                emb = rng.normal(size=16).astype(np.float32)
                emb[k] += 4.0
                items[f] = [labels[k]]
            np.save(root / split / f"{f}.embedding.npy", emb)
        (root / f"{split}.json").write_text(json.dumps(items))
    (root / "train.embedding-dimensions.json").write_text("[60, 16]")  # kit files that are not splits


@pytest.mark.parametrize("event", [False, True])
def test_probe_on_a_heareval_embedding_dir(tmp_path: Path, event: bool) -> None:
    from typer.testing import CliRunner

    from audioflex.cli import app
    from audioflex.hear.probe import probe_heareval_dir

    root = tmp_path / "emb"
    _fake_heareval_dir(root, event)
    cfg = ProbeConfig(grid_points=2, hidden_dim=64, max_epochs=60, patience=4)
    res = probe_heareval_dir(root, cfg)
    if event:
        assert res["metric"] == "event_onset_200ms_fms" and set(res["scores"]) == {"event_onset_200ms_fms",
                                                                                    "segment_1s_er"}
        assert res["score"] > 0.6 and res["scores"]["segment_1s_er"] < 0.6
    else:
        assert res["metric"] == "top1_acc" and res["score"] > 0.8 and res["scores"]["mAP"] > 0.8
    assert res == probe_heareval_dir(root, cfg)  # seeded: the same run twice
    out = CliRunner().invoke(app, ["probe", str(root), "--grid-points", "1", "--max-epochs", "6",
                                   "--out", str(tmp_path / "p.json")])
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "p.json").read_text())["metric"] == res["metric"]
    (root / "test" / "test3.wav.embedding.npy").unlink()
    with pytest.raises(TaskError, match="test3.wav.embedding.npy"):
        probe_heareval_dir(root, cfg)


def test_probe_early_stopping_and_best_epoch() -> None:
    """Validation every check_every epochs; the kept state is the best validation's; training
    stops after `patience` validations without a strictly better score."""
    from audioflex.hear.probe import HearTask, probe_embeddings

    rng = np.random.default_rng(0)
    task = HearTask(Path("."), {"prediction_type": "multiclass"}, ["a", "b"],
                    {s: {f"{s}{i}": ["a" if i % 2 else "b"] for i in range(20)} for s in ("train", "valid", "test")},
                    {})
    emb = {s: {f: (rng.normal(size=8).astype(np.float32) + (2.0 if lab == ["a"] else -2.0), None)
               for f, lab in items.items()} for s, items in task.splits.items()}
    cfg = ProbeConfig(grid_points=1, learning_rates=(1e-3,), hidden_dim=32, max_epochs=400, patience=3,
                      check_every=4)
    res = probe_embeddings(task, emb, cfg)
    run = res["folds"][0]
    assert (run["epoch"] + 1) % 4 == 0 and run["valid_score"] >= 0.9
    assert run["epochs_trained"] == run["epoch"] + 1 + 3 * 4  # three validations without a better score
    assert res["score"] >= 0.9
    capped = probe_embeddings(task, emb, replace(cfg, max_epochs=10))["folds"][0]
    assert capped["epochs_trained"] == 10 and capped["epoch"] in (3, 7)
