"""``ast-to-elastic``: initialise an ElasticAST from an AST (audioflex checkpoint, Hugging Face
folder or original ``.pth``) or an ImageNet ViT/DeiT (timm keys). An initialisation for
fine-tuning: there is no original output to reproduce.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.checkpoints.convert.ast import convert_ast
from audioflex.checkpoints.convert.base import ConversionError, Converted, read_state_dict, register_converter
from audioflex.checkpoints.convert.common import size_name, vit_dims
from audioflex.checkpoints.convert.hf_ast import convert_hf_ast
from audioflex.layers.pos_embed import grid_to_factorized

__all__ = ["ast_to_elastic_state_dict", "convert_ast_to_elastic", "vit_state_dict"]


def ast_to_elastic_state_dict(
    ast: dict[str, torch.Tensor],
    ast_grid: tuple[int, int],
    elastic_grid: tuple[int, int],
    *,
    keep_head: bool = True,
) -> dict[str, torch.Tensor]:
    """Initialise ElasticAST weights from ``AST`` weights.

    The AST 2D position grid (``ast_grid`` = (F', T')) is resampled to the ElasticAST grid
    ``(F/16, max_time_patches)`` and averaged along each axis into the factorized tables; the
    conv patch embedding becomes the Linear over flattened patches; blocks are copied; the pooling
    attention starts from the blocks' average attention weights and its query from the CLS/dist
    tokens (plus their positions). ``keep_head=False`` drops the classifier.
    """
    out: dict[str, torch.Tensor] = {}
    d = ast["cls_token"].shape[-1]
    out["patch_embed.weight"] = ast["patch_embed.weight"].reshape(d, -1)
    out["patch_embed.bias"] = ast["patch_embed.bias"]
    grid = ast["pos_embed"][0, 2:]
    out["pos_embed_freq"], out["pos_embed_time"] = grid_to_factorized(grid, ast_grid, elastic_grid)
    qkv_w, qkv_b, proj_w, proj_b = [], [], [], []
    for k, v in ast.items():
        if k.startswith("blocks."):
            out[k] = v
            if k.endswith("attn.qkv.weight"):
                qkv_w.append(v)
            elif k.endswith("attn.qkv.bias"):
                qkv_b.append(v)
            elif k.endswith("attn.proj.weight"):
                proj_w.append(v)
            elif k.endswith("attn.proj.bias"):
                proj_b.append(v)
    out["norm.weight"], out["norm.bias"] = ast["norm.weight"], ast["norm.bias"]
    w, b = torch.stack(qkv_w).mean(0), torch.stack(qkv_b).mean(0)
    out["pool.q.weight"], out["pool.kv.weight"] = w[:d], w[d:]
    out["pool.q.bias"], out["pool.kv.bias"] = b[:d], b[d:]
    out["pool.proj.weight"], out["pool.proj.bias"] = torch.stack(proj_w).mean(0), torch.stack(proj_b).mean(0)
    tokens = torch.cat([ast["cls_token"][0], ast["dist_token"][0]]) + ast["pos_embed"][0, :2]
    out["pool.query"] = tokens.mean(0)
    if keep_head:
        for k in ("head_norm.weight", "head_norm.bias", "head.weight", "head.bias"):
            out[k] = ast[k]
    return out


def _read_any_ast(path: Path, **opts: Any) -> Converted:
    """An AST in any supported form: audioflex checkpoint dir, HF folder or original ``.pth``."""
    if path.is_dir() and (path / "model.safetensors").is_file() and (path / "config.json").is_file():
        meta = json.loads((path / "config.json").read_text())
        if meta.get("format") == "audioflex":
            from safetensors.torch import load_file

            if not str(meta["model_name"]).startswith("ast_"):
                raise ConversionError(f"{path}: an audioflex {meta['model_name']} checkpoint, not an AST")
            return Converted(
                meta["model_name"],
                meta["model_args"],
                load_file(str(path / "model.safetensors")),
                None,
                meta.get("labels"),
            )
        return convert_hf_ast(path, **opts)
    if path.is_dir():
        return convert_hf_ast(path, **opts)
    sd = read_state_dict(path)
    if "pos_embed" in sd and "patch_embed.proj.weight" in sd and "cls_token" in sd:
        return _vit_as_ast(sd, num_heads=opts.get("num_heads"))
    return convert_ast(path, **opts)


def vit_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
    """An ImageNet ViT/DeiT state dict (timm keys) -> ``AST`` keys and its square position grid.

    The RGB patch kernel is summed to one channel (as AST does); a missing distillation token is
    the CLS token; the classifier is dropped.
    """
    n_tok = 2 if "dist_token" in sd else 1
    pos = sd["pos_embed"]
    side = int(round((pos.shape[1] - n_tok) ** 0.5))
    if side * side != pos.shape[1] - n_tok:
        raise ConversionError(f"a ViT position table of {pos.shape[1]} rows is not a square grid plus tokens")
    cls = sd["cls_token"]
    dist = sd.get("dist_token", cls)
    tokens_pos = pos[:, :n_tok] if n_tok == 2 else torch.cat([pos[:, :1], pos[:, :1]], dim=1)
    out = {
        "cls_token": cls,
        "dist_token": dist,
        "pos_embed": torch.cat([tokens_pos, pos[:, n_tok:]], dim=1),
        "patch_embed.weight": sd["patch_embed.proj.weight"].sum(dim=1, keepdim=True),
        "patch_embed.bias": sd["patch_embed.proj.bias"],
        "norm.weight": sd["norm.weight"],
        "norm.bias": sd["norm.bias"],
    }
    out.update({k: v for k, v in sd.items() if k.startswith("blocks.")})
    return out, (side, side)


def _vit_as_ast(sd: dict[str, torch.Tensor], num_heads: int | None = None) -> Converted:
    state, grid = vit_state_dict(sd)
    d = state["cls_token"].shape[-1]
    args = {
        "num_classes": 0,
        "num_mel_bins": 16 * grid[0],
        "max_length": 16 * grid[1],
        "stride": 16,
        "embed_dim": d,
        **vit_dims(state, d, num_heads),
    }
    return Converted(size_name("ast", d), args, state, None, None, ["ImageNet ViT: no audio classifier"])


def convert_ast_to_elastic(
    path: str | Path,
    *,
    max_time_patches: int = 64,
    keep_head: bool = True,
    num_classes: int | None = None,
    num_mel_bins: int | None = None,
    **opts: Any,
) -> Converted:
    """Initialise an ElasticAST from an AST (audioflex, HF or original) or an ImageNet ViT/DeiT
    (timm keys). ``num_classes`` different from the source drops the classifier (``strict=False``
    fine-tuning start); a ViT source has none, so ``num_classes`` is required then.
    ``num_mel_bins`` defaults to the source AST's (128 for a ViT)."""
    src = _read_any_ast(Path(path), **opts)
    a = src.model_args
    stride = a.get("stride", 10)
    tstride = a.get("time_stride") or stride
    ast_grid = ((a["num_mel_bins"] - 16) // stride + 1, (a["max_length"] - 16) // tstride + 1)
    from_vit = a["num_classes"] == 0
    if from_vit and not num_classes:
        raise ConversionError(f"{path}: an ImageNet ViT has no audio classifier; pass -o num_classes=N")
    mels = num_mel_bins or (128 if from_vit else a["num_mel_bins"])
    keep = keep_head and not from_vit and (num_classes is None or num_classes == a["num_classes"])
    state = ast_to_elastic_state_dict(src.state_dict, ast_grid, (-(-mels // 16), max_time_patches), keep_head=keep)
    args = {
        "num_classes": num_classes or a["num_classes"],
        "num_mel_bins": mels,
        "max_time_patches": max_time_patches,
        "embed_dim": a["embed_dim"],
        "depth": a["depth"],
        "num_heads": a["num_heads"],
        "mlp_ratio": a.get("mlp_ratio", 4.0),
        "norm_eps": a.get("norm_eps", 1e-6),
    }
    notes = list(src.notes)
    if not keep:
        notes.append("classifier not copied (new or different classes); load with strict=False")
    fe = KaldiFbankConfig(num_mel_bins=mels)
    return Converted(size_name("elastic_ast", a["embed_dim"]), args, state, fe, src.labels if keep else None, notes)


register_converter(
    "ast-to-elastic", convert_ast_to_elastic, "initialise an ElasticAST from an AST or ImageNet ViT checkpoint"
)
