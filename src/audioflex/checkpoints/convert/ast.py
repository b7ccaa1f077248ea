"""Converter for original AST checkpoints (YuanGongND/ast ``.pth``: ``module.v.*`` keys, fused qkv).

Proven by parity with ``shared/fixtures``. Compatibility defaults, so a converted checkpoint gives
the original's outputs (model choices are recorded in the checkpoint's ``model_args``, input
choices in its front-end config): eps 1e-6 in the ViT and 1e-5 in ``mlp_head.0`` (timm / the
original; 1e-12 would move logits by ~1e-5); ``max_length`` from the position table (1024
AudioSet, 512 ESC-50, 128 Speech Commands: the recipe's ``audio_length``, zero-padded before
normalising); the recipe's normalisation picked by the head size (527 AudioSet, 50 ESC-50, 35
Speech Commands) or ``dataset=`` / ``norm_mean=`` + ``norm_std=``.
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
from audioflex.checkpoints.convert.recipes import AST_BY_CLASSES, AST_NORM, recipe_norm

__all__ = ["ast_state_dict", "convert_ast", "max_length_for_grid"]


def max_length_for_grid(time_grid: int, patch: int = 16, stride: int = 10) -> int:
    """A frame count giving ``time_grid`` patch columns: the largest multiple of 8 in the range
    of lengths that give that grid (1024 for 101 columns, 200 for 19, 128 for 12)."""
    lo = (time_grid - 1) * stride + patch
    hi = lo + stride - 1
    best = hi - hi % 8
    return best if best >= lo else lo


def ast_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original AST keys (``module.v.*``, ``module.mlp_head.*``) -> ``AST`` keys; DeiT's unused
    ImageNet heads (``v.head``, ``v.head_dist``) are dropped."""
    sd = strip_prefix(sd, "module.")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.startswith(("v.head.", "v.head_dist.")):
            continue
        if k.startswith("v."):
            k = k[2:]
            k = k.replace("patch_embed.proj.", "patch_embed.")
            out[k] = v
        elif k.startswith("mlp_head.0."):
            out["head_norm." + k.split(".")[-1]] = v
        elif k.startswith("mlp_head.1."):
            out["head." + k.split(".")[-1]] = v
        else:
            out[k] = v
    return out


def convert_ast(
    path: str | Path,
    *,
    num_heads: int | None = None,
    num_mel_bins: int = 128,
    stride: int = 10,
    time_stride: int | None = None,
    max_length: int | None = None,
    dataset: str | None = None,
    norm_mean: float | None = None,
    norm_std: float | None = None,
    **_: Any,
) -> Converted:
    """An original AST ``.pth`` (``module.v.*`` keys). ``num_heads`` defaults to DeiT's dim // 64.

    The input normalisation is the original recipe's, chosen by the head size (527 AudioSet, 50
    ESC-50, 35 Speech Commands), ``dataset`` (audioset, esc50, speechcommands) or
    ``norm_mean`` + ``norm_std``; LayerNorm eps are the original's (1e-6, head 1e-5).
    """
    sd = read_state_dict(path)
    state = ast_state_dict(sd)
    if "cls_token" not in state or "pos_embed" not in state:
        raise ConversionError(f"{path}: not an original AST checkpoint (no module.v.cls_token / pos_embed)")
    d = state["cls_token"].shape[-1]
    tstride = time_stride or stride
    gf = (num_mel_bins - 16) // stride + 1
    n = state["pos_embed"].shape[1] - 2
    if n % gf:
        raise ConversionError(f"{path}: {n} patches do not fit {gf} frequency rows; pass num_mel_bins/stride")
    gt = n // gf
    args = {
        "num_classes": int(state["head.weight"].shape[0]),
        "num_mel_bins": num_mel_bins,
        "max_length": max_length or max_length_for_grid(gt, 16, tstride),
        "stride": stride,
        "time_stride": tstride,
        "embed_dim": d,
        **vit_dims(state, d, num_heads),
        "norm_eps": 1e-6,
        "head_norm_eps": 1e-5,
    }
    try:
        mean, std, note = recipe_norm(
            "AST", AST_NORM, AST_BY_CLASSES, args["num_classes"], dataset=dataset, norm_mean=norm_mean,
            norm_std=norm_std,
        )
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from e
    fe = KaldiFbankConfig(num_mel_bins=num_mel_bins, target_length=args["max_length"], norm_mean=mean, norm_std=std)
    return Converted(size_name("ast", d), args, state, fe, None, [note])


register_converter("ast", convert_ast, "original YuanGongND/ast .pth (module.v.* keys, fused qkv)")
