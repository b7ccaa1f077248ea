"""Report plots of the apps (matplotlib, Agg backend: no display needed).

``plot_detection``: a detection timeline PNG — the front end's spectrogram on top, the frame
probabilities of the top classes in the middle (with the decision threshold(s) as dashed lines),
and the detected events as bars at the bottom (reference events, when given, as outlined bars
above them), all on one time axis in seconds. The legend, outside the axes, lists every class
drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_detection", "top_classes"]


def _event_fields(event: Any) -> tuple[float, float, str]:
    label = getattr(event, "label", None)
    if label is None:
        label = getattr(event, "event_label", "")
    return float(event.onset), float(event.offset), str(label)


def top_classes(probs: np.ndarray, labels: Sequence[str], events: Sequence[Any], k: int) -> list[int]:
    """Class indices to show: those with events first (by peak probability), then the highest
    peaks, ``k`` in all (at least the event classes)."""
    peak = probs.max(axis=0) if probs.size else np.zeros(len(labels))
    index = {lab: i for i, lab in enumerate(labels)}
    with_events = {index[_event_fields(e)[2]] for e in events if _event_fields(e)[2] in index}
    order = sorted(with_events, key=lambda i: -peak[i])
    for i in np.argsort(-peak, kind="stable"):
        if len(order) >= max(k, len(with_events)):
            break
        if int(i) not in with_events:
            order.append(int(i))
    return order


def plot_detection(
    path: str | Path,
    scores: Any,
    events: Sequence[Any] = (),
    *,
    top_k: int = 5,
    title: str | None = None,
    dpi: int = 100,
    reference: Sequence[Any] = (),
    threshold: float | Mapping[str, float] | None = None,
) -> Path:
    """Write a detection timeline PNG.

    Args:
        path: output ``.png`` (parent folders are created).
        scores: ``audioflex.inference.frames.FrameScores`` (``probs [T', C]``, ``frame_hop_s``,
            ``labels``, ``duration_s``; ``spectrogram [F, T_s]`` and ``spec_hop_s`` if kept).
        events: detected events (``onset``, ``offset`` in seconds, ``label``).
        top_k: classes drawn in the activity panel (classes with detected or reference events are
            always drawn).
        title: figure title.
        reference: reference events to overlay (outlined bars above the detected ones).
        threshold: the decision threshold (one value, or ``{label: value}``), drawn dashed.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    probs = scores.probs.detach().cpu().float().numpy()
    labels = list(scores.labels)
    hop = float(scores.frame_hop_s)
    duration = max(float(scores.duration_s), 1e-3)
    shown = top_classes(probs, labels, [*events, *reference], top_k)
    spec = scores.spectrogram
    rows = [3, 2, 1] if spec is not None else [2, 1]
    width = min(24.0, max(8.0, duration / 10.0))
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(width, 2.0 * len(rows) + 1.0), sharex=True,
        gridspec_kw={"height_ratios": rows}, squeeze=False,
    )
    axes = axes[:, 0]
    ax_i = 0
    if spec is not None:
        s = spec.detach().cpu().float().numpy()
        sh = float(scores.spec_hop_s or hop)
        axes[0].imshow(
            s, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
            extent=(0.0, s.shape[1] * sh, 0, s.shape[0]),
        )
        axes[0].set_ylabel("mel bin")
        ax_i = 1
    ax_p = axes[ax_i]
    t = np.arange(probs.shape[0] + 1) * hop
    colours = plt.get_cmap("tab10")
    for n, c in enumerate(shown):
        y = np.append(probs[:, c], probs[-1, c]) if probs.shape[0] else np.zeros(1)
        ax_p.step(t[: y.shape[0]], y, where="post", color=colours(n % 10), label=labels[c], linewidth=1.2)
    if isinstance(threshold, Mapping):
        for n, c in enumerate(shown):
            if labels[c] in threshold:
                ax_p.axhline(float(threshold[labels[c]]), color=colours(n % 10), linestyle="--", linewidth=0.8)
    elif threshold is not None:
        ax_p.axhline(float(threshold), color="black", linestyle="--", linewidth=0.8, label="threshold")
    ax_p.set_ylim(-0.02, 1.02)
    ax_p.set_ylabel("probability")
    if shown:
        ax_p.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", borderaxespad=0.0)
    ax_e = axes[ax_i + 1]
    present = {_event_fields(e)[2] for e in [*events, *reference]}
    event_classes = [c for c in shown if labels[c] in present]
    for row, c in enumerate(event_classes):
        spans = [(on, off - on) for on, off, lab in map(_event_fields, events) if lab == labels[c]]
        refs = [(on, off - on) for on, off, lab in map(_event_fields, reference) if lab == labels[c]]
        low, high = (0.1, 0.4) if reference else (0.1, 0.8)
        ax_e.broken_barh(spans, (row + low, high), facecolors=colours(shown.index(c) % 10))
        if refs:
            ax_e.broken_barh(refs, (row + 0.55, 0.35), facecolors="none", edgecolors="black", linewidth=0.8)
    ax_e.set_yticks([r + 0.5 for r in range(len(event_classes))], [labels[c] for c in event_classes])
    ax_e.set_ylim(0, max(1, len(event_classes)))
    ax_e.set_xlim(0, duration)
    ax_e.set_xlabel("time (s)" + ("; outlined: reference events" if reference else ""))
    if not event_classes:
        ax_e.text(0.5, 0.5, "no events", transform=ax_e.transAxes, ha="center", va="center", color="grey")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")  # keeps the legend outside the axes
    plt.close(fig)
    return path
