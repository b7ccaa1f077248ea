"""``audioflex bench packing``: one training step of a packed model, packed vs padded vs the
reference implementation's rows (see :func:`bench_packing`)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from audioflex.bench.common import machine, mean_seconds, peak_rss_mb
from audioflex.packing import collate_packed, num_tokens, patchify, plan_batches

__all__ = ["bench_packing", "log_uniform_frames"]


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
    t_packed = mean_seconds(step_packed, steps)

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

    t_padded = mean_seconds(step_padded, steps)

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

    t_rows = mean_seconds(step_rows, steps)

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
