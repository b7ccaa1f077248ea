"""Export and alternative runtimes: ONNX graphs of every family (front end outside the graph),
ONNX Runtime sessions behind the model contract, int8 quantization.

Needs the optional ``onnx`` extra (``onnx``, ``onnxruntime``); importing this package does not.
"""

from audioflex.export.common import ExportError
from audioflex.export.onnx import export_checkpoint, export_onnx
from audioflex.export.runtime import OnnxBundle, OnnxModel, load_onnx

__all__ = ["ExportError", "OnnxBundle", "OnnxModel", "export_checkpoint", "export_onnx", "load_onnx"]
