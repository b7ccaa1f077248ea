"""The built-in demo dataset: eight synthetic sound classes with distinct time structure.

Generated deterministically in numpy (no downloads): every clip is a function of (seed, split,
index). Natural clip lengths are 0.5–10 s, log-uniform, so a model that only works at one input
length is exposed. Files are written as 16 kHz 16-bit WAV with a ``manifest.csv``
(``path,label,split``) that :func:`audioflex.data.readers.read_dataset` reads.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
CLASSES = ("siren", "alarm_beeps", "engine_hum", "knocks", "bird_chirps", "bells", "rain", "babble")

Gen = Callable[[np.random.Generator, int, int], np.ndarray]


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _siren(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A tone sweeping up and down (wail) between two frequencies, period 0.8–2 s."""
    t = _t(n, sr)
    lo, hi = rng.uniform(500, 800), rng.uniform(1100, 1600)
    period = rng.uniform(0.8, 2.0)
    f = lo + (hi - lo) * 0.5 * (1 - np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f) / sr
    return np.sin(phase) + 0.3 * np.sin(2 * phase)


def _alarm_beeps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Square-gated high beeps: 80–200 ms on, equal-ish off."""
    t = _t(n, sr)
    f = rng.uniform(2000, 3200)
    on, off = rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.25)
    gate = ((t + rng.uniform(0, on + off)) % (on + off)) < on
    return np.sin(2 * np.pi * f * t) * gate


def _engine_hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Low harmonic drone with slow rpm wobble and firing-rate amplitude modulation."""
    t = _t(n, sr)
    f0 = rng.uniform(40, 110) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 9))
    return x * (1 + 0.3 * np.sin(phase / 2))


def _decay_burst(rng: np.random.Generator, length: int, sr: int, freqs: list[float], tau: float) -> np.ndarray:
    t = _t(length, sr)
    x = rng.standard_normal(length) * np.exp(-t / (tau / 4))
    for f in freqs:
        x = x + np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) * np.exp(-t / tau)
    return x


def _knocks(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Sparse wooden knocks in groups of 2–4, resonances 150–600 Hz, fast decay."""
    x = np.zeros(n)
    pos = int(rng.uniform(0, 0.3) * sr)
    while pos < n:
        for _ in range(int(rng.integers(2, 5))):
            if pos >= n:
                break
            burst = _decay_burst(rng, int(0.12 * sr), sr, [rng.uniform(150, 600), rng.uniform(700, 1200)], 0.03)
            end = min(n, pos + burst.size)
            x[pos:end] += burst[: end - pos]
            pos += int(rng.uniform(0.12, 0.2) * sr)
        pos += int(rng.uniform(0.4, 1.0) * sr)
    return x


def _bird_chirps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Fast upward sweeps 3–7 kHz of 40–100 ms, in trills."""
    x = np.zeros(n)
    pos = int(rng.uniform(0, 0.2) * sr)
    while pos < n:
        dur = rng.uniform(0.04, 0.1)
        m = int(dur * sr)
        f = np.linspace(rng.uniform(2500, 4000), rng.uniform(5000, 7000), m)
        chirp = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)
        end = min(n, pos + m)
        x[pos:end] += chirp[: end - pos]
        pos += m + int(rng.uniform(0.03, 0.12 if rng.random() < 0.8 else 0.6) * sr)
    return x


