"""Train-time augmentation: SpecAugment, mixup, gain, time shift, speed, background noise, overlays, crops, random
resolution."""

from __future__ import annotations

import pytest
import torch

from audioflex.audio.augment import (
    ELASTIC_FRAME_SHIFTS_MS,
    Mixup,
    SpecAugment,
    add_background,
    change_speed,
    elastic_frame_shifts,
    frames_for,
    mixup,
    overlay,
    random_crop,
    random_gain,
    random_time_shift,
    sample_beta,
    sample_crop,
    sample_frame_shift,
    sample_frame_shifts,
    speed_factors,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------ SpecAugment


def _runs(mask_row: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    runs, n = [], 0
    for v in mask_row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_specaugment_shapes_and_masks_inside_valid_lengths() -> None:
    aug = SpecAugment(
        freq_mask_param=8, time_mask_param=30, num_freq_masks=2, num_time_masks=2, mask_value=-5.0
    )
    spec = torch.randn(4, 32, 200)
    lengths = torch.tensor([200, 120, 40, 0])
    out = aug(spec, lengths, generator=gen(1))
    assert out.shape == spec.shape and out is not spec
    masked = out == -5.0
    valid = torch.arange(200) < lengths[:, None]
    assert not masked[~valid[:, None, :].expand_as(masked)].any()  # padding untouched
    assert torch.equal(out[~masked], spec[~masked])  # everything else unchanged
    assert not masked[3].any()  # an empty clip gets no mask
    for _ in range(20):
        f_mask, t_mask = aug.masks((4, 32, 200), lengths, generator=None)
        assert not (t_mask & ~valid).any()
        for b in range(4):
            assert sum(_runs(f_mask[b])) <= 2 * 8 and max(_runs(f_mask[b]), default=0) <= 16
            assert all(r <= 60 for r in _runs(t_mask[b]))


def test_specaugment_clip_mean_fill_for_un_normalised_spectrograms() -> None:
    """mask_value=None fills each masked cell with its clip's mean of that bin over the valid
    frames (dB log-mel: 0 would be a loud stripe), never with 0, and padding stays as it was."""
    aug = SpecAugment(freq_mask_param=6, time_mask_param=40, num_freq_masks=2, num_time_masks=2, mask_value=None)
    spec = -50.0 + 10.0 * torch.randn(3, 16, 120, dtype=torch.float64)
    spec[1, :, 80:] = -100.0  # the silence floor past clip 1's end
    lengths = torch.tensor([120, 80, 30])
    f_mask, t_mask = aug.masks(spec.shape, lengths, generator=gen(4))
    out = aug(spec, lengths, generator=gen(4))
    valid = torch.arange(120) < lengths[:, None]
    mask = (f_mask[:, :, None] | t_mask[:, None, :]) & valid[:, None, :]
    assert mask.any() and not (out == 0).any()
    for b in range(3):
        n = int(lengths[b])
        means = spec[b, :, :n].mean(dim=1)  # computed before masking
        for f in range(16):
            cells = mask[b, f]
            assert torch.allclose(out[b, f, cells], means[f].expand(int(cells.sum())), rtol=1e-12, atol=1e-12)
    assert torch.equal(out[~mask], spec[~mask])  # unmasked cells and padding unchanged
    assert "clip mean" in repr(aug)


def test_specaugment_time_width_scales_with_frame_shift() -> None:
    aug = SpecAugment(time_mask_param=192, frame_shift_ms=10.0)  # ElasticAST: 192 frames at 10 ms
    assert int(aug.max_time_width()) == 192
    assert int(aug.max_time_width(20.0)) == 96 and int(aug.max_time_width(40.0)) == 48
    assert aug.max_time_width(torch.tensor([10.0, 12.0, 30.0])).tolist() == [192, 160, 64]
    assert int(SpecAugment(time_mask_param=500, time_unit="ms").max_time_width(25.0)) == 20
    # widths actually drawn at 40 ms never exceed 48 frames, and do exceed 48 at 10 ms
    big = SpecAugment(time_mask_param=192, num_time_masks=1)
    g = gen(3)
    w40 = [
        int(big.masks((1, 4, 1000), frame_shift_ms=40.0, generator=g)[1].sum()) for _ in range(200)
    ]
    w10 = [
        int(big.masks((1, 4, 1000), frame_shift_ms=10.0, generator=g)[1].sum()) for _ in range(200)
    ]
    assert max(w40) <= 48 and max(w10) > 48
    # per-clip shifts in one batch
    _, t_mask = big.masks((2, 4, 1000), frame_shift_ms=torch.tensor([40.0, 10.0]), generator=g)
    assert t_mask.shape == (2, 1000) and int(t_mask[0].sum()) <= 48


def test_specaugment_list_input_and_determinism() -> None:
    aug = SpecAugment(freq_mask_param=4, time_mask_param=10, mask_value=0.0)
    clips = [torch.randn(16, n) + 10 for n in (50, 7, 120)]
    a = aug(clips, frame_shift_ms=[10.0, 20.0, 10.0], generator=gen(5))
    b = aug(clips, frame_shift_ms=[10.0, 20.0, 10.0], generator=gen(5))
    c = aug(clips, generator=gen(6))
    assert [x.shape for x in a] == [x.shape for x in clips]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert any((x == 0).any() for x in a)
    spec = torch.randn(3, 16, 64)
    assert torch.equal(aug(spec, generator=gen(9)), aug(spec, generator=gen(9)))


def test_specaugment_bad_arguments() -> None:
    with pytest.raises(ValueError, match="time_unit"):
        SpecAugment(time_unit="seconds")
    with pytest.raises(ValueError, match=r"expected spec \[B, F, T\]"):
        SpecAugment(4, 4)(torch.randn(16, 10))
    with pytest.raises(ValueError, match=r"lengths must be in \[0, 10\]"):
        SpecAugment(4, 4)(torch.randn(2, 16, 10), torch.tensor([5, 11]))


# ----------------------------------------------------------------------------------------- mixup


def test_mixup_label_math_multi_hot_and_one_hot() -> None:
    x = torch.randn(6, 8, 20)
    y = (torch.rand(6, 5) > 0.5).float()
    xm, ym, lam, perm = mixup(x, y, alpha=0.5, generator=gen(0))
    assert (
        xm.shape == x.shape
        and ym.shape == y.shape
        and lam.shape == (6,)
        and sorted(perm.tolist()) == list(range(6))
    )
    assert ((lam >= 0) & (lam <= 1)).all()
    lam3 = lam.view(-1, 1, 1)
    torch.testing.assert_close(xm, lam3 * x + (1 - lam3) * x[perm])
    torch.testing.assert_close(ym, lam[:, None] * y + (1 - lam[:, None]) * y[perm])
    # class indices -> mixed one-hot targets that sum to one
    idx = torch.tensor([0, 2, 1, 2, 0, 1])
    _, yc, lam_c, perm_c = mixup(x, idx, alpha=1.0, num_classes=3, generator=gen(1))
    expected = torch.zeros(6, 3)
    for i in range(6):
        expected[i, idx[i]] += lam_c[i]
        expected[i, idx[perm_c[i]]] += 1 - lam_c[i]
    torch.testing.assert_close(yc, expected)
    torch.testing.assert_close(yc.sum(1), torch.ones(6))
    with pytest.raises(ValueError, match="num_classes"):
        mixup(x, idx, generator=gen(1))


def test_mixup_determinism_and_beta() -> None:
    x, y = torch.randn(4, 3, 10), torch.eye(4)
    a = mixup(x, y, alpha=0.4, generator=gen(7))
    b = Mixup(alpha=0.4)(x, y, generator=gen(7))
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    lam = sample_beta(0.5, 20000, gen(2))
    assert (
        abs(float(lam.mean()) - 0.5) < 0.02 and abs(float(lam.var()) - 0.125) < 0.01
    )  # Beta(.5,.5)
    assert torch.equal(sample_beta(0.5, 5, gen(2)), sample_beta(0.5, 5, gen(2)))


def test_mixup_variable_lengths_keeps_each_length() -> None:
    clips = [torch.full((2, n), float(i + 1)) for i, n in enumerate((10, 4, 7))]
    y = torch.eye(3)
    for seed in range(10):
        out, ym, lam, perm = mixup(clips, y, alpha=1.0, generator=gen(seed))
        for i, (o, c) in enumerate(zip(out, clips)):
            assert o.shape == c.shape
            j, li = int(perm[i]), float(lam[i])
            mixed_val = li * (i + 1) + (1 - li) * (j + 1)
            n, m = c.shape[-1], clips[j].shape[-1]
            is_mixed = torch.isclose(o[0], torch.tensor(mixed_val))
            assert int(is_mixed.sum()) == min(n, m)  # partner covers the overlap only
            assert torch.allclose(o[0][~is_mixed], torch.tensor(float(i + 1)))  # rest untouched
            # the mixed part is contiguous
            assert _runs(is_mixed) == [min(n, m)]
    # padded batch with lengths: padding stays, valid part equals the list result
    padded = torch.zeros(3, 2, 10)
    for i, c in enumerate(clips):
        padded[i, :, : c.shape[-1]] = c
    lengths = torch.tensor([10, 4, 7])
    out_p, *_ = mixup(padded, y, alpha=1.0, lengths=lengths, generator=gen(4))
    out_l, *_ = mixup(clips, y, alpha=1.0, generator=gen(4))
    for i in range(3):
        n = int(lengths[i])
        torch.testing.assert_close(out_p[i, :, :n], out_l[i])
        assert (out_p[i, :, n:] == 0).all()


# ---------------------------------------------------------------------------------- waveforms


def test_random_gain_range_and_determinism() -> None:
    wave = torch.rand(256, 100) * 0.5 + 0.1
    out = random_gain(wave, -6.0, 3.0, generator=gen(0))
    ratio_db = 20 * torch.log10(out / wave)
    per_clip = ratio_db[:, 0]
    assert torch.allclose(
        ratio_db, per_clip[:, None].expand_as(ratio_db), atol=1e-4
    )  # one gain per clip
    assert per_clip.min() >= -6.0 - 1e-4 and per_clip.max() <= 3.0 + 1e-4
    assert per_clip.min() < -5.0 and per_clip.max() > 2.0  # the range is used
    assert torch.equal(out, random_gain(wave, -6.0, 3.0, generator=gen(0)))
    assert random_gain(torch.ones(50), 0.0, 0.0).eq(1.0).all()
    with pytest.raises(ValueError, match="min_db"):
        random_gain(wave, 3.0, -3.0)


def test_random_time_shift_is_a_circular_shift_within_range() -> None:
    wave = torch.arange(1000.0)
    shifts = set()
    g = gen(0)
    for _ in range(200):
        out = random_time_shift(wave, 50, generator=g)
        k = int(out.argmin())  # where sample 0 went: the shift, modulo the length
        k = k - 1000 if k > 500 else k
        assert -50 <= k <= 50 and torch.equal(out, torch.roll(wave, k))
        shifts.add(k)
    assert min(shifts) < -40 and max(shifts) > 40  # the range is used, both ways
    assert torch.equal(random_time_shift(wave, 50, generator=gen(1)), random_time_shift(wave, 50, generator=gen(1)))
    assert random_time_shift(wave, 0) is wave
    with pytest.raises(ValueError, match="max_shift"):
        random_time_shift(wave, -1)
    with pytest.raises(ValueError, match=r"wave \[T\]"):
        random_time_shift(wave.view(2, 500), 5)


def _peak_hz(wave: torch.Tensor, sr: int) -> float:
    spec = torch.fft.rfft(wave.double() * torch.hann_window(wave.shape[0], dtype=torch.float64)).abs()
    return float(spec.argmax()) * sr / wave.shape[0]


def test_change_speed_moves_tempo_and_pitch_together() -> None:
    sr = 16000
    t = torch.arange(sr) / sr
    tone = torch.sin(2 * torch.pi * 500.0 * t)
    for factor in (0.9, 1.1):
        out = change_speed(tone, factor)
        assert abs(out.shape[0] - sr / factor) <= 1  # 1 s played `factor` times faster
        assert out.dtype == tone.dtype
        # 500 Hz -> 500 * factor Hz (within one FFT bin of the output)
        assert abs(_peak_hz(out, sr) - 500.0 * factor) <= sr / out.shape[0]
        # level kept (soxr's passband): RMS within 1 % away from the edges
        mid = out[sr // 10 : -sr // 10]
        assert float(mid.pow(2).mean().sqrt()) == pytest.approx(0.5**0.5, rel=0.01)
    assert change_speed(tone, 1.0) is tone
    assert change_speed(tone, 1.00001) is tone  # below the 1e-4 resolution
    with pytest.raises(ValueError, match="factor must be > 0"):
        change_speed(tone, 0.0)
    with pytest.raises(ValueError, match=r"expected wave \[T\]"):
        change_speed(tone.view(2, -1), 1.1)


def test_add_background_hits_the_drawn_snr() -> None:
    t = torch.linspace(0, 1, 1600, dtype=torch.float64)
    wave = (0.3 * torch.sin(2 * torch.pi * 440 * t)).float()
    noises = [torch.randn(500, generator=gen(3)), 2.0 * torch.randn(4000, generator=gen(4))]
    snrs = []
    for seed in range(40):
        out = add_background(wave, noises, (5.0, 15.0), generator=gen(seed))
        added = (out.double() - wave.double())
        snr = 10 * torch.log10(wave.double().pow(2).mean() / added.pow(2).mean())
        assert 5.0 - 1e-3 <= float(snr) <= 15.0 + 1e-3  # float32 output: ~1e-6 relative
        snrs.append(float(snr))
    assert max(snrs) - min(snrs) > 5  # the range is used
    # the 500-sample noise is tiled over the 1600-sample clip: the added part repeats every 500 samples
    short = add_background(wave, noises[:1], (10.0, 10.0), generator=gen(0)).double() - wave.double()
    assert torch.allclose(short[:1100], short[500:1600], atol=1e-6)
    assert torch.equal(add_background(wave, noises, generator=gen(7)), add_background(wave, noises, generator=gen(7)))
    silent = add_background(torch.zeros(800), noises, (0.0, 0.0), generator=gen(0))
    assert float(silent.abs().max()) > 0  # a silent clip still gets noise (at the noise's own level)
    with pytest.raises(ValueError, match="no noise recordings"):
        add_background(wave, [])
    with pytest.raises(ValueError, match="snr_db"):
        add_background(wave, noises, (10.0, 5.0))


def test_overlay_adds_inside_its_span_at_the_asked_snr() -> None:
    t = torch.linspace(0, 1, 1600, dtype=torch.float64)
    wave = (0.3 * torch.sin(2 * torch.pi * 440 * t)).float()
    other = torch.randn(400, generator=gen(1))
    out = overlay(wave, other, 1000, -3.0)
    added = out.double() - wave.double()
    assert torch.equal(added[:1000], torch.zeros(1000, dtype=torch.float64))
    assert torch.equal(added[1400:], torch.zeros(200, dtype=torch.float64))
    # the clip's RMS (whole clip) over the added excerpt's RMS (its own span) is the asked SNR
    snr = 10 * torch.log10(wave.double().pow(2).mean() / added[1000:1400].pow(2).mean())
    assert float(snr) == pytest.approx(-3.0, abs=1e-3)  # float32 output: ~1e-6 relative
    assert torch.equal(overlay(wave, torch.zeros(400), 0, 0.0), wave)  # a silent excerpt adds nothing
    assert float(overlay(torch.zeros(1600), other, 0, 0.0).abs().max()) > 0  # a silent clip gets it at its level
    with pytest.raises(ValueError, match="must lie inside wave"):
        overlay(wave, other, 1300, 0.0)
    with pytest.raises(ValueError, match=r"must be \[T\] and \[N\]"):
        overlay(wave.view(2, -1), other, 0, 0.0)


def test_random_crop_lengths() -> None:
    g = gen(0)
    x = torch.arange(5000.0).view(1, 5000)
    sizes = []
    for _ in range(200):
        crop, start = random_crop(x, (384, 3072), generator=g)  # ElasticAST: U[384, min(T, 3072)]
        size = crop.shape[-1]
        sizes.append(size)
        assert 384 <= size <= 3072 and torch.equal(crop, x[..., start : start + size])
    assert min(sizes) < 800 and max(sizes) > 2600
    short = torch.arange(1000.0)
    sizes_s = {random_crop(short, (384, 3072), generator=g)[0].shape[-1] for _ in range(100)}
    assert max(sizes_s) <= 1000 and min(sizes_s) >= 384
    assert (
        random_crop(torch.arange(100.0), (384, 3072), generator=g)[0].shape[-1] == 100
    )  # kept whole
    crop, start = random_crop(x, 1024, generator=g)
    assert crop.shape == (1, 1024)
    start_s, dur_s = sample_crop(12.5, (3.84, 30.72), generator=g, integer=False)  # in seconds
    assert 3.84 <= dur_s <= 12.5 and 0 <= start_s <= 12.5 - dur_s
    assert frames_for(10.24, 10.0) == 1024 and frames_for(10.24, 40.0) == 256
    a = [sample_crop(5000, (384, 3072), generator=gen(11)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_random_resolution() -> None:
    assert (
        ELASTIC_FRAME_SHIFTS_MS
        == elastic_frame_shifts()
        == tuple(float(v) for v in range(10, 41, 2))
    )
    g = gen(0)
    draws = [sample_frame_shift(generator=g) for _ in range(2000)]
    assert set(draws) == set(ELASTIC_FRAME_SHIFTS_MS)
    assert sample_frame_shifts(8, (10.0, 20.0), generator=gen(3)) == sample_frame_shifts(
        8, (10.0, 20.0), generator=gen(3)
    )
    assert sample_frame_shift((25.0,)) == 25.0
    with pytest.raises(ValueError, match="empty"):
        sample_frame_shift(())


def test_speed_factors_is_the_one_check():
    assert speed_factors(()) is None and speed_factors(None) is None
    assert speed_factors([0.9, 1]) == (0.9, 1.0)
    for bad in ((1.1,), (1.2, 0.9), (0.0, 1.0), (True, 1.0), ("0.9", 1.1)):
        with pytest.raises(ValueError, match=r"augment\.speed: expected \[low, high\] .*e\.g\. \[0\.9, 1\.1\]"):
            speed_factors(bad, "augment.speed")
