"""Instrument-classification corpus in the ESC-50 layout, with native variable clip lengths (fluidsynth).

    <out>/audio/<fold>-<src_file>-<take>-<target>.wav   0.5-12 s, 16 kHz mono (--sample-rate), 16-bit
    <out>/meta/esc50.csv    filename,fold,target,category,esc10,src_file,take

Ten General MIDI instruments rendered with the FluidR3 GM soundfont. A "performer" (src_file) is one
instrument in one room (reverb/chorus), with its own register, tempo, density and dynamics; its takes
(A, B, ...) share a fold, as in ESC-50. Run ``python tools/corpora/instruments.py --out DIR``.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

import numpy as np
from common import (
    active_rms,
    colored_noise,
    db_to_gain,
    fade,
    fail,
    fluidsynth,
    midi_bytes,
    noise_segment,
    prepare_out,
    require_engines,
    summary,
    write_wav,
)

# category: (GM program 0-based, lowest key, highest key, sustained)
CLASSES = {
    "piano": (0, 24, 103, False),
    "marimba": (12, 45, 96, False),
    "church_organ": (19, 36, 96, True),
    "nylon_guitar": (24, 40, 84, False),
    "violin": (40, 55, 100, True),
    "pizzicato_strings": (45, 28, 96, False),
    "harp": (46, 24, 103, False),
    "trumpet": (56, 54, 86, True),
    "alto_sax": (65, 49, 81, True),
    "flute": (73, 60, 96, True),
}
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10], "dorian": [0, 2, 3, 5, 7, 9, 10],
          "pentatonic": [0, 2, 4, 7, 9], "blues": [0, 3, 5, 6, 7, 10]}


def make_performer(category: str, rng: np.random.Generator) -> dict:
    """Fixed traits of one performer: register, tempo, density, dynamics, texture and room."""
    _, lo, hi, sustained = CLASSES[category]
    span = hi - lo
    width = int(rng.integers(5, max(6, min(24, span // 2))))
    centre = int(rng.integers(lo + width // 2, hi - width // 2 + 1))
    texture = rng.choice(["melody", "chords", "arpeggio", "mixed"], p=[0.4, 0.2, 0.2, 0.2] if not sustained
                         else [0.55, 0.25, 0.05, 0.15])
    room = {"synth.reverb.room-size": round(float(rng.uniform(0.0, 0.95)), 3),
            "synth.reverb.damp": round(float(rng.uniform(0.0, 1.0)), 3),
            "synth.reverb.width": round(float(rng.uniform(0.5, 30.0)), 2),
            "synth.reverb.level": round(float(rng.uniform(0.0, 0.9)), 3),
            "synth.chorus.active": int(rng.random() < 0.5),
            "synth.chorus.nr": int(rng.integers(1, 6)),
            "synth.chorus.level": round(float(rng.uniform(0.0, 4.0)), 3),
            "synth.chorus.depth": round(float(rng.uniform(2.0, 20.0)), 2),
            "synth.chorus.speed": round(float(rng.uniform(0.1, 2.0)), 3)}
    return {"centre": centre, "width": width, "bpm": float(rng.uniform(60, 180)),
            "density": float(np.exp(rng.uniform(np.log(0.5), np.log(4.0)))), "velocity": float(rng.uniform(45, 115)),
            "texture": str(texture), "room": room, "reverb_send": int(rng.integers(0, 128)),
            "chorus_send": int(rng.integers(0, 128)), "vibrato": int(rng.integers(0, 70)) if sustained else 0}


def compose(category: str, perf: dict, seconds: float, rng: np.random.Generator) -> tuple[list, float]:
    """Random notes (start_s, dur_s, key, velocity) filling ``seconds``; returns (notes, bpm)."""
    _, lo, hi, sustained = CLASSES[category]
    bpm = float(np.clip(perf["bpm"] * rng.uniform(0.85, 1.15), 40, 220))
    beat = 60.0 / bpm
    density = perf["density"] * rng.uniform(0.7, 1.4)  # notes per beat
    centre = int(np.clip(perf["centre"] + rng.integers(-5, 6), lo, hi))
    low, high = max(lo, centre - perf["width"]), min(hi, centre + perf["width"])
    tonic = int(rng.integers(0, 12))
    scale = SCALES[str(rng.choice(list(SCALES)))]
    keys = [k for k in range(low, high + 1) if (k - tonic) % 12 in scale] or [centre]
    texture = perf["texture"]
    pos = int(rng.integers(len(keys)))
    notes = []
    t = float(rng.uniform(0.0, 0.15))
    steps = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0])
    while t < seconds - 0.05:
        mode = str(rng.choice(["melody", "chords", "arpeggio"])) if texture == "mixed" else texture
        ioi = beat * float(steps[np.argmin(np.abs(steps - rng.exponential(1.0 / density)))])
        vel = int(np.clip(rng.normal(perf["velocity"], 12), 20, 127))
        legato = rng.uniform(0.85, 1.0) if sustained else rng.uniform(0.3, 1.5)
        if rng.random() < 0.08 and notes:  # a rest
            t += ioi
            continue
        pos = int(np.clip(pos + rng.choice([-2, -1, -1, 1, 1, 2, rng.integers(-5, 6)]), 0, len(keys) - 1))
        if mode == "melody":
            notes.append((t, ioi * legato, keys[pos], vel))
        elif mode == "chords":
            chord = sorted({keys[min(len(keys) - 1, pos + d)] for d in (0, 2, 4)[: int(rng.integers(2, 4))]})
            notes += [(t, ioi * legato, k, max(20, vel - 6 * i)) for i, k in enumerate(chord)]
        else:  # arpeggio: a broken chord inside this interval
            chord = [keys[min(len(keys) - 1, pos + d)] for d in (0, 2, 4, 7)]
            sub = ioi / len(chord)
            notes += [(t + i * sub, ioi * legato - i * sub + sub, k, vel) for i, k in enumerate(chord)]
        t += ioi
    return notes, bpm


def assign_folds(n_performers: int, sizes: list[int], folds: int, rng: np.random.Generator) -> list[int]:
    """Give each performer (with ``sizes`` clips) a fold so that folds get about the same number of clips."""
    load = np.zeros(folds)
    out = []
    for k in range(n_performers):
        least = np.flatnonzero(load == load.min())
        f = int(rng.choice(least))
        load[f] += sizes[k]
        out.append(f + 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (created; must be empty)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clips-per-class", type=int, default=60)
    ap.add_argument("--max-takes", type=int, default=4, help="takes per performer: 1..max-takes")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("--max-seconds", type=float, default=12.0)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = ap.parse_args()
    if not 0 < args.min_seconds <= args.max_seconds:
        fail("--min-seconds must be > 0 and <= --max-seconds")
    if args.clips_per_class < args.folds or not 1 <= args.max_takes <= 26:
        fail("--clips-per-class must be at least --folds, and --max-takes between 1 and 26")
    if not 8000 <= args.sample_rate <= 96000:
        fail("--sample-rate must be between 8000 and 96000 (fluidsynth's range)")
    require_engines("fluidsynth", "sox")
    started = time.time()
    prepare_out(args.out, args.force)
    sr = args.sample_rate
    rng = np.random.default_rng(args.seed)
    noises = [colored_noise(k, 60.0, sr, rng) for k in ("white", "pink", "brown")]

    rows = []
    counts: dict[str, Counter] = {c: Counter() for c in CLASSES}
    durations = []
    used_ids: set[int] = set()
    for target, category in enumerate(CLASSES):
        program = CLASSES[category][0]
        sizes = []
        while sum(sizes) < args.clips_per_class:
            sizes.append(min(int(rng.integers(1, args.max_takes + 1)), args.clips_per_class - sum(sizes)))
        folds = assign_folds(len(sizes), sizes, args.folds, rng)
        for n_takes, fold in zip(sizes, folds):
            perf = make_performer(category, rng)
            src = int(rng.integers(100000, 1000000))
            while src in used_ids:
                src = int(rng.integers(100000, 1000000))
            used_ids.add(src)
            for take in range(n_takes):
                seconds = float(np.exp(rng.uniform(np.log(args.min_seconds), np.log(args.max_seconds))))
                notes, bpm = compose(category, perf, seconds, rng)
                controls = {7: 100, 91: perf["reverb_send"], 93: perf["chorus_send"], 1: perf["vibrato"]}
                y = fluidsynth(midi_bytes(notes, program, seconds, bpm=bpm, controls=controls), sr, perf["room"])
                n = int(round(seconds * sr))
                y = np.pad(y, (0, max(0, n - len(y))))[:n]
                y = fade(y, sr, 0.01)
                y = y / (active_rms(y, sr) + 1e-9) * db_to_gain(rng.uniform(-32, -14))
                bg = noise_segment(noises[int(rng.integers(len(noises)))], n, rng)
                y = y + bg * (active_rms(y, sr) / (np.sqrt(np.mean(bg**2)) + 1e-12) * db_to_gain(-rng.uniform(15, 40)))
                letter = chr(ord("A") + take)
                name = f"{fold}-{src}-{letter}-{target}.wav"
                durations.append(write_wav(args.out / "audio" / name, y.astype(np.float32), sr))
                rows.append([name, fold, target, category, "False", src, letter])
                counts[category][f"fold{fold}"] += 1
    rows.sort(key=lambda r: r[0])
    (args.out / "meta").mkdir(parents=True, exist_ok=True)
    with open(args.out / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        w.writerows(rows)
    summary(f"instruments -> {args.out}  ({len(used_ids)} performers, {sr} Hz)", counts, durations, started)


if __name__ == "__main__":
    main()
