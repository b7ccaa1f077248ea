"""Converter for official HTS-AT checkpoints (RetroCirce/HTS-Audio-Transformer).

The released files are Lightning checkpoints whose ``state_dict`` keys carry a ``sed_model.``
prefix (``read_state_dict`` unwraps ``state_dict``). Our :class:`~audioflex.models.htsat.HTSAT`
keeps the original parameter names, so the mapping is near-identity: strip the prefix, drop the
unused ``head.*``, the frozen front-end matrices (``spectrogram_extractor.*``,
``logmel_extractor.*``, recomputed by :class:`~audioflex.audio.frontend.logmel.LogMel`) and the
deterministic ``relative_position_index`` / ``attn_mask`` buffers. Proven by parity with
``shared/fixtures/htsat*``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from audioflex.audio.frontend.logmel import LogMelConfig
from audioflex.checkpoints.convert.base import (
    ConversionError,
    Converted,
    read_state_dict,
    register_converter,
    strip_prefix,
)

__all__ = ["convert_htsat", "htsat_model_args", "htsat_state_dict"]

_DROP_PREFIXES = ("head.", "spectrogram_extractor.", "logmel_extractor.")
_DROP_SUFFIXES = ("relative_position_index", "attn_mask")


def htsat_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official HTS-AT keys (with or without ``sed_model.`` / ``module.``) -> ``HTSAT`` keys."""
    sd = strip_prefix(strip_prefix(sd, "module."), "sed_model.")
    return {
        k: v
        for k, v in sd.items()
        if not k.startswith(_DROP_PREFIXES) and not k.endswith(_DROP_SUFFIXES)
    }


def htsat_model_args(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Infer ``HTSAT`` kwargs from an official (or already converted) state dict.

    ``spec_size`` comes from a shifted-window mask when present (``[nW, w^2, w^2]`` on the
    stage-1 grid), otherwise 256 (every released model).
    """
    raw = strip_prefix(strip_prefix(sd, "module."), "sed_model.")
    need = ("patch_embed.proj.weight", "bn0.weight", "tscam_conv.weight",
            "layers.0.blocks.0.attn.relative_position_bias_table")
    missing = [k for k in need if k not in raw]
    if missing:
        raise ConversionError(
            f"not an HTS-AT state dict with the token-semantic head: missing {missing} "
            "(models trained with enable_tscam=False are not supported)"
        )
    stages: dict[int, set[int]] = {}
    for k in raw:
        m = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", k)
        if m:
            stages.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    depths = [max(stages[i]) + 1 for i in range(len(stages))]
    heads = [int(raw[f"layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1])
             for i in range(len(depths))]
    rows = raw["layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
    window = (math.isqrt(int(rows)) + 1) // 2
    if (2 * window - 1) ** 2 != rows:
        raise ConversionError(f"relative_position_bias_table with {rows} rows is not (2w-1)^2")
    proj = raw["patch_embed.proj.weight"]
    embed_dim, patch = int(proj.shape[0]), int(proj.shape[-1])
    fc1 = raw["layers.0.blocks.0.mlp.fc1.weight"]
    spec_size = 256
    mask = raw.get("layers.0.blocks.1.attn_mask")
    if mask is not None:
        spec_size = window * math.isqrt(int(mask.shape[0])) * patch
    return {
        "num_classes": int(raw["tscam_conv.weight"].shape[0]),
        "num_mel_bins": int(raw["bn0.weight"].shape[0]),
        "spec_size": spec_size,
        "patch_size": patch,
        "embed_dim": embed_dim,
        "depths": tuple(depths),
        "num_heads": tuple(heads),
        "window_size": window,
        "mlp_ratio": fc1.shape[0] / fc1.shape[1],
        "qkv_bias": "layers.0.blocks.0.attn.qkv.bias" in raw,
    }


def convert_htsat(
    path: str | Path,
    *,
    labels: list[str] | None = None,
    stretch_short: bool = False,
    repeat_short: bool = False,
    **_: Any,
) -> Converted:
    """An official HTS-AT checkpoint (``.ckpt`` Lightning file or a ``sed_model.*`` state dict).

    ``labels``: class names in output order (not stored in the original files). ``stretch_short``
    / ``repeat_short`` reproduce the reference's bicubic stretching / ``infer_mode`` of short
    input (for parity); by default short input is padded.
    """
    from audioflex.models.htsat import variant_for

    sd = read_state_dict(path)
    try:
        args = htsat_model_args(sd)
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from e
    if labels is not None and len(labels) != args["num_classes"]:
        raise ConversionError(
            f"{path}: {len(labels)} labels given but the checkpoint has {args['num_classes']} classes"
        )
    args.update(stretch_short=stretch_short, repeat_short=repeat_short)
    name = variant_for(args["embed_dim"], args["depths"], args["num_heads"]) or "htsat_tiny"
    notes = ["dropped head.* (unused), the frozen STFT/mel matrices and index/mask buffers"]
    if labels is None:
        notes.append("no class names in the checkpoint; pass labels=[...] (e.g. AudioSet's 527)")
    fe = LogMelConfig(n_mels=args["num_mel_bins"])
    return Converted(name, args, htsat_state_dict(sd), fe, list(labels) if labels else None, notes)


register_converter(
    "htsat", convert_htsat,
    "official HTS-AT checkpoint (Lightning .ckpt with sed_model.* keys, or its state dict)",
)
