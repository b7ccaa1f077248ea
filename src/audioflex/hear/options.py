"""Options of the HEAR embedding model (:func:`audioflex.hear.load_model`'s keyword arguments
and ``model_options``), checked on construction; :func:`merge_layers` applies ``layer_mode``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import torch

MEL_MS = 60.0


@dataclass(frozen=True)
class EmbedOptions:
    """Options of :func:`audioflex.hear.load_model` (all keyword arguments / ``model_options``).

    Attributes:
        hop_ms: timestamp hop (>= the front end's frame hop).
        window_ms: receptive field of one timestamp embedding (ignored when ``levels`` is set).
        levels: several window lengths (ms) whose vectors are concatenated, e.g. ``(160, 800)``.
        layers: block indices (negative counts from the end) whose pooled outputs replace the
            final features; ``None`` = the model's own clip embedding.
        layer_mode: ``"concat"`` or ``"mean"`` over ``layers``.
        layer_pool: ``"tokens"`` (patch tokens) or ``"cls"`` (CLS/distillation tokens; AST, PaSST).
        include_logits: prepend the raw logits (no sigmoid); ``None`` = True for PaSST (as the
            reference's ``mode="all"``), False otherwise.
        include_mel: append the flattened front-end frames of a ``mel_ms`` window (timestamp
            embeddings only).
        mel_ms: window of the raw front-end frames.
        scene_window_ms: longest clip embedded in one forward (default: the model's native span,
            10 s for PaSST); longer clips average windows of this length.
        scene_hop_ms: hop of those windows (default: a quarter window).
        max_frames: input frames per forward pass (batch size control).
        stream_s: seconds of timestamps computed per block (bounds memory for long inputs).
        timestamp_mode: ``"window"`` (one forward per ``window_ms`` window, batched),
            ``"frames"`` (HTS-AT only: time-resolved token features of overlapping 10.24 s
            windows, see the module docstring) or ``"auto"`` (``"frames"`` for HTS-AT unless
            ``levels`` is given, ``"window"`` otherwise).
        bf16: run the model under bfloat16 autocast (:class:`~audioflex.models.autocast.AutocastModel`;
            float32 vectors): faster on CPUs with AMX and on GPUs, slower where bfloat16 is emulated.
    """

    hop_ms: float = 50.0
    window_ms: float = 160.0
    levels: tuple[float, ...] | None = None
    layers: tuple[int, ...] | None = None
    layer_mode: str = "concat"
    layer_pool: str = "tokens"
    include_logits: bool | None = None
    include_mel: bool = False
    mel_ms: float = MEL_MS
    scene_window_ms: float | None = None
    scene_hop_ms: float | None = None
    max_frames: int = 16384
    stream_s: float = 120.0
    timestamp_mode: str = "auto"
    bf16: bool = False

    @classmethod
    def parse(cls, model_options: str | dict[str, Any] | None = None, **kwargs: Any) -> EmbedOptions:
        """Options from a JSON string / dict (as HEAR runners pass) merged with keyword arguments."""
        opts: dict[str, Any] = {}
        if model_options:
            if isinstance(model_options, str):
                try:
                    model_options = json.loads(model_options)
                except json.JSONDecodeError as e:
                    raise ValueError(f"model_options: not valid JSON ({e}): {model_options!r}") from e
            if not isinstance(model_options, dict):
                raise ValueError(f"model_options must be a JSON object, got {model_options!r}")
            opts.update(model_options)
        opts.update(kwargs)
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ValueError(f"unknown embedding option(s) {unknown}; known options: {sorted(known)}")
        for key in ("levels", "layers"):
            v = opts.get(key)
            if v is not None:
                opts[key] = tuple(v) if isinstance(v, (list, tuple)) else (v,)
        out = cls(**opts)
        out.validate()
        return out

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad option."""
        def pos(name: str, v: float | None) -> None:
            if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
                raise ValueError(f"{name} must be a positive number of milliseconds, got {v!r}")

        pos("hop_ms", self.hop_ms)
        pos("window_ms", self.window_ms)
        pos("mel_ms", self.mel_ms)
        pos("scene_window_ms", self.scene_window_ms)
        pos("scene_hop_ms", self.scene_hop_ms)
        if self.levels is not None:
            if not self.levels:
                raise ValueError("levels must list at least one window length (ms)")
            for v in self.levels:
                pos("levels", v)
        if self.layers is not None and (
            not self.layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in self.layers)
        ):
            raise ValueError(f"layers must be a non-empty list of block indices, got {self.layers!r}")
        if self.layer_mode not in ("concat", "mean"):
            raise ValueError(f"layer_mode must be 'concat' or 'mean', got {self.layer_mode!r}")
        if self.layer_pool not in ("tokens", "cls"):
            raise ValueError(f"layer_pool must be 'tokens' or 'cls', got {self.layer_pool!r}")
        if self.max_frames < 1 or self.stream_s <= 0:
            raise ValueError("max_frames must be >= 1 and stream_s > 0")
        if not isinstance(self.bf16, bool):
            raise ValueError(f"bf16 must be true or false, got {self.bf16!r}")
        if self.timestamp_mode not in ("auto", "window", "frames"):
            raise ValueError(f"timestamp_mode must be 'auto', 'window' or 'frames', got {self.timestamp_mode!r}")

    @property
    def window_levels(self) -> tuple[float, ...]:
        return tuple(self.levels) if self.levels is not None else (self.window_ms,)


def merge_layers(pooled: list[torch.Tensor], layer_mode: str) -> list[torch.Tensor]:
    """Per-block features ``[..., D_k]`` -> the parts of a vector: all of them (``"concat"``) or
    their mean (``"mean"``; the blocks must be of one width, else ``ValueError``)."""
    if layer_mode != "mean":
        return list(pooled)
    widths = sorted({p.shape[-1] for p in pooled})
    if len(widths) > 1:
        raise ValueError(
            f"layer_mode='mean' needs blocks of equal width, got widths {widths}; "
            "use layer_mode='concat' or blocks of one stage"
        )
    return [torch.stack(pooled).mean(0)]


__all__ = ["MEL_MS", "EmbedOptions", "merge_layers"]
