"""``audioflex tag``, ``detect`` and ``embed``: a checkpoint run over audio files (bad files are
reported one line each, the others processed; exit 1 if any failed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from audioflex.cli.common import (
    BF16_HELP,
    CALIBRATE_HELP,
    EMBED_OPTIONS_HELP,
    INT8_HELP,
    RUNTIME_HELP,
    err,
    error_message,
    file_error,
    out,
    parse_options,
    print_file_errors,
    runtime_options,
    user_errors,
)

__all__ = ["detect", "embed", "tag"]


def tag(
    files: list[Path] = typer.Argument(..., help="Audio files (any length, any sample rate)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="audioflex checkpoint directory."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Labels to show per file (at least 1)."),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"files": {file: [{label, score}]}, '
                                 '"errors": {file: message}}.'),
    frame_shift_ms: Optional[float] = typer.Option(
        None, help="Override the front end's frame shift (Kaldi fbank only; 0 < ms <= 2 x its 25 ms window)."
    ),
    aggregate: str = typer.Option("mean", help="Combine windows of long files: mean or max."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    runtime: str = typer.Option("torch", help=RUNTIME_HELP),
    int8: bool = typer.Option(False, "--int8", help=INT8_HELP),
    calibrate: list[Path] = typer.Option([], "--calibrate", help=CALIBRATE_HELP),
    bf16: bool = typer.Option(False, "--bf16", help=BF16_HELP),
) -> None:
    """Tag audio files with a checkpoint's labels (bad files are reported, the others tagged; exit 1
    if any failed)."""
    from audioflex.inference.pipeline import Pipeline

    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1 (labels per file), got {top_k}")
    if frame_shift_ms is not None:
        _check_shift_option(checkpoint, frame_shift_ms)
    pipe = Pipeline.from_checkpoint(
        checkpoint, device=device, frame_shift_ms=frame_shift_ms, aggregate=aggregate,
        **runtime_options(runtime, int8, calibrate, bf16),
    )
    results = {}
    errors: dict[str, str] = {}
    for f in files:
        try:
            results[str(f)] = pipe.tag(f, top_k=top_k)
        except user_errors() as e:
            errors[str(f)] = file_error(f, error_message(e))
    print_file_errors(errors)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "files": {
                        f: [{"label": t.label, "score": round(t.score, 6)} for t in tags] for f, tags in results.items()
                    },
                    "errors": errors,
                }
            )
        )
    else:
        for f, tags in results.items():
            table = Table(title=f)
            table.add_column("label")
            table.add_column("score", justify="right")
            for t in tags:
                table.add_row(t.label, f"{t.score:.3f}")
            out.print(table)
    if errors:
        raise typer.Exit(1)


def _check_shift_option(checkpoint: Path, shift: float) -> None:
    """``--frame-shift-ms`` against the checkpoint's front end, before the model is loaded."""
    from audioflex.audio.frontend.base import frontend_config_from_dict
    from audioflex.checkpoints import read_meta
    from audioflex.inference.pipeline import check_frame_shift

    fe = read_meta(checkpoint).get("frontend")
    try:
        config = frontend_config_from_dict(fe) if fe else None
    except (TypeError, ValueError):
        config = None  # loading the checkpoint names the problem
    if config is not None:
        check_frame_shift(config, shift, "--frame-shift-ms")


def _thresholds(text: str) -> Any:
    """``0.5`` or ``siren=0.4,knock=0.6`` (others 0.5); each in (0, 1]."""
    usage = "a number in (0, 1] or per-class label=value pairs, e.g. 0.5 or siren=0.4,knock=0.6"

    def number(value: str, what: str) -> float:
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"--threshold: {what} {value.strip()!r} is not a number; give {usage}") from None
        if not 0.0 < v <= 1.0:
            raise ValueError(f"--threshold: {what} {v:g} is outside (0, 1]; give {usage}")
        return v

    if "=" not in text:
        return number(text, "value")
    per_class = {}
    for part in (p for p in text.split(",") if p.strip()):
        if "=" not in part:
            raise ValueError(f"--threshold: {part.strip()!r} is not a label=value pair; give {usage}")
        k, v = part.split("=", 1)
        per_class[k.strip()] = number(v, f"value of {k.strip()!r}")
    return per_class


