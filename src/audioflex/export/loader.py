"""Pick a runtime for a model file: the torch checkpoint, or ONNX Runtime (exported on the fly
from a checkpoint directory, or an ``.onnx`` file written by ``audioflex export onnx``), fp32 or
int8. Used by :meth:`audioflex.inference.pipeline.Pipeline.from_checkpoint`, ``audioflex export
onnx`` and the CLI's ``--runtime`` / ``--int8`` options."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from audioflex.export.calibrate import calibration_feeds
from audioflex.export.common import ExportError, require_onnx
from audioflex.export.onnx import OPSET, export_checkpoint
from audioflex.export.quantize import quantize_dynamic_onnx, quantize_static_onnx
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


def write_onnx(
    path: str | Path,
    out: str | Path,
    *,
    int8: str | None = None,
    calibration: Sequence[str | Path] | None = None,
    opset: int = OPSET,
    workdir: Path,
) -> Path:
    """Write the ONNX graph of ``path`` (a checkpoint directory, or an ``.onnx`` export to
    quantize) at ``out``: fp32, or int8 when ``int8`` is ``dynamic`` / ``static`` (static:
    activation ranges calibrated on the audio files ``calibration``). ``workdir``: a scratch folder."""
    require_onnx()
    check_runtime("onnx", int8)
    path, out = Path(path), Path(out)
    if is_onnx_file(path):
        if not path.is_file():
            raise ValueError(f"{path}: no such ONNX file; write one with `audioflex export onnx CKPT {path}`")
        src = path
    elif path.is_dir():
        src = export_checkpoint(path, workdir / "model.fp32.onnx" if int8 else out, opset=opset)
    else:
        raise ValueError(f"{path}: neither an audioflex checkpoint directory nor an .onnx file")
    if int8 == "dynamic":
        return quantize_dynamic_onnx(src, out)
    if int8 == "static":
        if not calibration:
            raise ExportError("int8='static' needs calibration audio files (--calibrate FILE ...)")
        fp32 = load_onnx(src)
        if fp32.frontend is None:
            raise ExportError(f"{path}: the export has no front-end config to compute calibration inputs")
        return quantize_static_onnx(src, out, calibration_feeds(calibration, fp32.frontend, fp32.model.contract))
    if src != out:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
    return out


def load_onnx_runtime(
    path: str | Path,
    *,
    int8: str | None = None,
    calibration: Sequence[str | Path] | None = None,
    threads: int | None = None,
) -> OnnxBundle:
    """An ONNX Runtime model for ``path`` (an ``.onnx`` export, or a checkpoint directory exported
    into a temporary file), int8-quantized as :func:`write_onnx` says."""
    require_onnx()
    check_runtime("onnx", int8)
    if is_onnx_file(path) and int8 is None:
        return load_onnx(path, threads=threads)
    with tempfile.TemporaryDirectory(prefix="audioflex-onnx-") as tmp:
        work = Path(tmp)
        graph = write_onnx(path, work / "model.onnx", int8=int8, calibration=calibration, workdir=work)
        return load_onnx(graph, threads=threads)
