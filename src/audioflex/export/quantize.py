"""int8 quantization of exported graphs with ONNX Runtime.

- **dynamic** (:func:`quantize_dynamic_onnx`): int8 weights of every ``MatMul``/``Gemm`` (the
  transformer's linear layers: ~all of the compute), activations quantized per call from their
  observed range; no data needed. Convolutions, attention softmax, norms and the front end stay
  fp32.
- **static** (:func:`quantize_static_onnx`): int8 weights and activations with fixed activation
  ranges calibrated on example inputs (``calibration``: graph feeds computed from the user's
  audio by the caller, e.g. ``audioflex export onnx --int8 static --calibrate FILES``).

The audioflex metadata is copied to the quantized file, with ``quantization`` set to
``int8-dynamic`` / ``int8-static``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from audioflex.export.common import ExportError, require_onnx

LINEAR_OPS = ["MatMul", "Gemm"]


def _copy_meta(src: Path, dst: Path, quantization: str) -> Path:
    import onnx

    meta = {p.key: p.value for p in onnx.load_model(str(src), load_external_data=False).metadata_props}
    if "contract" not in meta:
        raise ExportError(f"{src}: no audioflex metadata; export the model with `audioflex export onnx` first")
    meta["quantization"] = quantization
    proto = onnx.load_model(str(dst))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    onnx.save_model(proto, str(dst))
    return dst


def quantize_dynamic_onnx(src: str | Path, dst: str | Path, *, per_channel: bool = False) -> Path:
    """Dynamic int8 copy of the exported graph ``src`` at ``dst`` (see the module docstring)."""
    require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(
            str(pre), str(dst), op_types_to_quantize=LINEAR_OPS, per_channel=per_channel,
            weight_type=QuantType.QInt8,
        )
    return _copy_meta(src, dst, "int8-dynamic")


class _Feeds:
    """An ORT ``CalibrationDataReader`` over prepared feeds (numpy arrays per graph input)."""

    def __init__(self, feeds: Iterable[Mapping[str, torch.Tensor]], names: set[str]) -> None:
        self._items = iter(
            [{k: v.detach().cpu().numpy() for k, v in f.items() if k in names} for f in feeds]
        )

    def get_next(self) -> dict[str, Any] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # newer ORT versions call it; one pass is enough here
        return None


def quantize_static_onnx(
    src: str | Path, dst: str | Path, calibration: Iterable[Mapping[str, torch.Tensor]], *, per_channel: bool = True
) -> Path:
    """Static int8 copy of ``src`` at ``dst``: activation ranges calibrated on ``calibration``
    (graph feeds, e.g. ``{"spec": [B, F, T], "frames": [B]}``, at least one)."""
    require_onnx()
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = list(calibration)
    if not feeds:
        raise ExportError("static int8 quantization needs calibration audio (at least one file)")
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    names = {i.name for i in ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(dst), _Feeds(feeds, names), quant_format=QuantFormat.QDQ, op_types_to_quantize=LINEAR_OPS,
            per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return _copy_meta(src, dst, "int8-static")
