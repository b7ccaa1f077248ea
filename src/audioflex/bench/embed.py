"""``audioflex bench embed``: timestamp-embedding speed (batched vs one forward per window) and
the memory of embedding a long file. Returns JSON-ready dicts; targets are not asserted here.

For each family a random-weight model is built (``model_args`` override the small defaults, or
pass ``checkpoints={family: dir}``). Speed is audio seconds embedded per wall second at the given
hop/window: ``batched`` is :meth:`EmbeddingModel.timestamp_embeddings`; ``loop`` is the reference
wrapper's approach (reflect-pad, then front end + model once per window) on the same model and
front end, timed on a shorter clip. Memory runs ``embed_files`` on a generated long WAV in a fresh
subprocess and reports its peak RSS next to the RSS after loading the model.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioflex.bench.common import best_seconds, count_params, load_average, machine, run_json_child, write_wav_blocks
from audioflex.hear import EmbeddingModel


def _default(family: str) -> tuple[str, dict[str, Any], Any]:
    from audioflex.audio.frontend.kaldi import KaldiFbankConfig
    from audioflex.audio.frontend.logmel import LogMelConfig
    from audioflex.audio.frontend.passt import PasstMelConfig

    table = {
        "ast": ("ast_tiny", {}, KaldiFbankConfig(target_length=1024)),
        "elastic_ast": ("elastic_ast_tiny", {}, KaldiFbankConfig()),
        "passt": ("passt_tiny", {}, PasstMelConfig()),
        "htsat": ("htsat_tiny", {"drop_path": 0.0}, LogMelConfig()),
    }
    if family not in table:
        raise ValueError(f"unknown family {family!r}; choose from {sorted(table)}")
    return table[family]


def make_checkpoint(family: str, out: str | Path, model_args: dict[str, Any] | None = None) -> Path:
    """Save a random-weight checkpoint of ``family`` (its ``*_tiny`` config) to ``out``."""
    from audioflex.checkpoints.io import save_checkpoint
    from audioflex.models.registry import create_model

    name, args, fe = _default(family)
    torch.manual_seed(0)
    model = create_model(name, **{**args, **(model_args or {})})
    return save_checkpoint(out, model, frontend=fe)


def loop_timestamp_embeddings(model: EmbeddingModel, audio: torch.Tensor) -> torch.Tensor:
    """The reference approach: one front-end + model forward per window. ``audio [N]`` -> ``[T, D]``."""
    win = model.level_samples[0]
    left = win // 2
    x = torch.nn.functional.pad(audio[None, None], (left, win - left), mode="reflect")[0, 0]
    out = []
    with torch.no_grad():
        for i in range(model.num_timestamps(audio.shape[-1])):
            c = round(i * model.hop_samples)
            out.append(model.embed_waves(x[None, c : c + win])[0])
    return torch.stack(out)


def _rate(fn: Any, seconds: float, repeat: int = 3) -> float:
    """Audio seconds per wall second of ``fn`` (which embeds ``seconds`` of audio), from its
    fastest of ``repeat`` timed runs."""
    return seconds / best_seconds(fn, repeat)


def bench_embed(
    families: Sequence[str] = ("ast", "elastic_ast", "passt", "htsat"),
    *,
    hop_ms: float = 50.0,
    window_ms: float = 160.0,
    seconds: float = 10.0,
    loop_seconds: float = 2.0,
    long_seconds: float = 600.0,
    checkpoints: dict[str, str | Path] | None = None,
    model_args: dict[str, dict[str, Any]] | None = None,
    memory: bool = True,
    bf16: bool = True,
) -> dict[str, Any]:
    """Benchmark timestamp embeddings per family (see the module docstring).

    Args:
        families: which families to run.
        hop_ms, window_ms: timestamp hop and window.
        seconds: audio length for the batched timing; ``loop_seconds`` for the loop timing.
        long_seconds: length of the generated file for the memory run (up to 3600).
        checkpoints: use these checkpoint directories instead of random models.
        model_args: per-family overrides of the random model's arguments.
        memory: run the long-file memory measurement (a subprocess per family).
        bf16: also time the batched path under bfloat16 autocast (``load_model(..., bf16=True)``)
            against the same float32 loop.

    Returns:
        ``{"machine": ..., "settings": ..., "results": {family: {...}}}``; per family
        ``batched_audio_s_per_s``, ``loop_audio_s_per_s``, ``speedup``, ``max_abs_diff`` (batched vs
        loop on the same audio), with ``bf16`` ``bf16_audio_s_per_s``, ``bf16_speedup`` (over the
        float32 loop) and ``bf16_max_abs_diff`` (to float32 batched, relative to its largest value:
        ``bf16_max_rel_diff``), with ``memory`` ``long_file`` (peak RSS MB etc.).
    """
    from audioflex.hear import load_model
    from audioflex.models.registry import registered_name

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fam in families:
            if checkpoints and fam in checkpoints:
                ck = Path(checkpoints[fam])
            else:
                ck = make_checkpoint(fam, Path(tmp) / fam, (model_args or {}).get(fam))
            model = load_model(str(ck), hop_ms=hop_ms, window_ms=window_ms)
            sr = model.sample_rate
            g = torch.Generator().manual_seed(0)
            audio = 0.1 * torch.randn(1, int(seconds * sr), generator=g)
            short = audio[:, : int(loop_seconds * sr)]
            load = load_average()
            batched = _rate(lambda a=audio, m=model: m.timestamp_embeddings(a), seconds)
            loop = _rate(lambda a=short, m=model: loop_timestamp_embeddings(m, a[0]), loop_seconds)
            res: dict[str, Any] = {
                "model_name": registered_name(model.net) or "",
                "params_m": round(count_params(model.net) / 1e6, 3),
                "num_blocks": model.contract.num_blocks,
                "embedding_size": model.timestamp_embedding_size,
                "timestamp_mode": "frames" if model.frames_mode else "window",
                "batched_audio_s_per_s": round(batched, 2),
                "loop_audio_s_per_s": round(loop, 2),
                "speedup": round(batched / loop, 1),
                "loadavg_1min": load,
            }
            short32 = model.timestamp_embeddings(short)[0]  # [1, T, D], the reference of both checks
            if model.frames_mode:
                win = load_model(str(ck), hop_ms=hop_ms, window_ms=window_ms, timestamp_mode="window")
                res["batched_window_mode_audio_s_per_s"] = round(
                    _rate(lambda a=short, m=win: m.timestamp_embeddings(a), loop_seconds), 2
                )
                diff = (win.timestamp_embeddings(short)[0][0] - loop_timestamp_embeddings(win, short[0])).abs().max()
                res["max_abs_diff"] = None
                res["window_mode_max_abs_diff"] = float(diff)
            else:
                ref = loop_timestamp_embeddings(model, short[0])
                res["max_abs_diff"] = float((short32[0] - ref).abs().max())
            if bf16:
                half = load_model(str(ck), hop_ms=hop_ms, window_ms=window_ms, bf16=True)
                rate = _rate(lambda a=audio, m=half: m.timestamp_embeddings(a), seconds)
                got16 = half.timestamp_embeddings(short)[0]
                diff = float((got16 - short32).abs().max())
                res.update({"bf16_audio_s_per_s": round(rate, 2), "bf16_speedup": round(rate / loop, 1),
                            "bf16_max_abs_diff": diff,
                            "bf16_max_rel_diff": diff / max(float(short32.abs().max()), 1e-12),
                            "bf16_finite": bool(torch.isfinite(got16).all())})
            if memory:
                res["long_file"] = long_file_memory(ck, long_seconds, hop_ms=hop_ms, window_ms=window_ms,
                                                    workdir=Path(tmp))
            results[fam] = res
    return {
        "machine": machine(),
        "settings": {"hop_ms": hop_ms, "window_ms": window_ms, "seconds": seconds,
                     "loop_seconds": loop_seconds, "long_seconds": long_seconds},
        "results": results,
    }


def long_file_memory(checkpoint: str | Path, seconds: float, *, hop_ms: float = 50.0, window_ms: float = 160.0,
                     workdir: str | Path | None = None) -> dict[str, Any]:
    """Peak RSS (MB) of ``embed_files`` on a ``seconds``-long WAV, in a fresh subprocess."""
    from audioflex.checkpoints.io import read_meta

    if not 0 < seconds <= 3600:
        raise ValueError(f"long_seconds must be in (0, 3600], got {seconds}")
    sr = int(read_meta(checkpoint)["frontend"]["sample_rate"])
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        wav = Path(tmp) / "long.wav"
        rng = np.random.default_rng(0)
        minutes = int(np.ceil(seconds / 60))  # whole minutes of noise
        write_wav_blocks(wav, minutes * 60 * sr, sr, lambda _start, n: 0.1 * rng.standard_normal(n))
        code = (
            "import json, resource, sys, time\n"
            "from audioflex.hear import load_model\n"
            "from audioflex.apps.embed import embed_files\n"
            "a = json.loads(sys.argv[1])\n"
            "m = load_model(a['ck'], hop_ms=a['hop'], window_ms=a['win'])\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "t = time.perf_counter()\n"
            "r = embed_files(a['wav'], a['ck'], a['out'], kind='timestamp', progress=False, model=m)\n"
            "print(json.dumps({'rss_after_load_mb': base, 'peak_rss_mb': "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'wall_s': time.perf_counter() - t, "
            "'failed': len(r.failed)}))\n"
        )
        args = {"ck": str(checkpoint), "hop": hop_ms, "win": window_ms, "wav": str(wav), "out": str(Path(tmp) / "o")}
        res = run_json_child([sys.executable, "-c", code, json.dumps(args)], "long-file memory run")
        out_npy = Path(tmp) / "o" / "long.npy"
        res["output_mb"] = round(out_npy.stat().st_size / 2**20, 1) if out_npy.is_file() else None
        res["audio_mb_float32"] = round(seconds * sr * 4 / 2**20, 1)
        res["seconds"] = seconds
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in res.items()}
