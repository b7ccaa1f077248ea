"""The transformer block on packed tokens equals the block on each clip alone."""

from __future__ import annotations

import pytest
import torch

from audioflex.layers.attention import SeqInfo
from audioflex.layers.block import Block


@pytest.mark.parametrize("backend", ["loop", "dense"])
def test_packed_rows_equal_per_clip_rows(backend: str) -> None:
    torch.manual_seed(0)
    block = Block(16, 2, backend=backend).eval()
    lengths = [5, 3, 7]
    clips = [torch.randn(n, 16) for n in lengths]
    packed = torch.cat(clips)  # [N_total, D]
    info = SeqInfo.from_lengths(lengths)
    with torch.no_grad():
        out = block(packed, info)
        alone = [block(c[None])[0] for c in clips]  # [1, n, D] each
        one_sequence = block(packed[None])[0]  # all tokens attending to each other
    assert out.shape == packed.shape
    for rows, ref in zip(torch.split(out, lengths), alone):
        assert torch.allclose(rows, ref, atol=1e-5)
    assert not torch.allclose(out, one_sequence, atol=1e-3)  # the segments really are separated
