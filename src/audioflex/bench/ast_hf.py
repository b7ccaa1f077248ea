"""``audioflex bench ast-vs-hf``: ``ast_<size>`` vs transformers' ``ASTForAudioClassification``
with the same weights (see :func:`bench_ast_vs_hf`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import save_file

from audioflex.bench.common import machine, mean_seconds

__all__ = ["bench_ast_vs_hf", "hf_ast_twin"]


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
    cfg.save_pretrained(tmp)
    save_file(ast_to_hf_state_dict(ours.state_dict()), os.path.join(tmp, "model.safetensors"))
    return ours, lambda impl: ASTForAudioClassification.from_pretrained(tmp, attn_implementation=impl).eval()


def bench_ast_vs_hf(batch: int = 4, steps: int = 3, size: str = "base", seed: int = 0) -> dict[str, Any]:
    """``ast_<size>`` vs transformers' ``ASTForAudioClassification`` with the same weights on 10 s
    clips (1024 frames): inference time per batch and the max logit difference."""
    results: dict[str, Any] = {"benchmark": "ast-vs-hf", "model": f"ast_{size}", "batch": batch, "frames": 1024}
    x = torch.randn(batch, 128, 1024)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        ours, load_hf = hf_ast_twin(size, seed, tmp)
        t_ours = mean_seconds(lambda: ours(x), steps)
        ref_logits = ours(x).clip_logits
        results["audioflex_seconds_per_batch"] = t_ours
        for impl in ("sdpa", "eager"):
            hf = load_hf(impl)
            xt = x.transpose(1, 2).contiguous()
            t_hf = mean_seconds(lambda hf=hf, xt=xt: hf(input_values=xt), steps)
            diff = (hf(input_values=xt).logits - ref_logits).abs().max().item()
            results[f"hf_{impl}"] = {"seconds_per_batch": t_hf, "speedup": t_hf / t_ours, "max_logit_diff": diff}
    results["machine"] = machine()
    return results
