"""``audioflex bench ...``: the benchmarks of :mod:`audioflex.bench`, JSON to stdout or ``--out``."""

from __future__ import annotations

import typer

from audioflex.cli.common import JsonOut, emit

__all__ = ["bench_ast_vs_hf", "bench_embed_cmd", "bench_htsat_cmd", "bench_onnx_cmd", "bench_packing"]


def bench_embed_cmd(
    families: str = typer.Option("ast,elastic_ast,passt,htsat", help="Comma-separated model families."),
    seconds: float = typer.Option(10.0, help="Audio timed with batched windows."),
    loop_seconds: float = typer.Option(2.0, help="Audio timed with one forward per window."),
    long_seconds: float = typer.Option(600.0, help="Length of the file for the memory measurement (<= 3600)."),
    memory: bool = typer.Option(True, help="Measure peak RSS on the long file."),
    bf16: bool = typer.Option(True, help="Also time the batched path under bfloat16 autocast."),
    out_path: JsonOut = None,
) -> None:
    """Timestamp embeddings (hop 50 ms, window 160 ms): batched vs one forward per window, and memory."""
    from audioflex.bench.embed import bench_embed

    fams = tuple(f.strip() for f in families.split(",") if f.strip())
    emit(
        bench_embed(fams, seconds=seconds, loop_seconds=loop_seconds, long_seconds=long_seconds, memory=memory,
                    bf16=bf16),
        out_path,
    )


def bench_htsat_cmd(
    seconds: float = typer.Option(3600.0, help="Length of the generated file for detect."),
    batch: int = typer.Option(2, help="Clips per training step."),
    steps: int = typer.Option(2, help="Timed training steps."),
    out_path: JsonOut = None,
) -> None:
    """htsat_tiny vs ast_base: parameters, train-step time; detect real-time factor and peak RSS."""
    from audioflex.bench.htsat import run

    emit(run(seconds=seconds, batch=batch, steps=steps), out_path)


def bench_packing(
    model: str = typer.Option("elastic_ast_small", help="Packed model to time."),
    clips: int = typer.Option(24, help="Clips per step (lengths log-uniform in 0.5-12 s)."),
    max_tokens: int = typer.Option(2048, help="Token budget per packed batch / reference row."),
    steps: int = typer.Option(2, help="Timed steps per variant (after one warm-up)."),
    seed: int = typer.Option(0),
    out_path: JsonOut = None,
) -> None:
    """One training step (forward + backward) packed vs padded vs reference rows."""
    from audioflex.bench.packing import bench_packing as run

    emit(run(model=model, clips=clips, max_tokens=max_tokens, steps=steps, seed=seed), out_path)


def bench_ast_vs_hf(
    batch: int = typer.Option(4),
    steps: int = typer.Option(3),
    size: str = typer.Option("base", help="tiny, small or base."),
    out_path: JsonOut = None,
) -> None:
    """ast_* vs transformers' ASTForAudioClassification with the same weights on 10 s clips."""
    from audioflex.bench.ast_hf import bench_ast_vs_hf as run

    emit(run(batch=batch, steps=steps, size=size), out_path)


def bench_onnx_cmd(
    what: str = typer.Argument(
        "ast", help="ast (torch fp32 / bf16 vs transformers SDPA vs ORT fp32 vs ORT int8) or detect."
    ),
    batch: int = typer.Option(2, help="ast: clips per batch."),
    steps: int = typer.Option(2, help="ast: timed batches per runtime."),
    size: str = typer.Option("base", help="ast: tiny, small or base."),
    seconds: float = typer.Option(600.0, help="detect: length of the generated file."),
    model: str = typer.Option("htsat_tiny", help="detect: model."),
    out_path: JsonOut = None,
) -> None:
    """Runtimes side by side (JSON): inference speed and output differences."""
    from audioflex.bench.onnx import bench_ast_runtimes, bench_detect_runtimes

    if what == "ast":
        emit(bench_ast_runtimes(batch=batch, steps=steps, size=size), out_path)
    elif what == "detect":
        emit(bench_detect_runtimes(seconds=seconds, model=model), out_path)
    else:
        raise ValueError(f"bench onnx: WHAT must be ast or detect, got {what!r}")
