"""Calibration feeds for static int8 quantization, computed from the user's audio files.

Each file gives one feed: its first window (grid models: ``contract.input_frames`` frames, padded
when shorter; packed models: one clip of up to ``contract.native_frames`` frames) through the
model's own front end, in the graph's input layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from audioflex.audio.frontend.base import FrontendConfig, build_frontend
from audioflex.audio.io import load_audio
from audioflex.export.common import packed_inputs
from audioflex.models.contract import ModelContract
from audioflex.packing import collate_packed


def calibration_feeds(
    files: Sequence[str | Path], frontend: FrontendConfig, contract: ModelContract, *, max_files: int = 64
) -> list[dict[str, torch.Tensor]]:
    """Graph feeds (``spec``/``frames`` or the packed inputs) of up to ``max_files`` audio files."""
    fe = build_frontend(frontend).eval()
    feeds = []
    for path in list(files)[:max_files]:
        wave = load_audio(path, fe.sample_rate)
        with torch.no_grad():
            spec, frames = fe(wave[None])
        if contract.packed:
            t = min(max(1, int(frames[0])), contract.native_frames)
            batch = collate_packed([spec[0, :, :t]], patch=contract.column_frames, pad_value=frontend.pad_value)
            names = ("patches", "coords", "segment_ids", "grid_sizes")
            feeds.append(dict(zip(names, packed_inputs(batch))))
            continue
        window = int(contract.input_frames or spec.shape[-1])
        spec = torch.nn.functional.pad(spec, (0, max(0, window - spec.shape[-1])), value=frontend.pad_value)
        spec = spec[..., :window]
        feeds.append({"spec": spec, "frames": frames.clamp(max=window).long()})
    return feeds
