"""ONNX Runtime sessions behind the audioflex model contract.

:class:`OnnxModel` is an ``nn.Module`` that declares the exported model's
:class:`~audioflex.models.contract.ModelContract` (read from the ONNX metadata) and follows the
same call convention as the torch families (grid: ``forward(spec, frames=None)``; packed:
``forward(batch)``), returning :class:`~audioflex.models.outputs.AudioOutput`. Code above
``models/`` (``Pipeline``, frame scores, HEAR embeddings) therefore runs it unchanged: the runtime
is a choice of model object, not a branch.

Limits of an exported graph (each a one-line ``ValueError`` naming what to do): no block outputs
(``return_layers`` / HEAR ``layers``: use the torch runtime), and a grid graph whose time axis is
fixed takes exactly its window (``time_frames``: AST).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audioflex.audio.frontend.base import FrontendConfig, frontend_config_from_dict
from audioflex.export.common import packed_inputs, require_onnx
from audioflex.models.contract import ModelContract
from audioflex.models.outputs import AudioOutput


def make_session(model: bytes | str | Path, *, threads: int | None = None, quiet: bool = False) -> Any:
    """An ``onnxruntime.InferenceSession`` (CPU, all graph optimisations) from bytes or a file
    (``quiet``: ORT logs nothing, not even errors the caller handles)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 4 if quiet else 3
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def run_session(session: Any, feeds: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """Run ``session`` on the inputs it declares (others in ``feeds`` are ignored: a graph drops
    inputs it never reads) -> its outputs as float32 torch tensors."""
    wanted = {i.name for i in session.get_inputs()}
    arrays = {k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in feeds.items() if k in wanted}
    return [torch.from_numpy(np.asarray(o)) for o in session.run(None, arrays)]


def read_metadata(session: Any) -> dict[str, str]:
    """The audioflex ``metadata_props`` of a session's model."""
    return dict(session.get_modelmeta().custom_metadata_map)


class OnnxModel(nn.Module):
    """An exported audioflex model run by ONNX Runtime, behind the model contract.

    Args:
        session: an ``onnxruntime.InferenceSession`` of a graph written by
            :func:`audioflex.export.onnx.export_onnx` (or its int8 copy).
    """

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        meta = read_metadata(session)
        if "contract" not in meta:
            raise ValueError("this ONNX file has no audioflex metadata; export it with `audioflex export onnx`")
        self.meta = meta
        self._contract = ModelContract(**json.loads(meta["contract"]))
        self.outputs: tuple[str, ...] = tuple(json.loads(meta["outputs"]))
        self.time_axis = meta.get("time_axis", "fixed")
        frames = json.loads(meta.get("time_frames", "null"))
        self.time_frames: int | None = int(frames) if frames is not None else None

    @property
    def contract(self) -> ModelContract:
        return self._contract

    @property
    def quantization(self) -> str:
        return self.meta.get("quantization", "none")

    def _no_layers(self, return_layers: Sequence[int]) -> None:
        if tuple(return_layers):
            raise ValueError(
                "block outputs (return_layers / HEAR layers) are not in the exported ONNX graph; "
                "use the torch runtime (--runtime torch) for them"
            )

    def _run(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(zip(self.outputs, run_session(self.session, feeds)))

    def _grid_feeds(self, spec: torch.Tensor, frames: torch.Tensor | None) -> dict[str, torch.Tensor]:
        if spec.ndim != 3 or spec.shape[1] != self.contract.num_mel_bins:
            raise ValueError(
                f"the ONNX {self.contract.family} graph takes spectrograms [B, {self.contract.num_mel_bins}, T], "
                f"got {tuple(spec.shape)}"
            )
        t = spec.shape[-1]
        if self.time_axis == "fixed" and t != self.time_frames:
            raise ValueError(
                f"the ONNX {self.contract.family} graph takes exactly {self.time_frames} frames (its time axis is "
                f"fixed), got {t}; use the torch runtime for other lengths"
            )
        if self.time_frames is not None and t > self.time_frames:
            raise ValueError(f"the ONNX {self.contract.family} graph takes at most {self.time_frames} frames, got {t}")
        if frames is None:
            frames = torch.full((spec.shape[0],), t, dtype=torch.long)
        return {"spec": spec.float(), "frames": torch.as_tensor(frames).long().reshape(-1)}

    def forward(self, x: Any, frames: torch.Tensor | None = None, return_layers: Sequence[int] = ()) -> AudioOutput:
        """Grid graphs: ``spec [B, F, T]`` (+ valid ``frames [B]``); packed graphs: a
        :class:`~audioflex.packing.PackedBatch` -> ``AudioOutput`` on ``x``'s device (no hidden states)."""
        self._no_layers(return_layers)
        c = self.contract
        if c.packed:
            names = ("patches", "coords", "segment_ids", "grid_sizes")
            out = self._run(dict(zip(names, packed_inputs(x))))
            device = x.patches.device
            shifts = set(x.frame_shift_ms or ())
            step = c.frame_step_frames
            hop = step * shifts.pop() / 1000.0 if step is not None and len(shifts) == 1 else None
        else:
            out = self._run(self._grid_feeds(x, frames))
            device = x.device
            step = c.frame_step_frames
            hop = None
            frontend = self.meta.get("frontend")
            if step is not None and frontend:
                hop = step * frontend_config_from_dict(json.loads(frontend)).hop_s
        frame = out.get("frame_logits")
        return AudioOutput(
            clip_logits=out["clip_logits"].to(device),
            embedding=out["embedding"].to(device),
            frame_logits=frame.to(device) if frame is not None else None,
            frame_hop_s=hop if frame is not None else None,
        )

    def forward_steps(
        self, spec: torch.Tensor, frames: torch.Tensor | None = None, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Time-resolved features (graphs with ``step_features``: HTS-AT) -> (frame logits ``[B, S, C]``,
        final tokens per step ``[B, S, D]``, ``()``)."""
        self._no_layers(return_layers)
        if "step_features" not in self.outputs:
            raise ValueError(f"the ONNX {self.contract.family} graph has no step features")
        out = self._run(self._grid_feeds(spec, frames))
        return out["frame_logits"].to(spec.device), out["step_features"].to(spec.device), ()

    def pool_hidden(self, hidden: torch.Tensor, batch: Any = None, *, pool: str = "tokens") -> torch.Tensor:
        """Not available: the graph gives no block outputs (see :meth:`forward`)."""
        self._no_layers((0,))
        raise AssertionError("unreachable")


@dataclass
class OnnxBundle:
    """A loaded ONNX export: the model, its front-end config, labels and metadata."""

    model: OnnxModel
    frontend: FrontendConfig | None
    labels: list[str] | None
    multilabel: bool
    meta: dict[str, str]


def bundle_from_session(session: Any) -> OnnxBundle:
    """Wrap a session of an audioflex export (metadata -> front end, labels, activation)."""
    model = OnnxModel(session)
    meta = model.meta
    fe = frontend_config_from_dict(json.loads(meta["frontend"])) if meta.get("frontend") else None
    labels = json.loads(meta["labels"]) if meta.get("labels") else None
    return OnnxBundle(model, fe, labels, bool(json.loads(meta.get("multilabel", "true"))), meta)


def load_onnx(path: str | Path, *, threads: int | None = None) -> OnnxBundle:
    """Load an ``.onnx`` file written by ``audioflex export onnx`` (``ValueError`` naming the file
    when it is missing, unreadable or has no audioflex metadata)."""
    require_onnx()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such ONNX file; write one with `audioflex export onnx CKPT {path}`")
    try:
        session = make_session(path, threads=threads)
    except Exception as e:  # noqa: BLE001 - ORT's own exception types
        raise ValueError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0]})") from None
    try:
        return bundle_from_session(session)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
