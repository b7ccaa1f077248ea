"""Sound-event-detection corpus with strong labels, in the DESED release layout or a flat one.

    --layout release (default)                      --layout flat
    <out>/audio/{train,validation,eval}/*.wav        <out>/audio/*.wav
    <out>/metadata/<split>/<split>.tsv (strong)      <out>/meta.tsv  (strong, all clips)
    <out>/metadata/train/weak.tsv                    <out>/weak.tsv  (all clips)
                                                     <out>/split.csv (filename,split)

Strong TSV: ``filename<TAB>onset<TAB>offset<TAB>event_label`` (seconds, 3 decimals); weak TSV:
``filename<TAB>event_labels`` (comma-separated). Clips of 4-30 s hold 1-5 events of 8 classes over a noise
or distant-babble background. Every event is trimmed to its energy before it is placed, so its
onset/offset are its first and last sample in the clip. Both layouts hold the same audio for one seed.
Run ``python tools/corpora/sed.py --out DIR [--layout flat]``.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

import numpy as np
from common import (
    ACCENTS,
    SENTENCES,
    VARIANTS,
    active_rms,
    babble,
    colored_noise,
    db_to_gain,
    espeak,
    fade,
    fail,
    fluidsynth,
    midi_bytes,
    noise_segment,
    prepare_out,
    require_engines,
    rms,
    sox_effects,
    sox_synth,
    summary,
    trim,
    write_wav,
)

# label: (shortest, longest) requested duration in seconds (the trimmed event can be a little shorter)
CLASSES = {"Speech": (0.5, 6.0), "Alarm": (0.5, 6.0), "Bell": (0.5, 6.0), "Piano": (0.5, 6.0),
           "Violin": (0.5, 6.0), "Whistle": (0.3, 3.0), "Frying": (1.0, 6.0), "Motor": (1.0, 6.0)}
SPLITS = ("train", "validation", "eval")
WORDS = " ".join(SENTENCES).split()
TRIM_DB = 35.0  # an event ends where its 10 ms frames fall this far below its loudest frame
MIN_EVENT = 0.3  # seconds


class Renderer:
    """Renders one event of a class as a trimmed mono float32 array [T] (peak ~1)."""

    def __init__(self, sr: int, rng: np.random.Generator) -> None:
        self.sr, self.rng = sr, rng
        self.noise = {k: colored_noise(k, 300.0, sr, rng) for k in ("white", "pink", "brown")}

    def __call__(self, label: str, seconds: float) -> np.ndarray:
        for _ in range(5):  # a render that trims to under MIN_EVENT (a short bell, one short word) is redone
            y = getattr(self, label.lower())(seconds)
            y = trim(y[: int(6.0 * self.sr)], self.sr, TRIM_DB)
            if len(y) >= MIN_EVENT * self.sr:
                break
        y = fade(y, self.sr, 0.01)
        return y / (np.abs(y).max() + 1e-9)

    def _excerpt(self, kind: str, n: int) -> np.ndarray:
        return noise_segment(self.noise[kind], n, self.rng)

    def _envelope(self, n: int, attack: float, release: float) -> np.ndarray:
        env = np.ones(n, np.float32)
        a, r = min(n // 2, int(attack * self.sr)), min(n // 2, int(release * self.sr))
        env[:a] = np.linspace(0, 1, a)
        if r:
            env[-r:] = np.linspace(1, 0, r)
        return env

    def speech(self, seconds: float) -> np.ndarray:
        rng = self.rng
        speed = int(rng.integers(130, 191))
        n_words = max(1, round(seconds * speed / 60))
        start = int(rng.integers(len(WORDS)))
        text = " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n_words))
        voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}"
        return espeak(text, voice, self.sr, speed=speed, pitch=int(rng.integers(20, 81)),
                      amplitude=int(rng.integers(70, 161)))

    def alarm(self, seconds: float) -> np.ndarray:
        rng, sr = self.rng, self.sr
        wave = str(rng.choice(["sine", "square", "triangle", "sawtooth"]))
        f1 = float(np.exp(rng.uniform(np.log(500), np.log(min(3500, 0.4 * sr)))))
        f2 = f1 * float(rng.choice([1.0, 1.0, 1.25, 1.5, 0.75]))
        tones = [sox_synth(seconds, sr, wave, f"{f:.1f}") for f in (f1, f2)]
        on, off = rng.uniform(0.05, 0.45), rng.uniform(0.03, 0.4)
        n = min(len(t) for t in tones)
        y = np.zeros(n, np.float32)
        t, k = 0, 0
        while t < n:
            m = min(n - t, int(on * sr))
            y[t: t + m] = fade(tones[k % 2][t: t + m], sr, 0.004)
            t += m + int(off * sr)
            k += 1
        return sox_effects(y, sr, ["highpass", "300", "lowpass", f"{min(6000, int(0.45 * sr))}"])

    def _fluid(self, program: int, notes: list, seconds: float) -> np.ndarray:
        rng = self.rng
        room = {"synth.reverb.room-size": round(float(rng.uniform(0.0, 0.9)), 3),
                "synth.reverb.level": round(float(rng.uniform(0.0, 0.9)), 3),
                "synth.chorus.active": int(rng.random() < 0.3)}
        controls = {91: int(rng.integers(0, 128)), 1: int(rng.integers(0, 60))}
        y = fluidsynth(midi_bytes(notes, program, seconds, controls=controls), self.sr, room)
        return fade(y[: int(seconds * self.sr)], self.sr, 0.05, fade_in=False)

    def bell(self, seconds: float) -> np.ndarray:
        rng = self.rng
        program, lo, hi = [(14, 55, 77), (9, 72, 96), (112, 72, 96)][int(rng.integers(3))]
        keys = rng.integers(lo, hi + 1, size=int(rng.integers(1, 4)))
        notes, t = [], 0.0
        while t < seconds - 0.3 and len(notes) < 8:
            notes.append((t, 0.8, int(rng.choice(keys)), int(rng.integers(60, 128))))
            t += float(rng.uniform(0.15, 0.9))
        return self._fluid(program, notes, seconds)

    def _phrase(self, seconds: float, lo: int, hi: int, legato: bool) -> list:
        rng = self.rng
        scale = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10]
        tonic = int(rng.integers(12))
        keys = [k for k in range(lo, hi + 1) if (k - tonic) % 12 in scale]
        beat = 60.0 / rng.uniform(70, 170)
        pos, t, notes = int(rng.integers(len(keys))), 0.0, []
        while t < seconds - 0.1:
            ioi = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            pos = int(np.clip(pos + rng.integers(-2, 3), 0, len(keys) - 1))
            vel = int(rng.integers(50, 120))
            chord = [keys[pos]] if legato or rng.random() < 0.6 else [keys[pos], keys[min(len(keys) - 1, pos + 2)]]
            notes += [(t, min(ioi * (0.95 if legato else 1.3), seconds - t), k, vel) for k in chord]
            t += ioi
        return notes

    def piano(self, seconds: float) -> np.ndarray:
        lo = int(self.rng.integers(36, 72))
        return self._fluid(0, self._phrase(seconds, lo, lo + 19, legato=False), seconds)

    def violin(self, seconds: float) -> np.ndarray:
        lo = int(self.rng.integers(55, 80))
        return self._fluid(40, self._phrase(seconds, lo, lo + 14, legato=True), seconds)

    def whistle(self, seconds: float) -> np.ndarray:
        rng, sr = self.rng, self.sr
        parts, envs, left = [], [], seconds
        while left > 0.1:
            seg = min(left, float(rng.uniform(0.15, 1.0)))
            f1 = float(rng.uniform(900, min(3000, 0.4 * sr)))
            f2 = float(np.clip(f1 * 2 ** rng.uniform(-1, 1), 800, 0.42 * sr))
            tone = sox_synth(seg, sr, "sine", f"{f1:.0f}/{f2:.0f}")
            env = self._envelope(len(tone), 0.03, 0.05)
            gap = np.zeros(int(rng.uniform(0.0, 0.12) * sr), np.float32)
            parts += [tone * env, gap]
            envs += [env, gap]
            left -= seg
        y, env = np.concatenate(parts), np.concatenate(envs)
        breath = sox_effects(self._excerpt("white", len(y)), sr, ["highpass", "2000"])
        y = y + 0.005 * breath / (rms(breath) + 1e-9) * env
        return sox_effects(y, sr, ["tremolo", f"{rng.uniform(4, 8):.1f}", f"{rng.uniform(5, 30):.0f}"])

    def frying(self, seconds: float) -> np.ndarray:
        rng, sr = self.rng, self.sr
        n = int(seconds * sr)
        hi = int(min(9000, 0.45 * sr))
        sizzle = sox_effects(self._excerpt("white", n), sr, ["sinc", f"{int(rng.uniform(1500, 3500))}-{hi}"])
        crackle = np.zeros(n, np.float32)
        times = rng.integers(0, n, size=int(rng.uniform(40, 200) * seconds))
        click = np.exp(-np.arange(int(0.003 * sr)) / (0.0007 * sr)).astype(np.float32)
        for t in times:
            m = min(len(click), n - t)
            crackle[t: t + m] += click[:m] * rng.lognormal(0, 0.8) * rng.standard_normal(m).astype(np.float32)
        crackle = sox_effects(crackle, sr, ["highpass", "1200"])
        y = 0.4 * sizzle / (rms(sizzle) + 1e-9) + crackle / (rms(crackle) + 1e-9)
        return y * self._envelope(n, rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4))

    def motor(self, seconds: float) -> np.ndarray:
        rng, sr = self.rng, self.sr
        f = float(rng.uniform(60, 200))
        hum = sox_synth(seconds, sr, "sawtooth", f"{f:.1f}:{f * rng.uniform(0.95, 1.05):.1f}")
        rumble = self._excerpt("brown", len(hum))
        y = hum / (rms(hum) + 1e-9) + rng.uniform(0.3, 1.5) * rumble / (rms(rumble) + 1e-9)
        y = sox_effects(y, sr, ["lowpass", f"{int(rng.uniform(1000, min(5000, 0.45 * sr)))}",
                                "tremolo", f"{rng.uniform(2, 9):.1f}", f"{rng.uniform(5, 25):.0f}"])
        return y * self._envelope(len(y), rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.6))


def background(pools: dict[str, np.ndarray], n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Noise or distant babble, randomly filtered, at a random level -> [n]."""
    kind = str(rng.choice(["pink", "brown", "white", "babble", "babble+brown"]))
    y = sum(noise_segment(pools[k], n, rng) / (rms(pools[k]) + 1e-9) * db_to_gain(rng.uniform(-6, 0))
            for k in kind.split("+"))
    effects = []
    if rng.random() < 0.7:
        effects += ["lowpass", f"{int(rng.uniform(1000, 0.45 * sr))}"]
    if rng.random() < 0.5:
        effects += ["highpass", f"{int(rng.uniform(40, 300))}"]
    y = sox_effects(np.asarray(y, np.float32), sr, effects)[:n]
    return y / (rms(y) + 1e-9) * db_to_gain(rng.uniform(-50, -30))


