"""audioflex checkpoints: a directory with ``model.safetensors`` + ``config.json``.

``config.json`` holds everything needed to rebuild the model with no other input: the registered
model name and its arguments, the front-end config, the label names and versions. Loading never
unpickles anything. Writes are atomic: a temporary directory is filled, then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audioflex.audio.frontend.base import Frontend, FrontendConfig, build_frontend, frontend_config_from_dict

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed or does not fit the model (names the path and keys)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: rebuilt model (eval mode), front end, labels and raw metadata."""

    model: nn.Module
    frontend: Frontend | None
    labels: list[str] | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.meta["model_name"]


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    raise TypeError(f"model argument of type {type(obj).__name__} cannot be stored in config.json")


def _write_atomic_dir(target: Path, fill: Any) -> None:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    frontend: FrontendConfig | Frontend | None = None,
    labels: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    model_name: str | None = None,
    model_args: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (built by ``create_model``) to the directory ``path``, atomically.

    ``model_name``/``model_args`` default to what ``create_model`` recorded on the model.
    ``frontend`` defaults to the model's registered front end
    (:func:`audioflex.models.registry.default_frontend`, with the mel bins and fixed input length
    of ``model_args``), so ``tag``/``detect``/``embed`` and ``audioflex.hear`` can use the
    checkpoint; pass the front end the model was really trained with when it differs (another
    frame shift, normalisation statistics, ...).
    """
    from safetensors.torch import save_file

    from audioflex import __version__
    from audioflex.models.contract import declared_contract
    from audioflex.models.registry import default_frontend, registered_args, registered_name

    name = model_name or registered_name(model)
    args = model_args if model_args is not None else registered_args(model)
    if name is None or args is None:
        raise CheckpointError(
            "save_checkpoint: the model carries no model_name/model_args; build it with "
            "audioflex.create_model(...) or pass model_name= and model_args="
        )
    if isinstance(frontend, Frontend):
        frontend = frontend.config
    if frontend is None:
        try:
            frontend = default_frontend(name, args)
        except KeyError:  # a model_name the registry does not know: no front end to default to
            frontend = None
    declared = declared_contract(model)
    n_classes = declared.num_classes if declared is not None else None
    if labels is not None and n_classes is not None and len(labels) != n_classes:
        raise CheckpointError(f"save_checkpoint: {len(labels)} labels for a model with {n_classes} classes")
    meta = {
        "format": "audioflex",
        "format_version": FORMAT_VERSION,
        "model_name": name,
        "model_args": _json_ready(args),
        "frontend": frontend.to_dict() if frontend is not None else None,
        "labels": list(labels) if labels is not None else None,
        "audioflex_version": __version__,
        "torch_version": torch.__version__,
        "extra": _json_ready(extra or {}),
    }
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}

    def fill(d: Path) -> None:
        save_file(state, str(d / WEIGHTS), metadata={"format": "pt"})
        (d / CONFIG).write_text(json.dumps(meta, indent=2) + "\n")

    _write_atomic_dir(Path(path), fill)
    return Path(path)


def read_meta(path: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory, validated."""
    path = Path(path)
    cfg = path / CONFIG
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory (expected a folder with {CONFIG} and {WEIGHTS})")
    if not cfg.is_file() or not (path / WEIGHTS).is_file():
        raise CheckpointError(
            f"{path}: missing {CONFIG} or {WEIGHTS}; foreign checkpoints must first be converted "
            "with `audioflex convert FORMAT SRC OUT`"
        )
    try:
        meta = json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg}: invalid JSON ({e})") from e
    for key in ("model_name", "model_args"):
        if key not in meta:
            raise CheckpointError(f"{cfg}: no {key!r} entry; not an audioflex checkpoint")
    return meta


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, misshaped ``key: ckpt shape vs model shape``) between model and state."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    return missing, unexpected, misshaped


def load_state_checked(
    model: nn.Module, state: dict[str, torch.Tensor], *, strict: bool = True, source: str = ""
) -> None:
    """``load_state_dict`` with an error that lists missing/unexpected/misshaped keys.

    Misshaped keys are an error even when ``strict=False`` (they can never load).
    """
    missing, unexpected, misshaped = describe_mismatch(model, state)
    if misshaped or (strict and (missing or unexpected)):

        def show(name: str, items: list[str]) -> str:
            if not items:
                return ""
            more = f" … (+{len(items) - 8} more)" if len(items) > 8 else ""
            return f"\n  {name} ({len(items)}): " + ", ".join(items[:8]) + more

        raise CheckpointError(
            f"{source or 'state dict'} does not fit {type(model).__name__}:"
            + show("missing", missing)
            + show("unexpected", unexpected)
            + show("misshaped", misshaped)
            + "\n  check the model name/arguments, or load with strict=False to ignore missing/unexpected keys"
        )
    if not strict:
        state = {k: v for k, v in state.items() if k not in unexpected}
    model.load_state_dict(state, strict=strict)


def load_checkpoint(
    path: str | Path, *, strict: bool = True, map_location: str | torch.device = "cpu", **model_overrides: Any
) -> Checkpoint:
    """Rebuild model + front end + labels from a checkpoint directory (model in eval mode).

    ``model_overrides`` change construction arguments that do not affect weights (e.g.
    ``backend="loop"``, ``drop_path=0.1``).
    """
    from safetensors.torch import load_file

    from audioflex.models.contract import declared_contract
    from audioflex.models.registry import create_model

    path = Path(path)
    meta = read_meta(path)
    try:
        model = create_model(meta["model_name"], **{**meta["model_args"], **model_overrides})
    except KeyError as e:
        raise CheckpointError(f"{path}: {e.args[0]}") from e
    except TypeError as e:
        raise CheckpointError(f"{path}: model arguments do not fit {meta['model_name']!r} ({e})") from e
    try:
        state = load_file(str(path / WEIGHTS), device=str(map_location))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path / WEIGHTS}: unreadable safetensors file ({e})") from e
    load_state_checked(model, state, strict=strict, source=str(path / WEIGHTS))
    declared = declared_contract(model)
    labels, n_classes = meta.get("labels"), declared.num_classes if declared is not None else None
    if labels is not None and n_classes is not None and len(labels) != n_classes:
        raise CheckpointError(
            f"{path / CONFIG}: {len(labels)} labels for a model with {n_classes} classes; "
            f"fix its 'labels' list (one name per class) or re-save the checkpoint"
        )
    model.to(map_location).eval()
    fe = None
    if meta.get("frontend"):
        try:
            fe = build_frontend(frontend_config_from_dict(meta["frontend"]))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path / CONFIG}: bad front-end config ({e})") from e
    return Checkpoint(model=model, frontend=fe, labels=meta.get("labels"), meta=meta)
