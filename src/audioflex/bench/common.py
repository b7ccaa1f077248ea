"""What every benchmark shares: the machine record, timing, peak memory, parameter counts, long
generated WAV files and benchmark runs in a child process (so a peak RSS is the run's own)."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "best_seconds",
    "count_params",
    "load_average",
    "machine",
    "mean_seconds",
    "peak_rss_mb",
    "run_json_child",
    "write_wav_blocks",
]


BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpu_bf16_flags() -> list[str] | None:
    """Which of the CPU's native bfloat16 features (``avx512_bf16``, ``amx_bf16``, ``amx_tile``) it has,
    from ``/proc/cpuinfo`` (None where that file does not exist). bf16 inference is fast with AMX only."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [f for f in BF16_FLAGS if f in flags]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # e.g. AVX2, AVX512
        "cpu_bf16": cpu_bf16_flags(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> float | None:
    """The 1-minute load average (None where /proc/loadavg does not exist)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def mean_seconds(fn: Callable[[], Any], steps: int) -> float:
    """Mean wall seconds of ``fn()`` over ``steps`` calls after one warm-up call."""
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def best_seconds(fn: Callable[[], Any], repeat: int = 3) -> float:
    """The fastest of ``repeat`` timed calls of ``fn()`` after a warm-up (the minimum is the least
    disturbed by other load)."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def write_wav_blocks(
    path: str | Path, total: int, sample_rate: int, block_fn: Callable[[int, int], np.ndarray], *, block_s: int = 60
) -> Path:
    """Write a mono PCM-16 WAV of ``total`` samples ``block_s`` seconds at a time (bounded memory):
    ``block_fn(start, n)`` returns the samples ``[n]`` from sample ``start`` on."""
    import soundfile as sf

    path = Path(path)
    block = block_s * sample_rate
    with sf.SoundFile(path, "w", samplerate=sample_rate, channels=1, subtype="PCM_16") as f:
        for s in range(0, total, block):
            f.write(block_fn(s, min(block, total - s)).astype(np.float32))
    return path


def run_json_child(cmd: list[str], what: str) -> dict[str, Any]:
    """Run ``cmd`` (a benchmark in a fresh Python process) and parse the JSON object on the last
    line of its stdout; a failed run raises ``RuntimeError`` naming ``what`` with its stderr's tail."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
