"""Clip durations from file headers (``soundfile.info``; nothing is decoded).

:func:`with_durations` fills them in on request; :func:`resolve_durations` is the training run's
variant: a JSON cache keyed by file size and mtime, and unreadable or empty files left out as
:class:`~audioflex.data.datasets.items.BadClip`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from audioflex.audio.io import AudioError, audio_info
from audioflex.data.datasets.items import BadClip
from audioflex.data.records import ClipRecord

logger = logging.getLogger(__name__)

__all__ = ["resolve_durations", "with_durations"]


def with_durations(
    records: Iterable[ClipRecord], *, overwrite: bool = False, errors: str = "raise"
) -> list[ClipRecord]:
    """Fill ``duration`` from each file's header (``soundfile.info``; nothing is decoded).

    Only records without a duration are opened unless ``overwrite``. ``errors="raise"`` raises the
    ``AudioError`` naming an unreadable file; ``errors="warn"`` logs it and leaves
    ``duration=None``.
    """
    if errors not in ("raise", "warn"):
        raise ValueError(f"with_durations: errors must be 'raise' or 'warn', got {errors!r}")
    out = []
    for r in records:
        if r.duration is None or overwrite:
            try:
                r = dataclasses.replace(r, duration=audio_info(r.path).duration)
            except AudioError as exc:
                if errors == "raise":
                    raise
                logger.warning("with_durations: %s", exc)
        out.append(r)
    return out


def resolve_durations(
    records: Sequence[ClipRecord], cache: str | Path | None = None
) -> tuple[list[ClipRecord], list[BadClip]]:
    """Fill missing ``duration`` from file headers (``soundfile.info``), with an optional JSON cache.

    The cache maps a path to ``[size, mtime_ns, duration]`` and is reused when the file is
    unchanged (2 M AudioSet headers take minutes to read). Returns ``(usable records, bad)``:
    files whose header cannot be read are left out and returned as :class:`BadClip` (index =
    position in ``records``).
    """
    entries: dict[str, list[float]] = {}
    cache_path = Path(cache) if cache is not None else None
    if cache_path is not None and cache_path.is_file():
        try:
            entries = json.loads(cache_path.read_text())
        except (OSError, json.JSONDecodeError):
            logger.warning("ignoring unreadable duration cache %s", cache_path)
    out, bad, changed = [], [], False
    for i, r in enumerate(records):
        if r.duration is not None:
            out.append(r)
            continue
        key = str(r.path)
        try:
            st = os.stat(r.path)
            hit = entries.get(key)
            if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                dur = float(hit[2])
            else:
                dur = audio_info(r.path).duration
                entries[key] = [st.st_size, st.st_mtime_ns, dur]
                changed = True
            if not dur > 0 or not math.isfinite(dur):
                raise AudioError(f"{r.path}: header gives duration {dur} s; the file is empty or damaged")
        except (AudioError, OSError) as exc:
            logger.warning("skipping unreadable clip: %s", exc)
            bad.append(BadClip(i, key, str(exc)))
            continue
        out.append(dataclasses.replace(r, duration=dur))
    if cache_path is not None and changed:
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(cache_path)
    return out, bad
