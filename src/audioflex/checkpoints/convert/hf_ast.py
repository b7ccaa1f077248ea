"""Converter for Hugging Face transformers ``ASTForAudioClassification`` folders (``hf-ast``), and
the inverse key mapping (audioflex AST -> hub keys) used by the ``ast-vs-hf`` benchmark.

Proven by parity with ``shared/fixtures/hf_ast.*``. Compatibility defaults: LayerNorm eps from
``config.json`` (transformers: 1e-12 everywhere); input normalisation from
``preprocessor_config.json`` when present (else AudioSet's); labels from ``id2label``; input
padded/cropped to ``max_length`` as ``ASTFeatureExtractor``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.checkpoints.convert.base import ConversionError, Converted, read_state_dict, register_converter
from audioflex.checkpoints.convert.common import count_blocks, size_name, vit_dims

__all__ = ["HF_PREFIX", "ast_to_hf_state_dict", "convert_hf_ast", "hf_ast_state_dict"]

HF_PREFIX = "audio_spectrogram_transformer."
_E = HF_PREFIX + "embeddings."
# audioflex key -> hub key, outside the blocks
_HF_TOP = {
    "cls_token": _E + "cls_token",
    "dist_token": _E + "distillation_token",
    "pos_embed": _E + "position_embeddings",
    "patch_embed.weight": _E + "patch_embeddings.projection.weight",
    "patch_embed.bias": _E + "patch_embeddings.projection.bias",
    "norm.weight": HF_PREFIX + "layernorm.weight",
    "norm.bias": HF_PREFIX + "layernorm.bias",
    "head_norm.weight": "classifier.layernorm.weight",
    "head_norm.bias": "classifier.layernorm.bias",
    "head.weight": "classifier.dense.weight",
    "head.bias": "classifier.dense.bias",
}
# hub name -> audioflex name inside a block (q/k/v are fused separately)
_HF_BLOCK = {
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
}
_QKV = ("query", "key", "value")


def hf_ast_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF hub AST keys -> ``AST`` keys (q/k/v fused into ``qkv``)."""
    out: dict[str, torch.Tensor] = {ours: sd[hub] for ours, hub in _HF_TOP.items() if hub in sd}
    for i in range(count_blocks(sd, re.escape(HF_PREFIX) + r"encoder\.layer\.(\d+)\.")):
        p = f"{HF_PREFIX}encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([sd[f"{p}attention.attention.{n}.{kind}"] for n in _QKV])
            for src, dst in _HF_BLOCK.items():
                out[f"blocks.{i}.{dst}.{kind}"] = sd[f"{p}{src}.{kind}"]
    return out


def ast_to_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`hf_ast_state_dict`: ``AST`` keys -> Hugging Face hub keys (export)."""
    out = {_HF_TOP[k]: v for k, v in sd.items() if k in _HF_TOP}
    inverse = {v: k for k, v in _HF_BLOCK.items()}
    for k, v in sd.items():
        m = re.match(r"blocks\.(\d+)\.(.+)\.(weight|bias)$", k)
        if not m:
            continue
        i, name, kind = m.groups()
        p = f"{HF_PREFIX}encoder.layer.{i}."
        if name == "attn.qkv":
            for n, part in zip(_QKV, v.chunk(3)):
                out[f"{p}attention.attention.{n}.{kind}"] = part
        else:
            out[f"{p}{inverse[name]}.{kind}"] = v
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
        **vit_dims(state, d, int(cfg.get("num_attention_heads", max(1, d // 64)))),
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
    return Converted(size_name("ast", d), args, state, fe, labels)


register_converter(
    "hf-ast", convert_hf_ast, "Hugging Face AST folder (config.json + model.safetensors/pytorch_model.bin)"
)
