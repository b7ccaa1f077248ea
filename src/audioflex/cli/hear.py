"""``audioflex probe``: the HEAR kit's shallow-probe evaluation of a checkpoint's embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from audioflex.cli.common import EMBED_OPTIONS_HELP, JsonOut, emit, parse_options

__all__ = ["probe"]


def probe(
    task_dir: Path = typer.Argument(..., help="HEAR task directory (task_metadata.json, <split>.json, audio), "
                                    "or without --checkpoint a directory written by heareval's embedding runner."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="audioflex checkpoint directory."),
    option: list[str] = typer.Option([], "--option", help=EMBED_OPTIONS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, help="Where embeddings are cached."),
    grid_points: int = typer.Option(8, help="Grid points tried (HEAR kit default 8)."),
    max_epochs: int = typer.Option(500, help="Epoch limit per grid point."),
    standardize: bool = typer.Option(False, help="Scale embeddings with training statistics (not in the HEAR kit)."),
    seed: int = typer.Option(42, help="Seed of the grid order, initialisation and shuffling."),
    stop_on_nan: bool = typer.Option(True, help="Stop at a NaN validation score (an event validation without "
                                     "events), as the HEAR kit does; --no-stop-on-nan counts it as 0."),
    out_path: JsonOut = None,
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
        emit(probe_heareval_dir(task_dir, cfg, progress=True), out_path)
        return
    emit(
        probe_task(task_dir, checkpoint, cache_dir=cache_dir, config=cfg, device=device, progress=True,
                   **parse_options(option)),
        out_path,
    )