def detect(
    files: list[Path] = typer.Argument(..., help="Audio files (any length)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Checkpoint with a frame-wise head."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default: print to stdout)."),
    fmt: str = typer.Option("tsv", "--format", help="tsv (DESED: filename onset offset event_label) or json."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Directory for one PNG timeline per file."),
    threshold: str = typer.Option("0.5", help="Threshold in (0, 1], or per class: siren=0.4,knock=0.6."),
    median_ms: float = typer.Option(0.0, help="Median filter on frame activity (ms)."),
    min_duration_ms: float = typer.Option(0.0, help="Drop events shorter than this (ms)."),
    merge_gap_ms: float = typer.Option(0.0, help="Merge events separated by less than this (ms)."),
    hop: float = typer.Option(0.5, help="Window hop as a fraction of the window (fixed-window models)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Reference events (DESED TSV) drawn on "
                                             "the plots, matched by file name."),
    audio_dir: Optional[Path] = typer.Option(None, "--audio-dir", help="Folder the FILES are relative to."),
    device: str = typer.Option("cpu"),
    runtime: str = typer.Option("torch", help=RUNTIME_HELP),
    int8: bool = typer.Option(False, "--int8", help=INT8_HELP),
    calibrate: list[Path] = typer.Option([], "--calibrate", help=CALIBRATE_HELP),
    bf16: bool = typer.Option(False, "--bf16", help=BF16_HELP),
) -> None:
    """Sound event detection on files of any length: events with onsets and offsets."""
    import tempfile

    from audioflex.apps.detect import detect_files
    from audioflex.evaluate.events import PostProcessing
    from audioflex.inference.pipeline import Pipeline

    for option, ms in (("--median-ms", median_ms), ("--min-duration-ms", min_duration_ms),
                       ("--merge-gap-ms", merge_gap_ms)):
        if not ms >= 0:  # also NaN
            raise ValueError(f"{option}: got {ms:g}; give 0 (off) or a positive number of milliseconds")
    post = PostProcessing(thresholds=_thresholds(threshold), median_filter_s=median_ms / 1000,
                          min_duration_s=min_duration_ms / 1000, merge_gap_s=merge_gap_ms / 1000)
    rt = runtime_options(runtime, int8, calibrate, bf16)
    pipe = Pipeline.from_checkpoint(checkpoint, device=device, batch_size=8, **rt)
    if audio_dir is not None:
        files = [f if f.is_absolute() else audio_dir / f for f in files]
    if reference is not None and plot is None:
        err.print("[yellow]--reference is drawn on the plots: add --plot DIR[/]")
    target = out_path
    tmp = None
    if target is None:
        tmp = tempfile.TemporaryDirectory()
        target = Path(tmp.name) / f"events.{fmt}"
    try:
        report = detect_files(
            files,
            pipe,
            out=target,
            fmt=fmt,
            plot_dir=plot,
            post=post,
            hop=hop,
            device=device,
            reference=reference,
        )
        if out_path is None:
            print(target.read_text(), end="")  # noqa: T201  (events to stdout for pipes)
        else:
            err.print(f"wrote {out_path}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    for p in report.plots.values():
        err.print(f"plot: {p}")
    note = report.nothing_found(post)
    if note:
        err.print(f"[yellow]{escape(note)}[/]", highlight=False, soft_wrap=True)
    print_file_errors(report.errors)
    if report.errors:
        raise typer.Exit(1)


def embed(
    inputs: list[Path] = typer.Argument(..., help="Audio files, folders (recursive) or manifests."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="audioflex checkpoint directory."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    kind: str = typer.Option("scene", help="scene ([D] per file) or timestamp ([T, D] + times)."),
    fmt: str = typer.Option("npy", "--format", help="npy (one file per input), npz or safetensors."),
    option: list[str] = typer.Option([], "--option", help=EMBED_OPTIONS_HELP),
    device: str = typer.Option("cpu"),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    runtime: str = typer.Option("torch", help=RUNTIME_HELP),
    int8: bool = typer.Option(False, "--int8", help=INT8_HELP),
    calibrate: list[Path] = typer.Option([], "--calibrate", help=CALIBRATE_HELP),
    bf16: bool = typer.Option(False, "--bf16", help=BF16_HELP),
) -> None:
    """Embeddings of audio files on disk; resumable (files already done are skipped). Bad inputs are
    reported one line each after the good ones are embedded (exit 1)."""
    from audioflex.apps.embed import embed_files
    from audioflex.inference.pipeline import Pipeline

    options = parse_options(option)
    rt = runtime_options(runtime, int8, calibrate, bf16)
    model = None
    if rt["runtime"] == "onnx" or rt["bf16"] or checkpoint.suffix.lower() == ".onnx":
        model = Pipeline.from_checkpoint(checkpoint, device=device, **rt).embedding_model(**options)
    report = embed_files(
        inputs, checkpoint, out_dir, kind=kind, fmt=fmt, device=device, progress=progress, model=model, **options
    )
    info = report.to_dict()
    failed = info["failed"]
    if len(failed) > 20:
        info["failed"] = [*failed[:20], {"path": "...", "error": f"{len(failed) - 20} more"}]
    out.print_json(json.dumps(info))
    print_file_errors(dict(report.failed))
    if failed:
        raise typer.Exit(1)
