"""The HTS-AT benchmark functions run and report sane numbers (tiny settings)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from audioflex.bench.htsat import bench_detect, bench_train_step, make_long_audio


def test_make_long_audio_has_tones_at_known_times(tmp_path):
    path = make_long_audio(tmp_path / "a.wav", 75.0, 16000)
    x, sr = sf.read(path)
    assert sr == 16000 and x.shape == (75 * 16000,)
    on = np.abs(x[int(7.2 * sr) : int(7.8 * sr)]).mean()  # tone at 7..8 s
    off = np.abs(x[int(8.2 * sr) : int(8.8 * sr)]).mean()
    assert on > 3 * off


def test_bench_functions_report_numbers(tmp_path):
    d = bench_detect(6.0, model="htsat_mini", batch_size=4, workdir=tmp_path)
    assert d["timeline_steps"] == 19 and d["realtime_factor"] > 0 and d["peak_rss_mb"] > 0
    t = bench_train_step("htsat_mini", batch=1, steps=1, seconds=1.0)
    assert t["params"] > 1e6 and t["s_per_clip"] > 0 and t["input_shape"] == [1, 64, 101]
