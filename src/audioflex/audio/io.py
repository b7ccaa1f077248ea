"""Reading audio files: ``load_audio`` and ``audio_info``.

Decoding is done by soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...), resampling by
soxr (``"HQ"`` quality). A window (``offset``/``duration`` in seconds) is read by seeking, without
decoding the rest of the file.

Conventions:

* Integer PCM is scaled to float32 in [-1, 1); float files are returned as stored (not clipped).
* ``mono=True`` averages the channels, for any channel count from 1 to :data:`MAX_CHANNELS`. Files
  that report 0 channels or more than :data:`MAX_CHANNELS` are refused (such headers are almost
  always damaged; downmix real many-channel recordings with sox/ffmpeg first).
* A file whose data is cut short (a truncated download) is read up to its last complete sample,
  as libsndfile reports it; a file with no samples at all is an error. :func:`audio_info` tells
  such a file (``AudioInfo.header_frames`` > ``frames``, ``AudioInfo.truncated``) from the sizes
  its header promises, so callers can warn (see :func:`truncation_note`).
* Every problem raises :class:`AudioError` (a ``ValueError``) with a one-line message that names the
  file, the problem and what to do.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import math
import os
import re
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import soundfile as sf
import torch

logger = logging.getLogger(__name__)

MAX_CHANNELS = 64
"""Largest channel count ``load_audio`` accepts."""

AudioSource = Union[str, os.PathLike, IO[bytes]]


class AudioError(ValueError):
    """An audio file (or a ``load_audio`` argument) that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says (nothing is decoded).

    ``format`` is libsndfile's container name (``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``, ...) and
    ``subtype`` its sample encoding (``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``, ...). ``frames`` and
    ``duration`` are what the file really holds; ``header_frames`` is what its header promises
    (more than ``frames`` for a truncated WAV/AIFF/W64/RF64; else equal).
    """

    sample_rate: int
    frames: int
    channels: int
    duration: float
    format: str
    subtype: str = ""
    header_frames: int | None = None

    def __post_init__(self) -> None:
        if self.header_frames is None:
            object.__setattr__(self, "header_frames", self.frames)

    @property
    def truncated(self) -> bool:
        """True when the header promises more frames than the file holds (a cut-off download)."""
        return self.header_frames is not None and self.header_frames > self.frames


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else f"<{type(source).__name__} object>"


def _error(name: str, problem: str, todo: str) -> AudioError:
    return AudioError(_one_line(f"{name}: {problem}; {todo}"))


def missing_path_problem(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be opened although it was named: ``"is a symbolic link loop"``, ``"is a
    broken symbolic link (its target ... does not exist)"`` or ``"no such file"``."""
    p = Path(path)
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (the link points back to itself); fix or remove the link"
        if p.is_symlink():
            return f"is a broken symbolic link (its target {os.readlink(p)} does not exist); fix or remove the link"
    return "no such file"


_SIZE_LOG = re.compile(r"^\s*([A-Za-z0-9 ]+?)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "ULAW": 1, "ALAW": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
                 "FLOAT": 4, "DOUBLE": 8}
_PLACEHOLDER = 0xFFFFFF00  # streamed WAVs write 0xFFFFFFFF (or close) when the length is unknown


