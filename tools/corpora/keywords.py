"""Keyword-spotting corpus in the Speech Commands V2 layout, spoken by espeak-ng "speakers".

    <out>/<word>/<speaker>_nohash_<n>.wav      1.0 s, 16 kHz mono, 16-bit
    <out>/validation_list.txt, testing_list.txt  relative paths; every other clip is training data
    <out>/_background_noise_/*.wav              60 s of white, pink and brown noise (sox) and babble (espeak-ng)

A speaker is one espeak-ng accent x voice variant with its own base speed, pitch and amplitude; the
train/validation/test split is by speaker (no speaker in two splits). Run
``python tools/corpora/keywords.py --out DIR`` (see tools/corpora/README.md).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
from common import (
    ACCENTS,
    VARIANTS,
    active_rms,
    babble,
    colored_noise,
    db_to_gain,
    espeak,
    fade,
    fail,
    noise_segment,
    prepare_out,
    require_engines,
    sox_effects,
    summary,
    trim,
    write_wav,
)

# Five confusable pairs.
WORDS = ["left", "lift", "go", "no", "up", "off", "three", "tree", "bed", "bird"]
NOISES = ["white", "pink", "brown"]
SPLITS = ("train", "validation", "test")


def make_speakers(n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` distinct (accent, variant) voices with their base speed/pitch/amplitude and a hex id."""
    combos = [(a, v) for a in ACCENTS for v in VARIANTS]
    if n > len(combos):
        fail(f"--speakers {n} is more than the {len(combos)} accent x variant voices; use at most {len(combos)}")
    picks = rng.choice(len(combos), size=n, replace=False)
    ids: set[str] = set()
    speakers = []
    for k in picks:
        sid = f"{int(rng.integers(0, 2**32)):08x}"
        while sid in ids:
            sid = f"{int(rng.integers(0, 2**32)):08x}"
        ids.add(sid)
        accent, variant = combos[int(k)]
        # the speaker's "microphone": a fixed band limit (most of the time)
        channel = ["highpass", str(int(rng.integers(40, 300))), "lowpass", str(int(rng.integers(3500, 7600)))]
        speakers.append({"id": sid, "voice": f"{accent}+{variant}", "speed": int(rng.integers(120, 201)),
                         "pitch": int(rng.integers(20, 81)), "amplitude": int(rng.integers(70, 161)),
                         "channel": channel if rng.random() < 0.7 else []})
    return speakers


def split_speakers(speakers: list[dict], val_frac: float, test_frac: float) -> dict[str, str]:
    """Speaker id -> split; the order of ``speakers`` is already random."""
    n = len(speakers)
    n_test = max(1, round(n * test_frac))
    n_val = max(1, round(n * val_frac))
    out = {}
    for i, spk in enumerate(speakers):
        out[spk["id"]] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return out


