"""``audioflex inspect``: what a dataset holds, and the data options shared by train/evaluate/detect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from audioflex.cli.common import err, out

__all__ = ["inspect_cmd", "read_options", "show_summary"]


def read_options(audio_dir: Optional[Path]) -> dict[str, Any]:
    """Reader keyword arguments for ``--audio-dir`` (none when it is not given)."""
    return {"audio_dir": audio_dir} if audio_dir is not None else {}


def show_summary(ds: Any) -> None:
    """Print the ``inspect`` summary of a read dataset (without opening its audio) to stderr."""
    from audioflex.data.inspect import inspect_dataset

    for line in inspect_dataset(ds, check_audio=False).lines():
        err.print(escape(line), highlight=False, soft_wrap=True)


def inspect_cmd(
    data: Path = typer.Argument(..., help="Dataset (folder, metadata file, manifest, ESC-50, DESED, ...)."),
    audio_dir: Optional[Path] = typer.Option(None, "--audio-dir", help="Where the audio files are."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not read file headers (durations, unreadable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What a dataset holds: kind, classes per split/fold, durations, events, missing files, warnings."""
    from audioflex.data.inspect import inspect_dataset
    from audioflex.data.readers import read_dataset

    summary = inspect_dataset(read_dataset(data, **read_options(audio_dir)), check_audio=not no_audio)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))  # noqa: T201
        return
    for line in summary.lines():
        out.print(escape(line), highlight=False, soft_wrap=True)
