"""Training state on disk without pickle: tensors in safetensors, everything else in JSON.

``train_state.safetensors`` holds optimiser tensors (``optim/<param id>/<name>``) and RNG states
(``rng/torch/<rank>``, ``rng/cuda/<rank>/<device>``); ``train_state.json`` holds the step, the
sampler position, the best metric, optimiser scalars and hyper-parameters, and the numpy/python
RNG states. :func:`save_last` writes a run's ``last/`` checkpoint with its train state
(crash-safe: a temporary directory, fsync, then :func:`swap_dir`), :func:`load_resume` reads it back
into a model and optimiser, :func:`find_resume` finds it from a run directory.
:func:`remove_temporaries` and :func:`truncate_metrics` clean what a killed run left in its run
directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from audioflex.audio.frontend.base import FrontendConfig
from audioflex.checkpoints.io import WEIGHTS, load_state_checked, save_checkpoint
from audioflex.train.distributed import DistInfo

logger = logging.getLogger(__name__)

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


def flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> (tensors, JSON-ready rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{pid}/{k}"] = v.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    groups = []
    for g in sd["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
    return tensors, {"scalars": scalars, "param_groups": groups}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("optim/"):
            continue
        _, pid, name = key.split("/", 2)
        state.setdefault(int(pid), {})[name] = v
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def rng_tensors(rank: int) -> dict[str, torch.Tensor]:
    """This process's torch (and CUDA) RNG states as tensors."""
    out = {f"rng/torch/{rank}": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for d, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng/cuda/{rank}/{d}"] = s
    return out


def host_rng_state() -> dict[str, Any]:
    """numpy and python RNG states, JSON-ready."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the legacy global RNG is what users seed)
    version, internal, gauss = random.getstate()
    return {
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }


def restore_rng(tensors: dict[str, torch.Tensor], host: dict[str, Any] | None, rank: int) -> bool:
    """Restore this rank's RNG states; returns False when the checkpoint has none for the rank."""
    key = f"rng/torch/{rank}"
    if key not in tensors:
        return False
    torch.set_rng_state(tensors[key])
    if torch.cuda.is_available():
        cuda = sorted(k for k in tensors if k.startswith(f"rng/cuda/{rank}/"))
        if cuda:
            torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    if host and rank == 0:
        name, keys, pos, has_gauss, cached = host["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
        version, internal, gauss = host["python"]
        random.setstate((version, tuple(internal), gauss))
    return True


def write_state(directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / STATE_TENSORS))
    (directory / STATE_JSON).write_text(json.dumps(meta, indent=1) + "\n")


def read_state(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors.torch import load_file

    js, st = directory / STATE_JSON, directory / STATE_TENSORS
    if not js.is_file() or not st.is_file():
        raise FileNotFoundError(
            f"{directory}: no {STATE_JSON}/{STATE_TENSORS}; resume needs a run directory or its last/ checkpoint"
        )
    return load_file(str(st)), json.loads(js.read_text())


_TEMP_PREFIXES = (".last.tmp-", ".best.tmp-")  # save_last's and save_checkpoint(run_dir / "best")'s


def remove_temporaries(run_dir: Path, keep: Path | None = None) -> list[Path]:
    """Remove the checkpoint temporaries a killed run left directly in ``run_dir`` (directories
    named ``.last.tmp-*``/``.best.tmp-*``; never a symlink, never one holding ``keep``)."""
    removed = []
    keep = keep.resolve() if keep is not None else None
    for d in sorted(run_dir.iterdir()) if run_dir.is_dir() else []:
        if not d.name.startswith(_TEMP_PREFIXES) or d.is_symlink() or not d.is_dir():
            continue
        if keep is not None and (keep == d.resolve() or d.resolve() in keep.parents):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def truncate_metrics(path: Path, step: int) -> int:
    """Drop the rows of ``metrics.jsonl`` with ``step`` past ``step`` (and a torn last line);
    rewritten atomically (temporary file, then rename). Returns the rows dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1  # a row cut short by the kill
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] > step:
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write("".join(line + "\n" for line in kept))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return dropped


@dataclasses.dataclass
class Progress:
    """Where a run stands: optimiser ``step``, ``epoch``, ``position`` (batches of the epoch done on
    this rank), the best validation value and its step, the last validation metrics, and the wall
    time spent training (``train_seconds``, for ``max_minutes``; validation and saving excluded)."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    last_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    train_seconds: float = 0.0


def swap_dir(src: Path, target: Path) -> None:
    """Move the complete directory ``src`` to ``target``, replacing it (crash-safe order)."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(src, target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def find_resume(path: Path) -> tuple[Path, Path]:
    """(checkpoint dir with train state, run dir) from a run dir or a ``last/`` dir."""
    if (path / STATE_JSON).is_file():
        return path, path.parent
    for cand in (path / "last", path / ".last.old"):
        if (cand / STATE_JSON).is_file():
            return cand, path
    raise FileNotFoundError(f"resume={path}: no last/ checkpoint with {STATE_JSON} found (nothing to resume)")


def gather_rng(rng: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """Every rank's torch RNG state (``rng/torch/<rank>``), gathered on all ranks (a collective)."""
    mine = rng[f"rng/torch/{info.rank}"]
    out = [torch.empty_like(mine) for _ in range(info.world_size)]
    dist.all_gather(out, mine)
    return {f"rng/torch/{r}": t for r, t in enumerate(out)}


def save_last(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    progress: Progress,
    info: DistInfo,
    *,
    bad_files: int,
    frontend: FrontendConfig,
    labels: list[str],
    extra: dict[str, Any],
) -> None:
    """Write ``<run_dir>/last`` (checkpoint + train state). Every rank calls this (the RNG states
    are gathered); only rank 0 writes."""
    rng = rng_tensors(info.rank)
    if info.enabled:
        rng = gather_rng(rng, info)
    if not info.is_main:
        return
    tensors, opt_meta = flatten_optimizer(optimizer.state_dict())
    tensors.update(rng)
    meta = {
        "step": progress.step,
        "epoch": progress.epoch,
        "position": progress.position,
        "world_size": info.world_size,
        "best_metric": progress.best_metric,
        "best_step": progress.best_step,
        "last_metrics": progress.last_metrics,
        "train_seconds": progress.train_seconds,
        "bad_files": bad_files,
        "optimizer": opt_meta,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "host_rng": host_rng_state(),
    }
    tmp = Path(tempfile.mkdtemp(prefix=".last.tmp-", dir=run_dir))
    try:
        ck = tmp / "last"
        save_checkpoint(ck, model, frontend=frontend, labels=labels, extra=extra)
        write_state(ck, tensors, meta)
        for f in ck.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        swap_dir(ck, run_dir / "last")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_resume(
    ckpt: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    info: DistInfo,
    *,
    stream: bool = False,
    stream_resume: str = "skip",
) -> tuple[Progress, int]:
    """Load a ``last/`` checkpoint written by :func:`save_last` into ``model``/``optimizer``/
    ``scaler`` and this rank's RNGs; returns the progress to continue from and the bad-file count.

    A different world size restarts at the next epoch (the data order of the current one
    changes); a shard stream with ``stream_resume="restart"`` starts its epoch over.
    """
    from safetensors.torch import load_file

    tensors, meta = read_state(ckpt)
    load_state_checked(model, load_file(str(ckpt / WEIGHTS), device=str(info.device)), source=str(ckpt))
    optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    p = Progress(
        step=int(meta["step"]),
        epoch=int(meta["epoch"]),
        position=int(meta["position"]),
        best_metric=meta.get("best_metric"),
        best_step=meta.get("best_step"),
        last_metrics=meta.get("last_metrics") or {},
        train_seconds=float(meta.get("train_seconds", 0.0)),
    )
    if meta.get("world_size", 1) != info.world_size:
        logger.warning(
            "resuming a %d-process run with %d processes: the data order of the current epoch changes",
            meta.get("world_size", 1),
            info.world_size,
        )
        p.position = 0
        p.epoch += 1
    if stream and p.position and stream_resume == "restart":
        logger.info("stream_resume=restart: epoch %d of the shard stream starts over", p.epoch)
        p.position = 0
    if not restore_rng(tensors, meta.get("host_rng"), info.rank):
        logger.warning("checkpoint has no RNG state for rank %d; continuing with a fresh one", info.rank)
    logger.info("resumed from %s at step %d (epoch %d, batch %d)", ckpt, p.step, p.epoch, p.position)
    return p, int(meta.get("bad_files", 0))


__all__ = [
    "STATE_JSON",
    "STATE_TENSORS",
    "Progress",
    "find_resume",
    "flatten_optimizer",
    "gather_rng",
    "host_rng_state",
    "load_resume",
    "read_state",
    "remove_temporaries",
    "restore_rng",
    "rng_tensors",
    "save_last",
    "swap_dir",
    "truncate_metrics",
    "unflatten_optimizer",
    "write_state",
]