def _header_frames(f: sf.SoundFile) -> int:
    """Frames the header of an open file promises: more than ``f.frames`` when libsndfile logged
    that a chunk is bigger than the file (``data : 64000 (should be 21440)``, a truncated file)."""
    frames = int(f.frames)
    try:
        log = f.extra_info
    except Exception:  # noqa: BLE001 (the log is optional information)
        return frames
    data, container = [], []
    for label, declared, actual in _SIZE_LOG.findall(log):
        d, a = int(declared), int(actual)
        if _PLACEHOLDER > d > a:
            (data if label.strip() in ("data", "SSND") else container).append(d - a)
    # the data chunk's size decides; a container size alone only when it misses more than header slop
    missing = max(data) if data else max([m for m in container if m > 1024], default=0)
    if not missing:
        return frames
    width = _SAMPLE_BYTES.get(str(f.subtype), 0) * int(f.channels)
    if width:
        return frames + -(-missing // width)
    return frames + 1  # encoded data of unknown size per frame: at least say it is cut short


def truncation_note(info: AudioInfo) -> str | None:
    """What to say about a truncated file (``info.truncated``), or None."""
    if not info.truncated or info.sample_rate <= 0:
        return None
    promised, held = info.header_frames / info.sample_rate, info.duration
    return (
        f"truncated: the header promises {promised:.3f} s but the file holds {held:.3f} s "
        f"(a cut-off download or copy?); using the {held:.3f} s it holds"
    )


def _open(source: AudioSource) -> tuple[sf.SoundFile, str]:
    """Open ``source`` with soundfile, turning every failure into an ``AudioError``."""
    name = _source_name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            problem = missing_path_problem(path)
            if problem != "no such file":
                raise AudioError(_one_line(f"{name}: {problem}"))
            raise _error(
                name, "no such file", f"check the path (relative paths are from the current directory {os.getcwd()})"
            )
        if path.is_dir():
            raise _error(name, "is a directory, not an audio file", "pass a file inside it")
        if path.stat().st_size == 0:
            raise _error(name, "file is empty (0 bytes)", "re-export or re-download it")
        opener: Any = os.fspath(path)
    elif hasattr(source, "read"):
        opener = source
    else:
        raise AudioError(f"load_audio: expected a file path or a binary file object, got {type(source).__name__}")
    try:
        return sf.SoundFile(opener), name
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        detail = str(exc).split(": ", 1)[-1] if "Error opening" in str(exc) else str(exc)
        raise _error(
            name,
            f"not a readable audio file, or corrupt/truncated (libsndfile: {detail})",
            "convert it to WAV or FLAC, e.g. `ffmpeg -i <file> out.wav`",
        ) from exc


def audio_info(path: AudioSource) -> AudioInfo:
    """Sample rate, length, channels and format of an audio file, read from its header
    (``header_frames``/``truncated`` tell a file whose data is cut short).

    Raises:
        AudioError: missing file, a directory, or not a readable audio file.
    """
    f, _ = _open(path)
    with f:
        sr, frames = int(f.samplerate), int(f.frames)
        return AudioInfo(
            sample_rate=sr,
            frames=frames,
            channels=int(f.channels),
            duration=frames / sr if sr > 0 else 0.0,
            format=str(f.format),
            subtype=str(f.subtype),
            header_frames=_header_frames(f),
        )


def _check_args(name: str, sample_rate: Any, offset: Any, duration: Any) -> tuple[int | None, float, float | None]:
    if sample_rate is not None:
        if isinstance(sample_rate, float) and sample_rate.is_integer():
            sample_rate = int(sample_rate)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise _error(
                name,
                f"invalid sample_rate={sample_rate!r}",
                "pass a positive integer in Hz (e.g. 16000) or None to keep the file's",
            )
        sample_rate = int(sample_rate)
    try:
        offset = float(offset)
    except (TypeError, ValueError):
        raise _error(name, f"invalid offset={offset!r}", "pass seconds as a number >= 0") from None
    if not math.isfinite(offset) or offset < 0:
        raise _error(name, f"invalid offset={offset!r} s", "pass seconds as a number >= 0")
    if duration is not None:
        try:
            duration = float(duration)
        except (TypeError, ValueError):
            raise _error(name, f"invalid duration={duration!r}", "pass seconds as a number > 0 or None") from None
        if math.isnan(duration) or duration <= 0:
            raise _error(
                name, f"invalid duration={duration!r} s", "pass seconds as a number > 0, or None to read to the end"
            )
    return sample_rate, offset, duration


def load_audio(
    path: AudioSource,
    sample_rate: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Decode an audio file (or a window of it) to a float32 tensor (see :func:`load_audio_with_info`)."""
    return load_audio_with_info(path, sample_rate, mono, offset, duration)[0]


def load_audio_with_info(
    path: AudioSource,
    sample_rate: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[torch.Tensor, AudioInfo]:
    """Decode an audio file (or a window of it) to a float32 tensor, plus the file's
    :class:`AudioInfo` (read from the same open file: ``truncated`` tells a cut-off file).

    Args:
        path: file path, or a binary file object that soundfile can read (seekable).
        sample_rate: resample to this rate (soxr HQ); ``None`` keeps the file's rate.
        mono: average the channels (``[T]``); ``False`` keeps them (``[C, T]``).
        offset: start of the window in seconds (of the file, before resampling).
        duration: length of the window in seconds; ``None`` reads to the end. A window running
            past the end is cut at the end.

    Returns:
        ``[T]`` (mono) or ``[C, T]`` float32 samples, and the file's :class:`AudioInfo`.

    Raises:
        AudioError: missing file, directory, unreadable/corrupt file, no samples, NaN/Inf samples,
            unsupported channel count, offset past the end, or an invalid argument.
    """
    name = _source_name(path)
    sample_rate, offset, duration = _check_args(name, sample_rate, offset, duration)
    f, name = _open(path)
    with f:
        sr, total, channels = int(f.samplerate), int(f.frames), int(f.channels)
        if sr <= 0:
            raise _error(name, f"header gives sample rate {sr} Hz", "the file is damaged; re-export it")
        if channels < 1 or channels > MAX_CHANNELS:
            raise _error(
                name,
                f"unsupported channel layout: {channels} channels (audioflex reads 1 to {MAX_CHANNELS})",
                "downmix it first, e.g. `ffmpeg -i <file> -ac 1 out.wav`",
            )
        if total <= 0:
            raise _error(
                name, "contains no samples (0 frames)", "the file is empty or truncated; re-export or re-download it"
            )
        info = AudioInfo(sr, total, channels, total / sr, str(f.format), str(f.subtype), _header_frames(f))
        start = int(round(offset * sr))
        if start >= total:
            raise _error(
                name,
                f"offset {offset:g} s is beyond the end of the file ({total / sr:g} s long)",
                "pass a smaller offset",
            )
        count = total - start
        if duration is not None:
            count = min(count, int(round(duration * sr)))
        if count <= 0:
            raise _error(
                name, f"duration {duration:g} s is shorter than one sample at {sr} Hz", "pass a longer duration"
            )
        try:
            if start:
                f.seek(start)
            data = f.read(count, dtype="float32", always_2d=True)  # [n, C]
        except (sf.SoundFileError, RuntimeError) as exc:
            raise _error(
                name,
                f"decoding failed, the file is corrupt or truncated (libsndfile: {exc})",
                "re-export or re-download it",
            ) from exc
    if data.shape[0] == 0:
        raise _error(
            name, "no samples could be decoded", "the file is corrupt or truncated; re-export or re-download it"
        )
    if data.shape[0] < count:
        logger.warning("%s: expected %d samples, decoded %d (truncated file?)", name, count, data.shape[0])
    bad = data.size - int(np.isfinite(data).sum())
    if bad:
        raise _error(name, f"contains {bad} NaN or Inf sample(s)", "fix or re-export the file (audio must be finite)")
    data = data.mean(axis=1, keepdims=True, dtype=np.float32) if mono else data
    if sample_rate is not None and sample_rate != sr:
        import soxr

        data = soxr.resample(data, sr, sample_rate, quality="HQ")
        if data.shape[0] == 0:
            raise _error(
                name, f"{count} sample(s) at {sr} Hz give no sample at {sample_rate} Hz", "read a longer window"
            )
    out = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float32))  # [C, T]
    return (out[0] if mono else out), info


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``[T]`` or ``[C, T]`` float audio with soxr (HQ); returns float32 on ``wave``'s device."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wave
    import soxr

    data = wave.detach().to("cpu", torch.float32).numpy()
    out = soxr.resample(data.T if data.ndim == 2 else data, orig_sr, new_sr, quality="HQ")
    out = out.T if data.ndim == 2 else out
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(wave.device)
