"""Sequence packing: spectrograms of many clips -> one flat token sequence (the varlen layout).

Data flow: ``[F, T]`` spectrograms -> ``patchify`` -> token-budget planning (first-fit-decreasing)
-> ``collate_packed`` -> :class:`PackedBatch` -> model -> per-clip outputs -> ``unpack``.

Everything here runs in the data pipeline (DataLoader workers), never inside a model's
``forward``: a ``PackedBatch`` carries all host-side integers the attention kernels need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from audioflex.layers.attention import SeqInfo


def grid_size(num_mel_bins: int, num_frames: int, patch: int = 16, stride: int | None = None) -> tuple[int, int]:
    """Patch-grid size ``(F', T')`` of a ``[F, T]`` spectrogram.

    Non-overlapping (``stride`` None or == patch): inputs are zero-padded up to a multiple of the
    patch, so any length >= 1 frame gives at least one patch column. Strided (AST): the
    convolution grid ``(L - patch) // stride + 1``, with inputs shorter than a patch padded to it.
    """
    stride = stride or patch
    if stride == patch:
        return math.ceil(num_mel_bins / patch), max(1, math.ceil(num_frames / patch))
    f = (max(num_mel_bins, patch) - patch) // stride + 1
    t = (max(num_frames, patch) - patch) // stride + 1
    return f, t


def num_tokens(num_mel_bins: int, num_frames: int, patch: int = 16, stride: int | None = None) -> int:
    """Tokens a ``[F, T]`` spectrogram gives."""
    f, t = grid_size(num_mel_bins, num_frames, patch, stride)
    return f * t


def patchify(
    spec: torch.Tensor, patch: int = 16, stride: int | None = None, pad_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Cut a spectrogram into patches.

    Args:
        spec: ``[F, T]`` (normalised log-mel; ``pad_value`` fills missing frames/bins).
        patch: patch side.
        stride: patch stride (None = non-overlapping, as ElasticAST; 10 for AST).

    Returns:
        patches ``[N, patch*patch]`` (each patch flattened row-major as (bin, frame)), coords
        ``[N, 2]`` int64 (frequency row, time column), and the grid ``(F', T')``. Tokens are in
        frequency-major order (index ``f * T' + t``), as AST and ElasticAST.
    """
    if spec.ndim != 2:
        raise ValueError(f"patchify expects a [F, T] spectrogram, got shape {tuple(spec.shape)}")
    stride = stride or patch
    fb, fr = spec.shape
    gf, gt = grid_size(fb, fr, patch, stride)
    need_f = (gf - 1) * stride + patch
    need_t = (gt - 1) * stride + patch
    if need_f > fb or need_t > fr:
        spec = F.pad(spec, (0, max(0, need_t - fr), 0, max(0, need_f - fb)), value=pad_value)
    spec = spec[:need_f, :need_t]
    if stride == patch:
        patches = spec.reshape(gf, patch, gt, patch).permute(0, 2, 1, 3).reshape(gf * gt, patch * patch)
    else:
        patches = spec.unfold(0, patch, stride).unfold(1, patch, stride).reshape(gf * gt, patch * patch)
    ff, tt = torch.meshgrid(torch.arange(gf), torch.arange(gt), indexing="ij")
    coords = torch.stack([ff.reshape(-1), tt.reshape(-1)], dim=1)
    return patches, coords, (gf, gt)


def plan_batches(
    token_counts: Sequence[int], max_tokens: int, *, max_clips: int | None = None, sort: bool = True
) -> list[list[int]]:
    """Group clips into batches of at most ``max_tokens`` tokens.

    ``sort=True``: first-fit-decreasing (clips by decreasing size, each into the first batch with
    room), which fills batches almost completely. ``sort=False``: the reference's greedy
    in-order rows. A clip larger than the budget gets a batch of its own (it is never cropped
    here; training crops it before planning). Returns lists of clip indices; within a batch clips
    keep their input order.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    order = sorted(range(len(token_counts)), key=lambda i: -token_counts[i]) if sort else range(len(token_counts))
    batches: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = int(token_counts[i])
        if not sort:
            if batches and n <= room[-1] and (max_clips is None or len(batches[-1]) < max_clips):
                batches[-1].append(i)
                room[-1] -= n
            else:
                batches.append([i])
                room.append(max_tokens - n)
            continue
        for b, r in enumerate(room):
            if n <= r and (max_clips is None or len(batches[b]) < max_clips):
                batches[b].append(i)
                room[b] -= n
                break
        else:
            batches.append([i])
            room.append(max_tokens - n)
    return [sorted(b) for b in batches]


@dataclass
class PackedBatch:
    """Tokens of several clips in one flat sequence (the varlen layout).

    Attributes:
        patches: ``[N_total, P]`` flattened patches of all clips, clip after clip.
        coords: ``[N_total, 2]`` int64 (frequency row, time column) of each token in its clip.
        info: segment boundaries (``cu_seqlens`` tensor and tuple, ``max_seqlen``, segment ids).
            With ``pad_to``, a trailing padding segment makes ``N_total`` fixed; it is not a clip.
        grid_sizes: per clip ``(F', T')`` patch grid (host ints).
        index: per clip, its position in the caller's list (dataset order).
        targets: optional ``[B, C]`` (or ``[B]``) targets in batch order.
        frame_shift_ms: per clip frame shift, when known (for frame-wise outputs).
    """

    patches: torch.Tensor
    coords: torch.Tensor
    info: SeqInfo
    grid_sizes: tuple[tuple[int, int], ...]
    index: tuple[int, ...]
    targets: torch.Tensor | None = None
    frame_shift_ms: tuple[float, ...] | None = None

    @property
    def num_clips(self) -> int:
        return len(self.index)

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return self.info.cu_seqlens_list[self.num_clips]

    @property
    def cu_seqlens(self) -> torch.Tensor:
        return self.info.cu_seqlens

    @property
    def max_seqlen(self) -> int:
        return self.info.max_seqlen

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PackedBatch:
        """Copy every tensor to ``device`` (host ints are kept)."""

        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        info = replace(
            self.info,
            cu_seqlens=mv(self.info.cu_seqlens),
            segment_ids=mv(self.info.segment_ids),
            block_mask=None,
        )
        return replace(self, patches=mv(self.patches), coords=mv(self.coords), info=info, targets=mv(self.targets))

    def pin_memory(self) -> PackedBatch:
        """Pinned copy (``DataLoader(pin_memory=True)`` calls this)."""
        info = replace(
            self.info, cu_seqlens=self.info.cu_seqlens.pin_memory(), segment_ids=self.info.segment_ids.pin_memory()
        )
        t = self.targets.pin_memory() if self.targets is not None else None
        return replace(self, patches=self.patches.pin_memory(), coords=self.coords.pin_memory(), info=info, targets=t)


def random_crop_frames(spec: torch.Tensor, max_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``max_frames``-long crop of ``[F, T]`` along time (unchanged when short enough)."""
    t = spec.shape[-1]
    if t <= max_frames:
        return spec
    start = int(torch.randint(0, t - max_frames + 1, (1,), generator=generator))
    return spec[..., start : start + max_frames]


