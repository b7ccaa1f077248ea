"""``audioflex export onnx``: a checkpoint's model as an ONNX graph (front end outside it)."""

from __future__ import annotations

from pathlib import Path

import typer

from audioflex.cli.common import CALIBRATE_HELP, out, runtime_options

__all__ = ["export_onnx_cmd"]


def export_onnx_cmd(
    checkpoint: Path = typer.Argument(..., help="audioflex checkpoint directory."),
    out_file: Path = typer.Argument(..., help="Output .onnx file (labels, front end and contract in its metadata)."),
    int8: bool = typer.Option(False, "--int8", help="Write the int8 graph (dynamic; static with --calibrate)."),
    calibrate: list[Path] = typer.Option([], "--calibrate", help=CALIBRATE_HELP),
    opset: int = typer.Option(17, help="ONNX opset (>= 17)."),
) -> None:
    """Export a checkpoint's model to ONNX (the front end stays in torch, outside the graph); the
    graph is checked against torch (<= 1e-4) before it is written."""
    import tempfile

    from audioflex.export.loader import write_onnx

    if opset < 17:
        raise ValueError(f"--opset must be at least 17, got {opset}")
    rt = runtime_options("onnx", int8, calibrate)
    with tempfile.TemporaryDirectory(prefix="audioflex-export-") as tmp:
        path = write_onnx(checkpoint, out_file, int8=rt["int8"], calibration=rt["calibration"], opset=opset,
                          workdir=Path(tmp))
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB{', int8 ' + rt['int8'] if int8 else ''})")
