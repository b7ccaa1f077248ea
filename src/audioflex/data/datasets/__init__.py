"""Training datasets: waveform + target per clip, front end in the DataLoader workers, collators.

Flow (in DataLoader workers, on CPU)::

    ClipRecord --WaveformDataset--> (wave [T], target [C], meta)   crop/cap policy, gain
               --SpectrogramDataset--> (spec [F, T'], target, meta) per-clip frame shift, random
                                                                    frame crop, frame targets,
                                                                    front end, SpecAugment
               --TrainCollator--> Batch(inputs = [B, F, T] tensor or PackedBatch, targets [B, C])

With the front end on the training device (``SpectrogramDataset(defer_frontend=True)``) the
workers stop before the front end: every decision (shift, crop, tokens, frame targets) is still
made there, the collator returns a :class:`Batch` holding the waveforms, and
:class:`DeviceFrontend` runs the front ends batched per frame shift on the device and finishes
the batch exactly as the workers would have. Shard streams (:class:`StreamingBatches`) build
batches on the fly from a ``(wave, ClipRecord)`` stream with the same per-clip processing.

Every random draw (crop offset, gain, frame shift, masks, mixup) is a function of
``(seed, epoch, clip index)``, so runs are reproducible and a resumed run repeats them exactly.
A clip whose file cannot be read (:class:`~audioflex.audio.io.AudioError`) becomes a
:class:`BadClip` marker; the collator drops it and reports it in ``Batch.bad``. A clip that is
used but suspicious (a truncated file: its part on disk is used; audio shorter than one front-end
window, or one patch with ``min_frames``: padded to it) carries the reasons in
``meta["problems"]``, and the collator lists them in ``Batch.notes``.

Modules: :mod:`.items` (``BadClip``, seeded per-clip draws), :mod:`.waveform`,
:mod:`.spectrogram`, :mod:`.collate` (``Batch``, ``TrainCollator``), :mod:`.device_frontend`,
:mod:`.streaming`. Frame targets: :mod:`audioflex.data.targets`; durations:
:mod:`audioflex.data.durations`.
"""

from audioflex.data.datasets.collate import Batch, TrainCollator
from audioflex.data.datasets.device_frontend import DeviceFrontend
from audioflex.data.datasets.items import BadClip
from audioflex.data.datasets.spectrogram import SpectrogramDataset
from audioflex.data.datasets.streaming import StreamingBatches
from audioflex.data.datasets.waveform import WaveformDataset

__all__ = [
    "BadClip",
    "Batch",
    "DeviceFrontend",
    "SpectrogramDataset",
    "StreamingBatches",
    "TrainCollator",
    "WaveformDataset",
]
