"""What the export modules share: the error type, the optional-dependency check and the packed
graph's input layout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from audioflex.packing import PackedBatch


class ExportError(ValueError):
    """A model cannot be exported as asked (names the model/argument and what to do)."""


def require_onnx() -> None:
    """``ExportError`` unless ``onnx`` and ``onnxruntime`` import (the ``onnx`` extra)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ExportError(
            f"ONNX export/runtime needs the optional packages onnx and onnxruntime ({e.name} is missing); "
            "install them with `pip install 'audioflex[onnx]'`"
        ) from None


def packed_inputs(batch: PackedBatch) -> tuple[torch.Tensor, ...]:
    """A :class:`~audioflex.packing.PackedBatch` -> ``(patches, coords, segment_ids, grid_sizes)``
    over its real tokens (a padding segment is dropped)."""
    n = batch.num_tokens
    sizes = torch.tensor(batch.grid_sizes, dtype=torch.long).reshape(-1, 2)
    return batch.patches[:n].float(), batch.coords[:n].long(), batch.info.segment_ids[:n].long(), sizes
