"""Any-length sound event detection: frame-wise scores on one timeline, events, files, losses.

How a file of any length becomes frame probabilities (:func:`frame_scores`):

1. **Windows.** The audio is cut into windows of the model's input length (HTS-AT: 1024 frames =
   10.24 s at 32 kHz / hop 320; ElasticAST with ``frame_head=True``: the span of its time table,
   1024 frames = 10.24 s at a 10 ms shift, or ``window_s``) every ``hop`` (a fraction of the
   window, default 0.5 = 50 % overlap). The hop is rounded to a whole number of timeline steps
   (HTS-AT: 32 frames = 0.32 s; ElasticAST: one patch column = 16 frames), so window ``k``'s
   step ``j`` is exactly timeline step ``k * hop_steps + j``. Windows start at 0, hop, 2*hop, ...
   until one reaches the end; the last one may be short (the model pads it; only its valid steps
   are used), a file shorter than a window is one short window.
2. **Streaming.** Files are read block by block (``load_audio(offset, duration)`` at the file's
   rate, then a streaming soxr resampler, identical to resampling the whole file), windows are
   cut from a small buffer, scored ``batch_size`` at a time, and added to the timeline, whose
   finished part is flushed as soon as no later window can touch it: memory is bounded by one
   block + one batch + the output (``[T', C]`` float32, 47 MB for 2 h of 527 classes at 0.32 s).
3. **Overlap-add.** Each window's frame probabilities (sigmoid; softmax for single-label models)
   are added with per-step weights and divided by the summed weights: ``flat`` (plain average,
   the default and what the tests use), ``hann`` or ``triangle`` (weights fall towards the window
   edges, where the model sees less context; all weights are > 0, so a step seen by one window
   keeps that window's value exactly).
4. **Clip scores** are the duration-weighted mean (``aggregate="mean"``) or the maximum
   (``"max"``) of the windows' clip probabilities.

AST (fixed grid) and PaSST have no frame-wise head: :func:`frame_scores` refuses them with a
clear message (use HTS-AT or an ElasticAST built with ``frame_head=True``).

Strong-label training helpers (:func:`frame_targets_for`, :func:`frame_bce`, :func:`sed_loss`,
:func:`steps_valid_mask`, :func:`packed_frame_mask`) live here too, for the training loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audioflex.audio.frontend.base import Frontend
from audioflex.audio.io import AudioError, audio_info, load_audio
from audioflex.models.contract import contract_of
from audioflex.models.outputs import AudioOutput

logger = logging.getLogger(__name__)

__all__ = [
    "DetectReport",
    "FrameScores",
    "OverlapAdd",
    "WindowPlan",
    "WindowScores",
    "detect_files",
    "frame_bce",
    "frame_scores",
    "frame_targets_for",
    "iter_window_scores",
    "packed_frame_mask",
    "plan_windows",
    "sed_loss",
    "steps_valid_mask",
    "stream_audio",
]

WEIGHTINGS = ("flat", "hann", "triangle")
AudioInput = str | Path | torch.Tensor


# ---------------------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class WindowPlan:
    """How a model's input windows map onto the output timeline (all sizes in samples/frames).

    Attributes:
        sample_rate: model (front end) sample rate.
        window_samples: samples per window.
        hop_samples: samples between window starts (a multiple of ``step_samples``).
        step_samples: samples per timeline step (``step_frames`` front-end frames).
        step_frames: front-end frames per timeline step (32 for HTS-AT, the patch size for
            ElasticAST).
        window_frames: the longest spectrogram the model takes (windows are cropped to it).
        packed: True for packed models (ElasticAST), False for fixed-window models (HTS-AT).
    """

    sample_rate: int
    window_samples: int
    hop_samples: int
    step_samples: int
    step_frames: int
    window_frames: int
    packed: bool

    @property
    def frame_hop_s(self) -> float:
        """Seconds per timeline step."""
        return self.step_samples / self.sample_rate

    @property
    def hop_steps(self) -> int:
        return self.hop_samples // self.step_samples

    @property
    def window_steps(self) -> int:
        return math.ceil(self.window_frames / self.step_frames)


def _frame_samples(frontend: Frontend) -> int:
    hop = getattr(frontend.config, "hop_length", None)
    if hop is None:
        hop = round(frontend.hop_s * frontend.sample_rate)
    return int(hop)


def plan_windows(
    model: nn.Module,
    frontend: Frontend,
    *,
    hop: float = 0.5,
    hop_s: float | None = None,
    window_s: float | None = None,
) -> WindowPlan:
    """The window plan of ``model`` + ``frontend``.

    Args:
        hop: window hop as a fraction of the window (0, 1].
        hop_s: window hop in seconds (overrides ``hop``); rounded to whole timeline steps.
        window_s: window length in seconds, packed models only (default: their time table's span).

    Raises:
        ValueError: the model has no frame-wise head, or a bad hop/window.
    """
    name = type(model).__name__
    c = contract_of(model)
    frame_samples = _frame_samples(frontend)
    sr = int(frontend.sample_rate)
    packed = c.packed
    if packed:
        if c.frame_step_frames is None:
            raise ValueError(
                f"{name} has no frame-wise head, so it cannot detect events; build it with "
                "frame_head=True (and train the head, see audioflex.train.losses.sed_loss)"
            )
        step_frames = c.frame_step_frames
        if window_s is not None:
            if window_s <= 0:
                raise ValueError(f"window_s must be positive, got {window_s}")
            window_frames = max(1, round(window_s * sr / frame_samples / step_frames)) * step_frames
        else:
            window_frames = c.native_frames
    else:
        if c.frame_step_frames is None or c.input_frames is None:
            raise ValueError(
                f"{name} has no frame-wise head (it gives clip scores only), so it cannot detect "
                "events; use an HTS-AT model (htsat_*) or an ElasticAST built with frame_head=True"
            )
        window_frames = c.input_frames
        if window_s is not None:
            raise ValueError(f"window_s is fixed by {name} ({window_frames} frames); do not pass it")
        step_frames = c.frame_step_frames
    step_samples = step_frames * frame_samples
    window_samples = window_frames * frame_samples
    window_steps = window_samples // step_samples
    if hop_s is not None:
        if hop_s <= 0:
            raise ValueError(f"hop_s must be positive, got {hop_s}")
        hop_steps = round(hop_s * sr / step_samples)
    else:
        if not 0 < hop <= 1:
            raise ValueError(f"hop must be a fraction of the window in (0, 1], got {hop}")
        hop_steps = round(hop * window_steps)
    hop_steps = min(max(1, hop_steps), window_steps)
    return WindowPlan(
        sample_rate=sr,
        window_samples=window_samples,
        hop_samples=hop_steps * step_samples,
        step_samples=step_samples,
        step_frames=step_frames,
        window_frames=window_frames,
        packed=packed,
    )


def window_weights(num_steps: int, kind: str = "flat") -> torch.Tensor:
    """Positive per-step overlap-add weights ``[num_steps]`` (``flat``, ``hann`` or ``triangle``)."""
    if kind == "flat":
        return torch.ones(num_steps)
    if kind == "hann":
        return torch.hann_window(num_steps + 2, periodic=False, dtype=torch.float64)[1:-1].float()
    if kind == "triangle":
        centre = (torch.arange(num_steps, dtype=torch.float64) + 0.5) / num_steps
        return (1.0 - (2.0 * centre - 1.0).abs()).float()
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {kind!r}")


# ---------------------------------------------------------------------------------------- audio
def stream_audio(
    source: AudioInput,
    sample_rate: int,
    *,
    source_rate: int | None = None,
    block_s: float = 60.0,
) -> Iterator[torch.Tensor]:
    """Yield consecutive mono float32 chunks ``[n]`` of ``source`` at ``sample_rate``.

    A path is read ``block_s`` seconds at a time at its own rate and resampled with a streaming
    soxr resampler (bit-identical to resampling the whole file); a waveform ``[T]`` (at
    ``source_rate``, default ``sample_rate``) is resampled whole and sliced.

    Raises:
        AudioError: unreadable/empty/non-finite audio (names the file), or a bad waveform.
    """
    if isinstance(source, torch.Tensor):
        wave = source.detach()
        if wave.ndim != 1:
            raise AudioError(
                f"waveform: expected a mono waveform [T], got shape {tuple(wave.shape)}; average the channels first"
            )
        if wave.numel() == 0:
            raise AudioError("waveform: zero samples; pass at least one sample")
        if not torch.isfinite(wave).all():
            raise AudioError("waveform: contains NaN or Inf samples; clean the input first")
        wave = wave.float().cpu()
        if source_rate and source_rate != sample_rate:
            from audioflex.audio.io import resample

            wave = resample(wave, source_rate, sample_rate)
        block = max(1, round(block_s * sample_rate))
        for s in range(0, wave.numel(), block):
            yield wave[s : s + block]
        return
    info = audio_info(source)
    sr, total = int(info.sample_rate), int(info.frames)
    if total <= 0:
        raise AudioError(f"{source}: contains no samples; the file is empty or truncated")
    block = max(1, round(block_s * sr))
    resampler = None
    if sr != sample_rate:
        import soxr

        resampler = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ")
    for s in range(0, total, block):
        n = min(block, total - s)
        x = load_audio(source, None, offset=s / sr, duration=n / sr)
        if resampler is not None:
            y = resampler.resample_chunk(x.numpy(), last=s + n >= total)
            x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        if x.numel():
            yield x


def _estimate_samples(source: AudioInput, sample_rate: int, source_rate: int | None) -> int:
    if isinstance(source, torch.Tensor):
        return round(source.shape[-1] * sample_rate / (source_rate or sample_rate))
    info = audio_info(source)
    return round(info.frames * sample_rate / info.sample_rate)


@dataclass
class _Window:
    index: int
    start: int  # first sample
    wave: torch.Tensor  # [n <= window_samples]


def _iter_windows(chunks: Iterator[torch.Tensor], plan: WindowPlan) -> Iterator[_Window]:
    """Cut a chunk stream into windows starting every ``plan.hop_samples`` until one reaches the
    end (at most the last one is short)."""
    w, h = plan.window_samples, plan.hop_samples
    buf = torch.zeros(0)
    buf_start = 0  # absolute sample index of buf[0]
    nxt, k, last_end = 0, 0, 0
    for chunk in chunks:
        buf = torch.cat([buf, chunk]) if buf.numel() else chunk
        while nxt + w <= buf_start + buf.numel():
            yield _Window(k, nxt, buf[nxt - buf_start : nxt - buf_start + w])
            last_end, nxt, k = nxt + w, nxt + h, k + 1
        cut = min(nxt - buf_start, buf.numel())
        if cut > 0:
            buf, buf_start = buf[cut:].clone(), buf_start + cut
    total = buf_start + buf.numel()
    if total == 0:
        raise AudioError("audio: zero samples")
    if k == 0 or last_end < total:
        yield _Window(k, nxt, buf[nxt - buf_start :])


# ---------------------------------------------------------------------------------------- scoring
@dataclass
class WindowScores:
    """Scores of one window (before overlap averaging).

    Attributes:
        index: window number; ``start_step`` = ``index * plan.hop_steps``.
        start_step: its first timeline step.
        num_samples: real samples in the window.
        frame_probs: ``[S_valid, C]`` probabilities of its valid steps.
        clip_probs: ``[C]``.
        spec: ``[F, frames]`` its valid spectrogram frames (for plots), or None.
    """

    index: int
    start_step: int
    num_samples: int
    frame_probs: torch.Tensor
    clip_probs: torch.Tensor
    spec: torch.Tensor | None = None


def _activate(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)


@torch.no_grad()
def _score_windows(
    model: nn.Module,
    frontend: Frontend,
    plan: WindowPlan,
    windows: list[_Window],
    multilabel: bool,
    device: torch.device,
    keep_spec: bool,
) -> list[WindowScores]:
    """One batched forward over ``windows`` -> their :class:`WindowScores`."""
    lengths = torch.tensor([w.wave.numel() for w in windows])
    wave = torch.zeros(len(windows), plan.window_samples)
    for i, w in enumerate(windows):
        wave[i, : w.wave.numel()] = w.wave
    spec, frames = frontend(wave.to(device), lengths.to(device))
    frames_list = [min(int(f), plan.window_frames) for f in frames.tolist()]
    spec = spec[..., : plan.window_frames]
    if plan.packed:
        from audioflex.packing import collate_packed

        specs = [spec[i, :, : max(1, f)] for i, f in enumerate(frames_list)]
        shift_ms = 1000.0 * frontend.hop_s
        batch = collate_packed(specs, patch=plan.step_frames, frame_shift_ms=[shift_ms] * len(specs))
        out: AudioOutput = model(batch.to(device))
    else:
        out = model(spec, torch.tensor(frames_list, device=device))
    if out.frame_logits is None:
        raise ValueError(f"{type(model).__name__} returned no frame_logits; it cannot detect events")
    probs = _activate(out.frame_logits.float(), multilabel).cpu()  # [B, S, C]
    clip = _activate(out.clip_logits.float(), multilabel).cpu()
    spec_cpu = spec.float().cpu() if keep_spec else None
    res = []
    for i, w in enumerate(windows):
        steps = max(1, min(probs.shape[1], math.ceil(frames_list[i] / plan.step_frames)))
        res.append(
            WindowScores(
                index=w.index,
                start_step=w.index * plan.hop_steps,
                num_samples=w.wave.numel(),
                frame_probs=probs[i, :steps],
                clip_probs=clip[i],
                spec=spec_cpu[i, :, : max(1, frames_list[i])] if spec_cpu is not None else None,
            )
        )
    return res


def iter_window_scores(
    model: nn.Module,
    frontend: Frontend,
    source: AudioInput,
    *,
    plan: WindowPlan | None = None,
    hop: float = 0.5,
    sample_rate: int | None = None,
    batch_size: int = 8,
    multilabel: bool = True,
    device: str | torch.device | None = None,
    block_s: float = 60.0,
    keep_spectrogram: bool = False,
) -> Iterator[WindowScores]:
    """Stream ``source`` (path, or waveform ``[T]`` at ``sample_rate``) window by window and yield
    each window's scores in order (``batch_size`` windows per forward pass)."""
    plan = plan or plan_windows(model, frontend, hop=hop)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    chunks = stream_audio(source, plan.sample_rate, source_rate=sample_rate, block_s=block_s)
    batch: list[_Window] = []
    for w in _iter_windows(chunks, plan):
        batch.append(w)
        if len(batch) == batch_size:
            yield from _score_windows(model, frontend, plan, batch, multilabel, dev, keep_spectrogram)
            batch = []
    if batch:
        yield from _score_windows(model, frontend, plan, batch, multilabel, dev, keep_spectrogram)


class OverlapAdd:
    """Incremental weighted overlap-add onto a timeline ``[T, C]``.

    ``add(start, values [S, C], weights [S])`` with non-decreasing ``start``; steps before the
    latest ``start`` are final and flushed (so memory is one window plus the finished output).
    """

    def __init__(self) -> None:
        self._done: list[torch.Tensor] = []
        self._base = 0
        self._acc: torch.Tensor | None = None  # [L, C]
        self._wsum: torch.Tensor | None = None  # [L]

    def add(self, start: int, values: torch.Tensor, weights: torch.Tensor) -> None:
        if start < self._base:
            raise ValueError(f"overlap-add starts must not decrease ({start} < {self._base})")
        n, c = values.shape
        if self._acc is None:
            self._acc = values.new_zeros(0, c)
            self._wsum = values.new_zeros(0)
        if start > self._base:
            k = min(start - self._base, self._acc.shape[0])
            if k:
                self._done.append(self._acc[:k] / self._wsum[:k, None])
            self._acc, self._wsum = self._acc[k:], self._wsum[k:]
            if start - self._base > k:
                raise ValueError(f"gap in the timeline before step {start}: windows must overlap or touch")
            self._base = start
        need = n - self._acc.shape[0]
        if need > 0:
            self._acc = torch.cat([self._acc, values.new_zeros(need, c)])
            self._wsum = torch.cat([self._wsum, values.new_zeros(need)])
        w = weights[:n].to(values.dtype)
        self._acc[:n] += values * w[:, None]
        self._wsum[:n] += w

    def result(self, length: int | None = None) -> torch.Tensor:
        """The averaged timeline ``[T, C]`` (cut to ``length`` steps if given)."""
        parts = list(self._done)
        if self._acc is not None and self._acc.shape[0]:
            parts.append(self._acc / self._wsum[:, None])
        if not parts:
            raise ValueError("nothing was added to the timeline")
        out = torch.cat(parts)
        return out[:length] if length is not None else out


@dataclass
class FrameScores:
    """Frame probabilities of one input on one timeline.

    Attributes:
        probs: ``[T', C]`` float32 probabilities; step ``t`` covers ``[t, t + 1) * frame_hop_s``.
        frame_hop_s: seconds per step (0.32 for HTS-AT; 16 frame shifts for ElasticAST).
        clip: ``[C]`` aggregated clip probabilities.
        duration_s: input duration in seconds.
        labels: class names (``C``).
        spectrogram: ``[F, T_s]`` front-end spectrogram for plots (time-pooled), or None.
        spec_hop_s: seconds per ``spectrogram`` column.
    """

    probs: torch.Tensor
    frame_hop_s: float
    clip: torch.Tensor
    duration_s: float
    labels: list[str]
    spectrogram: torch.Tensor | None = None
    spec_hop_s: float | None = None

    @property
    def num_frames(self) -> int:
        return int(self.probs.shape[0])

    def times(self) -> torch.Tensor:
        """Onset of each step in seconds ``[T']``."""
        return torch.arange(self.num_frames, dtype=torch.float64) * self.frame_hop_s


def frame_scores(
    model: nn.Module,
    frontend: Frontend,
    source: AudioInput,
    *,
    labels: Sequence[str] | None = None,
    sample_rate: int | None = None,
    hop: float = 0.5,
    hop_s: float | None = None,
    window_s: float | None = None,
    weighting: str = "flat",
    aggregate: str = "mean",
    batch_size: int = 8,
    multilabel: bool = True,
    device: str | torch.device | None = None,
    block_s: float = 60.0,
    keep_spectrogram: bool = False,
    max_spec_columns: int = 8192,
) -> FrameScores:
    """Frame probabilities ``[T', C]`` of a file or waveform ``[T]`` of any length (see the module
    docstring for windows, streaming and overlap-add).

    Args:
        model, frontend: an HTS-AT or a frame-head ElasticAST and its front end (eval mode).
        source: audio path, or waveform ``[T]`` at ``sample_rate`` (default: the front end's).
        hop, hop_s, window_s: see :func:`plan_windows`.
        weighting: overlap-add weights, ``flat`` | ``hann`` | ``triangle``.
        aggregate: clip scores as ``mean`` (duration-weighted) or ``max`` over windows.
        batch_size: windows per forward pass.
        multilabel: sigmoid (True) or softmax over classes (False).
        block_s: seconds of audio read per block.
        keep_spectrogram: also keep the spectrogram (time-pooled to at most ``max_spec_columns``
            columns by a power of two <= the step) for plots.
    """
    if aggregate not in ("mean", "max"):
        raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
    plan = plan_windows(model, frontend, hop=hop, hop_s=hop_s, window_s=window_s)
    weights = window_weights(plan.window_steps, weighting)
    ola = OverlapAdd()
    clip_sum: torch.Tensor | None = None
    clip_max: torch.Tensor | None = None
    total_w = 0
    end_sample = 0
    pool, spec_parts = 1, []
    frame_samples = plan.step_samples // plan.step_frames
    if keep_spectrogram:
        est_frames = _estimate_samples(source, plan.sample_rate, sample_rate) // frame_samples + 1
        while est_frames / pool > max_spec_columns and pool < plan.step_frames:
            pool *= 2
    hop_frames = plan.hop_samples // frame_samples
    pending_spec: WindowScores | None = None
    for ws in iter_window_scores(
        model, frontend, source, plan=plan, sample_rate=sample_rate, batch_size=batch_size,
        multilabel=multilabel, device=device, block_s=block_s, keep_spectrogram=keep_spectrogram,
    ):
        ola.add(ws.start_step, ws.frame_probs, weights)
        w = ws.num_samples
        clip_sum = ws.clip_probs * w if clip_sum is None else clip_sum + ws.clip_probs * w
        clip_max = ws.clip_probs if clip_max is None else torch.maximum(clip_max, ws.clip_probs)
        total_w += w
        end_sample = ws.index * plan.hop_samples + ws.num_samples
        if keep_spectrogram:
            if pending_spec is not None:  # a window's own part: up to the next window's start
                spec_parts.append(_pool_time(pending_spec.spec[:, :hop_frames], pool))
            pending_spec = ws
    if keep_spectrogram and pending_spec is not None:
        spec_parts.append(_pool_time(pending_spec.spec, pool))
    length = max(1, math.ceil(end_sample / plan.step_samples))
    probs = ola.result(length)
    clip = clip_sum / total_w if aggregate == "mean" else clip_max
    n = probs.shape[1]
    names = list(labels) if labels is not None else [f"class_{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} labels for a model with {n} classes")
    return FrameScores(
        probs=probs,
        frame_hop_s=plan.frame_hop_s,
        clip=clip,
        duration_s=end_sample / plan.sample_rate,
        labels=names,
        spectrogram=torch.cat(spec_parts, dim=1) if spec_parts else None,
        spec_hop_s=pool * frame_samples / plan.sample_rate if spec_parts else None,
    )


def _pool_time(spec: torch.Tensor, pool: int) -> torch.Tensor:
    """Average ``[F, T]`` over groups of ``pool`` frames (last group may be partial)."""
    if pool == 1:
        return spec
    return F.avg_pool1d(spec[None], pool, pool, ceil_mode=True)[0]


# ---------------------------------------------------------------------------------------- events
def scores_to_events(
    scores: FrameScores,
    *,
    thresholds: float | Sequence[float] | dict[str, float] = 0.5,
    median_filter_s: float | Sequence[float] | dict[str, float] = 0.0,
    min_duration_s: float | Sequence[float] | dict[str, float] = 0.0,
    merge_gap_s: float | Sequence[float] | dict[str, float] = 0.0,
    filename: str | None = None,
) -> list[Any]:
    """Events (``evaluate.events.Event``, or ``FileEvent`` with ``filename``) of one input's
    :class:`FrameScores` via :func:`audioflex.evaluate.events.frames_to_events`: per-class
    thresholds (one value, one per class or ``{label: value}``), median filter, gap merging,
    minimum duration; offsets are cut at the input's duration."""
    from audioflex.evaluate.events import frames_to_events

    return frames_to_events(
        scores.probs,
        scores.frame_hop_s,
        scores.labels,
        thresholds=thresholds,
        median_filter_s=median_filter_s,
        min_duration_s=min_duration_s,
        merge_gap_s=merge_gap_s,
        duration_s=scores.duration_s,
        filename=filename,
    )


# ---------------------------------------------------------------------------------------- files
@dataclass
class DetectReport:
    """What :func:`detect_files` did.

    Attributes:
        events: per file (as given), its events.
        errors: per bad file, the error message (the other files were still processed).
        out: the written TSV/JSON file, or None.
        plots: per file, its PNG.
    """

    events: dict[str, list[Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    out: Path | None = None
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def num_events(self) -> int:
        return sum(len(v) for v in self.events.values())


def detect_files(
    files: Sequence[str | Path],
    checkpoint: str | Path | Any,
    *,
    out: str | Path | None = None,
    fmt: str = "tsv",
    plot_dir: str | Path | None = None,
    thresholds: float | Sequence[float] | dict[str, float] = 0.5,
    median_filter_s: float | Sequence[float] | dict[str, float] = 0.0,
    min_duration_s: float | Sequence[float] | dict[str, float] = 0.0,
    merge_gap_s: float | Sequence[float] | dict[str, float] = 0.0,
    hop: float = 0.5,
    weighting: str = "flat",
    batch_size: int = 8,
    device: str = "cpu",
    top_k_plot: int = 5,
) -> DetectReport:
    """Detect events in audio files and write them (the ``audioflex detect`` command's core).

    Args:
        files: audio files.
        checkpoint: an audioflex checkpoint directory, or a ready ``Pipeline``.
        out: output file: DESED TSV (``filename\\tonset\\toffset\\tevent_label``, seconds, one
            row per event, header line; files without events get no row) or JSON
            (``{"files": {file: [{"onset", "offset", "event_label"}]}, "errors": {file: message}}``;
            files without events are listed with ``[]``); None writes nothing.
        fmt: ``tsv`` or ``json``.
        plot_dir: write ``<stem>.png`` timelines (spectrogram + activity + events) there.
        thresholds, median_filter_s, min_duration_s, merge_gap_s: event post-processing.
        hop, weighting, batch_size, device: sliding-window options (see :func:`frame_scores`).
        top_k_plot: classes shown in the activity panel.

    Bad files (unreadable, empty, ...) are listed in ``report.errors`` (and logged at INFO); the
    others are still processed. Filenames in the output are as given. Truncated or too short
    files are used with a logged warning (``Pipeline.check_file``).
    """
    from audioflex.pipeline import Pipeline

    if fmt not in ("tsv", "json"):
        raise ValueError(f"fmt must be 'tsv' or 'json', got {fmt!r}")
    if isinstance(checkpoint, Pipeline):
        pipe = checkpoint
    else:
        pipe = Pipeline.from_checkpoint(checkpoint, device=device, batch_size=batch_size)
    post = {"thresholds": thresholds, "median_filter_s": median_filter_s, "min_duration_s": min_duration_s,
            "merge_gap_s": merge_gap_s}
    from audioflex.evaluate.events import frames_to_events

    frames_to_events(np.zeros((1, len(pipe.labels))), 1.0, pipe.labels, **post)  # bad options fail before any work
    report = DetectReport()
    plot_path = Path(plot_dir) if plot_dir is not None else None
    if plot_path is not None:
        plot_path.mkdir(parents=True, exist_ok=True)
    for f in files:
        key = str(f)
        try:
            scores = detection_scores(pipe, f, hop=hop, weighting=weighting, keep_spectrogram=plot_path is not None)
            events = scores_to_events(scores, filename=key, **post)
        except (AudioError, OSError) as e:
            logger.info("%s: %s", key, e)  # the caller reports report.errors (the CLI prints each once)
            report.errors[key] = str(e)
            continue
        report.events[key] = events
        if plot_path is not None:
            from audioflex.plots import plot_detection

            png = plot_path / f"{Path(key).stem}.png"
            i = 1
            while png in report.plots.values():  # same stem in different folders
                png = plot_path / f"{Path(key).stem}_{i}.png"
                i += 1
            plot_detection(png, scores, events, top_k=top_k_plot, title=Path(key).name)
            report.plots[key] = png
    if out is not None:
        from audioflex.evaluate.events import write_events_json, write_events_tsv

        if fmt == "tsv":
            report.out = write_events_tsv(out, report.events)
        else:
            report.out = write_events_json(out, report.events, extra={"errors": report.errors})
    return report


def detection_scores(pipe: Any, source: AudioInput, *, sample_rate: int | None = None, **kwargs: Any) -> FrameScores:
    """:func:`frame_scores` with a ``Pipeline``'s model, front end, labels and options (a file
    that is truncated or too short is used with a logged warning, ``Pipeline.check_file``)."""
    pipe.check_file(source)
    opts: dict[str, Any] = {
        "labels": pipe.labels,
        "hop": pipe.window_hop,
        "aggregate": pipe.aggregate,
        "batch_size": pipe.batch_size,
        "multilabel": pipe.multilabel,
        "device": pipe.device,
    }
    if pipe.is_packed and pipe._piece_s is not None:
        opts["window_s"] = pipe._piece_s
    opts.update(kwargs)
    return frame_scores(pipe.model, pipe.frontend, source, sample_rate=sample_rate, **opts)


# ---------------------------------------------------------------------------------------- training
def frame_targets_for(
    events: Sequence[Any],
    labels: Sequence[str],
    num_frames: int,
    frame_hop_s: float,
    *,
    rule: str = "any",
    offset_s: float = 0.0,
) -> torch.Tensor:
    """Strong labels -> frame targets ``[num_frames, C]`` float32 (1 where an event overlaps step
    ``[t, t + 1) * frame_hop_s``; ``rule="half"``: by at least half a step), via
    :func:`audioflex.evaluate.events.events_to_frame_targets`. For HTS-AT use ``num_frames =
    model.num_steps`` (32) and ``frame_hop_s = 0.32``; for ElasticAST the clip's column count and
    16 frame shifts; ``offset_s`` = the crop's start when training on a crop of a longer clip.
    """
    from audioflex.evaluate.events import events_to_frame_targets

    t = events_to_frame_targets(events, labels, num_frames, frame_hop_s, rule=rule, offset_s=offset_s)
    return torch.as_tensor(np.asarray(t), dtype=torch.float32)


def steps_valid_mask(frames: torch.Tensor, step_frames: int, num_steps: int) -> torch.Tensor:
    """Valid frame-logit steps ``[B, num_steps]`` (bool) of inputs with ``frames [B]`` real
    spectrogram frames (e.g. HTS-AT: ``step_frames=32``, ``num_steps=32``)."""
    steps = torch.div(frames + step_frames - 1, step_frames, rounding_mode="floor").clamp(min=1)
    return torch.arange(num_steps, device=frames.device)[None, :] < steps[:, None]


def packed_frame_mask(batch: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """Valid columns ``[B, T'_max]`` (bool) of a ``PackedBatch``'s frame logits."""
    cols = torch.tensor([g[1] for g in batch.grid_sizes])
    mask = torch.arange(int(cols.max()))[None, :] < cols[:, None]
    return mask.to(device if device is not None else batch.patches.device)


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none' (per clip), got {reduction!r}")


def frame_bce(
    frame_logits: torch.Tensor,
    frame_targets: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Frame-level BCE with logits over valid frames and classes.

    Args:
        frame_logits: ``[B, T', C]``.
        frame_targets: ``[B, T', C]`` in [0, 1].
        valid_mask: ``[B, T']`` bool (padding steps excluded); None = all valid.
        reduction: ``mean`` (scalar: mean over all valid frames and classes) or ``none``
            (``[B]``: each clip's mean over its valid frames and classes).
    """
    _check_reduction(reduction)
    if frame_targets.shape != frame_logits.shape:
        raise ValueError(
            f"frame_targets {tuple(frame_targets.shape)} must match frame_logits {tuple(frame_logits.shape)}; "
            "rasterise targets at the model's frame hop and step count (frame_targets_for)"
        )
    loss = F.binary_cross_entropy_with_logits(frame_logits.float(), frame_targets.float(), reduction="none")
    if valid_mask is None:
        valid_mask = torch.ones(loss.shape[:2], dtype=torch.bool, device=loss.device)
    m = valid_mask.to(loss.dtype)[..., None]
    if reduction == "none":
        return (loss * m).sum((1, 2)) / (m.sum((1, 2)) * loss.shape[-1]).clamp_min(1.0)
    return (loss * m).sum() / (m.sum() * loss.shape[-1]).clamp_min(1.0)


def _pool_frames(frame_logits: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    if how == "mean":
        m = mask.to(frame_logits.dtype)[..., None]
        return (frame_logits * m).sum(1) / m.sum(1).clamp_min(1.0)
    if how == "max":
        return frame_logits.masked_fill(~mask[..., None], float("-inf")).amax(1)
    raise ValueError(f"weak_pool must be 'mean' or 'max', got {how!r}")


def sed_loss(
    out: AudioOutput,
    clip_targets: torch.Tensor | None,
    frame_targets: torch.Tensor | None = None,
    *,
    valid_mask: torch.Tensor | None = None,
    frame_weight: float = 0.5,
    weak_pool: str = "mean",
    reduction: str = "mean",
) -> torch.Tensor:
    """Clip BCE mixed with a frame term: ``(1 - w) * clip_bce + w * frame_term``.

    - strong labels (``frame_targets [B, T', C]`` given): ``frame_term`` = :func:`frame_bce`;
    - weak labels only: ``frame_term`` = BCE of the frame logits pooled over valid steps
      (``weak_pool`` ``mean`` as HTS-AT, or ``max``) against ``clip_targets`` — this trains a
      frame head whose clip logits come from another head (ElasticAST).

    ``clip_targets [B, C]`` may be None when frame targets are given (then their max over time).
    ``valid_mask [B, T']``: default = steps whose logits are not the ElasticAST padding value.
    ``reduction``: ``mean`` (scalar) or ``none`` (per clip ``[B]``, for loops that sum per-clip
    losses and divide by the global clip count).
    """
    _check_reduction(reduction)
    if out.frame_logits is None:
        raise ValueError("the model output has no frame_logits: sed_loss needs a frame-wise head")
    if not 0.0 <= frame_weight <= 1.0:
        raise ValueError(f"frame_weight must be in [0, 1], got {frame_weight}")
    fl = out.frame_logits
    if valid_mask is None:
        valid_mask = fl.detach()[..., 0] > -5.0e3  # ElasticAST pads with -1e4
    if clip_targets is None:
        if frame_targets is None:
            raise ValueError("sed_loss needs clip_targets, frame_targets or both")
        clip_targets = (frame_targets * valid_mask[..., None].to(frame_targets.dtype)).amax(1)
    clip_loss = F.binary_cross_entropy_with_logits(
        out.clip_logits.float(), clip_targets.float(), reduction="none"
    ).mean(-1)
    if frame_targets is not None:
        frame_term = frame_bce(fl, frame_targets, valid_mask, reduction=reduction)
    else:
        pooled = _pool_frames(fl.float(), valid_mask, weak_pool)
        frame_term = F.binary_cross_entropy_with_logits(pooled, clip_targets.float(), reduction="none").mean(-1)
        frame_term = frame_term if reduction == "none" else frame_term.mean()
    clip_loss = clip_loss if reduction == "none" else clip_loss.mean()
    return (1.0 - frame_weight) * clip_loss + frame_weight * frame_term
