"""Compare ``audioflex probe`` with the HEAR evaluation kit on the same embeddings (run by hand).

Needs a second environment with the real kit (its pins are from 2021, so install without them):

    python3 -m venv /tmp/hv && /tmp/hv/bin/pip install torch==2.13.0
    /tmp/hv/bin/pip install "pytorch-lightning==1.6.5" "setuptools<70" click dcase-util intervaltree \\
        more-itertools pandas python-slugify sed-eval soundfile torchinfo tqdm scikit-learn pynvml
    /tmp/hv/bin/pip install --no-deps heareval==2021.1.3 && /tmp/hv/bin/pip install -e .

(Lightning 1.6: the kit's ``validation_epoch_end`` hooks are gone in 2.x, and 1.9 restores the epoch
counter so that the kit's test-time post-processing lookup fails), then
``python tools/heareval_compare.py --hear-python /tmp/hv/bin/python --work /tmp/hcmp`` (add
``--tasks synth_events --model-options '{"include_mel": true}'`` for the event task). It
writes synthetic HEAR tasks (a 4-class scene task, a multilabel scene task, a 5-fold scene task and
an event task), a random-weight checkpoint, runs ``heareval.embeddings.runner audioflex.hear`` (the
kit imports TensorFlow at the top of its embedding module; a stub module stands in for it), then
``heareval.predictions.runner`` (with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``: the kit reloads its own
Lightning checkpoints, which torch >= 2.6 refuses by default) and ``audioflex probe`` on the kit's
embedding directories, and prints both scores per task as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def _bg(rng: np.random.Generator, n: int) -> np.ndarray:
    """Brown-ish background noise, unit RMS."""
    x = np.cumsum(rng.standard_normal(n)) * 0.05 + rng.standard_normal(n)
    x -= x.mean()
    return x / (np.sqrt(np.mean(x**2)) + 1e-9)


def _source(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    if kind == "tone":
        x = np.sin(2 * np.pi * rng.uniform(300, 3000) * t)
    elif kind == "chirp":
        f0, f1 = rng.uniform(200, 800), rng.uniform(2000, 5000)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1] + 1e-9)))
    elif kind == "clicks":
        x = np.zeros(n)
        period = int(SR / rng.uniform(5, 25))
        x[::period] = 1.0
        x = np.convolve(x, np.hanning(64), mode="same")
    elif kind in ("noise_low", "noise_high"):
        w = rng.standard_normal(n)
        spec = np.fft.rfft(w)
        f = np.fft.rfftfreq(n, 1 / SR)
        spec *= (f < 800) if kind == "noise_low" else (f > 3000)
        x = np.fft.irfft(spec, n)
    else:
        raise ValueError(kind)
    return x / (np.sqrt(np.mean(x**2)) + 1e-9)


def _mix(rng: np.random.Generator, sources: list[np.ndarray], n: int, snr_db: tuple[float, float]) -> np.ndarray:
    y = _bg(rng, n)
    for s in sources:
        y = y + s * 10 ** (rng.uniform(*snr_db) / 20)
    return (0.1 * y / np.max(np.abs(y))).astype(np.float32)


def _write(root: Path, meta: dict, labels: list[str], splits: dict[str, dict], audio: dict[str, np.ndarray]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    meta = {"sample_duration": None, "version": "audioflex-synth", "embedding_type": "scene", **meta,
            "splits": list(splits)}
    (root / "task_metadata.json").write_text(json.dumps(meta, indent=1))
    (root / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{lab}\n" for i, lab in enumerate(labels)))
    for split, items in splits.items():
        (root / f"{split}.json").write_text(json.dumps(items, indent=1))
        d = root / str(SR) / split
        d.mkdir(parents=True, exist_ok=True)
        for f in items:
            sf.write(d / f, audio[f], SR)


def make_tasks(tasks_dir: Path, seed: int = 0) -> None:
    """Four synthetic HEAR tasks under ``tasks_dir``."""
    rng = np.random.default_rng(seed)
    classes = ["tone", "chirp", "clicks", "noise_low", "noise_high"]
    n = SR  # 1 s clips
    # multiclass scene, train/valid/test
    splits, audio = {}, {}
    for split, count in (("train", 150), ("valid", 50), ("test", 50)):
        splits[split] = {}
        for i in range(count):
            c = classes[i % len(classes)]
            f = f"{split}_{i:03d}.wav"
            audio[f] = _mix(rng, [_source(rng, c, n)], n, (-14, 0))
            splits[split][f] = [c]
    _write(tasks_dir / "synth_scene", {"task_name": "synth_scene", "prediction_type": "multiclass",
                                       "split_mode": "trainvaltest", "sample_duration": 1.0,
                                       "evaluation": ["top1_acc", "mAP", "d_prime", "aucroc"]}, classes, splits, audio)
    # multilabel scene (0-3 sources per clip)
    splits, audio = {}, {}
    for split, count in (("train", 150), ("valid", 50), ("test", 50)):
        splits[split] = {}
        for i in range(count):
            labs = sorted(rng.choice(classes, size=int(rng.integers(0, 4)), replace=False).tolist())
            f = f"{split}_{i:03d}.wav"
            audio[f] = _mix(rng, [_source(rng, c, n) for c in labs], n, (-14, 0))
            splits[split][f] = labs
    _write(tasks_dir / "synth_multilabel", {"task_name": "synth_multilabel", "prediction_type": "multilabel",
                                            "split_mode": "trainvaltest", "sample_duration": 1.0,
                                            "evaluation": ["mAP", "d_prime", "aucroc"]}, classes, splits, audio)
    # 5-fold multiclass scene
    splits, audio = {}, {}
    for k in range(5):
        split = f"fold{k:02d}"
        splits[split] = {}
        for i in range(40):
            c = classes[(i + k) % len(classes)]
            f = f"{split}_{i:03d}.wav"
            audio[f] = _mix(rng, [_source(rng, c, n)], n, (-16, -2))
            splits[split][f] = [c]
    _write(tasks_dir / "synth_folds", {"task_name": "synth_folds", "prediction_type": "multiclass",
                                       "split_mode": "new_split_kfold", "nfolds": 5, "sample_duration": 1.0,
                                       "evaluation": ["top1_acc"]}, classes, splits, audio)
    # events: 4 s clips, 1-3 events of 3 classes
    ev_classes = ["tone", "chirp", "clicks"]
    n = 4 * SR
    splits, audio = {}, {}
    for split, count in (("train", 60), ("valid", 20), ("test", 20)):
        splits[split] = {}
        for i in range(count):
            f = f"{split}_{i:03d}.wav"
            y = 0.3 * _bg(rng, n)
            events = []
            for _ in range(int(rng.integers(1, 4))):
                c = str(rng.choice(ev_classes))
                dur = rng.uniform(0.3, 1.2)
                start = rng.uniform(0.0, 4.0 - dur)
                a, b = int(start * SR), int((start + dur) * SR)
                y[a:b] += _source(rng, c, b - a) * 10 ** (rng.uniform(-12, 0) / 20) * np.hanning(b - a) ** 0.1
                events.append({"label": c, "start": round(1000 * start, 3), "end": round(1000 * (start + dur), 3)})
            audio[f] = (0.1 * y / np.max(np.abs(y))).astype(np.float32)
            splits[split][f] = sorted(events, key=lambda e: e["start"])
    _write(tasks_dir / "synth_events", {"task_name": "synth_events", "embedding_type": "event",
                                        "prediction_type": "multilabel", "split_mode": "trainvaltest",
                                        "sample_duration": 4.0,
                                        "evaluation": ["event_onset_200ms_fms", "segment_1s_er"]},
           ev_classes, splits, audio)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hear-python", required=True, help="python of the environment with heareval")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--model", default="elastic_ast", help="family of the random-weight checkpoint")
    ap.add_argument("--model-options", default="{}", help="JSON embedding options for load_model")
    ap.add_argument("--grid-points", type=int, default=8)
    ap.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    ap.add_argument("--seeds", default="42,0,1,2,3", help="seeds of audioflex probe runs (42 = the kit's)")
    args = ap.parse_args()
    from audioflex.bench.embed import make_checkpoint
    from audioflex.hear.probe import ProbeConfig, probe_heareval_dir

    work = args.work
    if not (work / "tasks").is_dir():
        make_tasks(work / "tasks")
    ck = work / "ckpt"
    if not ck.is_dir():
        make_checkpoint(args.model, ck)
    stub = work / "tfstub" / "tensorflow"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text("class Module:  # stand-in: heareval checks isinstance(model, tf.Module)\n"
                                      "    pass\n")
    import os

    opts = json.loads(args.model_options)
    emb_root = work / ("embeddings" + "".join(f"-{k}={v}" for k, v in sorted(opts.items())).replace(" ", ""))
    for task in sorted(p.name for p in (work / "tasks").iterdir() if p.is_dir()):
        if args.tasks and task not in args.tasks.split(","):
            continue
        subprocess.run([args.hear_python, "-m", "heareval.embeddings.runner", "audioflex.hear", "--model", str(ck),
                        "--tasks-dir", str(work / "tasks"), "--task", task, "--embeddings-dir",
                        str(emb_root), "--model-options", args.model_options], check=True,
                       env={**os.environ, "PYTHONPATH": str(work / "tfstub")}, cwd=work)
    # the kit reloads its own Lightning checkpoints with torch.load; torch >= 2.6 defaults to
    # weights_only=True, which refuses them, so the kit's process (only) gets the old default
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    results = {}
    wanted = {t for t in args.tasks.split(",") if t}
    for task_dir in sorted(p for p in emb_root.glob("*/*") if p.is_dir()):
        if wanted and task_dir.name not in wanted:
            continue
        subprocess.run([args.hear_python, "-m", "heareval.predictions.runner", str(task_dir),
                        "--grid-points", str(args.grid_points)], check=True, env=env, cwd=work)
        kit = json.loads((task_dir / "test.predicted-scores.json").read_text())
        ours = [probe_heareval_dir(task_dir, ProbeConfig(grid_points=args.grid_points, seed=int(sd)))
                for sd in args.seeds.split(",")]
        kit_scores = kit.get("aggregated_scores") or kit.get("test", {})
        summary = {"heareval": {k: v for k, v in kit_scores.items() if "_std" not in k},
                   "audioflex_seed42": ours[0]["scores"],
                   "audioflex_over_seeds": {n: {"mean": float(np.mean([o["scores"][n] for o in ours])),
                                                "min": float(np.min([o["scores"][n] for o in ours])),
                                                "max": float(np.max([o["scores"][n] for o in ours]))}
                                            for n in ours[0]["scores"]},
                   "kit_hparams": {k: kit["hparams"][k] for k in ("lr", "hidden_layers", "initialization")},
                   "audioflex_hparams_seed42": ours[0]["hparams"]}
        results[task_dir.name] = {**summary, "heareval_raw": kit, "audioflex_raw": ours}
        print(json.dumps({task_dir.name: summary}, default=str))
    (emb_root / "comparison.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
