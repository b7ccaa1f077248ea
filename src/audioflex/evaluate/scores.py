"""Raw frame scores as DCASE scores them: ``sed_scores_eval`` score files and threshold-free PSDS.

A score file (one per audio file, ``<audio_id>.tsv``) is what DCASE task 4 submits: columns
``onset  offset  <class 1> ... <class C>``, one row per frame (seconds; the last frame's offset is
the file's duration). :func:`write_score_files` writes them from frame probabilities,
:func:`read_score_files` reads them back, :func:`psds_from_scores` computes PSDS (exactly, over
every threshold, ``sed_scores_eval.intersection_based.psds``) in the DCASE scenarios:

* PSDS1: DTC = GTC = 0.7, no cross-trigger penalty, ``alpha_st = 1``, eFPR up to 100/h
  (localisation);
* PSDS2: DTC = GTC = 0.1, CTTC = 0.3, ``alpha_ct = 0.5``, ``alpha_st = 1``, eFPR up to 100/h
  (classification).

Reference events of one class that overlap or touch are merged first (``sed_scores_eval``
requires it; a union of intervals is what such labels mean).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audioflex.data.records import Event, as_event
from audioflex.evaluate.thirdparty import import_sed_scores_eval

__all__ = ["PSDS_SCENARIOS", "merge_overlapping", "psds_from_scores", "read_score_files", "score_frame",
           "write_score_files"]

PSDS_SCENARIOS: dict[str, dict[str, Any]] = {
    "psds1": {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None, "alpha_ct": 0.0,
              "alpha_st": 1.0, "max_efpr": 100.0},
    "psds2": {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3, "alpha_ct": 0.5,
              "alpha_st": 1.0, "max_efpr": 100.0},
}


def score_frame(probs: np.ndarray, hop_s: float, labels: Sequence[str], duration_s: float | None = None) -> Any:
    """Frame probabilities ``[T, C]`` -> a ``sed_scores_eval`` score DataFrame (``onset``,
    ``offset``, one column per class; frame ``t`` spans ``[t, t + 1) * hop_s``, the last one
    ends at ``duration_s`` when given)."""
    sse = import_sed_scores_eval()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(labels) or probs.shape[0] == 0:
        raise ValueError(f"score_frame: expected probabilities [T > 0, {len(labels)}], got {list(probs.shape)}")
    stamps = np.arange(probs.shape[0] + 1, dtype=np.float64) * hop_s
    if duration_s is not None and stamps[-2] < duration_s:
        stamps[-1] = duration_s
    return sse.base_modules.scores.create_score_dataframe(probs, np.round(stamps, 6), list(labels))


def write_score_files(scores: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write ``{audio_id: score DataFrame}`` as ``out_dir/<audio_id>.tsv`` (tab-separated)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for audio_id, df in scores.items():
        if "/" in audio_id or audio_id.startswith("."):
            raise ValueError(f"write_score_files: audio id {audio_id!r} is not a plain file name")
        df.to_csv(out / f"{audio_id}.tsv", sep="\t", index=False, float_format="%.6g")
    return out


def read_score_files(path: str | Path) -> dict[str, Any]:
    """``{audio_id: score DataFrame}`` of a folder of score files (or one file)."""
    sse = import_sed_scores_eval()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such score file or folder")
    got = sse.io.read_sed_scores(p)
    return got if isinstance(got, dict) else {p.stem: got}


def merge_overlapping(events: Sequence[Any]) -> list[tuple[float, float, str]]:
    """Events of one file -> ``(onset, offset, label)`` with each class's overlapping or touching
    events merged, sorted."""
    by_label: dict[str, list[tuple[float, float]]] = {}
    for e in map(as_event, events):
        by_label.setdefault(e.label, []).append((e.onset, e.offset))
    out = []
    for label, spans in by_label.items():
        spans.sort()
        cur_on, cur_off = spans[0]
        for on, off in spans[1:]:
            if on <= cur_off:
                cur_off = max(cur_off, off)
            else:
                out.append((cur_on, cur_off, label))
                cur_on, cur_off = on, off
        out.append((cur_on, cur_off, label))
    return sorted(out)


def psds_from_scores(
    scores: Mapping[str, Any],
    reference: Mapping[str, Sequence[Event]],
    durations: Mapping[str, float],
    *,
    scenario: str | Mapping[str, Any] = "psds1",
) -> dict[str, Any]:
    """Threshold-independent PSDS of score DataFrames against reference events per audio id.

    Args:
        scores: ``{audio_id: score DataFrame}`` (:func:`score_frame`, :func:`read_score_files`).
        reference: ``{audio_id: [Event]}`` (every scored id; ``[]`` for a file without events).
        durations: ``{audio_id: seconds}``.
        scenario: ``psds1``, ``psds2`` or a dict of ``sed_scores_eval`` PSDS arguments.

    Returns:
        ``{"psds": float, "class_wise": {label: float}, "settings": {...}, "classes_left_out":
        [...]}``: classes without any reference event here cannot be scored (no true positive
        rate) and are left out of the PSD-ROC (listed).
    """
    sse = import_sed_scores_eval()
    settings = dict(PSDS_SCENARIOS[scenario]) if isinstance(scenario, str) else dict(scenario)
    ids = sorted(scores)
    missing = [k for k in ids if k not in reference or k not in durations]
    if missing:
        raise ValueError(f"psds_from_scores: no reference or duration for {len(missing)} file(s), e.g. {missing[0]!r}")
    gt = {k: merge_overlapping(reference[k]) if reference[k] else [] for k in ids}
    columns = [c for c in scores[ids[0]].columns if c not in ("onset", "offset")]
    present = {e[2] for evs in gt.values() for e in evs}
    left_out = [c for c in columns if c not in present]
    kept = [c for c in columns if c in present]
    if not kept:
        raise ValueError("psds_from_scores: no reference events of any scored class")
    value, class_wise, _, _ = sse.intersection_based.psds(
        scores={k: scores[k][["onset", "offset", *kept]] for k in ids}, ground_truth=gt,
        audio_durations={k: float(durations[k]) for k in ids}, **settings,
    )
    return {"psds": float(value), "class_wise": {str(k): float(v) for k, v in class_wise.items()},
            "settings": settings, "classes_left_out": left_out}
