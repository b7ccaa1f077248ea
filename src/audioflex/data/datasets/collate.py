"""Items -> :class:`Batch`: padding or packing, mixup, frame-target stacking, bad-clip and note bookkeeping."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from audioflex.audio.augment import mixup
from audioflex.data.datasets.items import BadClip, clip_generator
from audioflex.packing import PackedBatch, collate_packed, grid_size


@dataclasses.dataclass
class Batch:
    """A training/evaluation batch.

    Attributes:
        inputs: ``[B, F, T]`` spectrograms (fixed-grid models) or a :class:`PackedBatch`; None
            when every clip of the batch was unreadable, or before :class:`DeviceFrontend` ran.
        targets: ``[B, C]`` float (possibly mixed) or ``[B]`` class indices.
        index: dataset index (seed index for streams) of each clip.
        bad: unreadable clips met while building the batch.
        notes: ``(path, reason)`` of clips used with a warning (truncated, too short).
        num_tokens: real tokens (packed) or ``B * T`` frames (fixed).
        frames: ``[B]`` valid spectrogram frames of each clip (int64).
        frame_targets: ``[B, S, C]`` strong-label targets at the model's frame hop (zeros for
            weak clips), or None.
        frame_mask: ``[B, S]`` bool, real steps of ``frame_targets``.
        strong: ``[B]`` bool, clips whose frame targets are known.
        waves: the ``(wave, target, meta)`` items of a batch whose front end runs on the device.
    """

    inputs: torch.Tensor | PackedBatch | None
    targets: torch.Tensor | None
    index: tuple[int, ...]
    bad: tuple[BadClip, ...] = ()
    num_tokens: int = 0
    frames: torch.Tensor | None = None
    frame_targets: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None
    strong: torch.Tensor | None = None
    waves: tuple[Any, ...] | None = None
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def num_clips(self) -> int:
        return len(self.index)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def mv(t: Any) -> Any:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return dataclasses.replace(
            self,
            inputs=mv(self.inputs),
            targets=mv(self.targets),
            frames=mv(self.frames),
            frame_targets=mv(self.frame_targets),
            frame_mask=mv(self.frame_mask),
            strong=mv(self.strong),
        )


class TrainCollator:
    """Picklable ``collate_fn``: items of a :class:`SpectrogramDataset` -> :class:`Batch`.

    ``packed=True`` builds a :class:`PackedBatch` (``collate_packed``; training crops clips over
    ``max_tokens``); otherwise spectrograms are padded with ``pad_value`` to the longest and
    stacked ``[B, F, T]``. ``mixup_alpha > 0``: each clip is mixed with probability
    ``mixup_prob`` with a random partner of the batch (λ ~ Beta(α, α); targets mixed; every clip
    keeps its own length, see :func:`audioflex.audio.augment.mixup`), seeded by the clips' seeds.
    Mixup is refused for items with frame targets (a partner mixed in at a random offset has no
    aligned frame targets): strong-label training runs without it.

    ``defer=True`` (front end on the device): items are waveforms; the batch carries them in
    ``Batch.waves`` and :meth:`build` is called later by :class:`DeviceFrontend`.
    """

    def __init__(
        self,
        *,
        packed: bool,
        patch: int = 16,
        max_tokens: int | None = None,
        train: bool = False,
        pad_value: float = 0.0,
        mixup_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        defer: bool = False,
    ) -> None:
        self.packed, self.patch, self.max_tokens, self.train = packed, patch, max_tokens, train
        self.pad_value = pad_value
        self.mixup_alpha, self.mixup_prob = float(mixup_alpha), float(mixup_prob)
        self.defer = defer

    def __call__(self, items: Sequence[Any]) -> Batch:
        bad = tuple(it for it in items if isinstance(it, BadClip))
        good = [it for it in items if not isinstance(it, BadClip)]
        if not good:
            return Batch(None, None, (), bad, 0)
        if self.defer:
            index = tuple(int(it[2]["index"]) for it in good)
            tokens = sum(int(it[2].get("tokens", 0)) for it in good)
            return Batch(None, torch.stack([it[1] for it in good]), index, bad, tokens, waves=tuple(good),
                         notes=_notes([it[2] for it in good]))
        return self.build(good, bad)

    def build(self, good: Sequence[Any], bad: tuple[BadClip, ...] = ()) -> Batch:
        """Spectrogram items (none unreadable) -> :class:`Batch`."""
        specs = [it[0] for it in good]
        targets = torch.stack([it[1] for it in good])
        metas = [it[2] for it in good]
        index = tuple(int(m["index"]) for m in metas)
        has_frames = "frame_target" in metas[0]
        if self.train and self.mixup_alpha > 0 and len(specs) > 1:
            if has_frames:
                raise ValueError("TrainCollator: mixup is not supported with frame (strong-label) targets")
            g = clip_generator(*[int(m["seed"]) for m in metas])
            if not targets.is_floating_point():
                raise ValueError("TrainCollator: mixup needs multi_hot targets (WaveformDataset(target='multi_hot'))")
            mixed, mixed_t, _, _ = mixup(specs, targets, alpha=self.mixup_alpha, generator=g)
            use = torch.rand(len(specs), generator=g) < self.mixup_prob
            specs = [m if bool(u) else s for s, m, u in zip(specs, mixed, use)]
            targets = torch.where(use.unsqueeze(1), mixed_t, targets)
        frames = torch.tensor([int(m["frames"]) for m in metas], dtype=torch.long)
        extra: dict[str, Any] = {"frames": frames, "notes": _notes(metas)}
        if has_frames:
            extra.update(_stack_frame_targets(metas))
        if self.packed:
            shifts = [m.get("frame_shift_ms") for m in metas]
            g = clip_generator(*[int(m["seed"]) for m in metas], 7) if self.train else None
            pb = collate_packed(
                specs,
                patch=self.patch,
                targets=targets,
                index=index,
                max_tokens=self.max_tokens,
                train=self.train,
                pad_value=self.pad_value,
                frame_shift_ms=shifts if all(s is not None for s in shifts) else None,
                generator=g,
            )
            if has_frames:
                cols = [gs[1] for gs in pb.grid_sizes]
                if [grid_size(1, int(f), self.patch)[1] for f in frames] != cols:
                    raise RuntimeError(
                        "TrainCollator: frame targets do not match the packed columns (a clip was cropped in the "
                        "collator); give SpectrogramDataset the same max_tokens"
                    )
            return Batch(pb, targets, index, bad, pb.num_tokens, **extra)
        t_max = max(s.shape[-1] for s in specs)
        x = torch.stack([F.pad(s, (0, t_max - s.shape[-1]), value=self.pad_value) for s in specs])
        return Batch(x, targets, index, bad, int(x.shape[0] * x.shape[-1]), **extra)


def _notes(metas: Sequence[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(m.get("path", m.get("id", "?"))), p) for m in metas for p in m.get("problems", ()))


def _stack_frame_targets(metas: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Per-clip ``frame_target [S_i, C]`` -> ``[B, S_max, C]`` (zero padded) + mask + strong."""
    ts = [m["frame_target"] for m in metas]
    s_max = max(t.shape[0] for t in ts)
    out = torch.stack([F.pad(t, (0, 0, 0, s_max - t.shape[0])) for t in ts])
    valid = torch.tensor([int(m["frame_valid"]) for m in metas])
    mask = torch.arange(s_max)[None, :] < valid[:, None]
    strong = torch.tensor([bool(m["strong"]) for m in metas])
    return {"frame_targets": out, "frame_mask": mask, "strong": strong}
