"""``audioflex detect``: sound events of audio files, written as DESED TSV or JSON (+ PNG timelines)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from audioflex.apps.plots import plot_detection
from audioflex.audio.io import AudioError
from audioflex.evaluate.events import (
    Event,
    PostProcessing,
    read_events,
    write_events_json,
    write_events_tsv,
)
from audioflex.inference.frames import scores_to_events
from audioflex.inference.pipeline import Pipeline

logger = logging.getLogger(__name__)

__all__ = ["DetectReport", "detect_files"]


@dataclass
class DetectReport:
    """What :func:`detect_files` did.

    Attributes:
        events: per file (as given), its events.
        errors: per bad file, the error message (the other files were still processed).
        out: the written TSV/JSON file, or None.
        plots: per file, its PNG.
    """

    events: dict[str, list[Event]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    out: Path | None = None
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def num_events(self) -> int:
        return sum(len(v) for v in self.events.values())

    def nothing_found(self, post: PostProcessing) -> str | None:
        """A line saying that no events were found with ``post`` (and what to try), or None."""
        if self.num_events or not self.events:
            return None
        summary = post.threshold_summary()
        thr = "per class" if summary is None or isinstance(summary, Mapping) else summary
        return (f"no events found in {len(self.events)} file(s) at threshold {thr}; lower --threshold "
                "(e.g. 0.3), check the plots (--plot DIR) or that the checkpoint detects these sounds")


def _reference_for(key: str, reference: Mapping[str, list[Event]]) -> list[Event]:
    """Reference events of an input file: matched by the name as given, its file name or stem."""
    p = Path(key)
    for k in (key, p.name, p.stem):
        if k in reference:
            return reference[k]
    stems = {Path(k).stem: v for k, v in reference.items()}
    return stems.get(p.stem, [])


def detect_files(
    files: Sequence[str | Path],
    checkpoint: str | Path | Pipeline,
    *,
    out: str | Path | None = None,
    fmt: str = "tsv",
    plot_dir: str | Path | None = None,
    post: PostProcessing | None = None,
    hop: float = 0.5,
    weighting: str = "flat",
    batch_size: int = 8,
    device: str = "cpu",
    top_k_plot: int | None = None,
    reference: str | Path | Mapping[str, list[Event]] | None = None,
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
        post: event post-processing (thresholds, median filter, minimum duration, gap merging;
            None: threshold 0.5, nothing else).
        hop, weighting, batch_size, device: sliding-window options (see
            :func:`audioflex.inference.frames.frame_scores`).
        top_k_plot: classes shown in the activity panel (default: every class up to 10, else 5
            plus those with events).
        reference: reference events (a DESED TSV / JSON file, or ``{file: [Event]}``) to overlay on
            the plots, matched by file name or stem.

    Bad files (unreadable, empty, ...) are listed in ``report.errors`` (and logged at INFO); the
    others are still processed. Filenames in the output are as given. Truncated or too short
    files are used with a logged warning (``Pipeline.check_file``).
    """
    if fmt not in ("tsv", "json"):
        raise ValueError(f"fmt must be 'tsv' or 'json', got {fmt!r}")
    if isinstance(checkpoint, Pipeline):
        pipe = checkpoint
    else:
        pipe = Pipeline.from_checkpoint(checkpoint, device=device, batch_size=batch_size)
    post = (post or PostProcessing()).check(pipe.labels)  # bad options fail before any work
    report = DetectReport()
    refs = read_events(reference) if isinstance(reference, (str, Path)) else dict(reference or {})
    top_k = top_k_plot if top_k_plot is not None else (len(pipe.labels) if len(pipe.labels) <= 10 else 5)
    plot_path = Path(plot_dir) if plot_dir is not None else None
    if plot_path is not None:
        plot_path.mkdir(parents=True, exist_ok=True)
    for f in files:
        key = str(f)
        try:
            scores = pipe.frame_scores(f, hop=hop, weighting=weighting, keep_spectrogram=plot_path is not None)
            events = scores_to_events(scores, post, filename=key)
        except (AudioError, OSError) as e:
            logger.info("%s: %s", key, e)  # the caller reports report.errors (the CLI prints each once)
            report.errors[key] = str(e)
            continue
        report.events[key] = events
        if plot_path is not None:
            png = plot_path / f"{Path(key).stem}.png"
            i = 1
            while png in report.plots.values():  # same stem in different folders
                png = plot_path / f"{Path(key).stem}_{i}.png"
                i += 1
            plot_detection(png, scores, events, top_k=top_k, title=Path(key).name,
                           reference=_reference_for(key, refs), threshold=post.threshold_summary())
            report.plots[key] = png
    if out is not None:
        if fmt == "tsv":
            report.out = write_events_tsv(out, report.events)
        else:
            report.out = write_events_json(out, report.events, extra={"errors": report.errors})
    return report


