"""Read a generated corpus, print what it holds and check it (exit 1 when a check fails).

    python tools/corpora/check.py DIR

DIR is one of the layouts written by keywords.py (Speech Commands), instruments.py (ESC-50) or sed.py
(release or flat). Printed: class counts per split/fold, a duration histogram, events per clip (SED), and
levels: clip RMS, for keywords the loud-vs-quiet frame contrast, for SED the RMS inside events against
the background outside them (whole events and their first/last 50 ms). Checked: every file reads, is mono
at one sample rate, is not silent or clipped, and layout rules (1.0 s clips and speaker-disjoint splits;
one fold per src_file; strong-label times inside their clip, weak labels = strong labels).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

EDGES = [0, 0.5, 1, 2, 4, 8, 12, 16, 20, 25, 30, np.inf]


def db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-10)))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.rates: Counter = Counter()
        self.durations: list[float] = []
        self.levels: list[float] = []

    def bad(self, msg: str) -> None:
        self.problems.append(msg)

    def audio(self, path: Path) -> tuple[np.ndarray, int]:
        """Read one file and check it; returns (mono samples [T], rate)."""
        try:
            x, sr = sf.read(path, dtype="float32", always_2d=True)
        except Exception as exc:  # any unreadable file is a finding, not a crash
            self.bad(f"{path}: unreadable ({exc})")
            return np.zeros(0, np.float32), 0
        if x.shape[1] != 1:
            self.bad(f"{path}: {x.shape[1]} channels, expected mono")
        x = x[:, 0]
        self.rates[sr] += 1
        self.durations.append(len(x) / sr)
        level = rms(x)
        self.levels.append(db(level))
        if len(x) == 0 or np.abs(x).max() < 1e-3 or db(level) < -60:
            self.bad(f"{path}: silent (peak {np.abs(x).max(initial=0):.2g}, RMS {db(level):.1f} dBFS)")
        clipped = int(np.sum(np.abs(x) >= 0.9999))
        if clipped > 2:
            self.bad(f"{path}: {clipped} clipped samples")
        return x, sr

    def finish(self) -> None:
        d = np.asarray(self.durations)
        print(f"files: {len(d)}  sample rates: {dict(self.rates)}  total: {d.sum() / 3600:.2f} h")
        if len(d):
            print(f"clip RMS dBFS min/median/max: {min(self.levels):.1f}/{np.median(self.levels):.1f}/"
                  f"{max(self.levels):.1f}")
            print("duration histogram (s):")
            hist, _ = np.histogram(d, bins=EDGES)
            for lo, hi, c in zip(EDGES[:-1], EDGES[1:], hist):
                if c:
                    print(f"  {lo:>5g}-{hi:<5g} {c:>6}  {'#' * max(1, round(50 * c / hist.max()))}")
        if len(self.rates) > 1:
            self.bad(f"mixed sample rates {dict(self.rates)}")
        if self.problems:
            print(f"FAILED: {len(self.problems)} problem(s):")
            for p in self.problems[:20]:
                print(f"  {p}")
            sys.exit(1)
        print("all checks passed")


def table(counts: dict[str, Counter]) -> None:
    cols = sorted({k for c in counts.values() for k in c})
    w = max(len(k) for k in counts)
    print(f"{'class':<{w}}  " + "  ".join(f"{c:>10}" for c in cols) + f"  {'total':>6}")
    for name in sorted(counts):
        print(f"{name:<{w}}  " + "  ".join(f"{counts[name].get(c, 0):>10}" for c in cols)
              + f"  {sum(counts[name].values()):>6}")


def frame_db(x: np.ndarray, sr: int) -> np.ndarray:
    hop = int(0.01 * sr)
    n = len(x) // hop
    return 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)


def check_keywords(root: Path, rep: Report) -> None:
    val = set((root / "validation_list.txt").read_text().split())
    test = set((root / "testing_list.txt").read_text().split())
    counts: dict[str, Counter] = defaultdict(Counter)
    speakers: dict[str, set] = defaultdict(set)
    contrast = []
    files = sorted(p for p in root.glob("*/*.wav") if p.parent.name != "_background_noise_")
    for p in files:
        rel = f"{p.parent.name}/{p.name}"
        split = "test" if rel in test else "validation" if rel in val else "train"
        counts[p.parent.name][split] += 1
        if not re.fullmatch(r"[0-9a-f]{8}_nohash_\d+\.wav", p.name):
            rep.bad(f"{rel}: name is not <speaker>_nohash_<n>.wav")
        speakers[p.name.split("_")[0]].add(split)
        x, sr = rep.audio(p)
        if sr and len(x) != sr:
            rep.bad(f"{rel}: {len(x)} samples, expected {sr} (1.0 s)")
        if len(x) >= sr > 0:
            f = frame_db(x, sr)
            contrast.append(np.percentile(f, 95) - np.percentile(f, 10))
    for rel in sorted((val | test) - {f"{p.parent.name}/{p.name}" for p in files}):
        rep.bad(f"listed but missing: {rel}")
    mixed = [s for s, sp in speakers.items() if len(sp) > 1]
    if mixed:
        rep.bad(f"{len(mixed)} speaker(s) in more than one split, e.g. {mixed[0]}")
    table(counts)
    per_split = Counter(next(iter(sp)) for sp in speakers.values() if len(sp) == 1)
    print(f"speakers per split: {dict(per_split)} (disjoint: {not mixed})")
    if contrast:
        print(f"word vs quiet frames (95th - 10th percentile frame energy) dB min/median/max: "
              f"{min(contrast):.1f}/{np.median(contrast):.1f}/{max(contrast):.1f}")
        low = sum(c < 6 for c in contrast)
        if low > 0.02 * len(contrast):
            rep.bad(f"{low} clips with < 6 dB contrast between word and background")
    for p in sorted((root / "_background_noise_").glob("*.wav")):
        x, sr = sf.read(p, dtype="float32")
        print(f"background {p.name}: {len(x) / sr:.1f} s, RMS {db(rms(x)):.1f} dBFS")
        if db(rms(x)) < -60:
            rep.bad(f"{p}: silent background file")


def check_esc(root: Path, rep: Report) -> None:
    with open(root / "meta" / "esc50.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    if not rows or list(rows[0]) != header:
        rep.bad(f"meta/esc50.csv header is not {','.join(header)}")
    counts: dict[str, Counter] = defaultdict(Counter)
    fold_of: dict[str, set] = defaultdict(set)
    target_of: dict[str, set] = defaultdict(set)
    for r in rows:
        counts[r["category"]][f"fold{r['fold']}"] += 1
        fold_of[r["src_file"]].add(r["fold"])
        target_of[r["category"]].add(r["target"])
        if r["filename"] != f"{r['fold']}-{r['src_file']}-{r['take']}-{r['target']}.wav":
            rep.bad(f"{r['filename']}: name does not match fold-src_file-take-target")
        rep.audio(root / "audio" / r["filename"])
    extra = {p.name for p in (root / "audio").glob("*.wav")} - {r["filename"] for r in rows}
    if extra:
        rep.bad(f"{len(extra)} wav file(s) not in meta/esc50.csv, e.g. {sorted(extra)[0]}")
    split_src = [s for s, f in fold_of.items() if len(f) > 1]
    if split_src:
        rep.bad(f"{len(split_src)} src_file(s) in more than one fold, e.g. {split_src[0]}")
    if any(len(t) > 1 for t in target_of.values()) or len({next(iter(t)) for t in target_of.values()}) != len(
            target_of):
        rep.bad("category <-> target is not one-to-one")
    table(counts)
    print(f"src_files: {len(fold_of)} (each in one fold: {not split_src})")


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def check_sed(root: Path, rep: Report) -> None:
    if (root / "meta.tsv").is_file():  # flat
        with open(root / "split.csv", newline="") as f:
            split_of = {r["filename"]: r["split"] for r in csv.DictReader(f)}
        strong = read_tsv(root / "meta.tsv")
        weak = {r["filename"]: r["event_labels"] for r in read_tsv(root / "weak.tsv")}
        path_of = {n: root / "audio" / n for n in split_of}
        print("layout: flat")
    else:
        split_of, strong, weak, path_of = {}, [], {}, {}
        for d in sorted((root / "metadata").iterdir()):
            for r in read_tsv(d / f"{d.name}.tsv"):
                strong.append(r)
            for p in (root / "audio" / d.name).glob("*.wav"):
                split_of[p.name], path_of[p.name] = d.name, p
            if (d / "weak.tsv").is_file():
                weak.update({r["filename"]: r["event_labels"] for r in read_tsv(d / "weak.tsv")})
        print(f"layout: release (weak labels for {len(weak)} clips)")
    events: dict[str, list] = defaultdict(list)
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in strong:
        events[r["filename"]].append((float(r["onset"]), float(r["offset"]), r["event_label"]))
        if r["filename"] not in split_of:
            rep.bad(f"{r['filename']}: in the strong TSV but no audio")
            continue
        counts[r["event_label"]][split_of[r["filename"]]] += 1
    per_clip: Counter = Counter()
    whole, edges, lengths = [], [], []
    for name in sorted(split_of):
        x, sr = rep.audio(path_of[name])
        if not sr:
            continue
        dur = len(x) / sr
        evs = events.get(name, [])
        per_clip[len(evs)] += 1
        if name in weak and sorted(weak[name].split(",")) != sorted({e[2] for e in evs}):
            rep.bad(f"{name}: weak labels {weak[name]!r} differ from its strong labels")
        mask = np.zeros(len(x), bool)
        for on, off, lab in evs:
            lengths.append(off - on)
            if not 0 <= on < off <= dur + 5e-4:
                rep.bad(f"{name}: {lab} {on:.3f}-{off:.3f} is not inside the clip (0-{dur:.3f} s)")
            mask[int(on * sr): int(np.ceil(off * sr))] = True
        bg = rms(x[~mask])
        if not evs or bg == 0:
            continue
        for on, off, _ in evs:
            a, b = int(on * sr), int(np.ceil(off * sr))
            whole.append(db(rms(x[a:b])) - db(bg))
            w = int(0.05 * sr)
            edges += [db(rms(x[a: a + w])) - db(bg), db(rms(x[max(a, b - w): b])) - db(bg)]
    table(counts)
    print(f"events per clip: {dict(sorted(per_clip.items()))}")
    if lengths:
        print(f"event length s min/median/max: {min(lengths):.2f}/{np.median(lengths):.2f}/{max(lengths):.2f}")
    if whole:
        w, e = np.array(whole), np.array(edges)
        print(f"event RMS over background (dB) min/p10/median/max: {w.min():.1f}/{np.percentile(w, 10):.1f}/"
              f"{np.median(w):.1f}/{w.max():.1f}")
        print(f"first/last 50 ms of events over background (dB) p10/median: {np.percentile(e, 10):.1f}/"
              f"{np.median(e):.1f}")
        if (w < 0.5).mean() > 0.02:
            rep.bad(f"{int((w < 0.5).sum())} events are not louder than the background")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="corpus folder")
    root = ap.parse_args().root
    rep = Report()
    if (root / "validation_list.txt").is_file():
        print(f"{root}: Speech Commands layout")
        check_keywords(root, rep)
    elif (root / "meta" / "esc50.csv").is_file():
        print(f"{root}: ESC-50 layout")
        check_esc(root, rep)
    elif (root / "meta.tsv").is_file() or (root / "metadata").is_dir():
        print(f"{root}: strong-label (DESED) layout")
        check_sed(root, rep)
    else:
        print(f"error: {root}: no validation_list.txt, meta/esc50.csv, meta.tsv or metadata/ found; "
              "pass a folder written by tools/corpora", file=sys.stderr)
        sys.exit(1)
    rep.finish()


if __name__ == "__main__":
    main()
