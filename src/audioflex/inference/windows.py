"""Window plans and overlap-add: how a model's input windows tile the output timeline.

A window plan (:func:`plan_windows`) fixes, for a frame-head model and its front end, the window
length (HTS-AT: its 1024-frame input; ElasticAST with ``frame_head=True``: the span of its time
table or ``window_s``), the timeline step (HTS-AT: 32 frames = 0.32 s; ElasticAST: one patch
column = 16 frames) and the hop, rounded to whole steps so that window ``k``'s step ``j`` is
exactly timeline step ``k * hop_steps + j``. :class:`OverlapAdd` adds the windows' frame
probabilities onto the timeline with per-step weights (:func:`window_weights`, times 0 for the
partly padded last step of a short window: :func:`step_fractions`) and flushes the finished
part; :func:`aggregate_scores` combines per-window clip scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from audioflex.audio.frontend.base import Frontend
from audioflex.models.contract import contract_of

__all__ = ["WEIGHTINGS", "OverlapAdd", "WindowPlan", "aggregate_scores", "frame_samples", "plan_windows",
           "step_fractions", "window_weights"]

WEIGHTINGS = ("flat", "hann", "triangle")


@dataclass(frozen=True)
class WindowPlan:
    """How a model's input windows map onto the output timeline (all sizes in samples/frames).

    Attributes:
        sample_rate: model (front end) sample rate.
        window_samples: samples per window.
        hop_samples: samples between window starts (a multiple of ``step_samples``).
        step_samples: samples per timeline step (``step_frames`` front-end frames).
        step_frames: front-end frames per timeline step (32 for HTS-AT, the patch size over its
            ``frame_substeps`` for ElasticAST).
        window_frames: the longest spectrogram the model takes (windows are cropped to it).
        packed: True for packed models (ElasticAST), False for fixed-window models (HTS-AT).
        column_frames: frames per token column of a packed model (its patch size; 1 for grid models).
    """

    sample_rate: int
    window_samples: int
    hop_samples: int
    step_samples: int
    step_frames: int
    window_frames: int
    packed: bool
    column_frames: int = 1

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


def frame_samples(frontend: Frontend) -> int:
    """Waveform samples per front-end frame (its hop)."""
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
    per_frame = frame_samples(frontend)
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
            col = c.column_frames
            window_frames = max(1, round(window_s * sr / per_frame / col)) * col
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
    step_samples = step_frames * per_frame
    window_samples = window_frames * per_frame
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
        column_frames=c.column_frames,
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


class OverlapAdd:
    """Incremental weighted overlap-add onto a timeline ``[T, C]``.

    ``add(start, values [S, C], weights [S])`` with non-decreasing ``start``; steps before the
    latest ``start`` are final and flushed (so memory is one window plus the finished output).
    A weight of 0 masks a step (a partly padded step): a timeline step that only masked values
    reach holds the previous step's value (the first step, if masked: the plain mean of what
    reached it), so padding never creates activity.
    """

    def __init__(self) -> None:
        self._done: list[torch.Tensor] = []
        self._base = 0
        self._acc: torch.Tensor | None = None  # [L, C]
        self._wsum: torch.Tensor | None = None  # [L]
        self._raw: torch.Tensor | None = None  # [L, C] unweighted sums (masked-only first step)
        self._count: torch.Tensor | None = None  # [L]
        self._last: torch.Tensor | None = None  # [C] the last finished step

    def _finish(self, k: int) -> torch.Tensor:
        """The first ``k`` pending steps, averaged, masked-only steps filled."""
        assert self._acc is not None and self._wsum is not None and self._raw is not None
        wsum = self._wsum[:k]
        rows = self._acc[:k] / wsum.clamp(min=1e-12)[:, None]
        for i in torch.nonzero(wsum <= 0).flatten().tolist():
            prev = rows[i - 1] if i > 0 else self._last
            rows[i] = prev if prev is not None else self._raw[i] / self._count[i].clamp(min=1)
        if k:
            self._last = rows[-1]
        return rows

    def add(self, start: int, values: torch.Tensor, weights: torch.Tensor) -> None:
        if start < self._base:
            raise ValueError(f"overlap-add starts must not decrease ({start} < {self._base})")
        n, c = values.shape
        if self._acc is None:
            self._acc = values.new_zeros(0, c)
            self._raw = values.new_zeros(0, c)
            self._wsum = values.new_zeros(0)
            self._count = values.new_zeros(0)
        if start > self._base:
            k = min(start - self._base, self._acc.shape[0])
            if k:
                self._done.append(self._finish(k))
            self._acc, self._wsum = self._acc[k:], self._wsum[k:]
            self._raw, self._count = self._raw[k:], self._count[k:]
            if start - self._base > k:
                raise ValueError(f"gap in the timeline before step {start}: windows must overlap or touch")
            self._base = start
        need = n - self._acc.shape[0]
        if need > 0:
            self._acc = torch.cat([self._acc, values.new_zeros(need, c)])
            self._raw = torch.cat([self._raw, values.new_zeros(need, c)])
            self._wsum = torch.cat([self._wsum, values.new_zeros(need)])
            self._count = torch.cat([self._count, values.new_zeros(need)])
        w = weights[:n].to(values.dtype)
        self._acc[:n] += values * w[:, None]
        self._wsum[:n] += w
        self._raw[:n] += values
        self._count[:n] += 1

    def result(self, length: int | None = None) -> torch.Tensor:
        """The averaged timeline ``[T, C]`` (cut to ``length`` steps if given)."""
        parts = list(self._done)
        if self._acc is not None and self._acc.shape[0]:
            last = self._last
            parts.append(self._finish(self._acc.shape[0]))
            self._last = last
        if not parts:
            raise ValueError("nothing was added to the timeline")
        out = torch.cat(parts)
        return out[:length] if length is not None else out


def step_fractions(frames: int, step_frames: int, steps: int) -> torch.Tensor:
    """Share of real (unpadded) frames in each of a window's first ``steps`` steps ``[steps]``."""
    start = torch.arange(steps) * step_frames
    return ((frames - start).clamp(0, step_frames) / step_frames).float()


def aggregate_scores(scores: torch.Tensor, weights: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """Combine per-window scores ``[P, C]`` with weights ``[P]`` into ``[C]`` (``mean`` or ``max``)."""
    if how == "mean":
        w = weights / weights.sum()
        return (scores * w[:, None]).sum(0)
    if how == "max":
        return scores.max(0).values
    raise ValueError(f"aggregate must be 'mean' or 'max', got {how!r}")
