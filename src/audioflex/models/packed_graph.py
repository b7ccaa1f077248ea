"""ElasticAST in tensor-only form: the packed model with its segment layout as tensors.

:class:`PackedGraph` computes what ``ElasticAST.forward(batch)`` computes (eval mode) from four
tensors and no host integers, so a tracer (ONNX export) records one graph that serves any token
count, any number of clips and any clip lengths:

- ``patches [N, P]`` float: the flat tokens of all clips, clip after clip (no padding segment);
- ``coords [N, 2]`` int64: (frequency row, time column) of each token in its clip;
- ``segment_ids [N]`` int64: the clip of each token (0 .. B-1);
- ``grid_sizes [B, 2]`` int64: each clip's patch grid ``(F', T')``.

Differences from the packed torch path (same numbers within float rounding):

- attention is one SDPA call with the block-diagonal mask ``seg[:, None] == seg[None, :]`` (the
  ``dense`` backend) instead of one call per segment;
- position tables are resampled per token: a clip whose grid exceeds a table reads it at the
  fractional index ``t * (L - 1) / (T' - 1)`` with linear interpolation, which is what
  ``F.interpolate(mode="linear", align_corners=True)`` computes (:func:`~audioflex.layers.pos_embed.resample_1d`);
- pooling and the frame head use one-hot clip/column membership matrices instead of index_add.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from audioflex.models.ast import ElasticAST


def _table_lookup(table: torch.Tensor, index: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Rows ``[N, D]`` of a position table ``[L, D]`` at integer ``index [N]`` of a grid with
    ``size [N]`` rows per token: direct for ``size <= L``, else linearly resampled to ``size``."""
    n_rows = table.shape[0]
    last = n_rows - 1
    longer = size > n_rows
    scale = torch.where(
        longer, last / (size - 1).clamp(min=1).to(table.dtype), torch.ones_like(size, dtype=table.dtype)
    )
    pos = index.to(table.dtype) * scale
    lo = torch.where(longer, pos.floor().long(), index).clamp(0, last)
    hi = (lo + 1).clamp(max=last)
    w = torch.where(longer, pos - lo.to(table.dtype), torch.zeros_like(pos))[:, None]
    return table[lo] * (1 - w) + table[hi] * w


class PackedGraph(nn.Module):
    """Tensor-only view of an :class:`~audioflex.models.ast.ElasticAST` (shares its weights, eval only).

    ``forward(patches [N, P], coords [N, 2], segment_ids [N], grid_sizes [B, 2])`` ->
    ``(clip_logits [B, C], embedding [B, D])``, plus ``frame_logits [B, T'_max, C]`` (FRAME_PAD past
    each clip's last column) when the model has a frame head.
    """

    def __init__(self, model: ElasticAST) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, patches: torch.Tensor, coords: torch.Tensor, segment_ids: torch.Tensor, grid_sizes: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        m = self.model
        if m.training:
            raise RuntimeError("PackedGraph is the inference form of ElasticAST; call model.eval() first")
        seg = segment_ids.long()
        sizes = grid_sizes.long()[seg]  # [N, 2] the grid of each token's clip
        x = m.patch_embed(patches)
        x = x + _table_lookup(m.pos_embed_freq, coords[:, 0], sizes[:, 0])
        x = x + _table_lookup(m.pos_embed_time, coords[:, 1], sizes[:, 1])
        mask = seg[:, None] == seg[None, :]
        for blk in m.blocks:
            x = x + blk.attn.masked(blk.norm1(x), mask)
            x = x + blk.mlp(blk.norm2(x))
        x = m.norm(x)
        clips = torch.arange(grid_sizes.shape[0], device=x.device)
        member = clips[:, None] == seg[None, :]  # [B, N]
        emb = self._attention_pool(x, member) if m.pool is not None else self._mean_pool(x, member)
        clip_logits = m.head(m.head_norm(emb))
        if not m.has_frame_head:
            return clip_logits, emb
        return clip_logits, emb, self._frames(x, coords.long(), seg, grid_sizes.long()[:, 1])

    def _mean_pool(self, x: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        w = member.to(x.dtype)
        return (w @ x) / w.sum(1, keepdim=True).clamp(min=1)

    def _attention_pool(self, x: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        pool = self.model.pool
        assert pool is not None
        n, d = x.shape
        h, dh = pool.num_heads, pool.head_dim
        q = pool.q(pool.query).view(h, dh)
        k, v = pool.kv(x).view(n, 2, h, dh).unbind(1)  # [N, H, Dh]
        scores = (k * q).sum(-1) * pool.scale  # [N, H]
        scores = scores[None].masked_fill(~member[..., None], float("-inf"))  # [B, N, H]
        w = torch.softmax(scores, dim=1)
        pooled = torch.einsum("bnh,nhd->bhd", w, v)
        return pool.proj(pooled.reshape(-1, d))

    def _frames(self, x: torch.Tensor, coords: torch.Tensor, seg: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Frame logits ``[B, K * T'_max, C]`` from tokens ``[N, D]`` at ``coords [N, 2]`` (row, column):
        the frame head on column means (``frame_pool="mean"``) or on the rows side by side, ``K =
        frame_substeps`` steps per column."""
        m = self.model
        b = cols.shape[0]
        t_max = cols.max()
        column = seg * t_max + coords[:, 1]  # clip * T'_max + column
        if m.frame_pool == "rows":
            rows = m.freq_rows
            slots = torch.arange(b * t_max * rows, device=x.device)
            onehot = (slots[:, None] == (column * rows + coords[:, 0])[None, :]).to(x.dtype)  # [B*T'*R, N]
            logits = m.frame_fc((onehot @ m.frame_norm(x)).view(b * t_max, -1))  # [B * T'_max, K * C]
        else:
            slots = torch.arange(b * t_max, device=x.device)
            onehot = (slots[:, None] == column[None, :]).to(x.dtype)  # [B * T'_max, N]
            col = (onehot @ x) / onehot.sum(1, keepdim=True).clamp(min=1)
            logits = m.frame_fc(m.frame_norm(col))  # [B * T'_max, K * C]
        k = m.frame_substeps
        logits = logits.view(b, -1, m.num_classes)  # [B, T'_max * K, C]: column t, step j -> t * K + j
        valid = torch.arange(logits.shape[1], device=x.device)[None, :] < (cols * k)[:, None]  # [B, K * T'_max]
        return logits.masked_fill(~valid[..., None], m.FRAME_PAD)
