"""Length reports: the mean over training seeds."""

import pytest

from audioflex.evaluate.lengths import LengthReport, length_row, mean_over_seeds


def _report(ckpt: str, accs: list[float]) -> LengthReport:
    rows = [length_row(length, 10.0, {"accuracy": a, "note": "x"}) for length, a in zip((1.0, None), accs)]
    return LengthReport("m", ckpt, "accuracy", rows)


def test_mean_over_seeds_keeps_the_grid_and_gives_mean_std_and_values() -> None:
    mean = mean_over_seeds("model", [_report("a", [0.5, 0.9]), _report("b", [0.7, 0.9]), _report("c", [0.6, 0.9])])
    assert mean.name == "model" and mean.metric == "accuracy" and mean.checkpoint == "a; b; c"
    first, native = mean.rows
    assert (first["length_s"], first["frame_shift_ms"], native["length_s"]) == (1.0, 10.0, None)
    assert first["accuracy"] == pytest.approx(0.6) and first["accuracy_std"] == pytest.approx(0.1)
    assert first["accuracy_seeds"] == [0.5, 0.7, 0.6] and "note" not in first  # numbers only
    assert native["accuracy_std"] == 0.0
    assert mean_over_seeds("one", [_report("a", [0.5, 0.9])]).rows[0]["accuracy_std"] == 0.0


def test_mean_over_seeds_refuses_different_grids_and_no_report() -> None:
    other = LengthReport("m", "b", "accuracy", [length_row(2.0, 10.0, {"accuracy": 0.1})])
    with pytest.raises(ValueError, match="different settings"):
        mean_over_seeds("model", [_report("a", [0.5, 0.9]), other])
    with pytest.raises(ValueError, match="at least one"):
        mean_over_seeds("model", [])
