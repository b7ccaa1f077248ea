"""``audioflex train``, ``evaluate``, ``shard`` and ``demo``: training runs, their data shards and
the evaluation of checkpoints across lengths and frame shifts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from audioflex.cli.common import err, out

__all__ = ["demo", "evaluate", "shard", "train"]


def _floats(text: Optional[str], what: str) -> list[Optional[float]]:
    if not text:
        return [None]
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be a comma-separated list of numbers, got {text!r}") from None


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
