"""The demo end to end on tiny settings: data -> training both models -> evaluation -> report."""

import json

import pytest

from audioflex.apps.demo import DemoSettings, run_demo


@pytest.mark.slow
def test_quick_demo_writes_report_plot_and_checkpoints(tmp_path):
    lines = []
    result = run_demo(tmp_path / "demo", DemoSettings.quick(), say=lines.append)
    assert [ln.split()[0] for ln in lines if ln[:1].isdigit()] == ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"]
    text = result.report.read_text()
    assert "## elastic_ast_tiny: test accuracy" in text and "## ast_tiny: test accuracy" in text
    assert "| 40 ms |" in text and result.plot.stat().st_size > 10_000
    assert "seed 0: ElasticAST minus AST" in text and "seed 1: ElasticAST minus AST" in text and " ± " in text
    for runs in result.checkpoints.values():
        assert len(runs) == 2 and len(set(runs)) == 2  # one checkpoint per seed
        for ck in runs:
            assert (ck / "model.safetensors").is_file() and json.loads((ck / "config.json").read_text())["labels"]
    rows = json.loads((tmp_path / "demo" / "evaluation.json").read_text())
    assert {r["name"] for r in rows} == {"elastic_ast_tiny", "ast_tiny"}
    assert all(len(r["rows"]) == 4 for r in rows)  # 2 lengths x 2 frame shifts
    for r in rows:  # the mean and std of the per-seed values
        for row in r["rows"]:
            per_seed = row["accuracy_seeds"]
            assert len(per_seed) == 2 and row["accuracy"] == pytest.approx(sum(per_seed) / 2)
            assert row["accuracy_std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2**0.5)
    assert set(result.accuracy["elastic_ast_tiny"]) == {"1s@10ms", "2s@10ms", "1s@40ms", "2s@40ms"}


def test_demo_report_counts_the_training_compute_of_both_models():
    """The report's AST token count is the model's own patch grid (8 x 32 patches of 5.12 s at stride
    16); the defaults give the fixed baseline twice ElasticAST's compute (never less: the comparison
    does not favour ElasticAST)."""
    from audioflex.apps.demo import _ast_tokens

    s = DemoSettings()
    assert _ast_tokens(s) == 8 * 32
    assert s.ast_steps * s.ast_batch_size * _ast_tokens(s) == 2 * s.elastic_steps * s.elastic_max_tokens
