"""Train-time augmentation: SpecAugment (``spec``), mixup (``mixup``), gain, time shift, speed, background
noise and overlays (``wave``), random crops and random resolution (``crops``).

All randomness comes from an explicit ``torch.Generator`` (CPU generators work for tensors on any
device: draws are made on the generator's device and moved), so the same seed gives the same
output. Nothing here is hidden inside a front end or a model; token dropping belongs to the model.

Shapes: spectrograms ``[B, F, T]`` (frequency before time) with valid frame counts ``[B]``, or
lists of ``[F, T_i]``; waveforms ``[B, T]``.
"""

from __future__ import annotations

from audioflex.audio.augment.crops import (
    ELASTIC_FRAME_SHIFTS_MS,
    elastic_frame_shifts,
    frames_for,
    random_crop,
    sample_crop,
    sample_frame_shift,
    sample_frame_shifts,
)
from audioflex.audio.augment.mixup import Mixup, mixup, sample_beta
from audioflex.audio.augment.spec import SpecAugment
from audioflex.audio.augment.wave import (
    add_background,
    change_speed,
    overlay,
    random_gain,
    random_time_shift,
    speed_factors,
)

__all__ = [
    "ELASTIC_FRAME_SHIFTS_MS",
    "add_background",
    "change_speed",
    "speed_factors",
    "Mixup",
    "SpecAugment",
    "elastic_frame_shifts",
    "frames_for",
    "mixup",
    "overlay",
    "random_crop",
    "random_gain",
    "random_time_shift",
    "sample_beta",
    "sample_crop",
    "sample_frame_shift",
    "sample_frame_shifts",
]
