"""PaSST: AST with separate frequency/time position encodings and patchout (REFERENCE.md §4).

Input: PaSST log-mel ``[B, F, T]`` (``audio.frontend.passt.PasstMel``, 10 ms hop). Overlapping
16x16 conv patches with stride 10 give an ``F' x T'`` grid (12 x 99 for 128 bins and 10 s); the
frequency table ``freq_new_pos_embed [1, D, F', 1]`` and time table ``time_new_pos_embed
[1, D, 1, Lt]`` are added on the grid, which is flattened frequency-major; CLS and distillation
tokens (plus ``new_pos_embed``) are prepended.

Any length:
- shorter grids (``T' <= Lt``) use the first ``T'`` columns of the time table (as the reference;
  in training, with ``random_time_offset``, a random window of ``T'`` columns, as the reference);
- longer grids (the reference fails there) use the time table linearly resampled to ``T'``
  columns (``align_corners=True``): positions stretch, so ``Lt`` stays the model's "native" span.

Patchout (training only, random per batch as the reference): structured drops ``s_patchout_t``
whole time columns and ``s_patchout_f`` frequency rows; unstructured drops ``u_patchout`` random
patches of the flattened grid. At least one column/row/patch is always kept. In eval nothing is
dropped and the model is deterministic.

Parameter names follow the official checkpoints (``hear21passt`` / ``kkoutini/PaSST``), so they
load with ``head_dist.*`` dropped (``checkpoints.convert.passt``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from audioflex.audio.frontend.passt import PasstMelConfig
from audioflex.layers.block import init_vit_weights
from audioflex.layers.patch import PatchConv
from audioflex.layers.pos_embed import resample_1d
from audioflex.models.contract import ModelContract
from audioflex.models.outputs import AudioOutput
from audioflex.models.registry import register_model
from audioflex.models.vit import PrefixTokenGridModel, vit_blocks


class PatchEmbed(nn.Module):
    """Overlapping conv patches: ``[B, 1, F, T] -> [B, D, F', T']``."""

    def __init__(self, patch_size: int, stride: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = PatchConv(1, embed_dim, patch_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PaSST(PrefixTokenGridModel):
    """Patchout faSt Spectrogram Transformer.

    ``forward(spec [B, F, T], frames [B] | None = None, return_layers=()) -> AudioOutput`` with
    ``clip_logits [B, C]``, ``embedding [B, D]`` = mean of the final-normed CLS and distillation
    tokens (CLS alone when not ``distilled``) and ``hidden_states``: outputs ``[B, n_tok + N, D]``
    (before the final norm; ``n_tok`` = 2 when distilled, else 1) of the requested blocks, in the
    order asked for. ``frames`` (valid frames per row) are accepted for the common grid-model
    signature and ignored: PaSST reads the padded grid, as the reference does (``forward`` and
    ``pool_hidden``: :class:`~audioflex.models.vit.PrefixTokenGridModel`).
    """

    def __init__(
        self,
        *,
        num_classes: int = 527,
        num_mel_bins: int = 128,
        max_time_patches: int = 99,
        patch_size: int = 16,
        stride: int = 10,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        distilled: bool = True,
        drop_path: float = 0.0,
        s_patchout_t: int = 0,
        s_patchout_f: int = 0,
        u_patchout: int = 0,
        random_time_offset: bool = True,
        norm_eps: float = 1e-6,
        head_norm_eps: float = 1e-5,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if num_mel_bins < patch_size:
            raise ValueError(f"num_mel_bins ({num_mel_bins}) must be >= patch_size ({patch_size})")
        if min(s_patchout_t, s_patchout_f, u_patchout) < 0:
            raise ValueError("patchout counts (s_patchout_t, s_patchout_f, u_patchout) must be >= 0")
        if max_time_patches < 1:
            raise ValueError(f"max_time_patches must be >= 1, got {max_time_patches}")
        self.num_classes = num_classes
        self.num_mel_bins = num_mel_bins
        self.patch_size, self.stride = patch_size, stride
        self.distilled = distilled
        self.num_tokens = 2 if distilled else 1
        self.s_patchout_t, self.s_patchout_f, self.u_patchout = s_patchout_t, s_patchout_f, u_patchout
        self.random_time_offset = random_time_offset
        self.freq_patches = (num_mel_bins - patch_size) // stride + 1
        self.max_time_patches = max_time_patches

        self.patch_embed = PatchEmbed(patch_size, stride, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None
        self.new_pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, embed_dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, self.freq_patches, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, max_time_patches))
        self.blocks = vit_blocks(
            depth, embed_dim, num_heads, drop_path=drop_path, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
            norm_eps=norm_eps, backend=backend
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head = nn.Sequential(
            nn.LayerNorm(embed_dim, eps=head_norm_eps), nn.Linear(embed_dim, num_classes)
        )
        self.apply(init_vit_weights)
        for p in (self.cls_token, self.dist_token, self.new_pos_embed,
                  self.freq_new_pos_embed, self.time_new_pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    @property
    def input_frames(self) -> int:
        """The LARGEST input (frames) whose grid has the time table's ``Lt`` columns, i.e. that is
        fed without resampling the time encoding: ``(Lt - 1) * stride + patch + stride - 1`` (1005
        for 99 columns: 10.05 s, so a 10 s clip, 1000 frames, is one window as in hear21passt)."""
        return (self.max_time_patches - 1) * self.stride + self.patch_size + self.stride - 1

    @property
    def contract(self) -> ModelContract:
        """Fixed grid of :attr:`input_frames`; native clip: the whole seconds of the window at
        PasstMel's fixed 10 ms hop (1000 frames = the reference's 10 s clips)."""
        window = self.input_frames
        return ModelContract(
            family="passt",
            input_kind="grid",
            num_classes=self.num_classes,
            num_mel_bins=self.num_mel_bins,
            input_frames=window,
            native_frames=window - window % 100 if window >= 100 else window,
            min_frames=self.patch_size,
            num_blocks=len(self.blocks),
            prefix_tokens=self.num_tokens,
            logits_in_embedding=True,
            grid_tokens=math.prod(self.grid_size(window)),
        )

    def grid_size(self, num_frames: int) -> tuple[int, int]:
        """Patch grid ``(F', T')`` of a ``[num_mel_bins, num_frames]`` spectrogram."""
        return self.freq_patches, (num_frames - self.patch_size) // self.stride + 1

    def time_positions(self, num_cols: int) -> torch.Tensor:
        """Time encoding ``[1, D, 1, num_cols]`` for ``num_cols`` patch columns (see module doc)."""
        table = self.time_new_pos_embed
        lt = table.shape[-1]
        if num_cols > lt:
            res = resample_1d(table[0, :, 0].t(), num_cols)  # [num_cols, D]
            return res.t()[None, :, None]
        if self.training and self.random_time_offset and num_cols < lt:
            dev = table.device
            offset = torch.randint(lt - num_cols + 1, (1,), device=dev)
            return table[..., torch.arange(num_cols, device=dev) + offset]
        return table[..., :num_cols]

    def _patchout(self, x: torch.Tensor) -> torch.Tensor:
        """Structured patchout on the grid ``[B, D, F', T']`` (training only)."""
        _, _, f, t = x.shape
        if self.s_patchout_t:
            keep = max(1, t - self.s_patchout_t)
            x = x[..., torch.randperm(t, device=x.device)[:keep].sort().values]
        if self.s_patchout_f:
            keep = max(1, f - self.s_patchout_f)
            x = x[:, :, torch.randperm(f, device=x.device)[:keep].sort().values]
        return x

    def forward_features(
        self, spec: torch.Tensor, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """``spec [B, F, T]`` -> (final-normed tokens ``[B, n_tok + N, D]``, requested block outputs).

        ``N = F' * T'`` in eval; fewer tokens in training with patchout.
        """
        if spec.ndim == 4 and spec.shape[1] == 1:
            spec = spec[:, 0]
        if spec.ndim != 3:
            raise ValueError(f"PaSST expects spectrograms [B, F, T], got shape {tuple(spec.shape)}")
        b, f, t = spec.shape
        if f != self.num_mel_bins:
            raise ValueError(
                f"PaSST was built for {self.num_mel_bins} mel bins, got spectrograms with {f}; "
                "use the model's front end (PasstMel) or a matching num_mel_bins"
            )
        if t < self.patch_size:
            raise ValueError(
                f"PaSST needs at least {self.patch_size} frames, got {t}; pad the audio or the "
                "spectrogram to at least one patch"
            )
        depth = len(self.blocks)
        for i in return_layers:
            if not -depth <= i < depth:
                raise ValueError(f"return_layers: block {i} out of range for depth {depth}")
        x = self.patch_embed(spec.unsqueeze(1))  # [B, D, F', T']
        x = x + self.time_positions(x.shape[-1])
        x = x + self.freq_new_pos_embed
        if self.training:
            x = self._patchout(x)
        x = x.flatten(2).transpose(1, 2)  # [B, F'T', D], frequency-major
        if self.training and self.u_patchout:
            n = x.shape[1]
            keep = max(1, n - self.u_patchout)
            x = x[:, torch.randperm(n, device=x.device)[:keep].sort().values]
        tokens = [self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:2])
        x = torch.cat([*tokens, x], dim=1)
        wanted = {i % depth for i in return_layers}
        hidden: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in wanted:
                hidden[i] = x
        return self.norm(x), tuple(hidden[i % depth] for i in return_layers)

    def forward_head(self, features: torch.Tensor) -> AudioOutput:
        """Normed tokens ``[B, N, D]`` -> ``AudioOutput`` (``clip_logits [B, C]``, ``embedding [B, D]``)."""
        emb = (features[:, 0] + features[:, 1]) / 2 if self.distilled else features[:, 0]
        return AudioOutput(clip_logits=self.head(emb), embedding=emb)


def build_passt(**kwargs: object) -> PaSST:
    """Builder used by the registry (plain kwargs)."""
    return PaSST(**kwargs)  # type: ignore[arg-type]


_VARIANTS = {
    "passt_tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "passt_small": dict(embed_dim=384, depth=12, num_heads=6),
    "passt_base": dict(embed_dim=768, depth=12, num_heads=12),
}

for _name, _args in _VARIANTS.items():
    register_model(
        _name,
        build_passt,
        frontend=PasstMelConfig,
        description=(
            f"PaSST ({_args['embed_dim']}-d, {_args['depth']} blocks): factorized freq/time "
            "positions, patchout; 32 kHz PaSST log-mel"
            + (" (= passt_s_swa_p16_128_ap476 layout)" if _name == "passt_base" else "")
        ),
        num_classes=527,
        **_args,
    )