def collate_packed(
    specs: Sequence[torch.Tensor],
    *,
    patch: int = 16,
    targets: torch.Tensor | Sequence[torch.Tensor] | None = None,
    index: Sequence[int] | None = None,
    max_tokens: int | None = None,
    train: bool = False,
    pad_to: int | None = None,
    pad_value: float = 0.0,
    frame_shift_ms: Sequence[float] | None = None,
    generator: torch.Generator | None = None,
) -> PackedBatch:
    """Build one :class:`PackedBatch` from ``[F, T_i]`` spectrograms (a DataLoader ``collate_fn``
    core; wrap it with ``functools.partial``).

    In training (``train=True``) a clip with more than ``max_tokens`` tokens is randomly cropped in
    time to fit; at inference it is kept whole (never silently cropped). ``pad_to`` appends a
    padding segment so the batch has exactly that many tokens (static shapes for compilers).
    """
    if len(specs) == 0:
        raise ValueError("collate_packed needs at least one clip")
    all_patches, all_coords, grids, lengths = [], [], [], []
    for spec in specs:
        if train and max_tokens is not None:
            fgrid = math.ceil(spec.shape[0] / patch)
            max_cols = max(1, max_tokens // max(fgrid, 1))
            spec = random_crop_frames(spec, max_cols * patch, generator)
        p, c, g = patchify(spec, patch, None, pad_value)
        all_patches.append(p)
        all_coords.append(c)
        grids.append(g)
        lengths.append(p.shape[0])
    total = sum(lengths)
    seg_lengths = list(lengths)
    if pad_to is not None and pad_to > total:
        n_pad = pad_to - total
        all_patches.append(all_patches[0].new_full((n_pad, all_patches[0].shape[1]), pad_value))
        all_coords.append(torch.zeros(n_pad, 2, dtype=torch.long))
        seg_lengths.append(n_pad)
    if targets is not None and not isinstance(targets, torch.Tensor):
        targets = torch.stack([torch.as_tensor(t) for t in targets])
    return PackedBatch(
        patches=torch.cat(all_patches),
        coords=torch.cat(all_coords),
        info=SeqInfo.from_lengths(seg_lengths),
        grid_sizes=tuple(grids),
        index=tuple(index) if index is not None else tuple(range(len(specs))),
        targets=targets,
        frame_shift_ms=tuple(frame_shift_ms) if frame_shift_ms is not None else None,
    )


def pack(
    specs: Sequence[torch.Tensor],
    max_tokens: int = 2048,
    *,
    patch: int = 16,
    sort: bool = True,
    max_clips: int | None = None,
    pad_value: float = 0.0,
) -> list[PackedBatch]:
    """Plan and build packed batches for inference over ``[F, T_i]`` spectrograms.

    Each batch's ``index`` refers to positions in ``specs``; use :func:`unpack` to restore order.
    """
    counts = [num_tokens(s.shape[0], s.shape[1], patch) for s in specs]
    plan = plan_batches(counts, max_tokens, max_clips=max_clips, sort=sort)
    return [collate_packed([specs[i] for i in b], patch=patch, index=b, pad_value=pad_value) for b in plan]


def unpack(outputs: Sequence[torch.Tensor], batches: Sequence[PackedBatch]) -> torch.Tensor:
    """Per-batch per-clip outputs ``[B_k, ...]`` -> one tensor ``[sum B_k, ...]`` in clip order."""
    if len(outputs) != len(batches):
        raise ValueError(f"{len(outputs)} outputs for {len(batches)} batches")
    n = sum(b.num_clips for b in batches)
    first = outputs[0]
    out = first.new_empty((n, *first.shape[1:]))
    for o, b in zip(outputs, batches):
        out[torch.tensor(b.index, device=o.device)] = o[: b.num_clips]
    return out


def packing_fill(batches: Sequence[PackedBatch], max_tokens: int) -> float:
    """Fraction of the token budget used by real tokens over ``batches``."""
    return sum(b.num_tokens for b in batches) / (max_tokens * len(batches)) if batches else 0.0
