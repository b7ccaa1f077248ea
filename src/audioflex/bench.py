"""Benchmarks behind ``audioflex bench``: each returns a JSON-ready dict of measurements.

Speed and memory targets live here, never in unit tests.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from audioflex.packing import collate_packed, num_tokens, patchify, plan_batches


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # e.g. AVX2, AVX512
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(fn: Callable[[], Any], steps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def log_uniform_frames(n: int, lo_s: float, hi_s: float, hop_s: float, seed: int) -> list[int]:
    """Clip lengths in frames, log-uniform in ``[lo_s, hi_s]`` seconds."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g)
    secs = torch.exp(math.log(lo_s) + u * (math.log(hi_s) - math.log(lo_s)))
    return [max(1, int(s / hop_s)) for s in secs.tolist()]


def bench_packing(
    model: str = "elastic_ast_small", clips: int = 24, max_tokens: int = 2048, steps: int = 2, seed: int = 0
) -> dict[str, Any]:
    """One training step (forward + backward) of a packed model on the same clips, three ways:

    - ``packed``: ours — first-fit-decreasing batches within ``max_tokens``, varlen layout, no
      padding computed, per-segment SDPA (``loop`` backend); gradients accumulated over batches.
    - ``padded``: every clip padded to the longest clip in the batch, one ``[B, N_max, D]`` batch
      with plain attention (fixed-length AST practice).
    - ``reference_rows``: the official ElasticAST's grouping — greedy rows of ``max_tokens`` in input
      order, rows padded to the longest row, a dense boolean block-diagonal mask.

    Token dropping is off so all three see the same tokens. Throughput counts real tokens only.
    """
    from audioflex.models.registry import create_model

    torch.manual_seed(seed)
    net = create_model(model, num_classes=527, token_drop=0.0, backend="loop").train()
    frames = log_uniform_frames(clips, 0.5, 12.0, 0.01, seed)
    g = torch.Generator().manual_seed(seed + 1)
    specs = [torch.randn(net.num_mel_bins, t, generator=g) for t in frames]
    targets = (torch.rand(clips, 527, generator=g) < 0.02).float()
    counts = [num_tokens(net.num_mel_bins, t, net.patch_size) for t in frames]
    real = sum(counts)

    def step_packed() -> None:
        net.zero_grad(set_to_none=True)
        for b in plan_batches(counts, max_tokens):
            batch = collate_packed([specs[i] for i in b], index=b)
            out = net(batch)
            F.binary_cross_entropy_with_logits(out.clip_logits, targets[list(b)], reduction="sum").backward()

    ffd = plan_batches(counts, max_tokens)
    t_packed = _time(step_packed, steps)

    # padded to the longest clip: [B, N_max, D], plain attention, mean pooling over all tokens
    t_max = max(frames)
    pad = torch.stack([patchify(F.pad(s, (0, t_max - s.shape[1])))[0] for s in specs])
    _, coords, grid = patchify(torch.zeros(net.num_mel_bins, t_max))
    batch_full = collate_packed([torch.zeros(net.num_mel_bins, t_max)])

    def step_padded() -> None:
        net.zero_grad(set_to_none=True)
        x = net.patch_embed(pad)
        from audioflex.layers.pos_embed import factorized_positions

        x = x + factorized_positions(
            net.pos_embed_freq, net.pos_embed_time, coords, (grid,), batch_full.info.cu_seqlens_list
        )
        for blk in net.blocks:
            x = blk(x)
        emb = net.norm(x).mean(1)
        logits = net.head(net.head_norm(emb))
        F.binary_cross_entropy_with_logits(logits, targets, reduction="sum").backward()

    t_padded = _time(step_padded, steps)

    # reference rows: greedy in input order, rows padded to the longest row, dense mask
    rows = plan_batches(counts, max_tokens, sort=False)
    row_len = max(sum(counts[i] for i in r) for r in rows)
    dense = create_model(model, num_classes=527, token_drop=0.0, backend="dense").train()
    dense.load_state_dict(net.state_dict())

    def step_rows() -> None:
        dense.zero_grad(set_to_none=True)
        for r in rows:
            batch = collate_packed([specs[i] for i in r], index=r, pad_to=row_len)
            out = dense(batch)
            F.binary_cross_entropy_with_logits(out.clip_logits, targets[list(r)], reduction="sum").backward()

    t_rows = _time(step_rows, steps)

    pool = log_uniform_frames(2000, 0.5, 12.0, 0.01, seed + 7)
    pool_counts = [num_tokens(net.num_mel_bins, t, net.patch_size) for t in pool]
    pool_ffd = plan_batches(pool_counts, max_tokens)
    pool_greedy = plan_batches(pool_counts, max_tokens, sort=False)
    return {
        "benchmark": "packing",
        "model": model,
        "clips": clips,
        "clip_seconds": [round(t * 0.01, 2) for t in frames],
        "real_tokens": real,
        "max_tokens": max_tokens,
        "packed": {
            "seconds_per_step": t_packed,
            "tokens_per_s": real / t_packed,
            "batches": len(ffd),
            "computed_tokens": real,
            "fill_of_budget": real / (len(ffd) * max_tokens),
        },
        "padded": {
            "seconds_per_step": t_padded,
            "tokens_per_s": real / t_padded,
            "computed_tokens": clips * pad.shape[1],
            "fill": real / (clips * pad.shape[1]),
        },
        "reference_rows": {
            "seconds_per_step": t_rows,
            "tokens_per_s": real / t_rows,
            "rows": len(rows),
            "computed_tokens": len(rows) * row_len,
            "fill": real / (len(rows) * row_len),
        },
        "speedup_vs_padded": t_padded / t_packed,
        "speedup_vs_reference_rows": t_rows / t_packed,
        "planner_fill_2000_clips": {
            "first_fit_decreasing": sum(pool_counts) / (len(pool_ffd) * max_tokens),
            "greedy_in_order": sum(pool_counts) / (len(pool_greedy) * max_tokens),
        },
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine(),
    }