def fits(cover: np.ndarray, labels: list, s: int, e: int, label: str, hop: int) -> bool:
    """At most 2 events at once, at most half of the new event overlapped, no overlap within a class."""
    seg = cover[s // hop: -(-e // hop)]
    if seg.max(initial=0) >= 2 or (seg > 0).mean() > 0.5:
        return False
    return all(lab != label or e <= s0 or s >= e0 for s0, e0, lab in labels)


def make_clip(render: Renderer, pools: dict, seconds: float, max_events: int, rng: np.random.Generator):
    """One soundscape -> (audio [n], events [(onset_s, offset_s, label)] sorted by onset, labels of the
    events dropped for lack of room)."""
    sr = render.sr
    n = int(round(seconds * sr))
    bg = background(pools, n, sr, rng)
    mix = bg.copy()
    hop = int(0.01 * sr)
    cover = np.zeros(-(-n // hop), np.int32)
    placed: list[tuple[int, int, str]] = []
    dropped = []
    for _ in range(int(rng.integers(1, max_events + 1))):
        label = str(rng.choice(list(CLASSES)))
        lo, hi = CLASSES[label]
        y = render(label, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
        if len(y) > int(0.8 * n):
            y = fade(trim(y[: int(0.8 * n)], sr, TRIM_DB), sr, 0.02)
        for _try in range(30):
            s = int(rng.integers(0, n - len(y) + 1))
            if fits(cover, placed, s, s + len(y), label, hop):
                break
        else:
            dropped.append(label)
            continue
        y = y * (rms(bg) / (active_rms(y, sr) + 1e-12) * db_to_gain(rng.uniform(0, 20)))
        mix[s: s + len(y)] += y
        cover[s // hop: -(-(s + len(y)) // hop)] += 1
        placed.append((s, s + len(y), label))
    events = sorted((s / sr, e / sr, lab) for s, e, lab in placed)
    return mix.astype(np.float32), events, dropped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (created; must be empty)")
    ap.add_argument("--layout", choices=["release", "flat"], default="release")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-clips", type=int, default=300)
    ap.add_argument("--validation-clips", type=int, default=60)
    ap.add_argument("--eval-clips", type=int, default=60)
    ap.add_argument("--min-seconds", type=float, default=4.0)
    ap.add_argument("--max-seconds", type=float, default=30.0)
    ap.add_argument("--max-events", type=int, default=5, help="events per clip: 1..max-events")
    ap.add_argument("--sample-rate", type=int, default=16000, help="16000 (default) or e.g. 32000")
    ap.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = ap.parse_args()
    if not 1.0 <= args.min_seconds <= args.max_seconds:
        fail("--min-seconds must be >= 1 and <= --max-seconds")
    if args.max_events < 1 or min(args.train_clips, args.validation_clips, args.eval_clips) < 0:
        fail("--max-events must be >= 1 and the clip counts >= 0")
    if not 8000 <= args.sample_rate <= 96000:
        fail("--sample-rate must be between 8000 and 96000")
    require_engines("espeak-ng", "fluidsynth", "sox")
    started = time.time()
    prepare_out(args.out, args.force)
    sr = args.sample_rate
    rng = np.random.default_rng(args.seed)
    render = Renderer(sr, rng)
    crowd = sox_effects(babble(120.0, sr, rng, talkers=10), sr, ["reverb", "60", "50", "100", "lowpass", "3000"])
    pools = {**render.noise, "babble": crowd}

    sizes = {"train": args.train_clips, "validation": args.validation_clips, "eval": args.eval_clips}
    strong: dict[str, list] = {s: [] for s in SPLITS}
    weak: dict[str, list] = {s: [] for s in SPLITS}
    counts: dict[str, Counter] = {c: Counter() for c in CLASSES}
    per_clip: Counter = Counter()
    dropped: Counter = Counter()
    durations = []
    for split in SPLITS:
        for i in range(sizes[split]):
            seconds = float(np.exp(rng.uniform(np.log(args.min_seconds), np.log(args.max_seconds))))
            audio, events, lost = make_clip(render, pools, seconds, args.max_events, rng)
            dropped.update(lost)
            name = f"{split}_{i:04d}.wav"
            where = args.out / "audio" / (split if args.layout == "release" else "") / name
            durations.append(write_wav(where, audio, sr))
            strong[split] += [(name, f"{on:.3f}", f"{off:.3f}", lab) for on, off, lab in events]
            weak[split].append((name, ",".join(sorted({lab for _, _, lab in events}))))
            per_clip[len(events)] += 1
            for _, _, lab in events:
                counts[lab][split] += 1

    def write_tsv(path: Path, header: list[str], rows: list) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)

    strong_h, weak_h = ["filename", "onset", "offset", "event_label"], ["filename", "event_labels"]
    if args.layout == "release":
        for split in SPLITS:
            write_tsv(args.out / "metadata" / split / f"{split}.tsv", strong_h, strong[split])
        write_tsv(args.out / "metadata" / "train" / "weak.tsv", weak_h, weak["train"])
    else:
        write_tsv(args.out / "meta.tsv", strong_h, [r for s in SPLITS for r in strong[s]])
        write_tsv(args.out / "weak.tsv", weak_h, [r for s in SPLITS for r in weak[s]])
        with open(args.out / "split.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["filename", "split"])
            w.writerows((name, s) for s in SPLITS for name, _ in weak[s])
    summary(f"sed ({args.layout}) -> {args.out}  (event counts; events per clip: "
            f"{dict(sorted(per_clip.items()))}; dropped for lack of room: {dict(sorted(dropped.items()))})",
            counts, durations, started)


if __name__ == "__main__":
    main()
