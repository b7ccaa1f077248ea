"""The model contract: what code above ``models/`` may know about a model, declared by the model.

Every family (AST, ElasticAST, HTS-AT, PaSST) has a ``contract`` property returning a
:class:`ModelContract` and follows one call convention per input kind:

- **packed** (ElasticAST): ``forward(batch: PackedBatch, return_layers=()) -> AudioOutput``, one
  output row per clip of the batch, clips of any length;
- **grid** (AST, HTS-AT, PaSST): ``forward(spec [B, F, T], frames [B] | None = None,
  return_layers=()) -> AudioOutput``. ``frames`` are the valid (unpadded) frames of each row. HTS-AT
  uses them (batch norm over the valid frames, then padding or stretching of each clip's own
  frames, pooling over its valid steps); AST and PaSST read the padded grid as their references do
  and ignore them (their shape is still checked). Callers always pass them.

``forward_head`` returns an :class:`~audioflex.models.outputs.AudioOutput` in every family, and
``pool_hidden(hidden, batch=None, pool="tokens") -> [B, D]`` pools one requested block output the
way the family's embeddings do. Inference, HEAR and training read the contract instead of
class names or optional attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from audioflex.models.outputs import AudioOutput

if TYPE_CHECKING:
    from audioflex.packing import PackedBatch

InputKind = Literal["packed", "grid"]
POOLS = ("tokens", "cls")


@dataclass(frozen=True)
class ModelContract:
    """What a model declares about its inputs and outputs (all lengths in front-end frames).

    Attributes:
        family: the family's name (``ast``, ``elastic_ast``, ``htsat``, ``passt``), for messages and
            reports; code never branches on it.
        input_kind: ``"packed"`` (``forward(batch)``) or ``"grid"`` (``forward(spec, frames)``).
        num_classes: C, the width of ``clip_logits``.
        num_mel_bins: F, the spectrogram height the model takes.
        input_frames: grid models: frames of one input window, the LARGEST input that keeps the
            model's native grid (inference cuts longer audio into windows of it and pads shorter
            audio to it); packed models: None (any length).
        native_frames: the clip length the model is built around: a packed model's default piece
            (what its time-position table covers) and the default HEAR scene window.
        column_frames: frames per token column of a packed model (a clip shorter than one column
            is padded to it); 1 for grid models (padded to their window).
        min_frames: the shortest spectrogram ``forward`` accepts (shorter audio must be padded).
        frame_step_frames: frames per step of ``frame_logits``; None without a frame-wise head.
        frame_steps: steps of ``frame_logits`` per window of a grid model (HTS-AT: 32); None for
            packed models (one step per column of each clip) and without a frame head.
        num_blocks: blocks that ``return_layers`` numbers (HTS-AT: across its stages).
        prefix_tokens: CLS-like tokens leading each grid hidden state (AST: CLS + distillation = 2;
            PaSST: 2, or 1 without distillation); 0 when there are none (``pool="cls"`` needs some).
        logits_in_embedding: the family's reference embedding recipe prepends the logits (PaSST's
            ``hear21passt``), the default of HEAR's ``include_logits``.
        step_features: tokens un-fold onto the time axis (``forward_steps``: HTS-AT), which HEAR's
            time-resolved ``frames`` mode uses.
        grid_tokens: grid models: the patch tokens of one input window (its first-stage tokens),
            what ``tokens_per_s`` of a training run counts per clip (packed models: their real tokens).
        pads_to_window: a grid model that computes its whole ``input_frames`` window for any
            shorter input (HTS-AT pads or stretches inside), so batch planning counts a window per
            input; False when shorter inputs cost less (AST, PaSST: a smaller grid).
    """

    family: str
    input_kind: InputKind
    num_classes: int
    num_mel_bins: int
    input_frames: int | None
    native_frames: int
    column_frames: int = 1
    min_frames: int = 1
    frame_step_frames: int | None = None
    frame_steps: int | None = None
    num_blocks: int = 0
    prefix_tokens: int = 0
    logits_in_embedding: bool = False
    step_features: bool = False
    pads_to_window: bool = False
    grid_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.input_kind not in ("packed", "grid"):
            raise ValueError(f"input_kind must be 'packed' or 'grid', got {self.input_kind!r}")
        if (self.input_kind == "grid") != (self.input_frames is not None):
            raise ValueError("grid models declare input_frames; packed models take any length (None)")

    @property
    def packed(self) -> bool:
        """True for packed models (``forward(batch: PackedBatch)``)."""
        return self.input_kind == "packed"

    @property
    def has_frame_head(self) -> bool:
        """Whether ``forward`` gives ``frame_logits``."""
        return self.frame_step_frames is not None


@runtime_checkable
class AudioModel(Protocol):
    """The calls every family provides (see the module docstring for ``forward``)."""

    @property
    def contract(self) -> ModelContract: ...

    def pool_hidden(
        self, hidden: torch.Tensor, batch: PackedBatch | None = None, *, pool: str = "tokens"
    ) -> torch.Tensor: ...

    def __call__(self, *args: object, **kwargs: object) -> AudioOutput: ...


@runtime_checkable
class StepFeatureModel(Protocol):
    """Models whose tokens un-fold onto time steps (``contract.step_features``: HTS-AT)."""

    def forward_steps(
        self, spec: torch.Tensor, frames: torch.Tensor | None = None, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]: ...


@runtime_checkable
class PackedGraphModel(Protocol):
    """Packed models with a tensor-only inference form (ElasticAST): ``packed_graph()`` returns a
    module ``(patches [N, P], coords [N, 2], segment_ids [N], grid_sizes [B, 2]) -> (clip_logits
    [B, C], embedding [B, D][, frame_logits [B, T'_max, C]])`` (see :mod:`audioflex.models.packed_graph`)."""

    def packed_graph(self) -> nn.Module: ...


def check_pool(pool: str) -> None:
    """``ValueError`` unless ``pool`` is ``tokens`` or ``cls``."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")


def check_frames(frames: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
    """Valid frames ``[B]`` as int64 on ``device`` (None stays None); ``ValueError`` for another shape."""
    if frames is None:
        return None
    frames = torch.as_tensor(frames, device=device).long()
    if frames.shape != (batch,):
        raise ValueError(f"frames must have shape [{batch}], got {tuple(frames.shape)}")
    return frames


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters live; the CPU for a model without parameters (ONNX Runtime)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def declared_contract(model: object) -> ModelContract | None:
    """``model.contract`` if the model declares one, else None."""
    contract = getattr(model, "contract", None)
    return contract if isinstance(contract, ModelContract) else None


def contract_of(model: object) -> ModelContract:
    """``model.contract``, or a ``TypeError`` naming what is missing (a model that is not an
    audioflex family, or a wrapper such as DistributedDataParallel: pass the inner module)."""
    contract = declared_contract(model)
    if contract is None:
        raise TypeError(
            f"{type(model).__name__} declares no ModelContract (a `contract` property); audioflex's "
            "inference, HEAR and training code run the registered families (see audioflex.models.contract)"
        )
    return contract
