"""``audioflex train``, ``evaluate``, ``shard`` and ``demo``: training runs, their data shards and
the evaluation of checkpoints across lengths and frame shifts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from audioflex.cli.common import THREADS, err, out, set_threads
from audioflex.cli.data import read_options, show_summary

__all__ = ["demo", "evaluate", "shard", "train"]


def _floats(text: Optional[str], what: str) -> list[Optional[float]]:
    if not text:
        return [None]
    try:
        return [None if x.strip() == "native" else float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be a comma-separated list of numbers (or native), got {text!r}") from None


def _baseline_split(ds: Any, baseline: str, evaluated: list[Any]) -> list[Any]:
    """The clips ``--baseline`` trains on: a split, or ``rest`` (every clip not evaluated: the other folds)."""
    if baseline == "rest":
        held = {(r.path, r.start) for r in evaluated}
        train = [r for r in ds.records if (r.path, r.start) not in held]
    else:
        train = ds.select(split=baseline)
    if not train:
        raise ValueError(f"--baseline {baseline!r}: no clips to train the baseline on (give a split, e.g. train, "
                         "or rest for the clips not evaluated, e.g. the other folds)")
    return train


def _event_evaluation(checkpoints: list[Path], ds: Any, records: list[Any], split: str, out_dir: Path,
                      device: str, tune: str, valid_split: Optional[str], baseline: Optional[str]) -> None:
    from tqdm import tqdm

    from audioflex.apps.sed import EventScoring, evaluate_event_checkpoints

    valid = None
    if tune != "none":
        want = valid_split if valid_split is not None else ("valid" if split == "test" else "")
        has = want and any(r.split == want for r in ds.records)
        valid = ds.select(split=want) if has else None
        if valid_split and not valid:
            raise ValueError(f"--valid-split {valid_split!r}: no clips in that split")
        if not valid:
            out.print("no validation split to tune the post-processing on: fixed threshold 0.5 (--valid-split)")
    scoring = EventScoring(tune=tune)
    extra = {}
    if baseline is not None:
        from audioflex.apps.baselines.sed import evaluate_baseline

        train = _baseline_split(ds, baseline, records)
        with tqdm(total=len(train) + len(records) + len(valid or ()), desc="baseline", unit="clip") as bar:
            extra["baseline"] = evaluate_baseline(train, records, valid_records=valid, scoring=scoring,
                                                  score_dir=out_dir / "scores" / "baseline", progress=bar.update)
    total = (len(records) + len(valid or ())) * len(checkpoints)
    with tqdm(total=total, desc="scoring", unit="clip", disable=not checkpoints) as bar:
        evaluate_event_checkpoints(checkpoints, records, out_dir, valid_records=valid, device=device,
                                   say=lambda line: out.print(escape(line), highlight=False, soft_wrap=True),
                                   scoring=scoring, progress=bar.update, extra=extra)
    out.print(f"wrote {out_dir / 'report.json'} and the score files in {out_dir / 'scores'}")


def evaluate(
    checkpoints: Optional[list[Path]] = typer.Argument(None, help="One or more checkpoint directories."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset (folder, manifest, ESC-50, AudioSet, DESED, ...)."),
    audio_dir: Optional[Path] = typer.Option(None, "--audio-dir", help="Where the audio files are."),
    split: Optional[str] = typer.Option(None, help="Split to evaluate ('' for all records; default: 'test' "
                                        "where the dataset has one, else all records)."),
    folds: Optional[str] = typer.Option(None, help="Comma-separated folds to evaluate (ESC-50)."),
    lengths: Optional[str] = typer.Option(
        None, help="Comma-separated lengths in s, native = each clip's own (default: native)."
    ),
    frame_shifts: Optional[str] = typer.Option(None, help="Comma-separated frame shifts in ms (default: trained)."),
    tune: str = typer.Option("per_class", help="Event data: tune threshold, median filter and minimum duration "
                             "on the validation split per_class, global, or none (fixed 0.5)."),
    valid_split: Optional[str] = typer.Option(None, help="Event data: the split to tune on (default: valid)."),
    out_dir: Path = typer.Option(Path("runs/evaluate"), "--out", help="Where report.json (and plot/scores) go."),
    device: str = typer.Option("cpu"),
    threads: Optional[int] = THREADS,
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Also fit the trivial baseline on this split "
                                           "(e.g. train; rest = every clip not evaluated, e.g. the other folds) "
                                           "and score it beside the checkpoints (or alone): clip data "
                                           "log-mel band mean+std + logistic regression, event data log-mel "
                                           "frames + MLP."),
) -> None:
    """Evaluate checkpoints. Event (strong-label) data: PSDS1/PSDS2, tuned event and segment F1, score
    files. Clip data: metrics at several lengths and frame shifts (table, JSON, plot); a packed model
    (ElasticAST) sees a clip shorter than an evaluation length at its native length, never padded.
    --baseline SPLIT: a trivial model fitted on that split, scored beside the checkpoints or alone."""
    from tqdm import tqdm

    from audioflex.apps.lengths import evaluate_lengths
    from audioflex.checkpoints import read_meta
    from audioflex.data.readers import read_dataset
    from audioflex.evaluate.lengths import EvalItem, format_table, plot_reports, write_json
    from audioflex.evaluate.sed import has_events

    set_threads(threads)
    checkpoints = list(checkpoints or [])
    if not checkpoints and baseline is None:
        raise ValueError("evaluate: give one or more checkpoint directories (or --baseline SPLIT)")
    ds = read_dataset(data, **read_options(audio_dir))
    show_summary(ds)
    fold_list = [int(f) for f in folds.split(",")] if folds else None
    if split is None:  # a dataset without splits (a strong-label TSV, a folder) is evaluated whole
        split = "test" if any(r.split == "test" for r in ds.records) else ""
        out.print(f"evaluating {'split test' if split else 'all records'} of {data} (--split to choose)")
    records = ds.select(split=split or None, folds=fold_list)
    if not records:
        raise ValueError(f"{data}: no records in split {split!r} (folds {folds}); pick --split/--folds")
    if has_events(records):
        if tune not in ("per_class", "global", "none"):
            raise ValueError(f"--tune must be per_class, global or none, got {tune!r}")
        _event_evaluation(checkpoints, ds, records, split, out_dir, device, tune, valid_split, baseline)
        return
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
    if baseline is not None:
        from audioflex.apps.baselines.clip import evaluate_clip_baseline

        train = _baseline_split(ds, baseline, records)
        with tqdm(total=len(train) + len(records), desc="baseline", unit="clip") as bar:
            reports.append(evaluate_clip_baseline(train, records, lengths_s=lens, progress=bar.update))
    table = Table(title=f"{reports[0].metric} by frame shift (rows) and length (columns)")
    table.add_column("model")
    table.add_column("shift")
    for length in lens:
        table.add_column("native" if length is None else f"{length:g} s", justify="right")
    for row in format_table(reports):
        table.add_row(*row)
    out.print(table)
    write_json(reports, out_dir / "report.json")
    if sum(length is not None for length in lens) > 1:  # a curve over lengths
        plot_reports(reports, out_dir / "metric_vs_length.png")
        out.print(f"wrote {out_dir / 'report.json'} and {out_dir / 'metric_vs_length.png'}")
    else:
        out.print(f"wrote {out_dir / 'report.json'}")


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
    audio_dir: Optional[Path] = typer.Option(None, "--audio-dir", help="Where the audio files of data.train "
                                             "(and data.valid) are (sets data.*.options.audio_dir)."),
    threads: Optional[int] = THREADS,
) -> None:
    """Train a model (single process, or every process under torchrun). The data summary is logged
    at the start (the lines of `audioflex inspect`)."""
    from audioflex.train import train as run_training

    set_threads(threads)
    for name in ("audioflex.data.inspect", "audioflex.train"):  # say what a long start is doing
        logging.getLogger(name).setLevel(logging.INFO)
    overrides = list(set_) + ([f"resume={resume}"] if resume is not None else [])
    if audio_dir is not None:
        overrides += [f"data.train.options.audio_dir={audio_dir}", f"data.valid.options.audio_dir={audio_dir}"]
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
