"""Converters for the AST family: Hugging Face AST folders, original AST ``.pth`` files, official
ElasticAST ``.pth`` files, and AST -> ElasticAST initialisation.

Each ``*_state_dict`` function is pure (``state_dict -> state_dict``) and proven by parity tests
against ``shared/fixtures`` (``hf_ast.*``, ``elasticast.*``).

Compatibility defaults, so a converted checkpoint gives the original's outputs (model choices are
recorded in the checkpoint's ``model_args``, input choices in its front-end config):

- ``hf-ast``: LayerNorm eps from ``config.json`` (transformers: 1e-12 everywhere); input
  normalisation from ``preprocessor_config.json`` when present (else AudioSet's); labels from
  ``id2label``; input padded/cropped to ``max_length`` as ``ASTFeatureExtractor``.
- ``ast`` (YuanGongND/ast): eps 1e-6 in the ViT and 1e-5 in ``mlp_head.0`` (timm / the original;
  1e-12 would move logits by ~1e-5); ``max_length`` from the position table (1024 AudioSet, 512
  ESC-50, 128 Speech Commands: the recipe's ``audio_length``, zero-padded before normalising);
  the recipe's normalisation picked by the head size (527 AudioSet, 50 ESC-50, 35 Speech
  Commands) or ``dataset=`` / ``norm_mean=`` + ``norm_std=``.
- ``elasticast`` (JiuFengSC/ElasticAST): ``attn_scale=1.0`` (the original omits 1/sqrt(d)),
  eps 1e-6, the recipe's normalisation by head size (527 AudioSet (-4.414, 4.905), 309 VGGSound,
  1251 VoxCeleb) or ``dataset=`` / ``norm_mean=`` + ``norm_std=``; clips are fed at their natural
  length (the recipe zero-pads 10 s clips to 1024 frames at evaluation).
- ``ast-to-elastic``: an initialisation for fine-tuning; no original output to reproduce.
"""

from __future__ import annotations

import json
import re
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
from audioflex.checkpoints.convert.recipes import (
    AST_BY_CLASSES,
    AST_NORM,
    ELASTICAST_BY_CLASSES,
    ELASTICAST_NORM,
    recipe_norm,
)
from audioflex.layers.pos_embed import grid_to_factorized

HF_PREFIX = "audio_spectrogram_transformer."


def _count_blocks(sd: dict[str, torch.Tensor], pattern: str) -> int:
    idx = {int(m.group(1)) for k in sd if (m := re.match(pattern, k))}
    return max(idx) + 1 if idx else 0


def max_length_for_grid(time_grid: int, patch: int = 16, stride: int = 10) -> int:
    """A frame count giving ``time_grid`` patch columns: the largest multiple of 8 in the range
    of lengths that give that grid (1024 for 101 columns, 200 for 19, 128 for 12)."""
    lo = (time_grid - 1) * stride + patch
    hi = lo + stride - 1
    best = hi - hi % 8
    return best if best >= lo else lo


# --------------------------------------------------------------------------------------------
# Hugging Face transformers ASTForAudioClassification
# --------------------------------------------------------------------------------------------
_HF_BLOCK = {
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
}