def _bells(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Struck bells: inharmonic partials, long exponential decay, every 0.7–2 s."""
    x = np.zeros(n)
    f0 = rng.uniform(300, 700)
    ratios = [0.5, 1.0, 1.19, 1.56, 2.0, 2.51, 2.66]
    pos = 0
    while pos < n:
        m = min(n - pos, int(2.5 * sr))
        t = _t(m, sr)
        strike = sum(
            np.sin(2 * np.pi * f0 * r * t) * np.exp(-t * (1.0 + 1.5 * r)) / (1 + i) for i, r in enumerate(ratios)
        )
        x[pos : pos + m] += strike
        pos += int(rng.uniform(0.7, 2.0) * sr)
    return x


def _rain(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Broadband hiss plus many tiny droplet clicks at random times."""
    x = np.convolve(rng.standard_normal(n), np.ones(3) / 3, mode="same") * 0.4
    drops = rng.random(n) < rng.uniform(20, 80) / sr
    idx = np.flatnonzero(drops)
    for i in idx:
        m = min(n - i, 160)
        x[i : i + m] += rng.uniform(0.5, 2.0) * np.exp(-np.arange(m) / 20.0) * rng.standard_normal(m)
    return x


def _babble(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Speech-like: glottal pulse train through moving formants, syllable rate 3–6 Hz."""
    t = _t(n, sr)
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = np.cumsum(f0) / sr
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
    out = np.zeros(n)
    rate = rng.uniform(3, 6)
    env = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.3)), 0, None) ** 0.7
    for formant in (rng.uniform(300, 900), rng.uniform(900, 2300), rng.uniform(2300, 3200)):
        k = np.arange(int(0.01 * sr))
        ring = np.exp(-k / (0.002 * sr)) * np.sin(2 * np.pi * formant * k / sr)
        out += np.convolve(pulses, ring, mode="same")
    return out * env


GENERATORS: dict[str, Gen] = {
    "siren": _siren,
    "alarm_beeps": _alarm_beeps,
    "engine_hum": _engine_hum,
    "knocks": _knocks,
    "bird_chirps": _bird_chirps,
    "bells": _bells,
    "rain": _rain,
    "babble": _babble,
}


def synth_clip(label: str, seconds: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One clip of ``label`` in background noise, peak-normalised to a random level. ``[T]`` float32."""
    n = max(1, int(seconds * sr))
    x = GENERATORS[label](rng, n, sr)
    x = x / (np.abs(x).max() + 1e-9)
    snr_db = rng.uniform(5, 25)
    noise = np.convolve(rng.standard_normal(n), np.ones(2) / 2, mode="same")
    noise *= 10 ** (-snr_db / 20) / (np.abs(noise).max() + 1e-9)
    y = (x + noise) * 10 ** (rng.uniform(-18, -3) / 20)
    fade = min(n // 4, int(0.01 * sr))
    if fade > 1:
        ramp = np.linspace(0, 1, fade)
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    return np.clip(y, -1, 1).astype(np.float32)


@dataclass(frozen=True)
class DemoSpec:
    """Sizes of the demo dataset (clips per class per split) and the length range in seconds.

    Train and valid clips have natural lengths (log-uniform in ``[min_seconds, max_seconds]``);
    test clips are all ``test_seconds`` long (None: natural too), so an evaluation at any shorter
    length crops real audio instead of padding silence.
    """

    train_per_class: int = 60
    valid_per_class: int = 10
    test_per_class: int = 20
    min_seconds: float = 0.5
    max_seconds: float = 10.0
    test_seconds: float | None = 10.0
    seed: int = 1234


def make_demo_dataset(root: str | Path, spec: DemoSpec = DemoSpec()) -> Path:
    """Write the demo dataset under ``root`` (WAVs + ``manifest.csv``); returns the manifest path.

    Deterministic: the same spec gives byte-identical files. Existing complete datasets are reused.
    """
    import soundfile as sf

    root = Path(root)
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return manifest
    rows = []
    splits = (("train", spec.train_per_class), ("valid", spec.valid_per_class), ("test", spec.test_per_class))
    for s_idx, (split, per_class) in enumerate(splits):
        for c_idx, label in enumerate(CLASSES):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rng = np.random.default_rng([spec.seed, s_idx, c_idx, i])
                secs = math.exp(rng.uniform(math.log(spec.min_seconds), math.log(spec.max_seconds)))
                if split == "test" and spec.test_seconds is not None:
                    secs = spec.test_seconds
                rel = Path(split) / label / f"{label}_{i:03d}.wav"
                sf.write(root / rel, synth_clip(label, secs, rng), SAMPLE_RATE, subtype="PCM_16")
                rows.append((rel.as_posix(), label, split))
    tmp = manifest.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        w.writerows(rows)
    tmp.replace(manifest)
    return manifest
