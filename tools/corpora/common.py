"""Shared helpers for the corpus generators: engine checks, engine calls, signal helpers, summaries.

The engines are the Debian packages espeak-ng, fluidsynth (with fluid-soundfont-gm) and sox. Every call is
sequential and deterministic: sox runs with ``-R`` (repeatable), espeak-ng and fluidsynth have no randomness,
and all random choices come from one ``numpy.random.Generator`` seeded by ``--seed``.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SF2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
ESPEAK_VARIANTS = Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v")
# English accents of espeak-ng's own (non-mbrola) voices.
ACCENTS = ["en", "en-us", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc"]
# Variants that sound like people (the robot, whisper and novelty ones are left out).
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "klatt4", "Alex", "Andy", "Annie", "adam", "anika", "aunty", "benjamin", "boris", "david",
            "ed", "edward", "grandma", "grandpa", "iven", "john", "linda", "max", "michel", "paul", "quincy", "rob",
            "robert", "steph", "travis", "victor", "norbert", "shelby", "belinda"]
# Public-domain Harvard sentences (IEEE 1969), the text of every spoken sentence and of the babble.
SENTENCES = [
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.", "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.", "Read verse out loud for pleasure.",
]


def fail(message: str) -> None:
    """Print one error line and exit 1."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def require_engines(*names: str) -> None:
    """Exit with one line when an engine (espeak-ng, fluidsynth, sox) or the GM soundfont is missing."""
    packages = {"espeak-ng": "espeak-ng", "fluidsynth": "fluidsynth", "sox": "sox"}
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        fail(f"{', '.join(missing)} not found on PATH; install with: apt-get install "
             + " ".join(packages[n] for n in missing))
    if "fluidsynth" in names and not SF2.is_file():
        fail(f"soundfont {SF2} not found; install with: apt-get install fluid-soundfont-gm")
    if "espeak-ng" in names and not ESPEAK_VARIANTS.is_dir():
        fail(f"espeak-ng voice variants not found in {ESPEAK_VARIANTS}; install with: apt-get install espeak-ng-data")


