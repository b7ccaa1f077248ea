"""The front end on the training device: finishes deferred batches (waveforms) as the workers would have."""

from __future__ import annotations

import copy
from typing import Any

import torch

from audioflex.audio.frontend.base import Frontend
from audioflex.data.datasets.collate import Batch, TrainCollator
from audioflex.data.datasets.spectrogram import SpectrogramDataset


class DeviceFrontend:
    """Front end on the training device for batches built with ``TrainCollator(defer=True)``.

    Waveforms are grouped by their frame shift, zero-padded and run through that shift's front end
    in one call on ``device`` (with per-clip lengths, so each clip is computed as if alone), then
    each clip is finished (:meth:`SpectrogramDataset.finish`: crop, SpecAugment) and the batch
    built (:meth:`TrainCollator.build`: mixup, packing or stacking) as the workers would have.
    """

    def __init__(self, dataset: SpectrogramDataset, collator: TrainCollator, device: torch.device | str) -> None:
        self.dataset, self.collator, self.device = dataset, collator, torch.device(device)
        self._frontends: dict[float | None, Frontend] = {}

    def _frontend(self, shift: float | None) -> Frontend:
        if shift not in self._frontends:
            self._frontends[shift] = copy.deepcopy(self.dataset.frontend(shift)).to(self.device).eval()
        return self._frontends[shift]

    @torch.no_grad()
    def __call__(self, batch: Batch) -> Batch:
        """A deferred batch -> the finished :class:`Batch` (tensors on ``device``); other batches
        are returned unchanged."""
        if batch.waves is None:
            return batch
        items = list(batch.waves)
        groups: dict[float | None, list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault(it[2]["shift_key"], []).append(i)
        done: list[Any] = [None] * len(items)
        for shift, idx in groups.items():
            lens = [int(items[i][0].shape[0]) for i in idx]
            wave = torch.zeros(len(idx), max(lens), device=self.device)
            for k, i in enumerate(idx):
                wave[k, : lens[k]] = items[i][0].to(self.device)
            spec, _ = self._frontend(shift)(wave, torch.tensor(lens, device=self.device))
            for k, i in enumerate(idx):
                done[i] = self.dataset.finish(spec[k], items[i][1].to(self.device), items[i][2])
        return self.collator.build(done, batch.bad)
