"""Evaluation at several input lengths and frame shifts (the ElasticAST experiment).

For every (length, frame shift) pair each test clip is cropped (from its start) or zero-padded to
the length, the front end is rebuilt at the frame shift, and the clip is scored the way the model
is used in practice: packed models take the clip whole at its length; fixed-window models crop/pad
to their input window (AST practice) or slide windows over longer inputs. Metrics per pair go to a
table, a JSON report and a PNG plot (metric vs length, one line per model and frame shift).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioflex.audio.io import AudioError, load_audio

logger = logging.getLogger(__name__)


@dataclass
class EvalItem:
    """One test clip: its audio and its target label indices."""

    path: Path
    targets: tuple[int, ...]


@dataclass
class LengthReport:
    """Metrics of one checkpoint over the grid of lengths x frame shifts."""

    name: str
    checkpoint: str
    metric: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "metric": self.metric,
            "rows": self.rows,
            "skipped": self.skipped,
        }


def _run_name(path: Path) -> str:
    """A readable model name: the run directory for ``<run>/best`` and ``<run>/last``."""
    return f"{path.parent.name}/{path.name}" if path.name in ("best", "last") else path.name


def fit_length(wave: torch.Tensor, samples: int | None) -> torch.Tensor:
    """Crop ``[T]`` from its start, or zero-pad its end, to ``samples`` (None: unchanged)."""
    if samples is None:
        return wave
    if wave.numel() >= samples:
        return wave[:samples]
    return torch.nn.functional.pad(wave, (0, samples - wave.numel()))


def target_matrix(items: Sequence[EvalItem], num_classes: int) -> np.ndarray:
    """Multi-hot ``[N, C]`` targets."""
    y = np.zeros((len(items), num_classes), dtype=np.float32)
    for i, it in enumerate(items):
        y[i, list(it.targets)] = 1.0
    return y


def _metrics(scores: np.ndarray, targets: np.ndarray, multilabel: bool) -> dict[str, float]:
    from audioflex.evaluate.metrics import clip_metrics

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
    progress: Any = None,
) -> LengthReport:
    """Score ``items`` with a checkpoint at every (length, frame shift) pair.

    ``None`` as a length keeps each clip's native length; ``None`` as a shift keeps the
    checkpoint's front end. ``progress(n)`` is called after each clip if given.
    """
    from audioflex.pipeline import Pipeline, check_frame_shift

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
            fitted = [fit_length(w, n) for w in waves]
            scores = _score(pipe, fitted)
            if progress is not None:
                progress(len(fitted))
            m = _metrics(scores, y, multilabel)
            row = {
                "length_s": length,
                "frame_shift_ms": shift if shift is not None else pipe.frontend.config.hop_s * 1000,
                **{k: v for k, v in m.items() if isinstance(v, (int, float))},
            }
            report.rows.append(row)
    return report


@torch.no_grad()
def _score(pipe: Any, waves: list[torch.Tensor]) -> np.ndarray:
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


def format_table(reports: Sequence[LengthReport]) -> list[list[str]]:
    """Rows ``[model, shift, metric@len1, metric@len2, ...]`` for printing."""
    rows = []
    for r in reports:
        shifts = sorted({row["frame_shift_ms"] for row in r.rows})
        for s in shifts:
            cells = [r.name, f"{s:g} ms"]
            for row in r.rows:
                if row["frame_shift_ms"] == s:
                    cells.append(f"{row[r.metric]:.3f}" if r.metric in row else "-")
            rows.append(cells)
    return rows


def plot_reports(reports: Sequence[LengthReport], path: str | Path, title: str = "") -> Path:
    """PNG: metric vs length, one line per (model, frame shift)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = ["-", "--", "-.", ":"]
    for k, r in enumerate(reports):
        shifts = sorted({row["frame_shift_ms"] for row in r.rows})
        for j, s in enumerate(shifts):
            pts = [(row["length_s"], row.get(r.metric)) for row in r.rows if row["frame_shift_ms"] == s]
            pts = [(x, v) for x, v in pts if x is not None and v is not None]
            if not pts:
                continue
            xs, vs = zip(*sorted(pts))
            ax.plot(xs, vs, styles[j % len(styles)], marker="o", color=f"C{k}", label=f"{r.name} @ {s:g} ms")
    ax.set_xlabel("evaluation length (s)")
    ax.set_ylabel(reports[0].metric if reports else "metric")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_json(reports: Sequence[LengthReport], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    return path