def run(cmd: Sequence[str], data: bytes | None = None) -> bytes:
    """Run an engine command and return its stdout; one error line (exit 1) when it fails."""
    proc = subprocess.run(list(cmd), input=data, capture_output=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        fail(f"{cmd[0]} failed (exit {proc.returncode}): {tail[0]}  [command: {' '.join(cmd[:8])} ...]")
    return proc.stdout


def read_wav_bytes(data: bytes, sr: int) -> np.ndarray:
    """Decode WAV bytes to mono float32 at ``sr`` (soxr 'HQ' resampling) -> [T]."""
    x, native = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return resample(x, native, sr)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a mono signal [T] with soxr."""
    if sr_in == sr_out or len(x) == 0:
        return x.astype(np.float32)
    return soxr.resample(x, sr_in, sr_out).astype(np.float32)


RAW = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1"]


def sox_synth(seconds: float, sr: int, *synth: str, effects: Sequence[str] = ()) -> np.ndarray:
    """``sox -n synth SECONDS <synth...> <effects...>`` as mono float32 [T] (repeatable mode)."""
    out = run(["sox", "-R", "-n", *RAW, "-r", str(sr), "-", "synth", f"{seconds:.4f}", *synth, *effects])
    return np.frombuffer(out, dtype="<f4").astype(np.float32)


def sox_effects(x: np.ndarray, sr: int, effects: Sequence[str]) -> np.ndarray:
    """Pass a mono float32 signal [T] through sox effects; returns [T'] at the same rate."""
    if not effects:
        return x
    out = run(["sox", "-R", *RAW, "-r", str(sr), "-", *RAW, "-r", str(sr), "-", *effects],
              np.ascontiguousarray(x, dtype="<f4").tobytes())
    return np.frombuffer(out, dtype="<f4").astype(np.float32)


def espeak(text: str, voice: str, sr: int, speed: int = 160, pitch: int = 50, amplitude: int = 100,
           gap: int = 0) -> np.ndarray:
    """Speak ``text`` with espeak-ng (``voice`` like ``en-us+f3``) -> mono float32 [T] at ``sr``."""
    cmd = ["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude)]
    if gap:
        cmd += ["-g", str(gap)]
    return read_wav_bytes(run([*cmd, "--", text]), sr)


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_bytes(notes: Iterable[tuple[float, float, int, int]], program: int, end_s: float, bpm: float = 120.0,
               bank: int = 0, controls: dict[int, int] | None = None) -> bytes:
    """A one-track Standard MIDI File (format 0) on channel 0.

    ``notes`` are (start_s, duration_s, key, velocity); ``controls`` maps CC numbers to values sent at
    time 0 (e.g. 7 volume, 91 reverb send, 93 chorus send); ``end_s`` places a last (harmless) event so
    the file lasts at least that long.
    """
    tpq = 480
    us = round(60e6 / bpm)
    tps = tpq * 1e6 / us
    events = [(0, 0, bytes([0xFF, 0x51, 3]) + us.to_bytes(3, "big")), (0, 1, bytes([0xB0, 0, bank])),
              (0, 1, bytes([0xC0, program]))]
    events += [(0, 1, bytes([0xB0, cc, val])) for cc, val in (controls or {}).items()]
    for start, dur, key, vel in notes:
        on = round(start * tps)
        events.append((on, 3, bytes([0x90, key, vel])))
        events.append((max(on + 1, round((start + dur) * tps)), 2, bytes([0x80, key, 0])))
    events.append((round(end_s * tps), 4, bytes([0xB0, 110, 0])))  # undefined CC: only marks the end
    events.sort(key=lambda e: (e[0], e[1]))
    body, now = b"", 0
    for tick, _, data in events:
        body += _vlq(tick - now) + data
        now = tick
    body += _vlq(0) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(body)) + body


def fluidsynth(midi: bytes, sr: int, settings: dict[str, float | int] | None = None) -> np.ndarray:
    """Render MIDI bytes with fluidsynth and FluidR3_GM -> mono float32 [T] at ``sr``."""
    opts = []
    for key, val in (settings or {}).items():
        opts += ["-o", f"{key}={val}"]
    with tempfile.TemporaryDirectory(prefix="corpora_") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        run(["fluidsynth", "-ni", "-q", "-T", "wav", "-O", "float", "-r", str(sr), *opts, "-F", str(wav),
             str(SF2), str(mid)])
        x, _ = sf.read(wav, dtype="float32", always_2d=True)
    return x.mean(axis=1)


def frame_db(x: np.ndarray, sr: int, frame_s: float = 0.01) -> np.ndarray:
    """Frame energies in dB (10 ms frames, hop = frame) -> [N]."""
    hop = max(1, int(frame_s * sr))
    n = max(1, len(x) // hop)
    frames = x[: n * hop].reshape(n, hop) if len(x) >= hop else x.reshape(1, -1)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def trim(x: np.ndarray, sr: int, below_peak_db: float = 40.0) -> np.ndarray:
    """Cut leading/trailing parts whose 10 ms frames are ``below_peak_db`` under the loudest frame."""
    if len(x) == 0:
        return x
    db = frame_db(x, sr)
    hop = max(1, int(0.01 * sr))
    on = np.nonzero(db > db.max() - below_peak_db)[0]
    return x[on[0] * hop: min(len(x), (on[-1] + 1) * hop)]


def active_rms(x: np.ndarray, sr: int, below_peak_db: float = 30.0) -> float:
    """RMS over the frames within ``below_peak_db`` of the loudest one (level of the sound, not its pauses)."""
    db = frame_db(x, sr)
    sel = db[db > db.max() - below_peak_db]
    return float(np.sqrt(np.mean(10 ** (sel / 10))))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def fade(x: np.ndarray, sr: int, seconds: float = 0.005, fade_in: bool = True) -> np.ndarray:
    """Raised-cosine fade out (and in, unless ``fade_in=False``) of ``seconds`` (returns a copy)."""
    n = min(len(x) // 2, int(seconds * sr))
    y = x.astype(np.float32).copy()
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
        if fade_in:
            y[:n] *= ramp
        y[-n:] *= ramp[::-1]
    return y


def noise_segment(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random [n] excerpt of a long noise [T] (tiled when the noise is shorter)."""
    if len(noise) < n + 1:
        noise = np.tile(noise, n // len(noise) + 2)
    start = int(rng.integers(0, len(noise) - n))
    return noise[start: start + n]


def db_to_gain(db: float) -> float:
    return float(10 ** (db / 20))


def babble(seconds: float, sr: int, rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    """Several espeak-ng talkers reading the Harvard sentences at once -> [T] (peak 0.5)."""
    n = int(seconds * sr)
    mix = np.zeros(n, np.float32)
    for _ in range(talkers):
        voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}"
        track = []
        total = 0
        while total < n:
            sent = SENTENCES[int(rng.integers(len(SENTENCES)))]
            y = espeak(sent, voice, sr, speed=int(rng.integers(130, 190)), pitch=int(rng.integers(25, 75)))
            y = trim(y, sr)
            y = y / (active_rms(y, sr) + 1e-9) * db_to_gain(float(rng.uniform(-6, 0)))
            pause = np.zeros(int(rng.uniform(0.1, 0.6) * sr), np.float32)
            track += [y, pause]
            total += len(y) + len(pause)
        t = np.concatenate(track)
        off = int(rng.integers(0, len(t) - n + 1))
        mix += t[off: off + n]
    return (mix / (np.abs(mix).max() + 1e-9) * 0.5).astype(np.float32)


def colored_noise(kind: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """sox white/pink/brown noise -> [T] (peak 0.5); a seed-dependent excerpt of a longer repeatable render."""
    x = sox_synth(seconds + 30.0, sr, f"{kind}noise")
    x = noise_segment(x, int(seconds * sr), rng)
    return (x / (np.abs(x).max() + 1e-9) * 0.5).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int) -> float:
    """Write 16-bit PCM mono (peak limited to 0.99); returns the duration in seconds."""
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0.99:
        x = x * (0.99 / peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
    return len(x) / sr


def prepare_out(out: Path, force: bool) -> None:
    """Refuse to write into a non-empty folder unless --force (then its content is removed)."""
    if out.exists() and any(out.iterdir()):
        if not force:
            fail(f"--out {out} is not empty; pick an empty folder or pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def summary(title: str, counts: dict[str, Counter], durations: Sequence[float], started: float) -> None:
    """Print counts per class and split, total duration and time taken."""
    print(f"== {title}")
    splits = sorted({s for c in counts.values() for s in c})
    width = max(len(k) for k in counts) if counts else 5
    print(f"{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in splits) + f"  {'total':>6}")
    for name in sorted(counts):
        row = counts[name]
        print(f"{name:<{width}}  " + "  ".join(f"{row.get(s, 0):>10}" for s in splits)
              + f"  {sum(row.values()):>6}")
    d = np.asarray(durations, dtype=float)
    if len(d):
        print(f"files: {len(d)}  total audio: {d.sum() / 3600:.2f} h ({d.sum():.0f} s)  "
              f"clip length min/median/max: {d.min():.2f}/{np.median(d):.2f}/{d.max():.2f} s")
    print(f"time taken: {time.time() - started:.1f} s")