def render_word(word: str, spk: dict, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One utterance: espeak-ng with per-take jitter, optional small sox pitch/tempo change, the speaker's
    band limit; trimmed to its energy."""
    speed = int(np.clip(spk["speed"] + rng.integers(-10, 11), 80, 260))
    pitch = int(np.clip(spk["pitch"] + rng.integers(-5, 6), 0, 99))
    y = espeak(word, spk["voice"], sr, speed=speed, pitch=pitch, amplitude=spk["amplitude"])
    effects = []
    if rng.random() < 0.4:
        effects += ["pitch", f"{rng.uniform(-150, 150):.0f}"]
    if rng.random() < 0.4:
        effects += ["tempo", "-s", f"{rng.uniform(0.88, 1.12):.3f}"]
    y = sox_effects(y, sr, spk["channel"] + effects)  # band limit first: sox "pitch" changes the rate after it
    return fade(trim(y, sr, below_peak_db=55.0), sr)


def place(word: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Put ``word`` at a random offset in ``n`` samples (cropped if it is longer)."""
    out = np.zeros(n, np.float32)
    if len(word) <= n:
        off = int(rng.integers(0, n - len(word) + 1))
        out[off: off + len(word)] = word
    else:
        off = int(rng.integers(0, len(word) - n + 1))
        out[:] = word[off: off + n]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (created; must be empty)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speakers", type=int, default=160, help="number of voices (about 9 clips each per 10 words)")
    ap.add_argument("--word-prob", type=float, default=0.8, help="chance that a speaker says a given word")
    ap.add_argument("--max-reps", type=int, default=3, help="takes of one word by one speaker: 1..max-reps")
    ap.add_argument("--val-frac", type=float, default=0.15)
    ap.add_argument("--test-frac", type=float, default=0.15)
    ap.add_argument("--noise-seconds", type=float, default=60.0, help="length of each _background_noise_ file")
    ap.add_argument("--sample-rate", type=int, default=16000, help="16000 as Speech Commands (at least 16000)")
    ap.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = ap.parse_args()
    if args.speakers < 3:
        fail("--speakers must be at least 3 (one per split)")
    if not 16000 <= args.sample_rate <= 96000:
        fail("--sample-rate must be between 16000 and 96000")
    if not 0 < args.word_prob <= 1 or args.max_reps < 1:
        fail("--word-prob must be in (0, 1] and --max-reps at least 1")
    require_engines("espeak-ng", "sox")
    started = time.time()
    prepare_out(args.out, args.force)
    sr = args.sample_rate
    rng = np.random.default_rng(args.seed)

    noise_dir = args.out / "_background_noise_"
    noises = {f"{k}_noise": colored_noise(k, args.noise_seconds, sr, rng) for k in NOISES}
    noises["babble"] = babble(args.noise_seconds, sr, rng)
    for name, x in noises.items():
        write_wav(noise_dir / f"{name}.wav", x, sr)
    (noise_dir / "README.md").write_text(
        "Long background noise files for augmentation: white/pink/brown noise rendered with sox, and babble\n"
        "mixed from six espeak-ng talkers reading Harvard sentences. The clips of this corpus contain\n"
        "excerpts of these files at 5-30 dB SNR.\n")
    noise_list = list(noises.values())

    speakers = make_speakers(args.speakers, rng)
    split_of = split_speakers(speakers, args.val_frac, args.test_frac)
    n = sr  # 1.0 s
    lists: dict[str, list[str]] = {s: [] for s in SPLITS}
    counts: dict[str, Counter] = {w: Counter() for w in WORDS}
    durations = []
    reps_p = np.array([0.55, 0.3, 0.15][: args.max_reps] + [0.05] * max(0, args.max_reps - 3))
    reps_p /= reps_p.sum()
    for spk in speakers:
        split = split_of[spk["id"]]
        for word in WORDS:
            if rng.random() >= args.word_prob:
                continue
            for rep in range(int(rng.choice(len(reps_p), p=reps_p)) + 1):
                y = render_word(word, spk, sr, rng)
                y = y / (active_rms(y, sr) + 1e-9) * db_to_gain(rng.uniform(-35, -12))
                clip = place(y, n, rng)
                bg = noise_segment(noise_list[int(rng.integers(len(noise_list)))], n, rng)
                snr = rng.uniform(5, 30)
                clip = clip + bg * (active_rms(y, sr) / (np.sqrt(np.mean(bg**2)) + 1e-12) * db_to_gain(-snr))
                rel = f"{word}/{spk['id']}_nohash_{rep}.wav"
                durations.append(write_wav(args.out / rel, clip.astype(np.float32), sr))
                lists[split].append(rel)
                counts[word][split] += 1
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        (args.out / name).write_text("".join(f"{p}\n" for p in sorted(lists[split])))
    n_spk = Counter(split_of.values())
    summary(f"keywords -> {args.out}  (speakers train/validation/test: {n_spk['train']}/{n_spk['validation']}/"
            f"{n_spk['test']}; background files: {len(noises)})", counts, durations, started)


if __name__ == "__main__":
    main()
