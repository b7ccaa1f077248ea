"""Class names of the published checkpoints, shipped as package data (``checkpoints/labels/``).

The original checkpoints store no class names. These sets give them, in the output order the
published checkpoints use (``index,mid,display_name`` CSVs, public metadata):

- ``audioset`` (527): AudioSet's ``class_labels_indices.csv``, as YuanGongND/ast
  ``egs/audioset/data/class_labels_indices.csv`` @31088be (byte-identical to HTS-AT's
  ``class_label_indice.csv`` @2e29471); the order of the AST, HTS-AT and PaSST AudioSet models.
- ``speechcommands`` (35): YuanGongND/ast ``egs/speechcommands/data/
  speechcommands_class_labels_indices.csv`` @31088be (the AST Speech Commands V2 model's order;
  its mids ``/m/spcmdNN`` are AST's placeholders).
- ``esc50`` (50): YuanGongND/ast ``egs/esc50/data/esc_class_labels_indices.csv`` @31088be, which
  is ESC-50's ``target`` 0..49 order of ``meta/esc50.csv`` (mids ``/m/07rwjNN`` are placeholders).

``audioflex convert ... --labels NAME|FILE`` picks one; with no ``--labels`` and no names in the
source, a 527-output head gets ``audioset`` (with a note). Only 527 is picked automatically: 35 or
50 outputs do not identify a dataset.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from audioflex.checkpoints.convert.base import ConversionError

__all__ = [
    "LABEL_SETS",
    "LabelSet",
    "auto_label_set",
    "choose_labels",
    "load_label_set",
    "read_label_csv",
    "read_labels_file",
]

_PACKAGE = "audioflex.checkpoints"
_HEADER = ["index", "mid", "display_name"]


@dataclass(frozen=True)
class LabelSet:
    """A shipped class-name set: ``labels/<filename>`` with ``num_classes`` rows."""

    name: str
    filename: str
    num_classes: int
    description: str


LABEL_SETS: dict[str, LabelSet] = {
    s.name: s
    for s in (
        LabelSet("audioset", "audioset_class_labels_indices.csv", 527, "AudioSet ontology (class_labels_indices.csv)"),
        LabelSet("speechcommands", "speechcommands_class_labels_indices.csv", 35, "Speech Commands V2 (35 words)"),
        LabelSet("esc50", "esc50_class_labels_indices.csv", 50, "ESC-50 (targets 0..49)"),
    )
}


def read_label_csv(text: str, source: str = "labels") -> list[tuple[str, str]]:
    """``index,mid,display_name`` CSV text -> ``[(mid, display_name)]`` in index order.

    Raises ``ConversionError`` (naming ``source``) unless the header is exactly that, indices
    are 0..N-1 in order and every name is non-empty.
    """
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0]] != _HEADER:
        raise ConversionError(f"{source}: expected the header 'index,mid,display_name'")
    out = []
    for k, row in enumerate(r for r in rows[1:] if r):
        if len(row) != 3 or row[0].strip() != str(k) or not row[2].strip():
            raise ConversionError(
                f"{source}: row {k + 2} should be '{k},<mid>,<name>', got {','.join(row)!r}"
            )
        out.append((row[1].strip(), row[2].strip()))
    return out


def load_label_set(name: str) -> list[str]:
    """The class names of the shipped set ``name`` (see :data:`LABEL_SETS`), in output order."""
    key = name.lower()
    if key not in LABEL_SETS:
        raise ConversionError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    spec = LABEL_SETS[key]
    text = resources.files(_PACKAGE).joinpath("labels", spec.filename).read_text(encoding="utf-8")
    names = [n for _, n in read_label_csv(text, f"labels/{spec.filename}")]
    if len(names) != spec.num_classes:
        raise ConversionError(f"labels/{spec.filename}: {len(names)} names, expected {spec.num_classes}")
    return names


def read_labels_file(path: str | Path) -> list[str]:
    """Names from a file: an ``index,mid,display_name`` CSV, or one name per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f"--labels {path}: cannot be read ({e})") from e
    if text.lstrip().lower().startswith("index,mid,display_name"):
        return [n for _, n in read_label_csv(text, str(path))]
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def auto_label_set(num_classes: int | None) -> str | None:
    """The set picked when no names were given: ``audioset`` for 527 outputs, else None."""
    return "audioset" if num_classes == LABEL_SETS["audioset"].num_classes else None


def choose_labels(
    given: str | Path | None, from_source: list[str] | None, num_classes: int | None
) -> tuple[list[str] | None, list[str]]:
    """The names a converted checkpoint gets, and notes saying where they come from.

    ``given`` (``--labels``): an existing file, else a set name; then the source's own names;
    then :func:`auto_label_set`. A count that does not match ``num_classes`` is an error.
    """
    names, notes = from_source, []
    if given is not None:
        if Path(given).is_file():
            names, what = read_labels_file(given), f"file {given}"
        elif str(given).lower() in LABEL_SETS:
            key = str(given).lower()
            names, what = load_label_set(key), f"{key} ({LABEL_SETS[key].description})"
        else:
            raise ConversionError(
                f"--labels {given}: no such file and not a known label set ({', '.join(LABEL_SETS)})"
            )
        if num_classes is not None and len(names) != num_classes:
            raise ConversionError(
                f"--labels {given}: {len(names)} names but the checkpoint has {num_classes} outputs"
            )
        notes.append(f"class names: {what}")
    elif names is None:
        auto = auto_label_set(num_classes)
        if auto is not None:
            names = load_label_set(auto)
            notes.append(
                f"no class names in the checkpoint; {num_classes} outputs: using the {auto} names "
                f"({LABEL_SETS[auto].description} order); pass --labels to override"
            )
        else:
            notes.append(
                "no class names in the checkpoint; pass --labels FILE or one of "
                f"{', '.join(LABEL_SETS)}"
            )
    return names, notes
