"""``audioflex bench htsat``: HTS-AT vs AST cost, and any-length detection speed and memory.

- :func:`bench_train_step`: parameters and one training step's time (forward + backward + AdamW
  step, on precomputed 10 s spectrograms) per clip of a registered model.
- :func:`bench_detect`: ``frame_scores`` (sliding windows, overlap-add) on a generated long file
  (noise + tones): wall time, real-time factor and this process's peak RSS.
- :func:`run`: both models' train steps, and ``bench_detect`` in a **child process** (so the
  peak RSS is the detector's own, not the training benchmark's); returns one JSON-ready dict.

Run: ``python -m audioflex.bench.htsat [--seconds 3600] [--steps 2] [--out bench.json]``.
Targets (issue 5): HTS-AT train time per clip <= 0.4x AST's; detection >= 50x real time on
2 cores with ``htsat_tiny``; peak RSS < 2 GB. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioflex.bench.common import count_params, machine, mean_seconds, peak_rss_mb, run_json_child, write_wav_blocks

logger = logging.getLogger(__name__)

__all__ = ["bench_detect", "bench_train_step", "make_long_audio", "run"]


def bench_train_step(
    name: str, *, batch: int = 2, steps: int = 2, seconds: float = 10.0, seed: int = 0, **model_kwargs: Any
) -> dict[str, Any]:
    """Parameters and seconds per training step / per clip of registered model ``name`` on
    ``batch`` clips of ``seconds`` (spectrograms precomputed by its default front end; one
    warm-up step, then the mean of ``steps``)."""
    from audioflex.audio.frontend.base import build_frontend
    from audioflex.models.contract import contract_of
    from audioflex.models.registry import create_model, default_frontend

    torch.manual_seed(seed)
    model = create_model(name, **model_kwargs).train()
    fe = build_frontend(default_frontend(name)).eval()
    wave = 0.1 * torch.randn(batch, round(seconds * fe.sample_rate))
    with torch.no_grad():
        spec, frames = fe(wave)
    window = contract_of(model).input_frames
    if window is not None and contract_of(model).pads_to_window:  # HTS-AT takes at most its window
        spec, frames = spec[..., :window], frames.clamp(max=window)
    targets = torch.zeros(batch, model.num_classes)
    targets[:, :3] = 1.0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        out = model(spec, frames)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.clip_logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    per_step = mean_seconds(step, steps)
    return {
        "model": name,
        "params": count_params(model),
        "input_shape": list(spec.shape),
        "batch": batch,
        "s_per_step": per_step,
        "s_per_clip": per_step / batch,
    }


def make_long_audio(path: str | Path, seconds: float, sample_rate: int = 32000, seed: int = 0) -> Path:
    """Write a mono PCM-16 WAV of ``seconds``: low noise plus 1 s tones every 7 s (frequencies
    cycling), written block by block (bounded memory)."""
    rng = np.random.default_rng(seed)
    freqs = np.asarray((440.0, 1000.0, 2500.0, 5000.0))

    def block(start: int, n: int) -> np.ndarray:
        t = (start + np.arange(n)) / sample_rate
        x = 0.03 * rng.standard_normal(n)
        k = np.floor(t / 7.0)
        on = (t - 7.0 * k) < 1.0
        return x + on * 0.3 * np.sin(2 * np.pi * freqs[(k % len(freqs)).astype(int)] * t)

    return write_wav_blocks(path, round(seconds * sample_rate), sample_rate, block)


def bench_detect(
    seconds: float = 3600.0,
    *,
    model: str = "htsat_tiny",
    hop: float = 0.5,
    batch_size: int = 8,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Detection on a generated ``seconds``-long file with a randomly initialised ``model``:
    wall time (file generation excluded), real-time factor and peak RSS of this process."""
    from audioflex.audio.frontend.base import build_frontend
    from audioflex.inference.frames import frame_scores
    from audioflex.models.registry import create_model, default_frontend

    torch.manual_seed(0)
    net = create_model(model).eval()
    fe = build_frontend(default_frontend(model)).eval()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = make_long_audio(Path(tmp) / "long.wav", seconds, fe.sample_rate)
        rss_before = peak_rss_mb()
        t0 = time.perf_counter()
        scores = frame_scores(net, fe, path, hop=hop, batch_size=batch_size)
        wall = time.perf_counter() - t0
    return {
        "model": model,
        "audio_s": seconds,
        "hop": hop,
        "batch_size": batch_size,
        "wall_s": wall,
        "realtime_factor": seconds / wall,
        "timeline_steps": scores.num_frames,
        "frame_hop_s": scores.frame_hop_s,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_before_detect_mb": rss_before,
        "threads": torch.get_num_threads(),
    }


def run(
    *,
    seconds: float = 3600.0,
    batch: int = 2,
    steps: int = 2,
    hops: tuple[float, ...] = (0.5, 1.0),
    detect_in_child: bool = True,
) -> dict[str, Any]:
    """The whole benchmark as one JSON-ready dict (see the module docstring). Detection runs once
    per window hop in ``hops`` (the first is the default setting the targets are checked on)."""
    report: dict[str, Any] = {"machine": machine()}
    if seconds > 0 and hops:
        runs = []
        for hop in hops:
            if detect_in_child:
                cmd = [sys.executable, "-m", "audioflex.bench.htsat", "--detect-only", "--seconds",
                       str(seconds), "--hop", str(hop)]
                runs.append(run_json_child(cmd, "detection benchmark"))
            else:
                runs.append(bench_detect(seconds, hop=hop))
            logger.info("detect hop %.2f: %.1fx real time", hop, runs[-1]["realtime_factor"])
        report["detect"] = runs[0]
        report["detect_by_hop"] = runs
    if steps > 0:
        h = bench_train_step("htsat_tiny", batch=batch, steps=steps)
        a = bench_train_step("ast_base", batch=batch, steps=steps)
        report["train"] = {
            "htsat_tiny": h,
            "ast_base": a,
            "param_ratio": h["params"] / a["params"],
            "time_ratio": h["s_per_clip"] / a["s_per_clip"],
        }
    d = report.get("detect")
    t = report.get("train")
    report["targets"] = {
        "time_ratio<=0.4": None if t is None else t["time_ratio"] <= 0.4,
        "realtime_factor>=50": None if d is None else d["realtime_factor"] >= 50,
        "peak_rss<2GB": None if d is None else d["peak_rss_mb"] < 2048,
    }
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: prints the JSON report (last line) and optionally writes it."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3600.0, help="length of the generated file (0: skip)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=2, help="timed train steps per model (0: skip)")
    p.add_argument("--hop", type=float, nargs="+", default=[0.5, 1.0],
                   help="window hop(s) as a fraction of the window")
    p.add_argument("--detect-only", action="store_true", help="only the detection benchmark, in-process")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    if a.detect_only:
        rep: dict[str, Any] = bench_detect(a.seconds, hop=a.hop[0])
    else:
        rep = run(seconds=a.seconds, batch=a.batch, steps=a.steps, hops=tuple(a.hop))
    text = json.dumps(rep)
    if a.out is not None:
        a.out.write_text(json.dumps(rep, indent=2))
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
