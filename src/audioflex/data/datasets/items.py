"""What a dataset item is: ``(x, target, meta)`` or a :class:`BadClip`, and its seeded random draws.

Every random draw of a clip (crop offset, speed, gain, frame shift, masks, mixup, event overlay) comes
from :func:`clip_generator` seeded with ``(seed, stream, epoch, clip index)``; the stream ids below keep
the different draws of one clip independent, so runs are reproducible and a resumed run repeats
them exactly.
"""

from __future__ import annotations

import dataclasses

import torch

from audioflex.data.samplers import derive_seed

# stream ids for derive_seed, so the different draws of one clip are independent
CROP, SHIFT, SPEC, MIX, FCROP, NOISE, SPEED, OVERLAY = 1, 2, 3, 4, 5, 6, 7, 8


def clip_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded with ``derive_seed(*parts)``."""
    g = torch.Generator()
    g.manual_seed(derive_seed(*parts))
    return g


@dataclasses.dataclass(frozen=True)
class BadClip:
    """Marker returned for a clip whose audio could not be read (dropped by the collator)."""

    index: int
    path: str
    error: str
