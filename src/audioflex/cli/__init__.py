"""The ``audioflex`` command line: thin wrappers over the library (parse, call, print).

Errors a user can fix (bad audio, bad checkpoint, bad option) print one red line and exit 1.
Commands live in one module per group — :mod:`~audioflex.cli.convert` (``models``,
``convert``), :mod:`~audioflex.cli.infer` (``tag``, ``detect``, ``embed``),
:mod:`~audioflex.cli.train` (``train``, ``evaluate``, ``shard``, ``demo``),
:mod:`~audioflex.cli.data` (``inspect``), :mod:`~audioflex.cli.export` (``export onnx``),
:mod:`~audioflex.cli.hear` (``probe``), :mod:`~audioflex.cli.bench` (``bench ...``) — with the
shared helpers in :mod:`~audioflex.cli.common`. The groups define plain functions; this module
builds the app: it registers each command wrapped in :func:`~audioflex.cli.common.friendly`, in
the order ``--help`` lists them.
"""

from __future__ import annotations

import logging

import typer

from audioflex import __version__
from audioflex.cli import bench, convert, data, export, hear, infer, train
from audioflex.cli.common import friendly, out

__all__ = ["app", "main"]

app = typer.Typer(
    name="audioflex",
    help="Train, evaluate and use audio transformers (AST, ElasticAST, HTS-AT, PaSST) on audio of any length.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for _command in (
    convert.models,
    convert.convert,
    infer.tag,
    data.inspect_cmd,
    train.evaluate,
    train.shard,
    train.train,
    train.demo,
    infer.embed,
    hear.probe,
    infer.detect,
):
    app.command(_command.__name__.removesuffix("_cmd"))(friendly(_command))

bench_app = typer.Typer(help="Speed/memory benchmarks (JSON to stdout or --out).", no_args_is_help=True)
for _name, _command in (
    ("embed", bench.bench_embed_cmd),
    ("htsat", bench.bench_htsat_cmd),
    ("packing", bench.bench_packing),
    ("ast-vs-hf", bench.bench_ast_vs_hf),
    ("onnx", bench.bench_onnx_cmd),
):
    bench_app.command(_name)(friendly(_command))
app.add_typer(bench_app, name="bench")
export_app = typer.Typer(help="Export models for other runtimes (ONNX).", no_args_is_help=True)
export_app.command("onnx")(friendly(export.export_onnx_cmd))
app.add_typer(export_app, name="export")


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


def main() -> None:
    """Console-script entry point."""
    app()
