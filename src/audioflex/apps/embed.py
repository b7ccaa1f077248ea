"""``audioflex embed``: audio files, folders or a manifest -> embeddings on disk.

Inputs: audio files, folders (searched recursively for audio files) and dataset manifests /
layouts (anything :func:`audioflex.data.readers.read_dataset` reads, a ``.csv``/``.tsv``/
``.jsonl`` manifest, or a ``.txt`` list with one path per line, relative to the list).

Outputs in ``out_dir``:

- ``fmt="npy"``: ``<key>.npy`` per file (scene ``[D]``, timestamp ``[T, D]``) and, for timestamp
  embeddings, ``<key>.timestamps.json`` (ms). ``key`` is the path relative to the input folder
  (without suffix), or the file stem for files given one by one / manifest entries (or the
  manifest's id). When two different inputs would get the same key (``x.flac`` and ``x.opus``),
  both keep their extension (``x.flac``, ``x.opus``); every other key is unchanged, so outputs of
  an earlier run are still found (one written as ``x`` before ``x.opus`` joined stays on disk
  under that name). Inputs that still collide (``a/x.wav`` and ``b/x.wav`` given one by one) are
  reported as failed: give a folder holding both, or rename one.
- ``fmt="npz"`` / ``"safetensors"``: one ``embeddings.<fmt>`` with ``embeddings`` (scene
  ``[N, D]``; timestamp ``[sum T_i, D]`` with ``timestamps [sum T_i]`` and ``offsets [N + 1]``:
  file ``i`` is rows ``offsets[i]:offsets[i + 1]``) plus ``index.json`` (file order, keys, paths).
  Per-file parts are kept in ``out_dir/parts`` so an interrupted run resumes.

Every file is written atomically (temporary name, then rename); a file whose output exists is
skipped (resumable). ``embed_config.json`` records the model and options; resuming with other
options raises instead of mixing embeddings. Bad inputs (a missing path, a folder without audio,
an unreadable file, ...) are skipped and reported in :class:`EmbedReport.failed` (logged at
INFO) after every good file is embedded; a truncated or too short file is embedded with a logged
warning. Files of any length are read block by block.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioflex.audio.io import AudioError, missing_path_problem
from audioflex.audio.stream import AudioReader, check_audio_file
from audioflex.data.readers import AUDIO_EXTENSIONS, read_dataset
from audioflex.hear import load_model
from audioflex.hear.embedder import EmbeddingModel

logger = logging.getLogger(__name__)

KINDS = ("scene", "timestamp")
FORMATS = ("npy", "npz", "safetensors")
_MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".txt")


@dataclass
class EmbedReport:
    """What :func:`embed_files` did."""

    out_dir: Path
    kind: str
    fmt: str
    embedding_size: int
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    output: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "out_dir": str(self.out_dir),
            "kind": self.kind,
            "format": self.fmt,
            "embedding_size": self.embedding_size,
            "written": len(self.written),
            "skipped_existing": len(self.skipped),
            "failed": [{"path": p, "error": e} for p, e in self.failed],
            "audio_seconds": round(self.audio_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "output": str(self.output) if self.output else None,
        }


# ---------------------------------------------------------------------------- inputs


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def _expand(p: Path, failed: list[tuple[str, Exception]]) -> list[tuple[str, Path]]:
    """One input -> its ``[(key, path)]``; raises for an unusable input (missing files listed by a
    manifest go to ``failed``)."""
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and _is_audio(f))
        if not files:
            raise ValueError(f"{p}: no audio files found in this folder (or below)")
        return [(f.relative_to(p).with_suffix("").as_posix(), f) for f in files]
    if p.is_file() and _is_audio(p):
        return [(p.stem, p)]
    if p.is_file() and p.suffix.lower() == ".txt":
        lines = [ln.strip() for ln in p.read_text().splitlines()]
        return [(Path(ln).stem, (p.parent / ln).resolve()) for ln in lines if ln and not ln.startswith("#")]
    if p.is_file() and p.suffix.lower() in _MANIFEST_SUFFIXES:
        result = read_dataset(p)
        failed += [(str(miss), FileNotFoundError(f"{miss}: listed in {p} but not found")) for miss in result.missing]
        return [(r.id or Path(r.path).stem, Path(r.path)) for r in result.records]
    if not p.exists():
        problem = missing_path_problem(p)
        raise FileNotFoundError(f"{p}: {'no such file or folder' if problem == 'no such file' else problem}")
    raise ValueError(f"{p}: not an audio file, folder or manifest ({', '.join(_MANIFEST_SUFFIXES)})")


def _gather(inputs: Sequence[str | Path] | str | Path) -> tuple[list[tuple[str, Path]], list[tuple[str, Exception]]]:
    """Inputs -> (``[(key, path)]`` with unique keys, ``[(input, error)]`` of unusable ones)."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    items: list[tuple[str, Path]] = []
    failed: list[tuple[str, Exception]] = []
    for raw in inputs:
        try:
            items += _expand(Path(raw), failed)
        except (ValueError, OSError) as e:
            failed.append((str(raw), e))
    seen: set[tuple[str, str]] = set()
    unique = []
    for key, path in items:  # the same file reached twice (a folder and a file in it) counts once
        ident = (key, os.path.realpath(path))
        if ident not in seen:
            seen.add(ident)
            unique.append((key, path))
    stems = Counter(k for k, _ in unique)
    named = [(f"{k}{path.suffix}" if stems[k] > 1 else k, path) for k, path in unique]
    counts = Counter(k for k, _ in named)
    out = []
    for key, path in named:
        if counts[key] == 1:
            out.append((key, path))
            continue
        other = next(q for k, q in named if k == key and q != path)
        failed.append((str(path), ValueError(
            f"{path}: {other} maps to the same output name {key!r}; give a folder holding both (keys are then "
            "their paths relative to it) or rename one"
        )))
    return out, failed


