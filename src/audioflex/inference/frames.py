"""Any-length frame scores: frame probabilities of a file or waveform on one timeline, and events.

How a file of any length becomes frame probabilities (:func:`frame_scores`):

1. **Windows.** The audio is cut into windows of the model's input length (HTS-AT: 1024 frames =
   10.24 s at 32 kHz / hop 320; ElasticAST with ``frame_head=True``: the span of its time table,
   1024 frames = 10.24 s at a 10 ms shift, or ``window_s``) every ``hop`` (a fraction of the
   window, default 0.5 = 50 % overlap). The hop is rounded to a whole number of timeline steps
   (HTS-AT: 32 frames = 0.32 s; ElasticAST: one patch column = 16 frames), so window ``k``'s
   step ``j`` is exactly timeline step ``k * hop_steps + j``. Windows start at 0, hop, 2*hop, ...
   until one reaches the end; the last one may be short (the model pads it; only its valid steps
   are used), a file shorter than a window is one short window.
2. **Streaming.** Files are read block by block by :class:`~audioflex.audio.stream.AudioReader`
   (at the file's rate, then a streaming soxr resampler, identical to resampling the whole
   file), which cuts the windows from a small buffer; they are scored ``batch_size`` at a time
   and added to the timeline, whose finished part is flushed as soon as no later window can
   touch it: memory is bounded by one block + one batch + the output (``[T', C]`` float32,
   47 MB for 2 h of 527 classes at 0.32 s).
3. **Overlap-add.** Each window's frame probabilities (sigmoid; softmax for single-label models)
   are added with per-step weights and divided by the summed weights: ``flat`` (plain average,
   the default and what the tests use), ``hann`` or ``triangle`` (weights fall towards the window
   edges, where the model sees less context; all weights are > 0, so a step seen by one window
   keeps that window's value exactly). The last step of a short window is partly padding (e.g.
   9.92-10.0 s of a 10 s clip): the model's output there reflects the padding, not the audio, so
   it is masked; a step only such output reaches holds the previous step's value (window-edge
   artefacts: no spurious 0.08 s events at the end of every clip).
4. **Clip scores** are the duration-weighted mean (``aggregate="mean"``) or the maximum
   (``"max"``) of the windows' clip probabilities.

AST (fixed grid) and PaSST have no frame-wise head: :func:`frame_scores` refuses them with a
clear message (use HTS-AT or an ElasticAST built with ``frame_head=True``). Window plans and
overlap-add: :mod:`audioflex.inference.windows`; event post-processing of the result:
:func:`scores_to_events` (via :mod:`audioflex.evaluate.events`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audioflex.audio.frontend.base import Frontend
from audioflex.audio.stream import AudioInput, AudioReader, Piece
from audioflex.evaluate.events import Event, PostProcessing, frames_to_events
from audioflex.inference.windows import (
    OverlapAdd,
    WindowPlan,
    frame_samples,
    plan_windows,
    step_fractions,
    window_weights,
)
from audioflex.models.contract import model_device
from audioflex.models.outputs import AudioOutput
from audioflex.packing import collate_packed

__all__ = ["FrameScores", "WindowScores", "frame_scores", "iter_window_scores", "scores_to_events"]


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
        step_fraction: ``[S_valid]`` share of real (unpadded) frames per step (1 but in the last
            step of a short window), or None (all real).
    """

    index: int
    start_step: int
    num_samples: int
    frame_probs: torch.Tensor
    clip_probs: torch.Tensor
    spec: torch.Tensor | None = None
    step_fraction: torch.Tensor | None = None


def _activate(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)


@torch.no_grad()
def _score_windows(
    model: nn.Module,
    frontend: Frontend,
    plan: WindowPlan,
    windows: list[Piece],
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
        specs = [spec[i, :, : max(1, f)] for i, f in enumerate(frames_list)]
        shift_ms = 1000.0 * frontend.hop_s
        batch = collate_packed(
            specs, patch=plan.column_frames, frame_shift_ms=[shift_ms] * len(specs), pad_value=frontend.config.pad_value
        )
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
                step_fraction=step_fractions(frames_list[i], plan.step_frames, steps),
            )
        )
    return res


def iter_window_scores(
    model: nn.Module,
    frontend: Frontend,
    source: AudioInput | AudioReader,
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
    """Stream ``source`` (path, or waveform ``[T]`` at ``sample_rate``, or a ready
    :class:`~audioflex.audio.stream.AudioReader` at the plan's rate) window by window and yield
    each window's scores in order (``batch_size`` windows per forward pass)."""
    plan = plan or plan_windows(model, frontend, hop=hop)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else model_device(model)
    if isinstance(source, AudioReader):
        reader = source
    else:
        reader = AudioReader(source, plan.sample_rate, source_rate=sample_rate)
    batch: list[Piece] = []
    for w in reader.windows(plan.window_samples, plan.hop_samples, block_s=block_s):
        batch.append(w)
        if len(batch) == batch_size:
            yield from _score_windows(model, frontend, plan, batch, multilabel, dev, keep_spectrogram)
            batch = []
    if batch:
        yield from _score_windows(model, frontend, plan, batch, multilabel, dev, keep_spectrogram)


@dataclass
class FrameScores:
    """Frame probabilities of one input on one timeline.

    Attributes:
        probs: ``[T', C]`` float32 probabilities; step ``t`` covers ``[t, t + 1) * frame_hop_s``.
        frame_hop_s: seconds per step (0.32 for HTS-AT; ``patch_size / frame_substeps`` frame
            shifts for ElasticAST, 16 by default).
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
    per_frame = frame_samples(frontend)
    reader = AudioReader(source, plan.sample_rate, source_rate=sample_rate)
    if keep_spectrogram:
        est_frames = reader.num_samples // per_frame + 1
        while est_frames / pool > max_spec_columns and pool < plan.step_frames:
            pool *= 2
    hop_frames = plan.hop_samples // per_frame
    pending_spec: WindowScores | None = None
    for ws in iter_window_scores(
        model, frontend, reader, plan=plan, batch_size=batch_size, multilabel=multilabel, device=device,
        block_s=block_s, keep_spectrogram=keep_spectrogram,
    ):
        w_steps = weights[: ws.frame_probs.shape[0]]
        if ws.step_fraction is not None:  # the partly padded step of a short window is masked
            w_steps = w_steps * (ws.step_fraction >= 1.0)
        ola.add(ws.start_step, ws.frame_probs, w_steps)
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
        spec_hop_s=pool * per_frame / plan.sample_rate if spec_parts else None,
    )


def _pool_time(spec: torch.Tensor, pool: int) -> torch.Tensor:
    """Average ``[F, T]`` over groups of ``pool`` frames (last group may be partial)."""
    if pool == 1:
        return spec
    return F.avg_pool1d(spec[None], pool, pool, ceil_mode=True)[0]


def scores_to_events(
    scores: FrameScores,
    post: PostProcessing | None = None,
    *,
    filename: str | None = None,
) -> list[Event]:
    """Events (``evaluate.events.Event``, or ``FileEvent`` with ``filename``) of one input's
    :class:`FrameScores` via :func:`audioflex.evaluate.events.frames_to_events` with ``post``
    (thresholds, median filter, gap merging, minimum duration; None: the defaults); offsets are
    cut at the input's duration."""
    return frames_to_events(scores.probs, scores.frame_hop_s, scores.labels, post,
                            duration_s=scores.duration_s, filename=filename)
