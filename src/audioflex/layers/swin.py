"""Swin Transformer layers: (shifted) window attention with relative position bias, patch merging.

Tokens are ``[B, H * W, C]`` in row-major order of an ``H x W`` grid (H = image rows). Parameter
names follow the Swin / HTS-AT checkpoints (``norm1``, ``attn.qkv``, ``attn.proj``,
``attn.relative_position_bias_table``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``; ``downsample.norm``,
``downsample.reduction``). The relative-position index and the shifted-window mask are
deterministic, so they are non-persistent buffers (not in our checkpoints).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audioflex.layers.mlp import DropPath, Mlp

__all__ = [
    "PatchMerging",
    "SwinBlock",
    "SwinStage",
    "WindowAttention",
    "relative_position_index",
    "shifted_window_mask",
    "window_partition",
    "window_reverse",
]

MASK_VALUE = -100.0  # additive mask between tokens of different shifted regions (as Swin)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B, nW, window * window, C]`` (windows in row-major order)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, (h // window) * (w // window), window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``[B, nW, window * window, C]`` -> ``[B, H, W, C]``."""
    b, c = windows.shape[0], windows.shape[-1]
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """``[window^2, window^2]`` int64 index into a ``(2 window - 1)^2`` relative-bias table."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)  # [2, N]
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # [N, N, 2]
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """Additive mask ``[nW, window^2, window^2]`` for attention in cyclically shifted windows.

    Tokens that wrapped around the grid border must not attend to the others of their window:
    0 inside a region, ``MASK_VALUE`` across regions.
    """
    regions = torch.zeros(1, h, w, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in cuts:
        for ws in cuts:
            regions[:, hs, ws, :] = label
            label += 1
    win = window_partition(regions, window)[0, :, :, 0]  # [nW, N]
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, MASK_VALUE, 0.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias.

    ``forward(x [B, nW, N, C], mask [nW, N, N] | None) -> [B, nW, N, C]``.
    """

    def __init__(
        self, dim: int, window: int, num_heads: int, qkv_bias: bool = True,
        attn_drop: float = 0.0, proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.window, self.num_heads = dim, window, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        self.register_buffer(
            "relative_position_index", relative_position_index(window), persistent=False
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_bias(self) -> torch.Tensor:
        """``[heads, N, N]`` bias added to the attention logits."""
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, nw, n, c = x.shape
        h = self.num_heads
        qkv = self.qkv(x).view(b, nw, n, 3, h, c // h).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)  # [B, nW, H, N, d]
        bias = self.relative_bias().unsqueeze(0)  # [1, H, N, N]
        if mask is not None:
            bias = bias + mask.unsqueeze(1)  # [nW, H, N, N]
        bias = bias.expand(nw, h, n, n).reshape(1, nw * h, n, n).to(q.dtype)
        out = F.scaled_dot_product_attention(
            q.reshape(b, nw * h, n, -1), k.reshape(b, nw * h, n, -1), v.reshape(b, nw * h, n, -1),
            attn_mask=bias, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale,
        )
        out = out.view(b, nw, h, n, c // h).transpose(2, 3).reshape(b, nw, n, c)
        return self.proj_drop(self.proj(out))


class SwinBlock(nn.Module):
    """Pre-norm Swin block on a fixed ``resolution = (H, W)`` grid: ``[B, H*W, C] -> [B, H*W, C]``.

    If the grid is not larger than the window, the window shrinks to the grid and the shift is 0
    (one window covers everything).
    """

    def __init__(
        self, dim: int, resolution: tuple[int, int], num_heads: int, window: int = 8,
        shift: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
        attn_drop: float = 0.0, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        h, w = resolution
        if min(h, w) <= window:
            window, shift = min(h, w), 0
        if h % window or w % window:
            raise ValueError(f"grid {h}x{w} is not divisible by the window size {window}")
        if not 0 <= shift < window:
            raise ValueError(f"shift must be in [0, {window}), got {shift}")
        self.resolution, self.window, self.shift = (h, w), window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        mask = shifted_window_mask(h, w, window, shift) if shift > 0 else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, n, c = x.shape
        if n != h * w:
            raise ValueError(f"SwinBlock expects {h}x{w}={h * w} tokens, got {n}")
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), self.attn_mask)
        y = window_reverse(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, n, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> LayerNorm(4C) -> Linear(4C, 2C, no bias):
    ``[B, H*W, C] -> [B, H/2 * W/2, 2C]``."""

    def __init__(self, dim: int, resolution: tuple[int, int]) -> None:
        super().__init__()
        if resolution[0] % 2 or resolution[1] % 2:
            raise ValueError(f"patch merging needs an even grid, got {resolution}")
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """``depth`` Swin blocks (every second one shifted by ``window // 2``), then optional merging."""

    def __init__(
        self, dim: int, resolution: tuple[int, int], depth: int, num_heads: int, window: int,
        mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
        drop_path: list[float] | float = 0.0, downsample: bool = False,
    ) -> None:
        super().__init__()
        rates = drop_path if isinstance(drop_path, list) else [drop_path] * depth
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim, resolution, num_heads, window, shift=0 if i % 2 == 0 else window // 2,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop, attn_drop=attn_drop,
                drop_path=rates[i],
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim, resolution) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x
