"""Evaluation of checkpoints at several input lengths and frame shifts (the ElasticAST experiment).

For every (length, frame shift) pair each test clip longer than the length is cropped (from its
start), the front end is rebuilt at the frame shift, and the clip is scored the way the model is
used in practice. A clip shorter than the length is zero-padded to it for fixed-window models (they
see padding in training too: AST practice) but kept at its native length for packed models, which
never see padding. Packed models take the clip whole at its length; fixed-window models crop/pad
to their input window or slide windows over longer inputs. Metrics per pair go to a
:class:`~audioflex.evaluate.lengths.LengthReport` (table, JSON and PNG plot:
:mod:`audioflex.evaluate.lengths`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioflex.audio.io import AudioError, load_audio
from audioflex.evaluate.lengths import EvalItem, LengthReport, fit_length, length_row, target_matrix
from audioflex.evaluate.metrics import clip_metrics
from audioflex.inference.pipeline import Pipeline, check_frame_shift

logger = logging.getLogger(__name__)

__all__ = ["evaluate_lengths"]


def _run_name(path: Path) -> str:
    """A readable model name: the run directory for ``<run>/best`` and ``<run>/last``."""
    return f"{path.parent.name}/{path.name}" if path.name in ("best", "last") else path.name


def _metrics(scores: np.ndarray, targets: np.ndarray, multilabel: bool) -> dict[str, float]:
    return clip_metrics(scores, targets, multilabel=multilabel)


def evaluate_lengths(
    checkpoint: str | Path,
    items: Sequence[EvalItem],
    *,
    lengths_s: Sequence[float | None] = (None,),
    frame_shifts_ms: Sequence[float | None] = (None,),
    name: str | None = None,
    device: str = "cpu",
    max_tokens: int = 8192,
    progress: Callable[[int], Any] | None = None,
) -> LengthReport:
    """Score ``items`` with a checkpoint at every (length, frame shift) pair.

    ``None`` as a length keeps each clip's native length; ``None`` as a shift keeps the
    checkpoint's front end. ``progress(n)`` is called after each clip if given.
    """
    base = Pipeline.from_checkpoint(checkpoint, device=device, max_tokens=max_tokens)
    for shift in frame_shifts_ms:  # before any audio is read
        if shift is not None:
            check_frame_shift(base.frontend.config, shift, "frame_shifts_ms")
    c = len(base.labels)
    multilabel = base.multilabel
    report = LengthReport(
        name=name or _run_name(Path(checkpoint)),
        checkpoint=str(checkpoint),
        metric="mAP" if multilabel else "accuracy",
    )
    sr = base.sample_rate
    waves: list[torch.Tensor] = []
    kept: list[EvalItem] = []
    for it in items:
        try:
            waves.append(load_audio(it.path, sr))
            kept.append(it)
        except AudioError as e:
            logger.warning("skipping %s", e)
            report.skipped.append(str(it.path))
    y = target_matrix(kept, c)
    for shift in frame_shifts_ms:
        # same model and labels; only the front end's frame shift changes (no checkpoint reload)
        pipe = (
            base
            if shift is None
            else Pipeline(
                base.model,
                base.frontend.config.replace(frame_shift_ms=float(shift)),
                base.labels,
                multilabel=multilabel,
                device=device,
                max_tokens=max_tokens,
            )
        )
        for length in lengths_s:
            n = None if length is None else round(length * sr)
            fitted = [fit_length(w, n, pad=not pipe.is_packed) for w in waves]
            scores = _score(pipe, fitted)
            if progress is not None:
                progress(len(fitted))
            m = _metrics(scores, y, multilabel)
            shift_ms = shift if shift is not None else pipe.frontend.config.hop_s * 1000
            report.rows.append(length_row(length, shift_ms, m))
    return report


@torch.no_grad()
def _score(pipe: Pipeline, waves: list[torch.Tensor]) -> np.ndarray:
    """Scores ``[N, C]``: clips up to one piece/window at once, longer ones windowed."""
    limit = round(pipe.piece_s * pipe.sample_rate)
    short = [i for i, w in enumerate(waves) if w.numel() <= limit]
    out = np.zeros((len(waves), len(pipe.labels)), dtype=np.float32)
    if short:
        out[short] = pipe.scores_batch([waves[i] for i in short]).numpy()
    for i, w in enumerate(waves):
        if w.numel() > limit:
            out[i] = pipe.clip_scores(w).numpy()
    return out


