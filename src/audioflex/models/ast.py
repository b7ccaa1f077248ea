"""AST (fixed grid, overlapping patches) and ElasticAST (packed, any length), sharing ViT blocks.

- ``AST``: input ``[B, F, T]`` normalised fbank; conv patch embed 16x16 stride 10; CLS + distillation
  tokens; 2D position grid (resampled when the input grid differs from the configured one); head
  on the mean of the two tokens. REFERENCE.md §1.
- ``ElasticAST``: input a :class:`~audioflex.packing.PackedBatch` of non-overlapping 16x16 patches
  of clips of any length; factorized frequency/time position tables (resampled for longer clips,
  so there is no maximum length); block-diagonal attention; per-clip masked attention pooling (or
  mean); token dropping in training. REFERENCE.md §2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from audioflex.layers.attention import SeqInfo
from audioflex.layers.block import head_init_, init_xavier_weights, small_init_
from audioflex.layers.patch import PatchConv
from audioflex.layers.pos_embed import factorized_positions, resample_grid
from audioflex.models.contract import ModelContract, check_pool
from audioflex.models.heads import AttentionPool, segment_mean
from audioflex.models.outputs import AudioOutput
from audioflex.models.packed_graph import PackedGraph
from audioflex.models.registry import register_model
from audioflex.models.vit import PrefixTokenGridModel, vit_blocks
from audioflex.packing import PackedBatch


class AST(PrefixTokenGridModel):
    """Audio Spectrogram Transformer on a fixed grid.

    ``forward(spec [B, F, T], frames [B] | None = None, return_layers=()) -> AudioOutput``. The
    configured ``(num_mel_bins, max_length)`` defines the position grid; other input sizes
    resample it bilinearly (the classic AST practice is to crop/pad to ``max_length``, which the
    front end and the pipeline do). ``frames`` (valid frames per row) are accepted for the common
    grid-model signature and ignored: AST reads the padded grid, as the reference does
    (``forward`` and ``pool_hidden``: :class:`~audioflex.models.vit.PrefixTokenGridModel`).
    """

    num_tokens = 2  # CLS + distillation

    def __init__(
        self,
        *,
        num_classes: int = 527,
        num_mel_bins: int = 128,
        max_length: int = 1024,
        patch_size: int = 16,
        stride: int = 10,
        time_stride: int | None = None,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        head_norm_eps: float = 1e-5,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.patch_size = patch_size
        self.strides = (stride, time_stride or stride)
        self.num_mel_bins, self.max_length = num_mel_bins, max_length
        self.grid = (
            (max(num_mel_bins, patch_size) - patch_size) // self.strides[0] + 1,
            (max(max_length, patch_size) - patch_size) // self.strides[1] + 1,
        )
        self.patch_embed = PatchConv(1, embed_dim, patch_size, self.strides)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 2 + self.grid[0] * self.grid[1], embed_dim))
        self.blocks = vit_blocks(
            depth, embed_dim, num_heads, drop_path=drop_path, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
            norm_eps=norm_eps, backend=backend
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head_norm = nn.LayerNorm(embed_dim, eps=head_norm_eps)
        self.head = nn.Linear(embed_dim, num_classes)
        self.apply(init_xavier_weights)
        small_init_(self.head)
        for p in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)

    def _positions(self, grid: tuple[int, int]) -> torch.Tensor:
        pos = self.pos_embed[0]
        if grid == self.grid:
            return pos
        return torch.cat([pos[:2], resample_grid(pos[2:], self.grid, grid)])

    def forward_features(
        self, spec: torch.Tensor, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """``spec [B, F, T]`` -> (final-normed tokens ``[B, 2 + F'T', D]``, requested block outputs)."""
        if spec.ndim != 3:
            raise ValueError(f"AST expects [B, F, T] spectrograms, got shape {tuple(spec.shape)}")
        b, f, t = spec.shape
        if t < self.patch_size or f < self.patch_size:
            spec = nn.functional.pad(spec, (0, max(0, self.patch_size - t), 0, max(0, self.patch_size - f)))
        x = self.patch_embed(spec.unsqueeze(1))  # [B, D, F', T']
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1)], dim=1)
        x = torch.cat([tokens, x], dim=1) + self._positions(grid)
        hidden = []
        wanted = set(return_layers)
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in wanted:
                hidden.append(x)
        order = {i: h for i, h in zip(sorted(wanted), hidden)}
        return self.norm(x), tuple(order[i] for i in return_layers)

    def forward_head(self, features: torch.Tensor) -> AudioOutput:
        """Normed tokens ``[B, N, D]`` -> ``AudioOutput`` (``clip_logits [B, C]``, ``embedding
        [B, D]`` = the mean of the CLS and distillation tokens)."""
        emb = (features[:, 0] + features[:, 1]) / 2
        return AudioOutput(clip_logits=self.head(self.head_norm(emb)), embedding=emb)

    @property
    def contract(self) -> ModelContract:
        """Fixed grid of ``max_length`` frames, CLS + distillation tokens, no frame head."""
        return ModelContract(
            family="ast",
            input_kind="grid",
            num_classes=self.num_classes,
            num_mel_bins=self.num_mel_bins,
            input_frames=self.max_length,
            native_frames=self.max_length,
            num_blocks=len(self.blocks),
            prefix_tokens=2,
            grid_tokens=self.grid[0] * self.grid[1],
        )


FRAME_POOLS = ("mean", "rows")


class ElasticAST(nn.Module):
    """ElasticAST on packed clips of any length and frame shift.

    ``forward(batch: PackedBatch, return_layers=()) -> AudioOutput`` with one row per clip of the
    batch (in the batch's order; ``batch.index`` maps rows to the caller's clips).

    With ``frame_head=True`` the model also has a frame-wise (token-semantic) head over its time
    columns, giving ``frame_logits [B, T'_max, C]`` (``T'_max`` = the longest clip's column count;
    columns past a clip's end hold :attr:`FRAME_PAD` = -1e4, i.e. probability 0). ``frame_pool``
    says how a column's tokens (one per frequency row) become its logits: ``"mean"`` averages them,
    then ``LayerNorm -> Linear(D, C)``; ``"rows"`` normalises each token (``LayerNorm``), sets the
    ``R`` rows side by side (a dropped token's row is zeros) and applies ``Linear(R * D, C)``, so
    each frequency row has its own weights (as HTS-AT's token-semantic head and CRNNs keep
    frequency). The clip logits still come from the pooling head. ``frame_substeps = K`` gives
    each column ``K`` frame steps (the head's ``Linear`` has ``K * C`` outputs, read as ``K``
    consecutive steps of ``C`` logits), so ``frame_logits`` is ``[B, K * T'_max, C]`` with one step
    per ``patch_size / K`` front-end frames (``K = 4``: 40 ms at 10 ms shift instead of 160 ms).
    The model does not know the front end's frame shift, so ``frame_hop_s`` is
    ``patch_size / K * shift`` only when the batch carries ``frame_shift_ms`` (one value for all
    clips), else None (inference code sets it).
    Train the frame head from clip labels (pooled frame logits) or strong labels with
    ``audioflex.train.losses.sed_loss``.
    """

    FRAME_PAD = -1.0e4

    @property
    def freq_rows(self) -> int:
        """Token rows per column (the frequency position table's length)."""
        return int(self.pos_embed_freq.shape[0])

    def __init__(
        self,
        *,
        num_classes: int = 527,
        num_mel_bins: int = 128,
        patch_size: int = 16,
        max_time_patches: int = 64,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        token_drop: float = 0.1,
        pool: str = "attn",
        attn_scale: float | None = None,
        norm_eps: float = 1e-6,
        backend: str = "auto",
        frame_head: bool = False,
        frame_pool: str = "mean",
        frame_substeps: int = 1,
    ) -> None:
        super().__init__()
        if pool not in ("attn", "mean"):
            raise ValueError(f"pool must be 'attn' or 'mean', got {pool!r}")
        if frame_pool not in FRAME_POOLS:
            raise ValueError(f"frame_pool must be one of {', '.join(FRAME_POOLS)}, got {frame_pool!r}")
        if not (isinstance(frame_substeps, int) and frame_substeps >= 1 and patch_size % frame_substeps == 0):
            raise ValueError(
                f"frame_substeps must be a whole divisor of patch_size={patch_size} (1, 2, 4, ...), "
                f"got {frame_substeps!r}"
            )
        if not 0.0 <= token_drop < 1.0:
            raise ValueError(f"token_drop must be in [0, 1), got {token_drop}")
        self.num_classes = num_classes
        self.patch_size = patch_size
        self.num_mel_bins = num_mel_bins
        self.token_drop = token_drop
        self.pool_kind = pool
        self.patch_embed = nn.Linear(patch_size * patch_size, embed_dim)
        self.pos_embed_freq = nn.Parameter(torch.zeros(-(-num_mel_bins // patch_size), embed_dim))
        self.pos_embed_time = nn.Parameter(torch.zeros(max_time_patches, embed_dim))
        self.blocks = vit_blocks(
            depth, embed_dim, num_heads, drop_path=drop_path, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
            norm_eps=norm_eps, attn_scale=attn_scale, backend=backend
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.pool = (
            AttentionPool(embed_dim, num_heads, qkv_bias=True, attn_scale=attn_scale) if pool == "attn" else None
        )
        self.head_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head = nn.Linear(embed_dim, num_classes)
        self.has_frame_head = bool(frame_head)
        self.frame_pool = frame_pool
        self.frame_substeps = frame_substeps
        if self.has_frame_head:
            self.frame_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
            width = embed_dim * (self.freq_rows if frame_pool == "rows" else 1)
            self.frame_fc = nn.Linear(width, num_classes * frame_substeps)
        self.apply(init_xavier_weights)
        if self.pool is not None:
            self.pool.reset_parameters()
        head_init_(self.head)
        if self.has_frame_head:
            head_init_(self.frame_fc)
        nn.init.trunc_normal_(self.pos_embed_freq, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_time, std=0.02)

    def drop_tokens(
        self, x: torch.Tensor, coords: torch.Tensor, info: SeqInfo, num_clips: int
    ) -> tuple[torch.Tensor, torch.Tensor, SeqInfo]:
        """Keep a random ``1 - token_drop`` share (at least one) of each clip's tokens."""
        cu = info.cu_seqlens_list
        keep_idx, kept = [], []
        for i in range(num_clips):
            n = cu[i + 1] - cu[i]
            k = max(1, int(n * (1.0 - self.token_drop)))
            perm = torch.randperm(n, device=x.device)[:k].sort().values + cu[i]
            keep_idx.append(perm)
            kept.append(k)
        idx = torch.cat(keep_idx)
        return x[idx], coords[idx], SeqInfo.from_lengths(kept, device=x.device)

    def forward_features(
        self, batch: PackedBatch, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, SeqInfo, tuple[torch.Tensor, ...]]:
        """Packed batch -> (normed tokens ``[N_total, D]``, their SeqInfo, requested block outputs)."""
        tokens, _, info, hidden = self._encode(batch, return_layers)
        return tokens, info, hidden

    def _encode(
        self, batch: PackedBatch, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, torch.Tensor, SeqInfo, tuple[torch.Tensor, ...]]:
        """:meth:`forward_features` plus the coords ``[N_kept, 2]`` of the kept tokens."""
        x = self.patch_embed(batch.patches)
        x = x + factorized_positions(
            self.pos_embed_freq, self.pos_embed_time, batch.coords, batch.grid_sizes, batch.info.cu_seqlens_list
        )
        info, coords = batch.info, batch.coords
        if self.training and self.token_drop > 0:
            x, coords, info = self.drop_tokens(x, coords, info, batch.num_clips)
        wanted = set(return_layers)
        hidden = {}
        for i, blk in enumerate(self.blocks):
            x = blk(x, info)
            if i in wanted:
                hidden[i] = x
        return self.norm(x), coords, info, tuple(hidden[i] for i in return_layers)

    def forward_frames(
        self, tokens: torch.Tensor, coords: torch.Tensor, info: SeqInfo, grid_sizes: Sequence[tuple[int, int]]
    ) -> torch.Tensor:
        """Token-semantic frame head: normed tokens ``[N, D]`` with their coords ``[N, 2]`` ->
        frame logits ``[B, K * T'_max, C]`` (``K = frame_substeps`` steps per column;
        :attr:`FRAME_PAD` past each clip's last column).

        Index ops only (no host syncs): a token of clip ``b`` at time column ``t`` goes to the
        flat column ``offset[b] + t``; columns are averaged over their (kept) tokens, or (``"rows"``)
        the token of row ``f`` fills the ``f``-th ``D`` slice of its column.
        """
        if not self.has_frame_head:
            raise RuntimeError("this ElasticAST has no frame head; build it with frame_head=True")
        num_clips = len(grid_sizes)
        cols = [int(g[1]) for g in grid_sizes]
        t_max = max(cols)
        offsets = [0]
        for c in cols[:-1]:
            offsets.append(offsets[-1] + c)
        dev = tokens.device
        n_real = info.cu_seqlens_list[num_clips]  # a padding segment, if any, comes last
        seg, t, x = info.segment_ids[:n_real], coords[:n_real, 1], tokens[:n_real]
        flat = torch.tensor(offsets, device=dev)[seg] + t  # [N] flat column ids
        total = sum(cols)
        if self.frame_pool == "rows":
            rows, z = self.freq_rows, self.frame_norm(x)
            slots = z.new_zeros(total * rows, z.shape[-1]).index_add_(0, flat * rows + coords[:n_real, 0], z)
            col_logits = self.frame_fc(slots.view(total, rows * z.shape[-1]))  # [sum T'_i, K * C]
        else:
            sums = x.new_zeros(total, x.shape[-1]).index_add_(0, flat, x)
            counts = x.new_zeros(total).index_add_(0, flat, torch.ones_like(flat, dtype=x.dtype))
            col_feat = sums / counts.clamp_min(1)[:, None]  # [sum T'_i, D]
            col_logits = self.frame_fc(self.frame_norm(col_feat))  # [sum T'_i, K * C]
        clip_of_col = torch.repeat_interleave(torch.arange(num_clips), torch.tensor(cols)).to(dev)
        t_of_col = torch.cat([torch.arange(c) for c in cols]).to(dev)
        out = col_logits.new_full((num_clips * t_max, col_logits.shape[-1]), self.FRAME_PAD)
        out = out.index_copy(0, clip_of_col * t_max + t_of_col, col_logits)
        return out.view(num_clips, t_max * self.frame_substeps, self.num_classes)  # column t, step k -> t * K + k

    def forward_head(self, tokens: torch.Tensor, info: SeqInfo, num_clips: int) -> AudioOutput:
        """Normed tokens ``[N_total, D]`` -> ``AudioOutput`` (``clip_logits [B, C]``, pooled
        ``embedding [B, D]``; no frame logits: see :meth:`forward_frames`)."""
        if self.pool is not None:
            emb = self.pool(tokens, info, num_clips)
        else:
            emb = segment_mean(tokens, info, num_clips)
        return AudioOutput(clip_logits=self.head(self.head_norm(emb)), embedding=emb)

    def forward(self, batch: PackedBatch, return_layers: Sequence[int] = ()) -> AudioOutput:
        """``PackedBatch`` -> ``AudioOutput`` (``clip_logits [B, C]``, ``embedding [B, D]``; with
        the frame head also ``frame_logits [B, K * T'_max, C]``, ``K = frame_substeps``)."""
        tokens, coords, info, hidden = self._encode(batch, return_layers)
        out = dataclasses.replace(self.forward_head(tokens, info, batch.num_clips), hidden_states=hidden)
        if not self.has_frame_head:
            return out
        frames = self.forward_frames(tokens, coords, info, batch.grid_sizes)
        shifts = set(batch.frame_shift_ms or ())
        hop = self.frame_step_frames * shifts.pop() / 1000.0 if len(shifts) == 1 else None
        return dataclasses.replace(out, frame_logits=frames, frame_hop_s=hop)

    def pool_hidden(
        self, hidden: torch.Tensor, batch: PackedBatch | None = None, *, pool: str = "tokens"
    ) -> torch.Tensor:
        """A block output (flat packed tokens ``[N_total, D]`` of ``batch``) -> ``[B, D]``: the
        mean of each clip's tokens. ``pool="cls"`` is refused: ElasticAST has no CLS token."""
        check_pool(pool)
        if pool == "cls":
            raise ValueError("ElasticAST has no CLS token; pool its tokens (pool='tokens')")
        if batch is None:
            raise ValueError("ElasticAST.pool_hidden needs the PackedBatch the hidden states come from")
        return segment_mean(hidden, batch.info, batch.num_clips)

    def packed_graph(self) -> nn.Module:
        """The tensor-only inference form (segment layout as tensors; ONNX export):
        :class:`~audioflex.models.packed_graph.PackedGraph`."""
        return PackedGraph(self)

    @property
    def frame_step_frames(self) -> int:
        """Front-end frames per frame-head step: ``patch_size / frame_substeps``."""
        return self.patch_size // self.frame_substeps

    @property
    def contract(self) -> ModelContract:
        """Packed clips of any length; one token column = ``patch_size`` frames; optional frame head."""
        table = int(self.pos_embed_time.shape[0])
        return ModelContract(
            family="elastic_ast",
            input_kind="packed",
            num_classes=self.num_classes,
            num_mel_bins=self.num_mel_bins,
            input_frames=None,
            native_frames=table * self.patch_size,
            column_frames=self.patch_size,
            frame_step_frames=self.frame_step_frames if self.has_frame_head else None,
            num_blocks=len(self.blocks),
        )


def _kaldi_frontend(**kw: object) -> object:
    from audioflex.audio.frontend.kaldi import KaldiFbankConfig

    return KaldiFbankConfig(**kw)


_VIT_SIZES = {
    "tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}

for _size, _kw in _VIT_SIZES.items():
    register_model(
        f"ast_{_size}",
        AST,
        frontend=lambda: _kaldi_frontend(target_length=1024),
        description=f"AST (ViT-{_size[0].upper()}, 16x16 patches stride 10, fixed 1024-frame grid)",
        num_classes=527,
        **_kw,
    )
    register_model(
        f"elastic_ast_{_size}",
        ElasticAST,
        frontend=_kaldi_frontend,
        description=f"ElasticAST (ViT-{_size[0].upper()}, packed, any length and frame shift)",
        num_classes=527,
        **_kw,
    )
