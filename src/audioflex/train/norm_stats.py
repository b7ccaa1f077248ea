"""``data.norm_stats: dataset``: the front end's normalisation measured on the training clips.

AST-style front ends normalise the log fbank as ``(x - norm_mean) / (2 * norm_std)`` with
AudioSet's statistics by default. A dataset recorded at another level (quiet synthetic speech,
close-miked instruments) then enters the model far from zero mean and unit scale, which slows
training from scratch. With ``data.norm_stats: dataset`` the run measures mean and std of the raw
log fbank on (a seeded sample of) its training clips once, caches them in the run directory
(``norm_stats.json``, so a resumed run uses the same numbers) and trains with them; they are
saved in the checkpoint's front-end config, so inference, evaluation and export use them too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from pathlib import Path

from audioflex.audio.frontend.base import FrontendConfig
from audioflex.audio.frontend.kaldi import KaldiFbankConfig, compute_norm_stats
from audioflex.audio.io import load_audio
from audioflex.data.records import ClipRecord
from audioflex.train.config import DataConfig
from audioflex.train.distributed import DistInfo, barrier

logger = logging.getLogger(__name__)

NORM_STATS_MODES = ("frontend", "dataset")
CACHE_NAME = "norm_stats.json"


def check_norm_stats_options(d: DataConfig, frontend: FrontendConfig, stream: bool) -> None:
    """Raise ``ValueError`` naming ``data.norm_stats`` / ``data.norm_stats_clips`` when unusable."""
    if d.norm_stats not in NORM_STATS_MODES:
        raise ValueError(f"data.norm_stats: use 'frontend' or 'dataset' (got {d.norm_stats!r})")
    if d.norm_stats != "dataset":
        return
    if not isinstance(frontend, KaldiFbankConfig):
        raise ValueError(
            f"data.norm_stats: dataset sets norm_mean/norm_std of the Kaldi fbank front end; this model's "
            f"{type(frontend).__name__} has none (it normalises inside the model) - use data.norm_stats: frontend"
        )
    if stream:
        raise ValueError(
            "data.norm_stats: dataset needs indexed training clips, not a shard stream; measure them with "
            "audioflex.compute_norm_stats and set frontend.norm_mean / frontend.norm_std"
        )
    if d.norm_stats_clips < 1:
        raise ValueError(f"data.norm_stats_clips must be >= 1 (got {d.norm_stats_clips})")


def _sample(records: list[ClipRecord], n: int, seed: int) -> list[ClipRecord]:
    """Up to ``n`` records, a seeded sample independent of the record order on disk."""
    ordered = sorted(records, key=lambda r: (str(r.path), r.start))
    if len(ordered) <= n:
        return ordered
    return random.Random(seed).sample(ordered, n)


def measure(records: list[ClipRecord], config: KaldiFbankConfig, max_seconds: float | None) -> tuple[float, float]:
    """Mean and std of the raw log fbank of ``records`` (each read from ``start``, at most
    ``max_seconds`` long: the part of the clip training sees)."""

    def waves():
        for r in records:
            yield load_audio(r.path, config.sample_rate, offset=r.start, duration=r.read_seconds(max_seconds))

    return compute_norm_stats(waves(), config)


def resolve_norm_stats(
    d: DataConfig, frontend: FrontendConfig, records: list[ClipRecord], run_dir: Path, info: DistInfo, seed: int
) -> FrontendConfig:
    """The front end the run trains with: ``frontend`` unchanged for ``norm_stats: frontend``,
    else with ``norm_mean``/``norm_std`` measured on up to ``norm_stats_clips`` training clips
    (rank 0 measures and caches them in ``run_dir/norm_stats.json``; a resumed run reads the cache)."""
    if d.norm_stats != "dataset":
        return frontend
    assert isinstance(frontend, KaldiFbankConfig)  # checked by check_norm_stats_options
    cache = run_dir / CACHE_NAME
    if info.is_main and not cache.is_file():
        sample = _sample(records, d.norm_stats_clips, seed)
        logger.info("data.norm_stats: measuring the log-fbank mean/std on %d training clip(s)", len(sample))
        mean, std = measure(sample, frontend, d.max_seconds)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"norm_mean": mean, "norm_std": std, "clips": len(sample)}))
        tmp.replace(cache)
    barrier(info)
    stats = json.loads(cache.read_text())
    logger.info(
        "data.norm_stats: norm_mean %.4f, norm_std %.4f (front-end defaults %.4f, %.4f); saved with the checkpoint",
        stats["norm_mean"],
        stats["norm_std"],
        frontend.norm_mean,
        frontend.norm_std,
    )
    return dataclasses.replace(frontend, norm_mean=float(stats["norm_mean"]), norm_std=float(stats["norm_std"]))
