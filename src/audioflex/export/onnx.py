"""Export audioflex models to ONNX (the front end stays in torch, outside the graph).

Graph inputs and outputs follow the model contract (:mod:`audioflex.models.contract`):

- **grid models** (AST, HTS-AT, PaSST): inputs ``spec [batch, F, time]`` float32 (the front
  end's output) and ``frames [batch]`` int64 (valid frames of each row; only HTS-AT reads them, so
  the others' graphs drop the input); outputs ``clip_logits [batch, C]``, ``embedding [batch, D]``,
  ``frame_logits [batch, S, C]`` with a frame head and ``step_features [batch, S, D]`` for models
  whose tokens un-fold onto time (HTS-AT: ``forward_steps``). The batch axis is dynamic; the time
  axis is dynamic when the graph traced at the model's window also reproduces torch at a shorter
  input (checked at export: HTS-AT and PaSST), else fixed to ``contract.input_frames`` (AST: its
  position grid is traced for the one window; the pipeline always feeds that window).
- **packed models** (ElasticAST): inputs ``patches [tokens, P]`` float32, ``coords [tokens, 2]``,
  ``segment_ids [tokens]`` and ``grid_sizes [clips, 2]`` int64 (the segment layout as tensors,
  :mod:`audioflex.models.packed_graph`); outputs ``clip_logits [clips, C]``, ``embedding [clips,
  D]`` (+ ``frame_logits [clips, columns, C]``). Token and clip counts are dynamic.

The ONNX model's ``metadata_props`` carry everything needed to run it without the checkpoint
(:data:`META_KEYS`): labels, front-end config, the model contract, the audioflex version, the
model name and arguments, and the graph's input layout.
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audioflex.audio.frontend.base import FrontendConfig
from audioflex.export.common import ExportError, packed_inputs, require_onnx
from audioflex.models.contract import ModelContract, PackedGraphModel, StepFeatureModel, contract_of

OPSET = 17
PARITY_TOL = 1e-4
META_KEYS = (
    "audioflex_version",
    "family",
    "contract",
    "frontend",
    "labels",
    "multilabel",
    "model_name",
    "model_args",
    "graph_layout",
    "time_axis",
    "time_frames",
    "outputs",
    "quantization",
)


class _GridGraph(nn.Module):
    """A grid model as a tuple-returning module: ``(spec, frames)`` -> the graph outputs."""

    def __init__(self, model: nn.Module, contract: ModelContract) -> None:
        super().__init__()
        self.model = model
        self.frame_head = contract.has_frame_head
        self.steps = contract.step_features and isinstance(model, StepFeatureModel)

    def forward(self, spec: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(spec, frames)
        res = [out.clip_logits, out.embedding]
        if self.frame_head and out.frame_logits is not None:
            res.append(out.frame_logits)
        if self.steps:
            res.append(self.model.forward_steps(spec, frames)[1])
        return tuple(res)


@dataclass(frozen=True)
class GraphSpec:
    """What an exported graph takes and gives (stored in the metadata)."""

    layout: str  # "grid" | "packed"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    time_axis: str  # "dynamic" | "fixed" | "any" (packed)
    time_frames: int | None


def _output_names(contract: ModelContract, model: nn.Module) -> tuple[str, ...]:
    names = ["clip_logits", "embedding"]
    if contract.has_frame_head:
        names.append("frame_logits")
    if not contract.packed and contract.step_features and isinstance(model, StepFeatureModel):
        names.append("step_features")
    return tuple(names)


def example_grid_inputs(contract: ModelContract, batch: int = 2, frames: int | None = None) -> tuple[torch.Tensor, ...]:
    """Random ``spec [batch, F, frames]`` and ``frames [batch]`` (default: the model's window)."""
    t = frames or contract.input_frames or contract.native_frames
    gen = torch.Generator().manual_seed(0)
    spec = torch.randn(batch, contract.num_mel_bins, t, generator=gen)
    valid = torch.full((batch,), t, dtype=torch.long)
    valid[-1] = max(contract.min_frames, (2 * t) // 3)
    return spec, valid


def example_packed_inputs(contract: ModelContract, columns: tuple[int, ...] = (3, 7)) -> tuple[torch.Tensor, ...]:
    """Random packed inputs of clips with ``columns`` token columns each (the tracing example)."""
    from audioflex.packing import collate_packed

    gen = torch.Generator().manual_seed(0)
    specs = [torch.randn(contract.num_mel_bins, c * contract.column_frames, generator=gen) for c in columns]
    batch = collate_packed(specs, patch=contract.column_frames)
    return packed_inputs(batch)


def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], spec: GraphSpec, opset: int) -> bytes:
    axes: dict[str, dict[int, str]]
    if spec.layout == "packed":
        axes = {"patches": {0: "tokens"}, "coords": {0: "tokens"}, "segment_ids": {0: "tokens"},
                "grid_sizes": {0: "clips"}}
        for name in spec.outputs:
            axes[name] = {0: "clips", **({1: "columns"} if name == "frame_logits" else {})}
    else:
        axes = {"spec": {0: "batch", **({2: "time"} if spec.time_axis == "dynamic" else {})}, "frames": {0: "batch"}}
        for name in spec.outputs:
            axes[name] = {0: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shapes taken as constants (checked below)
        torch.onnx.export(
            module, args, buf, dynamo=False, opset_version=opset, input_names=list(spec.inputs),
            output_names=list(spec.outputs), dynamic_axes=axes, do_constant_folding=True,
        )
    return buf.getvalue()


def _check_parity(graph: bytes, module: nn.Module, args: tuple[torch.Tensor, ...], spec: GraphSpec) -> float:
    """Largest |ORT - torch| over the outputs for ``args`` (inf when ORT refuses the input)."""
    from audioflex.export.runtime import make_session, run_session

    session = make_session(graph, quiet=True)
    try:
        got = run_session(session, dict(zip(spec.inputs, args)))
    except Exception:  # noqa: BLE001 - ORT raises its own exception types for shape mismatches
        return float("inf")
    with torch.no_grad():
        want = module(*args)
    if len(want) != len(got):
        return float("inf")
    return max(float((w.float() - g).abs().max()) for w, g in zip(want, got))


def build_graph(model: nn.Module, *, opset: int = OPSET) -> tuple[bytes, GraphSpec]:
    """Trace ``model`` (eval mode, on the CPU) into ONNX bytes, with the :class:`GraphSpec`."""
    require_onnx()
    contract = contract_of(model)
    model = model.eval()
    outputs = _output_names(contract, model)
    if contract.packed:
        if not isinstance(model, PackedGraphModel):
            raise ExportError(f"{contract.family}: packed model without a tensor-only form (packed_graph())")
        module = model.packed_graph().eval()
        spec = GraphSpec("packed", ("patches", "coords", "segment_ids", "grid_sizes"), outputs, "any", None)
        return _trace(module, example_packed_inputs(contract), spec, opset), spec
    module = _GridGraph(model, contract).eval()
    window = int(contract.input_frames or contract.native_frames)
    args = example_grid_inputs(contract)
    spec = GraphSpec("grid", ("spec", "frames"), outputs, "dynamic", window)
    graph = _trace(module, args, spec, opset)
    short = max(contract.min_frames, window // 2)
    if _check_parity(graph, module, example_grid_inputs(contract, 3, short), spec) > PARITY_TOL:
        spec = dataclasses.replace(spec, time_axis="fixed")
        graph = _trace(module, args, spec, opset)
    return graph, spec


def _contract_json(contract: ModelContract) -> str:
    return json.dumps(dataclasses.asdict(contract))


def export_onnx(
    model: nn.Module,
    out: str | Path,
    *,
    frontend: FrontendConfig | None = None,
    labels: list[str] | None = None,
    multilabel: bool = True,
    model_name: str | None = None,
    model_args: dict[str, Any] | None = None,
    opset: int = OPSET,
    check: bool = True,
) -> Path:
    """Write ``model`` as an ONNX file at ``out`` with its metadata; returns the path.

    With ``check`` the exported graph is run once with ONNX Runtime on a random input and must
    match torch within :data:`PARITY_TOL` (``ExportError`` otherwise).
    """
    import onnx

    from audioflex import __version__

    model = model.cpu().eval()
    graph, spec = build_graph(model, opset=opset)
    contract = contract_of(model)
    if check:
        if spec.layout == "packed":
            module: nn.Module = model.packed_graph().eval()  # type: ignore[attr-defined]
            args = example_packed_inputs(contract, (2, 5, 1))
        else:
            module, args = _GridGraph(model, contract).eval(), example_grid_inputs(contract, 3)
        err = _check_parity(graph, module, args, spec)
        if err > PARITY_TOL:
            raise ExportError(f"{contract.family}: the ONNX graph differs from torch by {err:.3g} (> {PARITY_TOL})")
    proto = onnx.load_model_from_string(graph)
    meta = {
        "audioflex_version": __version__,
        "family": contract.family,
        "contract": _contract_json(contract),
        "frontend": json.dumps(frontend.to_dict()) if frontend is not None else "",
        "labels": json.dumps(list(labels)) if labels is not None else "",
        "multilabel": json.dumps(bool(multilabel)),
        "model_name": model_name or "",
        "model_args": json.dumps(model_args or {}),
        "graph_layout": spec.layout,
        "time_axis": spec.time_axis,
        "time_frames": json.dumps(spec.time_frames),
        "outputs": json.dumps(list(spec.outputs)),
        "quantization": "none",
    }
    onnx.helper.set_model_props(proto, meta)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(out))
    return out


def export_checkpoint(ckpt: str | Path, out: str | Path, *, opset: int = OPSET, check: bool = True) -> Path:
    """Export an audioflex checkpoint directory (model, front end, labels) to ``out``."""
    from audioflex.checkpoints import load_checkpoint

    ck = load_checkpoint(ckpt, map_location="cpu")
    extra = ck.meta.get("extra", {}) or {}
    return export_onnx(
        ck.model,
        out,
        frontend=ck.frontend.config if ck.frontend is not None else None,
        labels=ck.labels,
        multilabel=bool(extra.get("multilabel", True)),
        model_name=ck.meta.get("model_name"),
        model_args=ck.meta.get("model_args"),
        opset=opset,
        check=check,
    )
