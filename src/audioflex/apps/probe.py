"""``audioflex probe``: a checkpoint's embeddings of a HEAR task scored with the shallow probe.

Embeddings are computed (and cached) with :func:`audioflex.apps.embed.embed_files`, then scored
by :func:`audioflex.hear.probe.probe_embeddings` (the HEAR kit's MLP grid on frozen embeddings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audioflex.apps.embed import embed_files, load_embeddings
from audioflex.hear import load_model
from audioflex.hear.embedder import EmbeddingModel
from audioflex.hear.probe import ProbeConfig, TaskError, probe_embeddings, read_task
from audioflex.models.registry import registered_name

__all__ = ["probe_task"]


def probe_task(
    task_dir: str | Path,
    checkpoint: str | Path,
    *,
    cache_dir: str | Path | None = None,
    config: ProbeConfig | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    model: EmbeddingModel | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate a checkpoint's embeddings on a HEAR task with the shallow probe.

    Args:
        task_dir: HEAR task directory (see the module docstring).
        checkpoint: audioflex checkpoint directory.
        cache_dir: where embeddings are cached (default ``<task_dir>/embeddings/<model name>``);
            reruns reuse them (a change of options in the same folder raises).
        config: probe grid and limits (:class:`ProbeConfig`).
        device: where the embedding model runs.
        progress: progress bars while embedding and training the grid points.
        model: an already loaded :class:`~audioflex.hear.EmbeddingModel`.
        **options: embedding options (``hop_ms``, ``layers``, ...; :class:`~audioflex.hear.EmbedOptions`).

    Returns:
        JSON-ready dict (:func:`probe_embeddings`) plus ``model`` (the embedding options and sizes).
    """
    emb_model = model if model is not None else load_model(str(checkpoint), device=device, **options)
    task = read_task(task_dir, emb_model.sample_rate)
    name = registered_name(emb_model.net) or "model"
    cache = Path(cache_dir) if cache_dir else task.root / "embeddings" / name
    kind = "timestamp" if task.is_event else "scene"
    embeddings = {}
    for split, items in task.splits.items():
        files = [task.audio_dirs[split] / f for f in items]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise TaskError(f"{task.root}: {len(missing)} audio file(s) of split {split!r} missing, e.g. {missing[0]}")
        rep = embed_files(files, checkpoint, cache / split, kind=kind, progress=progress, model=emb_model)
        if rep.failed:
            raise TaskError(f"{task.root}: unreadable audio in split {split!r}: {rep.failed[0]}")
        by_stem = load_embeddings(cache / split)
        embeddings[split] = {f: by_stem[Path(f).stem] for f in items if Path(f).stem in by_stem}
    return {**probe_embeddings(task, embeddings, config, progress=progress), "model": emb_model.describe()}
