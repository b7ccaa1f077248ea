"""Runtime benchmarks (``audioflex bench onnx``): one model, several runtimes, side by side.

- ``ast``: ``ast_<size>`` inference on 10 s clips (1024 frames) with the same weights in audioflex
  torch (float32 and under bfloat16 autocast), transformers' ``ASTForAudioClassification`` (SDPA
  attention), ONNX Runtime fp32 and ORT dynamic int8; seconds per batch, speed-up over transformers
  SDPA, max logit difference to audioflex torch (random weights: a numerical check, not an accuracy figure).
- ``detect``: ``Pipeline``-style frame scores of a generated file with ``htsat_tiny`` (default
  50 % overlap) through torch (float32, bfloat16 autocast) and ORT fp32 / int8: real-time factors.

The JSON records the machine (CPU capability, native bf16 features, threads) and the onnxruntime
version: bfloat16 is fast only with AMX.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from audioflex.bench.ast_hf import hf_ast_twin
from audioflex.bench.common import machine, mean_seconds
from audioflex.models.autocast import AutocastModel


def _ort_models(model: torch.nn.Module, tmp: Path, int8: bool = True) -> dict[str, torch.nn.Module]:
    """``{"ort_fp32": OnnxModel, "ort_int8": OnnxModel}`` of a torch model (exported into ``tmp``)."""
    from audioflex.export.onnx import export_onnx
    from audioflex.export.quantize import quantize_dynamic_onnx
    from audioflex.export.runtime import load_onnx

    fp32 = export_onnx(model, tmp / "model.onnx", check=False)
    out = {"ort_fp32": load_onnx(fp32).model}
    if int8:
        out["ort_int8"] = load_onnx(quantize_dynamic_onnx(fp32, tmp / "model.int8.onnx")).model
    return out


def _machine() -> dict[str, Any]:
    import onnxruntime

    return {**machine(), "onnxruntime": onnxruntime.__version__}


def bench_ast_runtimes(batch: int = 2, steps: int = 2, size: str = "base", seed: int = 0) -> dict[str, Any]:
    """``ast_<size>`` in audioflex torch, transformers SDPA, ORT fp32 and ORT int8 (same weights)."""
    x = torch.randn(batch, 128, 1024)
    res: dict[str, Any] = {"benchmark": "onnx-ast", "model": f"ast_{size}", "batch": batch, "frames": 1024,
                           "steps": steps, "weights": "random (logit differences are numerical checks only)"}
    runs: dict[str, dict[str, float]] = {}
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        ours, load_hf = hf_ast_twin(size, seed, tmp)
        ref = ours(x).clip_logits
        runs["torch"] = {"seconds_per_batch": mean_seconds(lambda: ours(x), steps), "max_logit_diff": 0.0}
        bf16 = AutocastModel(ours)
        runs["torch_bf16"] = {"seconds_per_batch": mean_seconds(lambda: bf16(x), steps),
                              "max_logit_diff": float((bf16(x).clip_logits - ref).abs().max())}
        hf = load_hf("sdpa")
        xt = x.transpose(1, 2).contiguous()
        runs["hf_sdpa"] = {"seconds_per_batch": mean_seconds(lambda hf=hf: hf(input_values=xt), steps),
                           "max_logit_diff": float((hf(input_values=xt).logits - ref).abs().max())}
        t0 = time.perf_counter()
        ort = _ort_models(ours, Path(tmp))
        res["export_and_quantize_s"] = round(time.perf_counter() - t0, 1)
        for name, m in ort.items():
            runs[name] = {"seconds_per_batch": mean_seconds(lambda m=m: m(x), steps),
                          "max_logit_diff": float((m(x).clip_logits - ref).abs().max())}
    base = runs["hf_sdpa"]["seconds_per_batch"]
    for r in runs.values():
        r["speedup_vs_hf_sdpa"] = round(base / r["seconds_per_batch"], 2)
    best = max(runs, key=lambda k: runs[k]["speedup_vs_hf_sdpa"])
    res.update(runs=runs, best=best, target_2x_met=runs[best]["speedup_vs_hf_sdpa"] >= 2.0, machine=_machine())
    return res


def bench_detect_runtimes(seconds: float = 600.0, model: str = "htsat_tiny", hop: float = 0.5,
                          batch_size: int = 8, int8: bool = True) -> dict[str, Any]:
    """Frame scores of a generated ``seconds``-long file: real-time factor per runtime."""
    from audioflex.audio.frontend.base import build_frontend
    from audioflex.bench.htsat import make_long_audio
    from audioflex.inference.frames import frame_scores
    from audioflex.models.registry import create_model, default_frontend

    torch.manual_seed(0)
    net = create_model(model).eval()
    fe = build_frontend(default_frontend(model)).eval()
    res: dict[str, Any] = {"benchmark": "onnx-detect", "model": model, "audio_s": seconds, "hop": hop,
                           "batch_size": batch_size}
    runs: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = make_long_audio(Path(tmp) / "long.wav", seconds, fe.sample_rate)
        models = {"torch": net, "torch_bf16": AutocastModel(net), **_ort_models(net, Path(tmp), int8=int8)}
        ref = None
        for name, m in models.items():
            t0 = time.perf_counter()
            scores = frame_scores(m, fe, path, hop=hop, batch_size=batch_size)
            wall = time.perf_counter() - t0
            ref = scores.probs if ref is None else ref
            runs[name] = {"wall_s": round(wall, 2), "realtime_factor": round(seconds / wall, 1),
                          "max_prob_diff": float((scores.probs - ref).abs().max())}
    res.update(runs=runs, target_50x_met=max(r["realtime_factor"] for r in runs.values()) >= 50, machine=_machine())
    return res
