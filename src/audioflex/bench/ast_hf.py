"""``audioflex bench ast-vs-hf``: ``ast_<size>`` vs transformers' ``ASTForAudioClassification``
with the same weights (see :func:`bench_ast_vs_hf`)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from safetensors.torch import save_file

from audioflex.bench.common import machine, mean_seconds

__all__ = ["bench_ast_vs_hf"]


def bench_ast_vs_hf(batch: int = 4, steps: int = 3, size: str = "base", seed: int = 0) -> dict[str, Any]:
    """``ast_<size>`` vs transformers' ``ASTForAudioClassification`` with the same weights on 10 s
    clips (1024 frames): inference time per batch and the max logit difference."""
    try:
        from transformers import ASTConfig, ASTForAudioClassification
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ValueError(
            "bench ast-vs-hf needs `transformers` (pip install 'audioflex[parity]'; without torchvision)"
        ) from e

    from audioflex.checkpoints.convert.hf_ast import ast_to_hf_state_dict
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
    results: dict[str, Any] = {"benchmark": "ast-vs-hf", "model": f"ast_{size}", "batch": batch, "frames": 1024}
    x = torch.randn(batch, 128, 1024)
    with torch.no_grad():
        t_ours = mean_seconds(lambda: ours(x), steps)
        ref_logits = ours(x).clip_logits
        results["audioflex_seconds_per_batch"] = t_ours
        with tempfile.TemporaryDirectory() as tmp:
            # the hub format through from_pretrained: the path users take with real checkpoints
            cfg.save_pretrained(tmp)
            save_file(ast_to_hf_state_dict(ours.state_dict()), os.path.join(tmp, "model.safetensors"))
            for impl in ("sdpa", "eager"):
                hf = ASTForAudioClassification.from_pretrained(tmp, attn_implementation=impl).eval()
                xt = x.transpose(1, 2).contiguous()
                t_hf = mean_seconds(lambda hf=hf, xt=xt: hf(input_values=xt), steps)
                diff = (hf(input_values=xt).logits - ref_logits).abs().max().item()
                results[f"hf_{impl}"] = {"seconds_per_batch": t_hf, "speedup": t_hf / t_ours, "max_logit_diff": diff}
    results["machine"] = machine()
    return results
