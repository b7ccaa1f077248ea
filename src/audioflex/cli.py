"""The ``audioflex`` command line: thin wrappers over the library (parse, call, print).

Errors a user can fix (bad audio, bad checkpoint, bad option) print one red line and exit 1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from audioflex import __version__

app = typer.Typer(
    name="audioflex",
    help="Train, evaluate and use audio transformers (AST, ElasticAST, HTS-AT, PaSST) on audio of any length.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Speed/memory benchmarks (JSON to stdout or --out).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
export_app = typer.Typer(help="Export models for other runtimes (ONNX).", no_args_is_help=True)
app.add_typer(export_app, name="export")

out = Console()
err = Console(stderr=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    from audioflex.audio.io import AudioError
    from audioflex.checkpoints import CheckpointError
    from audioflex.checkpoints.convert import ConversionError

    return (AudioError, CheckpointError, ConversionError, ValueError, KeyError, FileNotFoundError, OSError)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-fixable exceptions into one error line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _user_errors() as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _file_error(path: Any, message: Any) -> str:
    """An error line about one input file: the message, prefixed with the file unless it names it."""
    text = " ".join(str(message).split())
    return text if str(path) in text else f"{path}: {text}"


def _print_file_errors(errors: dict[str, str]) -> None:
    for path, message in errors.items():
        err.print(f"[bold red]error:[/] {escape(_file_error(path, message))}", highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"audioflex {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
) -> None:
    """audioflex command line."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


_RUNTIME_HELP = "torch, or onnx (ONNX Runtime on the CPU; a checkpoint directory is exported on the fly)."
_INT8_HELP = "int8 quantization with ONNX Runtime (implies --runtime onnx): dynamic, or static with --calibrate."
_CALIBRATE_HELP = "Audio file(s) to calibrate static int8 activation ranges on (repeat the option)."


