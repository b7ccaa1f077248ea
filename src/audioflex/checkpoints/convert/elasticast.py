"""Converter for official ElasticAST checkpoints (JiuFengSC/ElasticAST ``.pth``: ``to_q`` /
``to_kv`` attention, attention pooling).

Proven by parity with ``shared/fixtures/elasticast.*``. Compatibility defaults: ``attn_scale=1.0``
(the original omits 1/sqrt(d)), eps 1e-6, the recipe's normalisation by head size (527 AudioSet
(-4.414, 4.905), 309 VGGSound, 1251 VoxCeleb) or ``dataset=`` / ``norm_mean=`` + ``norm_std=``;
clips are fed at their natural length (the recipe zero-pads 10 s clips to 1024 frames at
evaluation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.checkpoints.convert.base import (
    ConversionError,
    Converted,
    read_state_dict,
    register_converter,
    strip_prefix,
)
from audioflex.checkpoints.convert.common import size_name, vit_dims
from audioflex.checkpoints.convert.recipes import ELASTICAST_BY_CLASSES, ELASTICAST_NORM, recipe_norm

__all__ = ["convert_elasticast", "elasticast_state_dict"]


def elasticast_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official ElasticAST keys -> ``ElasticAST`` keys (``to_q`` + ``to_kv`` fused into ``qkv``)."""
    sd = strip_prefix(sd, "module.")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if ".attn.to_kv." in k and k.startswith("blocks."):
            continue
        if k.startswith("blocks.modules_list."):
            nk = "blocks." + k[len("blocks.modules_list.") :]
            if ".attn.to_q." in nk:
                kv = sd[k.replace(".to_q.", ".to_kv.")]
                out[nk.replace(".attn.to_q.", ".attn.qkv.")] = torch.cat([v, kv])
            elif ".attn.to_kv." not in nk:
                out[nk] = v
        elif k.startswith("patch_embed.0."):
            out["patch_embed." + k.split(".")[-1]] = v
        elif k == "attn_pool_queries":
            out["pool.query"] = v
        elif k.startswith("attn_pool."):
            out["pool." + k[len("attn_pool.to_") :] if ".to_" in k else "pool." + k[len("attn_pool.") :]] = v
        elif k.startswith("mlp_norm."):
            out["head_norm." + k.split(".")[-1]] = v
        else:
            out[k] = v
    return out


def convert_elasticast(
    path: str | Path,
    *,
    num_heads: int | None = None,
    attn_scale: float | None = 1.0,
    dataset: str | None = None,
    norm_mean: float | None = None,
    norm_std: float | None = None,
    **_: Any,
) -> Converted:
    """An official ElasticAST ``.pth``. It was trained without the 1/sqrt(d) attention scale, so the
    converted model keeps ``attn_scale=1.0`` (pass ``attn_scale=None`` to get the standard scale,
    e.g. before fine-tuning). ``num_heads`` defaults to dim // 64 (12 for ViT-B). The input
    normalisation is the original recipe's, chosen by the head size (527 AudioSet, 309 VGGSound,
    1251 VoxCeleb), ``dataset`` or ``norm_mean`` + ``norm_std``."""
    sd = read_state_dict(path)
    state = elasticast_state_dict(sd)
    if "pos_embed_time" not in state or "pool.query" not in state:
        raise ConversionError(f"{path}: not an ElasticAST checkpoint (no pos_embed_time / attn_pool_queries)")
    d = state["pos_embed_time"].shape[-1]
    p = int(round(state["patch_embed.weight"].shape[1] ** 0.5))
    args = {
        "num_classes": int(state["head.weight"].shape[0]),
        "num_mel_bins": state["pos_embed_freq"].shape[0] * p,
        "patch_size": p,
        "max_time_patches": int(state["pos_embed_time"].shape[0]),
        "embed_dim": d,
        **vit_dims(state, d, num_heads),
        "attn_scale": attn_scale,
        "norm_eps": 1e-6,
    }
    try:
        mean, std, note = recipe_norm(
            "ElasticAST", ELASTICAST_NORM, ELASTICAST_BY_CLASSES, args["num_classes"], dataset=dataset,
            norm_mean=norm_mean, norm_std=norm_std,
        )
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from e
    fe = KaldiFbankConfig(num_mel_bins=args["num_mel_bins"], norm_mean=mean, norm_std=std)
    notes = [
        "attn_scale=1.0 reproduces the official model (it omits the 1/sqrt(d) scaling)"
        if attn_scale == 1.0
        else f"attn_scale={attn_scale}: differs from the official model (which uses scale 1.0)",
        note,
    ]
    return Converted(size_name("elastic_ast", d), args, state, fe, None, notes)


register_converter("elasticast", convert_elasticast, "official ElasticAST .pth (to_q/to_kv, no attention scaling)")