def hf_ast_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF hub AST keys -> ``AST`` keys (q/k/v fused into ``qkv``)."""
    out: dict[str, torch.Tensor] = {}
    e = HF_PREFIX + "embeddings."
    simple = {
        e + "cls_token": "cls_token",
        e + "distillation_token": "dist_token",
        e + "position_embeddings": "pos_embed",
        e + "patch_embeddings.projection.weight": "patch_embed.weight",
        e + "patch_embeddings.projection.bias": "patch_embed.bias",
        HF_PREFIX + "layernorm.weight": "norm.weight",
        HF_PREFIX + "layernorm.bias": "norm.bias",
        "classifier.layernorm.weight": "head_norm.weight",
        "classifier.layernorm.bias": "head_norm.bias",
        "classifier.dense.weight": "head.weight",
        "classifier.dense.bias": "head.bias",
    }
    for k, v in simple.items():
        if k in sd:
            out[v] = sd[k]
    depth = _count_blocks(sd, re.escape(HF_PREFIX) + r"encoder\.layer\.(\d+)\.")
    for i in range(depth):
        p = f"{HF_PREFIX}encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat(
                [sd[f"{p}attention.attention.{n}.{kind}"] for n in ("query", "key", "value")]
            )
            for src, dst in _HF_BLOCK.items():
                out[f"blocks.{i}.{dst}.{kind}"] = sd[f"{p}{src}.{kind}"]
    return out


def convert_hf_ast(path: str | Path, **opts: Any) -> Converted:
    """A Hugging Face AST folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``)."""
    path = Path(path)
    if not path.is_dir():
        raise ConversionError(f"{path}: expected a Hugging Face model folder with config.json")
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ConversionError(f"{path}: no config.json (a Hugging Face AST folder has one)")
    cfg = json.loads(cfg_path.read_text())
    weights = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()), None)
    if weights is None:
        raise ConversionError(f"{path}: neither model.safetensors nor pytorch_model.bin found")
    sd = read_state_dict(weights)
    if HF_PREFIX + "embeddings.cls_token" not in sd:
        raise ConversionError(f"{weights}: not an ASTForAudioClassification state dict (no {HF_PREFIX}embeddings.*)")
    state = hf_ast_state_dict(sd)
    d = state["cls_token"].shape[-1]
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    args = {
        "num_classes": int(state["head.weight"].shape[0]),
        "num_mel_bins": int(cfg.get("num_mel_bins", 128)),
        "max_length": int(cfg.get("max_length", 1024)),
        "patch_size": int(cfg.get("patch_size", 16)),
        "stride": int(cfg.get("frequency_stride", 10)),
        "time_stride": int(cfg.get("time_stride", 10)),
        "embed_dim": d,
        "depth": _count_blocks(state, r"blocks\.(\d+)\."),
        "num_heads": int(cfg.get("num_attention_heads", max(1, d // 64))),
        "mlp_ratio": state["blocks.0.mlp.fc1.weight"].shape[0] / d,
        "qkv_bias": bool(cfg.get("qkv_bias", True)),
        "norm_eps": eps,
        "head_norm_eps": eps,
    }
    labels = None
    if isinstance(cfg.get("id2label"), dict) and len(cfg["id2label"]) == args["num_classes"]:
        labels = [cfg["id2label"][str(i)] for i in range(args["num_classes"])]
    mean, std = -4.2677393, 4.5689974
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        p = json.loads(pre.read_text())
        mean, std = float(p.get("mean", mean)), float(p.get("std", std))
    fe = KaldiFbankConfig(
        num_mel_bins=args["num_mel_bins"], target_length=args["max_length"], norm_mean=mean, norm_std=std
    )
    return Converted(_size_name("ast", d), args, state, fe, labels)


# --------------------------------------------------------------------------------------------
# Original YuanGongND/ast checkpoints (module.v.*, fused qkv)
# --------------------------------------------------------------------------------------------
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


def _size_name(family: str, dim: int) -> str:
    return {192: f"{family}_tiny", 384: f"{family}_small"}.get(dim, f"{family}_base")


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
        "depth": _count_blocks(state, r"blocks\.(\d+)\."),
        "num_heads": num_heads or max(1, d // 64),
        "mlp_ratio": state["blocks.0.mlp.fc1.weight"].shape[0] / d,
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
    return Converted(_size_name("ast", d), args, state, fe, None, [note])


# --------------------------------------------------------------------------------------------
# Official ElasticAST checkpoints
# --------------------------------------------------------------------------------------------
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
        "depth": _count_blocks(state, r"blocks\.(\d+)\."),
        "num_heads": num_heads or max(1, d // 64),
        "mlp_ratio": state["blocks.0.mlp.fc1.weight"].shape[0] / d,
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
    return Converted(_size_name("elastic_ast", d), args, state, fe, None, notes)


# --------------------------------------------------------------------------------------------
# AST / ViT -> ElasticAST initialisation
# --------------------------------------------------------------------------------------------
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
        "depth": _count_blocks(state, r"blocks\.(\d+)\."),
        "num_heads": num_heads or max(1, d // 64),
        "mlp_ratio": state["blocks.0.mlp.fc1.weight"].shape[0] / d,
    }
    return Converted(_size_name("ast", d), args, state, None, None, ["ImageNet ViT: no audio classifier"])


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
    return Converted(_size_name("elastic_ast", a["embed_dim"]), args, state, fe, src.labels if keep else None, notes)


register_converter(
    "hf-ast", convert_hf_ast, "Hugging Face AST folder (config.json + model.safetensors/pytorch_model.bin)"
)
register_converter("ast", convert_ast, "original YuanGongND/ast .pth (module.v.* keys, fused qkv)")
register_converter("elasticast", convert_elasticast, "official ElasticAST .pth (to_q/to_kv, no attention scaling)")
register_converter(
    "ast-to-elastic", convert_ast_to_elastic, "initialise an ElasticAST from an AST or ImageNet ViT checkpoint"
)


def ast_to_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`hf_ast_state_dict`: ``AST`` keys -> Hugging Face hub keys (export)."""
    e = HF_PREFIX + "embeddings."
    simple = {
        "cls_token": e + "cls_token",
        "dist_token": e + "distillation_token",
        "pos_embed": e + "position_embeddings",
        "patch_embed.weight": e + "patch_embeddings.projection.weight",
        "patch_embed.bias": e + "patch_embeddings.projection.bias",
        "norm.weight": HF_PREFIX + "layernorm.weight",
        "norm.bias": HF_PREFIX + "layernorm.bias",
        "head_norm.weight": "classifier.layernorm.weight",
        "head_norm.bias": "classifier.layernorm.bias",
        "head.weight": "classifier.dense.weight",
        "head.bias": "classifier.dense.bias",
    }
    out = {simple[k]: v for k, v in sd.items() if k in simple}
    inverse = {v: k for k, v in _HF_BLOCK.items()}
    for k, v in sd.items():
        m = re.match(r"blocks\.(\d+)\.(.+)\.(weight|bias)$", k)
        if not m:
            continue
        i, name, kind = m.groups()
        p = f"{HF_PREFIX}encoder.layer.{i}."
        if name == "attn.qkv":
            for n, part in zip(("query", "key", "value"), v.chunk(3)):
                out[f"{p}attention.attention.{n}.{kind}"] = part
        else:
            out[f"{p}{inverse[name]}.{kind}"] = v
    return out