def _runtime(runtime: str, int8: bool, calibrate: list[Path]) -> dict[str, Any]:
    """Keyword arguments of ``Pipeline.from_checkpoint`` for ``--runtime/--int8/--calibrate``."""
    if calibrate and not int8:
        raise ValueError("--calibrate sets static int8 ranges: use it with --int8")
    if int8:
        runtime = "onnx"
    return {"runtime": runtime, "int8": ("static" if calibrate else "dynamic") if int8 else None,
            "calibration": list(calibrate) or None}


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"option {pair!r} must look like key=value")
        k, v = pair.split("=", 1)
        try:
            opts[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            opts[k.strip()] = v
    return opts


@app.command()
@friendly
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered models with their parameter counts."""
    import torch

    from audioflex.models.registry import create_model, get_spec, list_models

    rows = []
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name)
        n = sum(p.numel() for p in model.parameters())
        fe = get_spec(name).frontend
        rows.append(
            {
                "name": name,
                "parameters": n,
                "frontend": fe().kind if fe else None,
                "description": get_spec(name).description,
            }
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="audioflex models")
    for col in ("model", "params", "front end", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], f"{r['parameters'] / 1e6:.1f} M", r["frontend"] or "-", r["description"])
    out.print(table)


@app.command()
@friendly
def convert(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="Source format (see --list)."),
    src: Path = typer.Argument(..., help="Foreign checkpoint file or folder."),
    dst: Path = typer.Argument(..., metavar="OUT", help="Output audioflex checkpoint directory."),
    option: list[str] = typer.Option([], "--option", "-o", help="Converter option key=value (e.g. num_heads=12)."),
    labels: Optional[str] = typer.Option(
        None,
        help="Class names: a file (one name per line, or an index,mid,display_name CSV) or a shipped set: "
        "audioset, speechcommands, esc50. Default: the source's names; AudioSet's for 527 outputs.",
    ),
) -> None:
    """Convert a foreign checkpoint (hf-ast, ast, elasticast, ast-to-elastic, htsat, passt)."""
    from audioflex.checkpoints import load_state_checked, save_checkpoint
    from audioflex.checkpoints.convert import get_converter
    from audioflex.checkpoints.convert.labels import choose_labels
    from audioflex.models.contract import contract_of
    from audioflex.models.registry import create_model

    conv = get_converter(fmt).convert(src, **_parse_options(option))
    model = create_model(conv.model_name, **conv.model_args)
    strict = not any("strict=False" in n for n in conv.notes)
    load_state_checked(model, conv.state_dict, strict=strict, source=str(src))
    names, label_notes = choose_labels(labels, conv.labels, contract_of(model).num_classes)
    save_checkpoint(dst, model, frontend=conv.frontend, labels=names)
    n = sum(p.numel() for p in model.parameters())
    out.print(f"wrote {dst} ({conv.model_name}, {n / 1e6:.2f} M parameters)")
    for note in conv.notes + label_notes:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)


@app.command()
@friendly
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
    runtime: str = typer.Option("torch", help=_RUNTIME_HELP),
    int8: bool = typer.Option(False, "--int8", help=_INT8_HELP),
    calibrate: list[Path] = typer.Option([], "--calibrate", help=_CALIBRATE_HELP),
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
        **_runtime(runtime, int8, calibrate),
    )
    results = {}
    errors: dict[str, str] = {}
    for f in files:
        try:
            results[str(f)] = pipe.tag(f, top_k=top_k)
        except _user_errors() as e:
            errors[str(f)] = _file_error(f, e.args[0] if isinstance(e, KeyError) and e.args else e)
    _print_file_errors(errors)
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


def _floats(text: Optional[str], what: str) -> list[Optional[float]]:
    if not text:
        return [None]
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be a comma-separated list of numbers, got {text!r}") from None


@app.command()
@friendly
def evaluate(
    checkpoints: list[Path] = typer.Argument(..., help="One or more checkpoint directories."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset (folder, manifest, ESC-50, AudioSet, ...)."),
    split: Optional[str] = typer.Option(None, help="Split to evaluate ('' for all records; default: 'test' "
                                        "where the dataset has one, else all records)."),
    folds: Optional[str] = typer.Option(None, help="Comma-separated folds to evaluate (ESC-50)."),
    lengths: Optional[str] = typer.Option(None, help="Comma-separated lengths in s (default: native)."),
    frame_shifts: Optional[str] = typer.Option(None, help="Comma-separated frame shifts in ms (default: trained)."),
    out_dir: Path = typer.Option(Path("runs/evaluate"), "--out", help="Where report.json and the plot go."),
    device: str = typer.Option("cpu"),
) -> None:
    """Evaluate checkpoints at several lengths and frame shifts: table, JSON and plot."""
    from tqdm import tqdm

    from audioflex.apps.lengths import evaluate_lengths
    from audioflex.apps.sed import add_event_metrics
    from audioflex.checkpoints import read_meta
    from audioflex.data.readers import read_dataset
    from audioflex.evaluate.lengths import EvalItem, format_table, plot_reports, write_json

    ds = read_dataset(data)
    fold_list = [int(f) for f in folds.split(",")] if folds else None
    if split is None:  # a dataset without splits (a strong-label TSV, a folder) is evaluated whole
        split = "test" if any(r.split == "test" for r in ds.records) else ""
        out.print(f"evaluating {'split test' if split else 'all records'} of {data} (--split to choose)")
    records = ds.select(split=split or None, folds=fold_list)
    if not records:
        raise ValueError(f"{data}: no records in split {split!r} (folds {folds}); pick --split/--folds")
    lens, shifts = _floats(lengths, "--lengths"), _floats(frame_shifts, "--frame-shifts")
    reports = []
    for ck in checkpoints:
        names = read_meta(ck).get("labels") or []
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted({lab for r in records for lab in r.labels if lab not in index})
        if unknown:
            raise ValueError(f"{ck}: labels {unknown[:5]} of {data} are not among the checkpoint's labels")
        items = [EvalItem(r.path, tuple(index[lab] for lab in r.labels)) for r in records]
        with tqdm(total=len(items) * len(lens) * len(shifts), desc=ck.name, unit="clip") as bar:
            reports.append(
                evaluate_lengths(ck, items, lengths_s=lens, frame_shifts_ms=shifts, device=device, progress=bar.update)
            )
    table = Table(title=f"{reports[0].metric} by frame shift (rows) and length (columns)")
    table.add_column("model")
    table.add_column("shift")
    for length in lens:
        table.add_column("native" if length is None else f"{length:g} s", justify="right")
    for row in format_table(reports):
        table.add_row(*row)
    out.print(table)
    write_json(reports, out_dir / "report.json")
    add_event_metrics(out_dir / "report.json", checkpoints, records, device=device, say=out.print)
    plot_reports(reports, out_dir / "metric_vs_length.png")
    out.print(f"wrote {out_dir / 'report.json'} and {out_dir / 'metric_vs_length.png'}")


@app.command()
@friendly
def shard(
    data: Path = typer.Argument(..., help="Dataset (folder, manifest, ESC-50, AudioSet, DESED, ...)."),
    out_dir: Path = typer.Argument(..., metavar="OUT", help="Directory for the .tar shards."),
    shard_size: str = typer.Option("1GB", help="Approximate shard size (e.g. 1GB, 500MB)."),
    split: Optional[str] = typer.Option(None, help="Only this split."),
) -> None:
    """Write WebDataset tar shards (audio bytes + labels/events JSON) for streaming training."""
    from audioflex.data.readers import read_dataset
    from audioflex.data.shards import write_shards

    ds = read_dataset(data)
    records = ds.select(split=split) if split else ds.records
    rep = write_shards(records, out_dir, shard_size=shard_size, labels=ds.label_names)
    out.print(f"wrote {rep.clips} clips ({rep.bytes / 1e6:.1f} MB of audio) into {len(rep.shards)} shards in {out_dir}")
    if rep.missing:
        err.print(f"[yellow]{len(rep.missing)} unreadable file(s) skipped[/], e.g. {rep.missing[0]}")


@app.command()
@friendly
def train(
    config: Path = typer.Argument(..., help="Training config YAML (see configs/)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config entry: key.sub=value (repeatable)."),
    resume: Optional[Path] = typer.Option(None, help="Continue a killed/finished run from its last checkpoint."),
) -> None:
    """Train a model (single process, or every process under torchrun)."""
    from audioflex.train import train as run_training

    overrides = list(set_) + ([f"resume={resume}"] if resume is not None else [])
    result = run_training(config, overrides)
    best = f"{result.best_metric:.4f}" if result.best_metric is not None else "n/a"
    out.print(f"done: {result.steps} steps, best {result.metric_name} {best}; run dir {result.run_dir}")
    if result.bad_files:
        err.print(f"[yellow]{result.bad_files} unreadable file(s) skipped; see {result.run_dir / 'bad_files.txt'}[/]")


@app.command()
@friendly
def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="Where data, checkpoints and the report go."),
    quick: bool = typer.Option(False, help="A seconds-long smoke run (tiny data and models)."),
) -> None:
    """The built-in demo: ElasticAST vs a fixed-length AST across lengths and frame shifts (~15 min on CPU)."""
    from audioflex.apps.demo import DemoSettings, run_demo

    result = run_demo(out_dir, DemoSettings.quick() if quick else DemoSettings(), say=out.print)
    out.print(f"[bold]report:[/] {result.report}")
    out.print(f"[bold]plot:[/] {result.plot}")
    out.print(result.report.read_text(), markup=False, highlight=False)


_EMBED_OPTIONS_HELP = (
    "HEAR/embedding option key=value (repeatable): hop_ms, window_ms, levels=[160,800], layers=[-1,-4], "
    "layer_mode=concat|mean, layer_pool=tokens|cls, include_logits=true, include_mel=true, max_frames, stream_s."
)


@app.command()
@friendly
def embed(
    inputs: list[Path] = typer.Argument(..., help="Audio files, folders (recursive) or manifests."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="audioflex checkpoint directory."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    kind: str = typer.Option("scene", help="scene ([D] per file) or timestamp ([T, D] + times)."),
    fmt: str = typer.Option("npy", "--format", help="npy (one file per input), npz or safetensors."),
    option: list[str] = typer.Option([], "--option", help=_EMBED_OPTIONS_HELP),
    device: str = typer.Option("cpu"),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    runtime: str = typer.Option("torch", help=_RUNTIME_HELP),
    int8: bool = typer.Option(False, "--int8", help=_INT8_HELP),
    calibrate: list[Path] = typer.Option([], "--calibrate", help=_CALIBRATE_HELP),
) -> None:
    """Embeddings of audio files on disk; resumable (files already done are skipped). Bad inputs are
    reported one line each after the good ones are embedded (exit 1)."""
    from audioflex.apps.embed import embed_files
    from audioflex.inference.pipeline import Pipeline

    options = _parse_options(option)
    rt = _runtime(runtime, int8, calibrate)
    model = None
    if rt["runtime"] == "onnx" or checkpoint.suffix.lower() == ".onnx":
        model = Pipeline.from_checkpoint(checkpoint, device=device, **rt).embedding_model(**options)
    report = embed_files(
        inputs, checkpoint, out_dir, kind=kind, fmt=fmt, device=device, progress=progress, model=model, **options
    )
    info = report.to_dict()
    failed = info["failed"]
    if len(failed) > 20:
        info["failed"] = [*failed[:20], {"path": "...", "error": f"{len(failed) - 20} more"}]
    out.print_json(json.dumps(info))
    _print_file_errors(dict(report.failed))
    if failed:
        raise typer.Exit(1)


@app.command()
@friendly
def probe(
    task_dir: Path = typer.Argument(..., help="HEAR task directory (task_metadata.json, <split>.json, audio), "
                                    "or without --checkpoint a directory written by heareval's embedding runner."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="audioflex checkpoint directory."),
    option: list[str] = typer.Option([], "--option", help=_EMBED_OPTIONS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, help="Where embeddings are cached."),
    grid_points: int = typer.Option(8, help="Grid points tried (HEAR kit default 8)."),
    max_epochs: int = typer.Option(500, help="Epoch limit per grid point."),
    standardize: bool = typer.Option(False, help="Scale embeddings with training statistics (not in the HEAR kit)."),
    seed: int = typer.Option(42, help="Seed of the grid order, initialisation and shuffling."),
    stop_on_nan: bool = typer.Option(True, help="Stop at a NaN validation score (an event validation without "
                                     "events), as the HEAR kit does; --no-stop-on-nan counts it as 0."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON here."),
    device: str = typer.Option("cpu"),
) -> None:
    """Shallow-probe evaluation (the HEAR kit's MLP on frozen embeddings); prints the scores as JSON."""
    from audioflex.apps.probe import probe_task
    from audioflex.hear.probe import ProbeConfig, probe_heareval_dir

    cfg = ProbeConfig(grid_points=grid_points, max_epochs=max_epochs, standardize=standardize, seed=seed,
                      stop_on_nan=stop_on_nan)
    if checkpoint is None:
        if option:
            raise typer.BadParameter("--option needs --checkpoint (embedding options of an audioflex model)")
        _emit(probe_heareval_dir(task_dir, cfg, progress=True), out_path)
        return
    _emit(
        probe_task(task_dir, checkpoint, cache_dir=cache_dir, config=cfg, device=device, progress=True,
                   **_parse_options(option)),
        out_path,
    )


@bench_app.command("embed")
@friendly
def bench_embed_cmd(
    families: str = typer.Option("ast,elastic_ast,passt,htsat", help="Comma-separated model families."),
    seconds: float = typer.Option(10.0, help="Audio timed with batched windows."),
    loop_seconds: float = typer.Option(2.0, help="Audio timed with one forward per window."),
    long_seconds: float = typer.Option(600.0, help="Length of the file for the memory measurement (<= 3600)."),
    memory: bool = typer.Option(True, help="Measure peak RSS on the long file."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON here."),
) -> None:
    """Timestamp embeddings (hop 50 ms, window 160 ms): batched vs one forward per window, and memory."""
    from audioflex.bench_embed import bench_embed

    fams = tuple(f.strip() for f in families.split(",") if f.strip())
    _emit(
        bench_embed(fams, seconds=seconds, loop_seconds=loop_seconds, long_seconds=long_seconds, memory=memory),
        out_path,
    )


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
    out = {}
    for part in (p for p in text.split(",") if p.strip()):
        if "=" not in part:
            raise ValueError(f"--threshold: {part.strip()!r} is not a label=value pair; give {usage}")
        k, v = part.split("=", 1)
        out[k.strip()] = number(v, f"value of {k.strip()!r}")
    return out


@app.command()
@friendly
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
    device: str = typer.Option("cpu"),
    runtime: str = typer.Option("torch", help=_RUNTIME_HELP),
    int8: bool = typer.Option(False, "--int8", help=_INT8_HELP),
    calibrate: list[Path] = typer.Option([], "--calibrate", help=_CALIBRATE_HELP),
) -> None:
    """Sound event detection on files of any length: events with onsets and offsets."""
    import tempfile

    from audioflex.apps.detect import detect_files
    from audioflex.inference.pipeline import Pipeline

    pipe = Pipeline.from_checkpoint(checkpoint, device=device, batch_size=8, **_runtime(runtime, int8, calibrate))

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
            thresholds=_thresholds(threshold),
            median_filter_s=median_ms / 1000,
            min_duration_s=min_duration_ms / 1000,
            merge_gap_s=merge_gap_ms / 1000,
            hop=hop,
            device=device,
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
    _print_file_errors(report.errors)
    if report.errors:
        raise typer.Exit(1)


@export_app.command("onnx")
@friendly
def export_onnx_cmd(
    checkpoint: Path = typer.Argument(..., help="audioflex checkpoint directory."),
    out_file: Path = typer.Argument(..., help="Output .onnx file (labels, front end and contract in its metadata)."),
    int8: bool = typer.Option(False, "--int8", help="Write the int8 graph (dynamic; static with --calibrate)."),
    calibrate: list[Path] = typer.Option([], "--calibrate", help=_CALIBRATE_HELP),
    opset: int = typer.Option(17, help="ONNX opset (>= 17)."),
) -> None:
    """Export a checkpoint's model to ONNX (the front end stays in torch, outside the graph); the
    graph is checked against torch (<= 1e-4) before it is written."""
    import tempfile

    from audioflex.export.loader import write_onnx

    if opset < 17:
        raise ValueError(f"--opset must be at least 17, got {opset}")
    rt = _runtime("onnx", int8, calibrate)
    with tempfile.TemporaryDirectory(prefix="audioflex-export-") as tmp:
        path = write_onnx(checkpoint, out_file, int8=rt["int8"], calibration=rt["calibration"], opset=opset,
                          workdir=Path(tmp))
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB{', int8 ' + rt['int8'] if int8 else ''})")


@bench_app.command("htsat")
@friendly
def bench_htsat_cmd(
    seconds: float = typer.Option(3600.0, help="Length of the generated file for detect."),
    batch: int = typer.Option(2, help="Clips per training step."),
    steps: int = typer.Option(2, help="Timed training steps."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON here."),
) -> None:
    """htsat_tiny vs ast_base: parameters, train-step time; detect real-time factor and peak RSS."""
    from audioflex.bench_htsat import run

    _emit(run(seconds=seconds, batch=batch, steps=steps), out_path)


def _emit(result: dict[str, Any], out_path: Optional[Path]) -> None:
    text = json.dumps(result, indent=2)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text + "\n")
        err.print(f"wrote {out_path}")
    print(text)  # noqa: T201  (JSON to stdout for pipes)


@bench_app.command("packing")
@friendly
def bench_packing(
    model: str = typer.Option("elastic_ast_small", help="Packed model to time."),
    clips: int = typer.Option(24, help="Clips per step (lengths log-uniform in 0.5-12 s)."),
    max_tokens: int = typer.Option(2048, help="Token budget per packed batch / reference row."),
    steps: int = typer.Option(2, help="Timed steps per variant (after one warm-up)."),
    seed: int = typer.Option(0),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON here."),
) -> None:
    """One training step (forward + backward) packed vs padded vs reference rows."""
    from audioflex.bench import bench_packing as run

    _emit(run(model=model, clips=clips, max_tokens=max_tokens, steps=steps, seed=seed), out_path)


@bench_app.command("ast-vs-hf")
@friendly
def bench_ast_vs_hf(
    batch: int = typer.Option(4),
    steps: int = typer.Option(3),
    size: str = typer.Option("base", help="tiny, small or base."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON here."),
) -> None:
    """ast_* vs transformers' ASTForAudioClassification with the same weights on 10 s clips."""
    from audioflex.bench import bench_ast_vs_hf as run

    _emit(run(batch=batch, steps=steps, size=size), out_path)


@bench_app.command("onnx")
@friendly
def bench_onnx_cmd(
    what: str = typer.Argument("ast", help="ast (torch vs transformers SDPA vs ORT fp32 vs ORT int8) or detect."),
    batch: int = typer.Option(2, help="ast: clips per batch."),
    steps: int = typer.Option(2, help="ast: timed batches per runtime."),
    size: str = typer.Option("base", help="ast: tiny, small or base."),
    seconds: float = typer.Option(600.0, help="detect: length of the generated file."),
    model: str = typer.Option("htsat_tiny", help="detect: model."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON here."),
) -> None:
    """Runtimes side by side (JSON): inference speed and output differences."""
    from audioflex.bench_onnx import bench_ast_runtimes, bench_detect_runtimes

    if what == "ast":
        _emit(bench_ast_runtimes(batch=batch, steps=steps, size=size), out_path)
    elif what == "detect":
        _emit(bench_detect_runtimes(seconds=seconds, model=model), out_path)
    else:
        raise ValueError(f"bench onnx: WHAT must be ast or detect, got {what!r}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