def collect_inputs(inputs: Sequence[str | Path] | str | Path) -> list[tuple[str, Path]]:
    """Inputs -> ``[(key, path)]`` in a stable order (see the module docstring for keys); raises
    the first problem (``FileNotFoundError``/``ValueError``) of an unusable input."""
    items, failed = _gather(inputs)
    if failed:
        raise failed[0][1]
    return items


# ---------------------------------------------------------------------------- atomic writes


def _atomic(target: Path, write: Callable[[Path], Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_npy(target: Path, arr: np.ndarray) -> None:
    def w(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)

    _atomic(target, w)


def _save_json(target: Path, obj: Any) -> None:
    _atomic(target, lambda tmp: tmp.write_text(json.dumps(obj)))


def _save_timestamp_embeddings(npy: Path, ts_file: Path, emb_model: EmbeddingModel, source: AudioReader) -> None:
    """Stream one file's timestamp embeddings ``[T, D]`` into ``npy`` block by block (memory: one
    block of ``stream_s`` seconds, whatever the file's length), then its timestamps (ms) into
    ``ts_file``; the ``.npy`` is renamed into place last, so its presence marks the file done."""
    total = emb_model.num_timestamps(source.num_samples)
    size = emb_model.timestamp_embedding_size

    def w(tmp: Path) -> None:
        stamps: list[float] = []
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
                    "shape": (total, size)})
            for vec, ts in emb_model.iter_timestamp_blocks(source):
                f.write(np.ascontiguousarray(vec.numpy(), dtype="<f4").tobytes())
                stamps.extend(ts.tolist())
        if len(stamps) != total:
            raise RuntimeError(f"{npy}: expected {total} timestamps, the model gave {len(stamps)}")
        _save_json(ts_file, stamps)  # before the .npy is renamed into place

    _atomic(npy, w)


# ---------------------------------------------------------------------------- main entry


