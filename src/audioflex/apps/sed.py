"""Sound event detection scores of checkpoints on a strongly labelled dataset (``audioflex evaluate``).

As DCASE task 4 does it (:func:`evaluate_events`):

1. a frame-head model (HTS-AT, or ElasticAST with ``frame_head=True``) scores every clip once at
   its full length (sliding windows + overlap-add, ``Pipeline.frame_scores``);
2. the raw frame scores are written as ``sed_scores_eval`` score files (``score_dir/test``,
   ``score_dir/valid``) and PSDS1/PSDS2 are computed from them (threshold-independent);
3. threshold, median filter and minimum duration are tuned on the validation clips (per class or
   one setting for all; :func:`~audioflex.evaluate.tuning.tune_postprocessing`), or fixed values
   are used when there is no validation split;
4. the test clips' events with that post-processing are scored: event-based F1 (onset + offset,
   200 ms collar), onset-only F1, segment-based F1/ER, class-wise and macro
   (:func:`audioflex.evaluate.sed.event_report`).

Only the dataset's classes are scored (``labels``; default: every label of the records).
:func:`evaluate_event_checkpoints` is what the CLI calls: every checkpoint, report JSON, text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from audioflex.data.records import ClipRecord, Event
from audioflex.evaluate.events import PostProcessing, frames_to_events
from audioflex.evaluate.scores import PSDS_SCENARIOS, psds_from_scores, score_frame, write_score_files
from audioflex.evaluate.sed import event_report, has_events, report_lines, scores_available, summary_line
from audioflex.evaluate.tuning import FrameSet, tune_postprocessing
from audioflex.inference.pipeline import Pipeline
from audioflex.inference.records import audio_ids, score_records
from audioflex.inference.windows import plan_windows

logger = logging.getLogger(__name__)

__all__ = ["TUNING", "EventScoring", "Scorer", "audio_ids", "evaluate_event_checkpoints", "evaluate_events",
           "evaluate_scorer"]

# records -> ({audio id: FrameSet}, {audio id: reference [Event]}, unreadable paths)
Scorer = Callable[[Sequence[ClipRecord]], tuple[dict[str, FrameSet], dict[str, list[Event]], list[str]]]

TUNING = ("per_class", "global", "none")


@dataclass(frozen=True)
class EventScoring:
    """How frame scores become scored events (the options of :func:`evaluate_events`).

    Attributes:
        tune: ``per_class`` (each class its own threshold, median filter and minimum duration,
            chosen on the validation clips), ``global`` (one setting for all) or ``none``.
        tune_onset_only: tune for the onset-only F1 (default: onset + offset F1).
        post: the fixed post-processing; tuning replaces its thresholds, median filter and minimum
            duration, its ``merge_gap_s`` is always used.
        t_collar, percentage_of_length: event matching (onset collar in s; offset collar
            ``max(t_collar, percentage_of_length * reference length)``).
        time_resolution: segment length of the segment-based metrics (s).
        psds: compute PSDS1/PSDS2 (needs ``sed_scores_eval``; a note when it is missing).
    """

    tune: str = "per_class"
    tune_onset_only: bool = False
    post: PostProcessing = PostProcessing()
    t_collar: float = 0.2
    percentage_of_length: float = 0.2
    time_resolution: float = 1.0
    psds: bool = True

    def __post_init__(self) -> None:
        if self.tune not in TUNING:
            raise ValueError(f"event scoring: tune must be one of {TUNING}, got {self.tune!r}")


def _events(frames: dict[str, FrameSet], labels: list[str], post: PostProcessing) -> dict[str, list[Event]]:
    out = {}
    for key, f in frames.items():
        evs = frames_to_events(f.probs, f.hop_s, labels, post, duration_s=f.duration_s)
        out[key] = [Event(e.onset, e.offset, e.label) for e in evs]
    return out


def evaluate_events(
    checkpoint: str | Path | Pipeline,
    records: Sequence[ClipRecord],
    *,
    valid_records: Sequence[ClipRecord] | None = None,
    scoring: EventScoring = EventScoring(),
    labels: Sequence[str] | None = None,
    score_dir: str | Path | None = None,
    hop: float = 0.5,
    device: str = "cpu",
    batch_size: int = 8,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """PSDS1/PSDS2, event F1 (onset + offset and onset only) and segment F1/ER of a checkpoint.

    Args:
        checkpoint: an audioflex checkpoint directory or a ready ``Pipeline`` (frame-head model).
        records: the test clips, with strong labels (``ClipRecord.events``).
        valid_records: clips to tune the post-processing on (None: the fixed values are used).
        scoring: tuning, fixed post-processing, event matching and PSDS (:class:`EventScoring`).
        labels: classes to score (default: every label of the records' events and clip labels).
        score_dir: write the raw frame scores there as score files (``test/``, ``valid/``).
        hop, device, batch_size: window hop (fraction of the window), where and how many windows
            per forward; ``progress``: called with 1 after each clip.

    Returns:
        The :func:`~audioflex.evaluate.sed.event_report` dict plus ``tuned_on`` (what the
        post-processing was chosen on), ``tuning`` (validation F1 per class) and ``score_dir``.

    Raises:
        ValueError: no records, no strong labels, labels unknown to the model, or a model without a
            frame-wise head.
    """
    if not records:
        raise ValueError("evaluate_events: no records to evaluate")
    if not has_events(records):
        raise ValueError("evaluate_events: the records carry no strong labels (events); read a DESED-style TSV "
                         "(read_dataset(tsv, kind='strong'))")
    pipe = checkpoint if isinstance(checkpoint, Pipeline) else Pipeline.from_checkpoint(
        checkpoint, device=device, batch_size=batch_size, window_hop=hop)
    plan_windows(pipe.model, pipe.frontend, hop=pipe.window_hop)  # no frame head: clear ValueError
    model_labels = list(pipe.labels)
    every = list(records) + list(valid_records or ())
    found = sorted({e.label for r in every for e in r.events} | {x for r in every for x in r.labels})
    unknown = sorted(set(found) - set(model_labels))
    if unknown:
        raise ValueError(f"evaluate_events: label(s) {unknown[:5]} of the dataset are not among the checkpoint's "
                         f"{len(model_labels)} labels; evaluate a checkpoint trained on these classes")
    scored = list(labels) if labels is not None else found
    bad = sorted(set(scored) - set(model_labels))
    if bad:
        raise ValueError(f"evaluate_events: labels {bad[:5]} are not among the checkpoint's labels")
    columns = [model_labels.index(lab) for lab in scored]
    return evaluate_scorer(
        lambda recs: score_records(pipe, recs, columns, set(scored), progress), records, labels=scored,
        valid_records=valid_records, scoring=scoring, score_dir=score_dir,
    )


def evaluate_scorer(
    score: Scorer,
    records: Sequence[ClipRecord],
    *,
    labels: list[str],
    valid_records: Sequence[ClipRecord] | None = None,
    scoring: EventScoring = EventScoring(),
    score_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Steps 2-4 of the module docstring for any frame scorer: ``score(records)`` gives
    ``({audio id: FrameSet (probs [T', len(labels)])}, {audio id: [Event]}, unreadable paths)``
    (a checkpoint's :func:`~audioflex.inference.records.score_records`, or a baseline's). The
    options are those of :func:`evaluate_events`; returns the same report."""
    scored = list(labels)
    post, tune = scoring.post.check(scored), scoring.tune  # bad options fail before any work

    test, reference, skipped = score(records)
    if not test:
        raise ValueError(f"evaluate_scorer: none of the {len(records)} files could be read (see the log)")
    hop_s = next(iter(test.values())).hop_s
    valid = valid_ref = None
    if valid_records and tune != "none":
        valid, valid_ref, bad_valid = score(valid_records)
        skipped += bad_valid
    have_scores = scores_available()
    if score_dir is not None and have_scores:
        for name, part in (("test", test), ("valid", valid or {})):
            if part:
                write_score_files({k: score_frame(f.probs, f.hop_s, scored, f.duration_s) for k, f in part.items()},
                                  Path(score_dir) / name)
    psds_values, psds_note = None, None
    if not scoring.psds:
        psds_note = "PSDS not requested"
    elif not have_scores:
        psds_note = "sed_scores_eval is not installed (pip install 'audioflex[sed]'); PSDS skipped"
    else:
        dfs = {k: score_frame(f.probs, f.hop_s, scored, f.duration_s) for k, f in test.items()}
        durations = {k: f.duration_s for k, f in test.items()}
        if any(reference.values()):
            psds_values = {name: psds_from_scores(dfs, reference, durations, scenario=name)
                           for name in PSDS_SCENARIOS}
            gone = psds_values["psds1"]["classes_left_out"]
            psds_note = f"over the classes with reference events (left out: {', '.join(gone)})" if gone else None
        else:
            psds_note = "no reference events in the evaluated clips; PSDS skipped"
    tuning, tuned_on = None, None
    if valid:
        tuning = tune_postprocessing(valid, valid_ref or {}, scored, per_class=tune == "per_class",
                                     onset_only=scoring.tune_onset_only, t_collar=scoring.t_collar,
                                     percentage_of_length=scoring.percentage_of_length)
        post = replace(post, thresholds=tuning["thresholds"], median_filter_s=tuning["median_filter_s"],
                       min_duration_s=tuning["min_duration_s"])
        tuned_on = (f"tuned on {len(valid)} validation files ({tuning['criterion']}, "
                    f"{'per class' if tune == 'per_class' else 'one setting for all classes'}); "
                    f"validation macro F1 {tuning['validation_f1_macro']:.3f}")
    elif tune != "none":
        tuned_on = "fixed: no validation clips to tune on (pass valid_records / a dataset with a valid split)"
    estimated = _events(test, scored, post)
    res = event_report(
        reference, estimated, {k: f.duration_s for k, f in test.items()}, labels=scored, postprocessing=post,
        psds=psds_values, psds_note=psds_note, t_collar=scoring.t_collar,
        percentage_of_length=scoring.percentage_of_length, time_resolution=scoring.time_resolution,
        frame_hop_s=hop_s, skipped=skipped,
    )
    res["tuned_on"] = tuned_on
    res["tuning"] = {k: tuning[k] for k in ("validation_f1", "validation_f1_macro", "criterion", "per_class")} \
        if tuning else None
    res["score_dir"] = str(score_dir) if score_dir is not None and have_scores else None
    return res


def _say(say: Callable[[str], Any] | None, name: str, res: dict[str, Any]) -> None:
    if say is not None:
        say(summary_line(name, res))
        for line in report_lines(res):
            say("  " + line)


def evaluate_event_checkpoints(
    checkpoints: Sequence[str | Path],
    records: Sequence[ClipRecord],
    out_dir: str | Path,
    *,
    valid_records: Sequence[ClipRecord] | None = None,
    scoring: EventScoring = EventScoring(),
    device: str = "cpu",
    batch_size: int = 8,
    progress: Callable[[int], Any] | None = None,
    say: Callable[[str], Any] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``audioflex evaluate`` on an event dataset: :func:`evaluate_events` for every checkpoint
    (score files in ``out_dir/scores/<checkpoint name>/``), ``out_dir/report.json`` (a list of
    ``{"checkpoint", "events"}``) and, through ``say``, a summary line and the class-wise table
    per checkpoint. A checkpoint without a frame head gets ``{"skipped": reason}``. ``extra``:
    reports made otherwise (e.g. ``{"baseline": evaluate_baseline(...)}``), printed and written
    after the checkpoints'."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for ck in checkpoints:
        pipe = Pipeline.from_checkpoint(ck, device=device, batch_size=batch_size)
        try:
            res = evaluate_events(pipe, records, valid_records=valid_records, scoring=scoring,
                                  score_dir=out / "scores" / Path(ck).name, progress=progress)
        except ValueError as e:
            if "frame-wise head" not in str(e):
                raise
            res = {"skipped": str(e)}
            logger.warning("%s: no event metrics (%s)", ck, e)
        results[str(ck)] = res
        _say(say, Path(ck).name, res)
    for name, res in (extra or {}).items():
        results[name] = res
        _say(say, name, res)
    doc = [{"checkpoint": k, "events": v} for k, v in results.items()]
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    return results