def hf_ast_twin(size: str, seed: int, tmp: str) -> tuple[torch.nn.Module, Callable[[str], Any]]:
    """``ast_<size>`` (random weights from ``seed``) and a loader of transformers'
    ``ASTForAudioClassification`` with the same weights (``attn_implementation`` -> model), saved in
    the hub format in ``tmp`` (the ``from_pretrained`` path users take with real checkpoints)."""
    try:
        from transformers import ASTConfig, ASTForAudioClassification
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ValueError(
            "this benchmark needs `transformers` (pip install 'audioflex[parity]'; without torchvision)"
        ) from e

    from audioflex.checkpoints.convert.ast import ast_to_hf_state_dict
    from audioflex.models.registry import create_model

    torch.manual_seed(seed)
    ours = create_model(f"ast_{size}", norm_eps=1e-12, head_norm_eps=1e-12).eval()
    d, depth, heads = ours.head.in_features, len(ours.blocks), ours.blocks[0].attn.num_heads
    cfg = ASTConfig(
        hidden_size=d,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * d,
        num_labels=527,
        max_length=1024,
        num_mel_bins=128,
    )
    cfg.save_pretrained(tmp)
    save_file(ast_to_hf_state_dict(ours.state_dict()), os.path.join(tmp, "model.safetensors"))
    return ours, lambda impl: ASTForAudioClassification.from_pretrained(tmp, attn_implementation=impl).eval()


def bench_ast_vs_hf(batch: int = 4, steps: int = 3, size: str = "base", seed: int = 0) -> dict[str, Any]:
    """``ast_<size>`` vs transformers' ``ASTForAudioClassification`` with the same weights on 10 s
    clips (1024 frames): inference time per batch and the max logit difference."""
    results: dict[str, Any] = {"benchmark": "ast-vs-hf", "model": f"ast_{size}", "batch": batch, "frames": 1024}
    x = torch.randn(batch, 128, 1024)
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        ours, load_hf = hf_ast_twin(size, seed, tmp)
        t_ours = _time(lambda: ours(x), steps)
        ref_logits = ours(x).clip_logits
        results["audioflex_seconds_per_batch"] = t_ours
        for impl in ("sdpa", "eager"):
            hf = load_hf(impl)
            xt = x.transpose(1, 2).contiguous()
            t_hf = _time(lambda hf=hf, xt=xt: hf(input_values=xt), steps)
            diff = (hf(input_values=xt).logits - ref_logits).abs().max().item()
            results[f"hf_{impl}"] = {"seconds_per_batch": t_hf, "speedup": t_hf / t_ours, "max_logit_diff": diff}
    results["machine"] = machine()
    return results
