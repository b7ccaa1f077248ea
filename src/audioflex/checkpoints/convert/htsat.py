"""Converter for official HTS-AT checkpoints (RetroCirce/HTS-Audio-Transformer).

The released files are Lightning checkpoints whose ``state_dict`` keys carry a ``sed_model.``
prefix (``read_state_dict`` unwraps ``state_dict``). Our :class:`~audioflex.models.htsat.HTSAT`
keeps the original parameter names, so the mapping is near-identity: strip the prefix, drop the
unused ``head.*``, the frozen front-end matrices (``spectrogram_extractor.*``,
``logmel_extractor.*``, recomputed by :class:`~audioflex.audio.frontend.logmel.LogMel`, which the
converter checks against the stored mel matrix) and the deterministic ``relative_position_index``
/ ``attn_mask`` buffers. Proven by parity with ``shared/fixtures/htsat*``.

Compatibility defaults (recorded in the checkpoint's ``model_args``), so a converted checkpoint
gives the official model's outputs:

- ``stretch_short=True``: input shorter than the 1024-frame window is bicubically stretched to it,
  as the original does (10 s = 1001 frames -> 1024, 4 s = 401 -> 1024). audioflex's own default
  (zero padding after ``bn0``, used by ``create_model`` and models trained in audioflex) moves the
  fixture's 10 s clip outputs by 1.2e-2 and the 4 s ones by 9.4e-2; ``-o stretch_short=false``
  selects it.
- ``repeat_short=False``: the original's ``forward`` (its ``infer_mode`` tiling, used by its
  ``SEDWrapper.inference``, is ``-o repeat_short=true``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from audioflex.audio.frontend.logmel import LogMelConfig, slaney_mel_filters
from audioflex.checkpoints.convert.base import (
    ConversionError,
    Converted,
    bool_option,
    read_state_dict,
    register_converter,
    strip_prefix,
)

__all__ = ["check_mel_matrix", "convert_htsat", "htsat_model_args", "htsat_state_dict"]

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


def check_mel_matrix(sd: dict[str, torch.Tensor], fe: LogMelConfig, atol: float = 1e-6) -> float | None:
    """Max abs difference between the checkpoint's stored mel matrix (``logmel_extractor.melW``
    ``[n_fft/2+1, n_mels]``) and the one :class:`LogMel` computes for ``fe``; None if not stored.

    Raises ``ConversionError`` when they differ by more than ``atol`` (another front end, e.g. the
    16 kHz Speech Commands V2 recipe, which LogMel does not reproduce).
    """
    raw = strip_prefix(strip_prefix(sd, "module."), "sed_model.")
    stored = raw.get("logmel_extractor.melW")
    if stored is None:
        return None
    ours = torch.from_numpy(slaney_mel_filters(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax)).float().T
    if tuple(stored.shape) != tuple(ours.shape):
        raise ConversionError(
            f"logmel_extractor.melW has shape {tuple(stored.shape)}, the front end "
            f"({fe.sample_rate} Hz, n_fft {fe.n_fft}, {fe.n_mels} mels) gives {tuple(ours.shape)}"
        )
    diff = float((stored.float() - ours).abs().max())
    if diff > atol:
        raise ConversionError(
            f"the stored mel matrix (logmel_extractor.melW) differs by {diff:.3g} from the HTS-AT "
            f"front end audioflex would use ({fe.sample_rate} Hz, hop {fe.hop_length}, {fe.n_mels} mels "
            f"{fe.fmin:g}-{fe.fmax:g} Hz): the checkpoint was trained with another front end (the "
            "Speech Commands V2 recipe uses 16 kHz / hop 160 with fmax above Nyquist, which LogMel "
            "cannot reproduce); pass -o check_frontend=false to convert it anyway"
        )
    return diff


def convert_htsat(
    path: str | Path,
    *,
    labels: list[str] | None = None,
    stretch_short: bool = True,
    repeat_short: bool = False,
    check_frontend: bool = True,
    **unknown: Any,
) -> Converted:
    """An official HTS-AT checkpoint (``.ckpt`` Lightning file or a ``sed_model.*`` state dict).

    ``labels``: class names in output order (not stored in the original files).
    ``stretch_short`` (default True) / ``repeat_short`` (default False) reproduce the original's
    fitting of short input (bicubic stretch of < 1024 frames / its ``infer_mode`` tiling, see the
    module docstring); ``stretch_short=False`` pads short input instead (audioflex's default for
    models it trains). ``check_frontend``: compare the stored mel matrix with the LogMel front end
    (raise if it differs).
    """
    from audioflex.models.htsat import variant_for

    if unknown:
        raise ConversionError(
            f"htsat: unknown option(s) {sorted(unknown)}; known: check_frontend, repeat_short, stretch_short"
        )
    sd = read_state_dict(path)
    try:
        args = htsat_model_args(sd)
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from e
    if labels is not None and len(labels) != args["num_classes"]:
        raise ConversionError(
            f"{path}: {len(labels)} labels given but the checkpoint has {args['num_classes']} classes"
        )
    stretch_short, repeat_short = bool_option(stretch_short, "stretch_short"), bool_option(repeat_short, "repeat_short")
    args.update(stretch_short=stretch_short, repeat_short=repeat_short)
    name = variant_for(args["embed_dim"], args["depths"], args["num_heads"]) or "htsat_tiny"
    fe = LogMelConfig(n_mels=args["num_mel_bins"])
    notes = ["dropped head.* (unused), the frozen STFT/mel matrices and index/mask buffers"]
    if bool_option(check_frontend, "check_frontend"):
        try:
            diff = check_mel_matrix(sd, fe)
        except ConversionError as e:
            raise ConversionError(f"{path}: {e}") from e
        if diff is not None:
            notes.append(f"the stored mel matrix matches the LogMel front end (max diff {diff:.1g})")
    if repeat_short:
        notes.append("repeat_short=True: short input is tiled, then stretched (the original's infer_mode)")
    elif stretch_short:
        notes.append(
            "stretch_short=True: input shorter than 10.24 s is stretched to the window as the original "
            "does (-o stretch_short=false pads it instead)"
        )
    else:
        notes.append("stretch_short=False: short input is zero-padded (differs from the original's outputs)")
    return Converted(name, args, htsat_state_dict(sd), fe, list(labels) if labels else None, notes)


register_converter(
    "htsat", convert_htsat,
    "official HTS-AT checkpoint (Lightning .ckpt with sed_model.* keys, or its state dict)",
)