def embed_files(
    inputs: Sequence[str | Path] | str | Path,
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    kind: str = "scene",
    fmt: str = "npy",
    device: str | torch.device = "cpu",
    progress: bool = True,
    model: EmbeddingModel | None = None,
    **options: Any,
) -> EmbedReport:
    """Embed audio files into ``out_dir`` (see the module docstring for layouts).

    Args:
        inputs: files, folders and/or manifests.
        checkpoint: audioflex checkpoint directory (ignored when ``model`` is given).
        out_dir: output folder (created).
        kind: ``"scene"`` (``[D]`` per file) or ``"timestamp"`` (``[T, D]`` + timestamps in ms).
        fmt: ``"npy"`` (a file per input), ``"npz"`` or ``"safetensors"`` (one file + index).
        device: where the model runs.
        progress: show a tqdm progress bar.
        model: an already loaded :class:`~audioflex.hear.EmbeddingModel` (else loaded from
            ``checkpoint`` with ``options``).
        **options: embedding options (``hop_ms``, ``window_ms``, ``levels``, ``layers``,
            ``layer_mode``, ``layer_pool``, ``include_logits``, ``include_mel``, ...; see
            :class:`~audioflex.hear.EmbedOptions`).

    Returns:
        :class:`EmbedReport` (written, skipped as already done, failed with the reason).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    t0 = time.perf_counter()
    items, bad_inputs = _gather(inputs)
    emb_model = model if model is not None else load_model(str(checkpoint), device=device, **options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"kind": kind, "checkpoint": str(checkpoint), **emb_model.describe()}
    _check_config(out / "embed_config.json", config)
    parts = out if fmt == "npy" else out / "parts"
    size = emb_model.scene_embedding_size if kind == "scene" else emb_model.timestamp_embedding_size
    report = EmbedReport(out, kind, fmt, size)
    for raw, e in bad_inputs:
        logger.info("skipping %s: %s", raw, e)
        report.failed.append((raw, str(e)))
    min_frames = emb_model.contract.column_frames
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), unit="file", desc="embed")
    for key, path in items:
        npy = parts / f"{key}.npy"
        ts_file = parts / f"{key}.timestamps.json"
        if npy.is_file() and (kind == "scene" or ts_file.is_file()):
            report.skipped.append(key)
        else:
            try:
                source = AudioReader(path, emb_model.sample_rate)
                check_audio_file(path, emb_model.frontend, min_frames, source.info)
                if kind == "scene":
                    vec = emb_model.scene_from_source(source).numpy().astype(np.float32)
                    _save_npy(npy, vec)
                else:
                    _save_timestamp_embeddings(npy, ts_file, emb_model, source)
                report.written.append(key)
                report.audio_seconds += source.num_samples / emb_model.sample_rate
            except AudioError as e:
                logger.info("skipping %s: %s", path, e)  # the caller reports report.failed
                report.failed.append((str(path), str(e)))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if fmt != "npy":
        failed = {p for p, _ in report.failed}
        done = [(k, p) for k, p in items if str(p) not in failed]
        report.output = _consolidate(out, parts, done, kind, fmt)
    report.wall_seconds = time.perf_counter() - t0
    return report


def _check_config(path: Path, config: dict[str, Any]) -> None:
    if path.is_file():
        old = json.loads(path.read_text())
        keys = ("kind", "model_name", "options", "scene_embedding_size", "timestamp_embedding_size")
        diff = [k for k in keys if old.get(k) != json.loads(json.dumps(config)).get(k)]
        if diff:
            raise ValueError(
                f"{path.parent}: holds embeddings made with other settings ({', '.join(diff)} differ); "
                "use a new out_dir or delete the old embeddings"
            )
        return
    _save_json(path, config)


def _consolidate(out: Path, parts: Path, items: Iterable[tuple[str, Path]], kind: str, fmt: str) -> Path:
    """Per-file parts -> one ``embeddings.<fmt>`` + ``index.json``."""
    keys, paths, arrays, stamps = [], [], [], []
    for key, path in items:
        arrays.append(np.load(parts / f"{key}.npy"))
        if kind == "timestamp":
            stamps.append(np.asarray(json.loads((parts / f"{key}.timestamps.json").read_text()), np.float32))
        keys.append(key)
        paths.append(str(path))
    tensors: dict[str, np.ndarray] = {}
    index: dict[str, Any] = {"kind": kind, "keys": keys, "paths": paths}
    if kind == "scene":
        tensors["embeddings"] = np.stack(arrays) if arrays else np.zeros((0, 0), np.float32)
    else:
        offsets = np.cumsum([0] + [a.shape[0] for a in arrays]).astype(np.int64)
        tensors["embeddings"] = np.concatenate(arrays) if arrays else np.zeros((0, 0), np.float32)
        tensors["timestamps"] = np.concatenate(stamps) if stamps else np.zeros(0, np.float32)
        tensors["offsets"] = offsets
        index["offsets"] = offsets.tolist()
    target = out / f"embeddings.{fmt}"
    if fmt == "npz":
        def w(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **tensors)
    else:
        from safetensors.numpy import save_file

        def w(tmp: Path) -> None:
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
                      metadata={"index": json.dumps(index)})
    _atomic(target, w)
    _save_json(out / "index.json", index)
    return target


def load_embeddings(out_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Read back what :func:`embed_files` wrote: ``{key: (embedding, timestamps or None)}``."""
    out = Path(out_dir)
    for fmt in ("npz", "safetensors"):
        f = out / f"embeddings.{fmt}"
        if f.is_file():
            index = json.loads((out / "index.json").read_text())
            if fmt == "npz":
                with np.load(f) as z:
                    t = {k: z[k] for k in z.files}
            else:
                from safetensors.numpy import load_file

                t = load_file(str(f))
            res: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
            for i, key in enumerate(index["keys"]):
                if index["kind"] == "scene":
                    res[key] = (t["embeddings"][i], None)
                else:
                    a, b = index["offsets"][i], index["offsets"][i + 1]
                    res[key] = (t["embeddings"][a:b], t["timestamps"][a:b])
            return res
    res = {}
    for npy in sorted(out.rglob("*.npy")):
        key = npy.relative_to(out).with_suffix("").as_posix()
        ts = npy.with_name(npy.stem + ".timestamps.json")
        res[key] = (np.load(npy), np.asarray(json.loads(ts.read_text()), np.float32) if ts.is_file() else None)
    return res
