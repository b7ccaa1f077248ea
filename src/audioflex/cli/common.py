"""What every command group shares: the consoles, turning user-fixable errors into one red line
and exit code 1, per-file error lines, ``key=value`` options, JSON output and shared options."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

__all__ = [
    "CALIBRATE_HELP",
    "EMBED_OPTIONS_HELP",
    "INT8_HELP",
    "RUNTIME_HELP",
    "THREADS",
    "JsonOut",
    "emit",
    "err",
    "error_message",
    "file_error",
    "friendly",
    "out",
    "parse_options",
    "print_file_errors",
    "runtime_options",
    "set_threads",
    "user_errors",
]

out = Console()
err = Console(stderr=True)

EMBED_OPTIONS_HELP = (
    "HEAR/embedding option key=value (repeatable): hop_ms, window_ms, levels=[160,800], layers=[-1,-4], "
    "layer_mode=concat|mean, layer_pool=tokens|cls, include_logits=true, include_mel=true, max_frames, stream_s."
)

# ``--threads`` of the commands that run models on the CPU (``threads: Optional[int] = THREADS``)
THREADS: Any = typer.Option(
    None, "--threads", min=1,
    help="CPU threads per operation (torch.set_num_threads; default: torch's). On a machine shared with other "
    "jobs, 1 is often several times faster than one per core (threads wait on each other).",
)


def set_threads(threads: Optional[int]) -> None:
    """``torch.set_num_threads(threads)`` for this command's process (None: leave torch's default)."""
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))


# ``--out`` of the commands that print a JSON report (``out_path: JsonOut = None``)
JsonOut = Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON here.")]


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a user can fix (bad audio, bad checkpoint, bad option, missing file)."""
    from audioflex.audio.io import AudioError
    from audioflex.checkpoints import CheckpointError
    from audioflex.checkpoints.convert import ConversionError

    return (AudioError, CheckpointError, ConversionError, ValueError, KeyError, FileNotFoundError, OSError)


def error_message(e: BaseException) -> Any:
    """What to print of a user error: a ``KeyError``'s message, not its quoted repr."""
    return e.args[0] if isinstance(e, KeyError) and e.args else e


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-fixable exceptions into one error line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except user_errors() as e:
            err.print(f"[bold red]error:[/] {escape(str(error_message(e)))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def file_error(path: Any, message: Any) -> str:
    """An error line about one input file: the message, prefixed with the file unless it names it."""
    text = " ".join(str(message).split())
    return text if str(path) in text else f"{path}: {text}"


def print_file_errors(errors: dict[str, str]) -> None:
    """One red line per failed input file (``{file: message}``)."""
    for path, message in errors.items():
        err.print(f"[bold red]error:[/] {escape(file_error(path, message))}", highlight=False, soft_wrap=True)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}``, each value parsed as JSON where it is JSON."""
    opts: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"option {pair!r} must look like key=value")
        k, v = pair.split("=", 1)
        try:
            opts[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            opts[k.strip()] = v
    return opts


def emit(result: dict[str, Any], out_path: Optional[Path]) -> None:
    """Print ``result`` as JSON to stdout (for pipes) and, with ``out_path``, also write it there."""
    text = json.dumps(result, indent=2)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text + "\n")
        err.print(f"wrote {out_path}")
    print(text)  # noqa: T201  (JSON to stdout for pipes)


RUNTIME_HELP = "torch, or onnx (ONNX Runtime on the CPU; a checkpoint directory is exported on the fly)."
INT8_HELP = "int8 quantization with ONNX Runtime (implies --runtime onnx): dynamic, or static with --calibrate."
CALIBRATE_HELP = "Audio file(s) to calibrate static int8 activation ranges on (repeat the option)."
BF16_HELP = ("Run the torch model under bfloat16 autocast: faster on CPUs with AMX and on GPUs, slower on "
             "CPUs without native bf16; probabilities within bf16 rounding (~1e-2) of float32.")


def runtime_options(runtime: str, int8: bool, calibrate: list[Path], bf16: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``Pipeline.from_checkpoint`` for ``--runtime/--int8/--calibrate/--bf16``."""
    if calibrate and not int8:
        raise ValueError("--calibrate sets static int8 ranges: use it with --int8")
    if int8:
        runtime = "onnx"
    return {"runtime": runtime, "int8": ("static" if calibrate else "dynamic") if int8 else None,
            "calibration": list(calibrate) or None, "bf16": bf16}

