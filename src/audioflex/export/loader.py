"""Pick a runtime for a model file: the torch checkpoint, or ONNX Runtime (exported on the fly
from a checkpoint directory, or an ``.onnx`` file written by ``audioflex export onnx``), fp32 or
int8. Used by :meth:`audioflex.inference.pipeline.Pipeline.from_checkpoint` and the CLI's
``--runtime`` / ``--int8`` options."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from audioflex.export.common import ExportError, require_onnx
from audioflex.export.onnx import export_checkpoint
from audioflex.export.runtime import OnnxBundle, load_onnx

RUNTIMES = ("torch", "onnx")
INT8_MODES = ("dynamic", "static")


def is_onnx_file(path: str | Path) -> bool:
    """Whether ``path`` names an ONNX file (by its suffix)."""
    return Path(path).suffix.lower() == ".onnx"


def check_runtime(runtime: str, int8: str | None = None) -> None:
    """``ValueError`` naming the option for an unknown runtime or int8 mode (int8 needs onnx)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if int8 is not None and int8 not in INT8_MODES:
        raise ValueError(f"int8 must be one of {INT8_MODES} (or unset), got {int8!r}")
    if int8 is not None and runtime != "onnx":
        raise ValueError("int8 quantization runs on ONNX Runtime: use runtime='onnx' (--runtime onnx) with it")


def load_onnx_runtime(
    path: str | Path,
    *,
    int8: str | None = None,
    calibration: Sequence[str | Path] | None = None,
    threads: int | None = None,
) -> OnnxBundle:
    """An ONNX Runtime model for ``path`` (an ``.onnx`` export or a checkpoint directory, exported
    into a temporary file), int8-quantized when ``int8`` is ``dynamic`` or ``static`` (static:
    activation ranges calibrated on the audio files ``calibration``)."""
    from audioflex.export.calibrate import calibration_feeds
    from audioflex.export.quantize import quantize_dynamic_onnx, quantize_static_onnx

    require_onnx()
    check_runtime("onnx", int8)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="audioflex-onnx-") as tmp:
        src = path
        if not is_onnx_file(path):
            if not path.is_dir():
                raise ValueError(f"{path}: neither an audioflex checkpoint directory nor an .onnx file")
            src = export_checkpoint(path, Path(tmp) / "model.onnx")
        elif not path.is_file():
            raise ValueError(f"{path}: no such ONNX file; write one with `audioflex export onnx CKPT {path}`")
        if int8 == "dynamic":
            src = quantize_dynamic_onnx(src, Path(tmp) / "model.int8.onnx")
        elif int8 == "static":
            if not calibration:
                raise ExportError("int8='static' needs calibration audio files (--calibrate FILE ...)")
            fp32 = load_onnx(src)
            if fp32.frontend is None:
                raise ExportError(f"{path}: the export has no front-end config to compute calibration inputs")
            feeds = calibration_feeds(calibration, fp32.frontend, fp32.model.contract)
            src = quantize_static_onnx(src, Path(tmp) / "model.int8.onnx", feeds)
        return load_onnx(src, threads=threads)
