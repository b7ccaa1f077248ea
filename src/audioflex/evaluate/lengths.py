"""Reports of the evaluation at several input lengths and frame shifts (the ElasticAST experiment):
the items and report types, length fitting, targets, and the table / JSON / PNG outputs.

The runner that scores a checkpoint over the grid is :func:`audioflex.apps.lengths.evaluate_lengths`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


def fit_length(wave: torch.Tensor, samples: int | None, *, pad: bool = True) -> torch.Tensor:
    """Crop ``[T]`` from its start to ``samples`` (None: unchanged); a shorter clip is zero-padded
    to it if ``pad``, else kept at its native length (how a packed model is evaluated: padding a
    0.5 s clip with 9.5 s of silence it never saw measures the padding, not the model)."""
    if samples is None:
        return wave
    if wave.numel() >= samples:
        return wave[:samples]
    if not pad:
        return wave
    return torch.nn.functional.pad(wave, (0, samples - wave.numel()))


def length_row(length_s: float | None, frame_shift_ms: float, metrics: dict[str, Any]) -> dict[str, Any]:
    """One row of a :class:`LengthReport`: the setting and the numeric entries of ``metrics``
    (:func:`~audioflex.evaluate.metrics.clip_metrics`)."""
    return {
        "length_s": length_s,
        "frame_shift_ms": frame_shift_ms,
        **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
    }


def mean_over_seeds(name: str, reports: Sequence[LengthReport]) -> LengthReport:
    """One report of the same model trained with several seeds (same grid of settings): each
    numeric entry becomes the mean over the seeds, with ``<key>_std`` (sample std, 0 for one seed)
    and ``<key>_seeds`` (the per-seed values, in ``reports`` order) beside it."""
    if not reports:
        raise ValueError("mean_over_seeds needs at least one report")
    grids = [[(row["length_s"], row["frame_shift_ms"]) for row in r.rows] for r in reports]
    if any(g != grids[0] for g in grids[1:]):
        raise ValueError(f"mean_over_seeds: the reports of {name!r} were evaluated on different settings")
    rows = []
    for k, setting in enumerate(grids[0]):
        per_seed = [r.rows[k] for r in reports]
        row: dict[str, Any] = {"length_s": setting[0], "frame_shift_ms": setting[1]}
        for key, v in per_seed[0].items():
            if key in row or not isinstance(v, (int, float)):
                continue
            vals = np.array([float(p[key]) for p in per_seed])
            row[key] = float(vals.mean())
            row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            row[f"{key}_seeds"] = vals.tolist()
        rows.append(row)
    return LengthReport(name, "; ".join(r.checkpoint for r in reports), reports[0].metric, rows)


def target_matrix(items: Sequence[EvalItem], num_classes: int) -> np.ndarray:
    """Multi-hot ``[N, C]`` targets."""
    y = np.zeros((len(items), num_classes), dtype=np.float32)
    for i, it in enumerate(items):
        y[i, list(it.targets)] = 1.0
    return y


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
