"""Swin layers: window partition round trip, the shifted-window mask, the relative position bias."""

from __future__ import annotations

import pytest
import torch

from audioflex.layers.swin import (
    MASK_VALUE,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


def test_window_partition_reverse_round_trip() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 3)  # [B, H, W, C]
    win = window_partition(x, 4)
    assert win.shape == (2, 6, 16, 3)  # 2 x 3 windows of 4 x 4 tokens
    # row-major windows, each row-major inside: window 1 is rows 0..3, columns 4..7
    assert torch.equal(win[:, 1], x[:, :4, 4:8].reshape(2, 16, 3))
    assert torch.equal(win[:, 3], x[:, 4:8, 0:4].reshape(2, 16, 3))
    assert torch.equal(window_reverse(win, 4, 8, 12), x)


def test_shifted_window_mask_blocks_cross_region_attention() -> None:
    h = w = 8
    window, shift = 4, 2
    mask = shifted_window_mask(h, w, window, shift)
    assert mask.shape == (4, 16, 16)
    assert torch.all(mask[0] == 0)  # the top-left window holds no wrapped tokens
    assert torch.all(mask.diagonal(dim1=1, dim2=2) == 0)
    # bottom-right window: 2 x 2 regions of 2 x 2 tokens; local token 0 (row 0, col 0) and local
    # token 15 (row 3, col 3) come from different regions
    assert mask[3, 0, 15] == MASK_VALUE and mask[3, 0, 1] == 0 and mask[3, 0, 4] == 0

    torch.manual_seed(0)
    attn = WindowAttention(8, window, num_heads=2).eval()
    x = torch.randn(1, 4, 16, 8)  # [B, nW, N, C]
    y = x.clone()
    y[0, 3, 15] += 5.0  # change a token of another region of the same window
    with torch.no_grad():
        masked = attn(x, mask)[0, 3, 0], attn(y, mask)[0, 3, 0]
        open_ = attn(x)[0, 3, 0], attn(y)[0, 3, 0]
    assert torch.allclose(masked[0], masked[1], atol=1e-6)
    assert not torch.allclose(open_[0], open_[1], atol=1e-3)  # without the mask it does attend


def test_relative_position_bias_shape_and_sharing() -> None:
    window, heads = 3, 2
    idx = relative_position_index(window)
    n = window * window
    assert idx.shape == (n, n) and idx.dtype == torch.int64
    assert int(idx.min()) == 0 and int(idx.max()) == (2 * window - 1) ** 2 - 1
    assert len(set(idx.flatten().tolist())) == (2 * window - 1) ** 2  # every offset occurs

    torch.manual_seed(0)
    attn = WindowAttention(4, window, num_heads=heads)
    bias = attn.relative_bias()
    assert bias.shape == (heads, n, n)
    # pairs with the same offset share a bias: (0,0)->(0,1) and (1,1)->(1,2)
    assert torch.equal(bias[:, 0, 1], bias[:, 4, 5])
    assert torch.equal(bias[:, 0, 0], bias[:, 8, 8])  # the diagonal (offset 0)
    assert not torch.equal(bias[:, 0, 1], bias[:, 1, 0])  # opposite offsets differ
    with pytest.raises(ValueError, match="divisible"):
        WindowAttention(5, window, num_heads=2)
