"""Run a model under ``torch.autocast`` (bfloat16 inference), behind the same contract.

:class:`AutocastModel` wraps any audioflex family: it declares the wrapped model's
:class:`~audioflex.models.contract.ModelContract`, takes the same calls (``forward``,
``forward_steps``, ``pool_hidden``) and returns float32 :class:`~audioflex.models.outputs.AudioOutput`
fields, so inference and HEAR code run it unchanged: the precision is a choice of model object, as
the ONNX runtime is. The matrix products run in ``dtype``; what autocast keeps in float32
(softmax, LayerNorm, the front end, conv patch projections: :class:`~audioflex.layers.patch.PatchConv`)
stays float32.

bfloat16 is faster on CPUs with AMX (Intel Sapphire Rapids and later) and on GPUs; on CPUs without
native bfloat16 it is emulated and slower than float32. Outputs differ from float32 by bfloat16's
rounding (8 significant bits): about 1e-2 in probabilities on the project's trained checkpoints
(README, "ONNX export and runtimes").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from audioflex.models.contract import ModelContract, StepFeatureModel, contract_of, model_device
from audioflex.models.outputs import AudioOutput
from audioflex.models.registry import registered_args, registered_name

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _float(x: torch.Tensor | None) -> torch.Tensor | None:
    return x.float() if x is not None and x.is_floating_point() else x


class AutocastModel(nn.Module):
    """``model`` run under ``torch.autocast(device, dtype)``; float32 outputs.

    Args:
        model: an audioflex model (declares a contract).
        dtype: ``torch.bfloat16`` (default) or ``torch.float16`` (CUDA).
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        if dtype not in DTYPES.values():
            raise ValueError(f"autocast dtype must be one of {sorted(DTYPES)}, got {dtype}")
        contract_of(model)  # a TypeError naming the model if it declares none
        self.model = model
        self.dtype = dtype
        self.model_name = registered_name(model)  # the wrapped model's registry name and arguments
        self.model_args = registered_args(model)

    @property
    def contract(self) -> ModelContract:
        return contract_of(self.model)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(device_type=model_device(self.model).type, dtype=self.dtype)

    def forward(self, *args: Any, **kwargs: Any) -> AudioOutput:
        """The wrapped model's ``forward`` (packed: ``batch``; grid: ``spec [B, F, T], frames [B]``)
        under autocast -> ``AudioOutput`` with float32 tensors."""
        with self._autocast():
            out = self.model(*args, **kwargs)
        return dataclasses.replace(
            out,
            clip_logits=_float(out.clip_logits),
            embedding=_float(out.embedding),
            frame_logits=_float(out.frame_logits),
            hidden_states=tuple(h.float() for h in out.hidden_states),
        )

    def forward_steps(
        self, spec: torch.Tensor, frames: torch.Tensor | None = None, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Step features of a :class:`~audioflex.models.contract.StepFeatureModel` (HTS-AT) under
        autocast -> (frame logits ``[B, S, C]``, step tokens ``[B, S, D]``, block outputs), float32."""
        if not isinstance(self.model, StepFeatureModel):
            raise ValueError(f"{self.contract.family} has no step features (forward_steps)")
        with self._autocast():
            logits, steps, hidden = self.model.forward_steps(spec, frames, return_layers)
        return logits.float(), steps.float(), tuple(h.float() for h in hidden)

    def pool_hidden(self, hidden: torch.Tensor, batch: Any = None, *, pool: str = "tokens") -> torch.Tensor:
        """The wrapped model's pooling of one block output ``-> [B, D]`` (float32)."""
        return self.model.pool_hidden(hidden, batch, pool=pool).float()
