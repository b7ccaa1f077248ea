"""Pooling heads over packed tokens: per-clip softmax, attention pooling and mean pooling per clip."""

from __future__ import annotations

import torch

from audioflex.layers.attention import SeqInfo
from audioflex.models.heads import AttentionPool, segment_mean, segment_softmax


def test_segment_softmax_sums_to_one_per_clip() -> None:
    torch.manual_seed(0)
    seg = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    scores = 10 * torch.randn(len(seg), 3)  # [N, H]
    w = segment_softmax(scores, seg, 3)
    assert w.shape == scores.shape and torch.all(w > 0)
    sums = torch.zeros(3, 3).index_add_(0, seg, w)
    assert torch.allclose(sums, torch.ones(3, 3), atol=1e-6)
    # within a clip it is the ordinary softmax
    assert torch.allclose(w[3:5], torch.softmax(scores[3:5], 0), atol=1e-6)


def test_attention_pool_clips_are_independent() -> None:
    torch.manual_seed(0)
    pool = AttentionPool(8, 2).eval()
    lengths = [4, 6, 3]
    x = torch.randn(sum(lengths), 8)
    info = SeqInfo.from_lengths(lengths)
    with torch.no_grad():
        out = pool(x, info, 3)
        y = x.clone()
        y[4:10] = torch.randn(6, 8)  # new tokens for clip 2
        out2 = pool(y, info, 3)
        alone = pool(x[:4], SeqInfo.from_lengths([4]), 1)
    assert out.shape == (3, 8)
    assert torch.allclose(out[0], out2[0], atol=1e-6) and torch.allclose(out[2], out2[2], atol=1e-6)
    assert not torch.allclose(out[1], out2[1], atol=1e-3)
    assert torch.allclose(out[0], alone[0], atol=1e-6)


def test_pooling_ignores_a_trailing_padding_segment() -> None:
    torch.manual_seed(0)
    pool = AttentionPool(8, 2).eval()
    x = torch.randn(9, 8)
    padded = SeqInfo.from_lengths([3, 2, 4])  # the last segment is padding
    with torch.no_grad():
        out = pool(x, padded, 2)
        x2 = x.clone()
        x2[5:] = 100.0
        assert torch.allclose(out, pool(x2, padded, 2), atol=1e-6)
    mean = segment_mean(x, padded, 2)
    assert torch.allclose(mean, torch.stack([x[:3].mean(0), x[3:5].mean(0)]), atol=1e-6)
