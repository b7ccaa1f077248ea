"""Checkpoint save/load (safetensors + JSON) and converters of foreign formats."""

from audioflex.checkpoints.io import (
    Checkpoint,
    CheckpointError,
    describe_mismatch,
    load_checkpoint,
    load_state_checked,
    read_meta,
    save_checkpoint,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "describe_mismatch",
    "load_checkpoint",
    "load_state_checked",
    "read_meta",
    "save_checkpoint",
]
