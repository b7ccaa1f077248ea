"""PaSST checkpoints (``hear21passt`` / ``kkoutini/PaSST`` released ``.pt`` files) -> audioflex.

The audioflex ``PaSST`` keeps the official parameter names, so the mapping only strips wrapper
prefixes (``net.`` of ``PasstBasicWrapper`` / Lightning modules, ``module.``), drops the front
end's buffers (``mel.*``) and the unused distillation head (``head_dist.*``). The model arguments
are read from the shapes; the number of heads cannot be, so it defaults to ``embed_dim // 64``
(DeiT convention) and can be given as an option.

Compatibility (checked against ``shared/fixtures/passt*``): LayerNorm eps 1e-6 in the blocks and
final norm, 1e-5 in ``head.0``, as the original; the front end is ``PasstMel`` at its eval
settings (0-15 kHz, no jitter); the time table is cut to the first ``T'`` columns for shorter
input (as the original); longer input, which the original rejects, resamples the table. The
original feeds a 10 s clip (1000 frames, 99 columns) in one pass; audioflex's ``Pipeline`` default
window is 9.96 s (``PaSST.input_frames`` = 996), so pass ``piece_s=10.04`` to score such a clip
as one window.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from audioflex.audio.frontend.passt import PasstMelConfig
from audioflex.checkpoints.convert.base import (
    ConversionError,
    Converted,
    read_state_dict,
    register_converter,
)

_DROPPED = ("head_dist.", "mel.")
_PREFIXES = ("module.", "net.", "model.")
_BLOCK_KEYS = (
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
    "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
    "mlp.fc2.weight", "mlp.fc2.bias",
)
_TOP_KEYS = (
    "cls_token", "new_pos_embed", "freq_new_pos_embed", "time_new_pos_embed",
    "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias",
    "head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias",
)
_VARIANTS = {(192, 12, 3): "passt_tiny", (384, 12, 6): "passt_small", (768, 12, 12): "passt_base"}


def _strip_wrappers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if "cls_token" not in sd and f"{p}cls_token" in sd:
                sd = {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}
                changed = True
    return sd


def passt_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official PaSST state dict -> audioflex ``PaSST`` state dict (pure).

    Strips ``module.``/``net.``/``model.`` wrappers (keeping only the wrapped net's keys), drops
    ``head_dist.*`` and ``mel.*``; every other name is kept as is. Raises ``ConversionError``
    when core keys are missing or unknown keys remain.
    """
    sd = _strip_wrappers(dict(sd))
    out = {k: v for k, v in sd.items() if not k.startswith(_DROPPED)}
    missing = [k for k in _TOP_KEYS if k not in out]
    if missing:
        raise ConversionError(
            f"not a PaSST state dict: missing {missing[:6]}{' ...' if len(missing) > 6 else ''} "
            f"(first keys found: {sorted(sd)[:5]})"
        )
    allowed = set(_TOP_KEYS) | {"dist_token"}
    unknown = [
        k for k in out
        if k not in allowed and not re.fullmatch(r"blocks\.\d+\.(" + "|".join(
            re.escape(b) for b in _BLOCK_KEYS) + ")", k)
    ]
    if unknown:
        raise ConversionError(f"unexpected keys in the PaSST state dict: {sorted(unknown)[:8]}")
    return out


def _infer_stride(num_mel_bins: int, patch: int, freq_patches: int) -> int:
    cands = [s for s in range(1, patch + 1) if (num_mel_bins - patch) // s + 1 == freq_patches]
    for preferred in (10, patch):
        if preferred in cands:
            return preferred
    if len(cands) == 1:
        return cands[0]
    raise ConversionError(
        f"cannot infer the patch stride from {freq_patches} frequency patches of {num_mel_bins} "
        f"mel bins (candidates {cands}); pass the option stride=..."
    )


def passt_model_args(
    sd: dict[str, torch.Tensor],
    *,
    num_heads: int | None = None,
    stride: int | None = None,
    num_mel_bins: int = 128,
) -> dict[str, Any]:
    """``PaSST`` constructor arguments read from a converted state dict's shapes."""
    dim = sd["cls_token"].shape[-1]
    depth = len({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    if num_heads is None:
        if dim % 64:
            raise ConversionError(
                f"embed_dim {dim} is not a multiple of 64: pass the option num_heads=..."
            )
        num_heads = dim // 64
    if dim % num_heads:
        raise ConversionError(f"num_heads={num_heads} does not divide embed_dim {dim}")
    patch = sd["patch_embed.proj.weight"].shape[-1]
    freq_patches = sd["freq_new_pos_embed"].shape[2]
    if stride is None:
        stride = _infer_stride(num_mel_bins, patch, freq_patches)
    elif (num_mel_bins - patch) // stride + 1 != freq_patches:
        raise ConversionError(
            f"stride={stride} with {num_mel_bins} mel bins gives "
            f"{(num_mel_bins - patch) // stride + 1} frequency patches; the checkpoint has "
            f"{freq_patches}"
        )
    return dict(
        num_classes=sd["head.1.weight"].shape[0],
        num_mel_bins=num_mel_bins,
        max_time_patches=sd["time_new_pos_embed"].shape[-1],
        patch_size=patch,
        stride=stride,
        embed_dim=dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / dim if depth else 4.0,
        qkv_bias="blocks.0.attn.qkv.bias" in sd if depth else True,
        distilled="dist_token" in sd,
    )


def convert_passt(path: str | Path, **opts: Any) -> Converted:
    """Convert an official PaSST checkpoint at ``path``.

    Options: ``num_heads`` (default ``embed_dim // 64``), ``stride`` (default inferred from the
    frequency table, 10 for the released ``passt_s_*_s10`` models), ``num_mel_bins`` (128).
    """
    known = {"num_heads", "stride", "num_mel_bins"}
    unknown = set(opts) - known
    if unknown:
        raise ConversionError(f"passt: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    raw = read_state_dict(path)
    try:
        sd = passt_state_dict(raw)
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from e
    args = passt_model_args(
        sd,
        num_heads=None if opts.get("num_heads") is None else int(opts["num_heads"]),
        stride=None if opts.get("stride") is None else int(opts["stride"]),
        num_mel_bins=int(opts.get("num_mel_bins") or 128),
    )
    name = _VARIANTS.get((args["embed_dim"], args["depth"], args["num_heads"]), "passt_base")
    dropped = sorted({k.split(".")[0] for k in _strip_wrappers(dict(raw)) if k.startswith(_DROPPED)})
    notes = [f"dropped unused {', '.join(d + '.*' for d in dropped)}"] if dropped else []
    notes.append(f"num_heads={args['num_heads']}, stride={args['stride']}")
    return Converted(
        model_name=name,
        model_args=args,
        state_dict=sd,
        frontend=PasstMelConfig(n_mels=args["num_mel_bins"]),
        labels=None,
        notes=notes,
    )


register_converter(
    "passt",
    convert_passt,
    "PaSST (hear21passt / kkoutini/PaSST .pt, e.g. passt-s-f128-p16-s10-ap.476-swa.pt); "
    "options num_heads, stride, num_mel_bins",
)
