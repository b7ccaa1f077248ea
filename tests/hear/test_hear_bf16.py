"""HEAR embeddings under bfloat16 autocast (``load_model(..., bf16=True)`` / ``{"bf16": true}``).

Bound: bf16 keeps 8 significand bits (u = 2^-8 = 3.9e-3); a few blocks of matrix products move a
vector by a few dozen u of its scale, so 0.1 of the float32 vector's largest value catches a wrong
path (NaN, a missing cast, another model) and not rounding. AST's 160 ms window is the one-column
patch convolution that torch's CPU bf16 conv2d gets wrong (``layers.patch.PatchConv`` keeps it
float32): the test fails on NaN there.
"""

from __future__ import annotations

import pytest
import torch

from audioflex.bench.embed import bench_embed, make_checkpoint
from audioflex.hear import get_timestamp_embeddings, load_model
from audioflex.models.autocast import AutocastModel

REL_BOUND = 0.1
SMALL = {"ast": {"depth": 2}, "elastic_ast": {"depth": 2}, "passt": {"depth": 2}, "htsat": {"depths": (1, 1, 1, 1)}}


@pytest.mark.parametrize("family", ["ast", "elastic_ast", "passt", "htsat"])
def test_timestamps_in_bf16_match_float32(family, tmp_path):
    ck = make_checkpoint(family, tmp_path / family, SMALL[family])
    fp32 = load_model(str(ck), hop_ms=100.0, window_ms=160.0)
    bf16 = load_model(str(ck), '{"bf16": true}', hop_ms=100.0, window_ms=160.0)
    assert isinstance(bf16.net, AutocastModel) and bf16.describe()["options"]["bf16"] is True
    assert bf16.describe()["model_name"] == fp32.describe()["model_name"]
    audio = 0.1 * torch.randn(2, int(1.3 * fp32.sample_rate), generator=torch.Generator().manual_seed(0))
    e32, t32 = get_timestamp_embeddings(audio, fp32)
    e16, t16 = get_timestamp_embeddings(audio, bf16)
    assert e16.dtype == torch.float32 and e16.shape == e32.shape and torch.equal(t16, t32)
    assert torch.isfinite(e16).all()
    assert float((e16 - e32).abs().max()) <= REL_BOUND * float(e32.abs().max())


def test_pipeline_in_bf16_says_so_in_its_embedding_options(tmp_path):
    """An embedder built on a bf16 Pipeline runs autocast, and its describe() (written beside the
    embeddings by ``audioflex embed``) says bf16, not the default false."""
    from audioflex.inference.pipeline import Pipeline

    ck = make_checkpoint("elastic_ast", tmp_path / "e", SMALL["elastic_ast"])
    emb = Pipeline.from_checkpoint(ck, bf16=True).embedding_model()
    assert isinstance(emb.net, AutocastModel) and emb.describe()["options"]["bf16"] is True
    assert Pipeline.from_checkpoint(ck).embedding_model().describe()["options"]["bf16"] is False


def test_bf16_option_is_checked(tmp_path):
    ck = make_checkpoint("elastic_ast", tmp_path / "e", SMALL["elastic_ast"])
    with pytest.raises(ValueError, match="bf16 must be true or false"):
        load_model(str(ck), '{"bf16": "yes"}')


def test_bench_embed_reports_bf16_beside_float32(tmp_path):
    res = bench_embed(("elastic_ast",), seconds=1.0, loop_seconds=0.5, memory=False,
                      model_args={"elastic_ast": SMALL["elastic_ast"]})
    r = res["results"]["elastic_ast"]
    for key in ("batched_audio_s_per_s", "loop_audio_s_per_s", "bf16_audio_s_per_s", "bf16_speedup"):
        assert r[key] > 0, key
    assert r["bf16_finite"] and r["bf16_max_rel_diff"] <= REL_BOUND
    assert r["max_abs_diff"] <= 1e-4  # batched float32 == the per-window loop
    assert "cpu_bf16" in res["machine"]
