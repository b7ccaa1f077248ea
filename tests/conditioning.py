"""How far two correct float32 implementations of a log-mel front end may disagree, entry by entry.

A log-mel entry ``g(E)`` with ``E = sum_k w_k |X_k|^2`` is ill-conditioned where ``E`` is tiny
against the rounding error of the frame's DFT: a single-FFT-bin mel filter between two harmonics, a
near-silent frame, the log floor. There, any change of summation order — another CPU's vector width
(AVX2 vs AVX-512 kernels in MKL's FFT or in ATen's reductions), another thread count, a one-ulp
change of the input — moves the entry by far more than a fixed tolerance allows, while
well-conditioned entries agree to ~1e-6. So a parity test compares every entry against a bound
derived from the reference's own conditioning, computed here from the float64 power spectrum:

* per-bin DFT error ``|dX_k| <= eta * log2(n_fft) * ||x_f||_2`` with ``eta = (4 sqrt(2) + 1) u``
  (Higham, *Accuracy and Stability of Numerical Algorithms*, Thm. 24.2: radix-2 FFT, norm-wise,
  spread evenly over the bins; a blocked direct DFT stays below it in the same RMS sense), where
  ``||x_f||_2`` is the windowed frame's norm (Parseval) and ``u = 2^-24``;
* power ``dP_k = 2 |X_k| dX_k + dX_k^2 + 2 u P_k``; mel sum ``dE = W dP + u log2(K) E``;
* output ``|d g| <= scale * dE / (max(E - dE, floor) + offset)`` plus a few ulps for the log;
* two implementations: twice that (each is within the bound of the exact value).

Measured on the kaldi fixture (chirp, 10 s, 0.3 s, noise at 10/20/40 ms): float64 vs the float32
reference, one-ulp input perturbations, 1 vs 2 threads and each op of the front end recomputed in
float64 all stay within 0.22 of this two-implementation bound.
"""

from __future__ import annotations

import math

import torch

U = 2.0**-24  # unit roundoff of float32
ETA = (4 * math.sqrt(2) + 1) * U


def logmel_bound(
    power: torch.Tensor,
    mel: torch.Tensor,
    *,
    n_fft: int,
    scale: float = 1.0,
    floor: float = 0.0,
    offset: float = 0.0,
    weight_error: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bound on ``|a - b|`` for two float32 computations of ``scale * log(max(E, floor) + offset)``.

    Args:
        power: ``[K, T]`` float64 power spectrum ``|X_k|^2`` of one clip (``K = n_fft // 2 + 1``).
        mel: ``[F, K]`` mel weights (non-negative).
        n_fft: DFT size of the frames.
        scale, floor, offset: the log step (kaldi: 1, float32 eps, 0; PaSST: 1/5, 0, 1e-5;
            HTS-AT dB: 10/ln 10, amin, 0).
        weight_error: ``[F, K]`` how far an implementation's mel weights may be from exact (a
            reference that evaluates them in float32: ``kaldi.mel_bank_rounding``); adds
            ``weight_error @ power`` to the mel sum's error.

    Returns:
        ``[F, T]`` float64 bound per entry.
    """
    p = power.double()
    k = p.shape[0]
    parseval = torch.full((k, 1), 2.0, dtype=p.dtype)
    parseval[0] = 1.0
    if n_fft % 2 == 0:
        parseval[-1] = 1.0
    frame_norm = ((p * parseval).sum(0) / n_fft).sqrt()  # [T] ||x_f||_2
    dx = ETA * math.log2(n_fft) * frame_norm  # [T] per-bin DFT error
    dp = 2 * p.sqrt() * dx + dx * dx + 2 * U * p  # [K, T]
    w = mel.double()
    energy = w @ p
    de = w @ dp + U * math.log2(k) * energy
    if weight_error is not None:
        de = de + weight_error.double() @ p
    value = energy.clamp_min(floor) + offset
    one = abs(scale) * de / ((energy - de).clamp_min(floor) + offset)
    log_rounding = 8 * U * abs(scale) * (1 + value.clamp_min(1e-300).log().abs())
    return 2 * (one + log_rounding)


def check_within_bound(ours: torch.Tensor, ref: torch.Tensor, bound: torch.Tensor, *, name: str = "") -> None:
    """Assert ``|ours - ref| <= bound`` for every entry, naming the worst offender."""
    diff = (ours.double() - ref.double()).abs()
    over = diff > bound
    if bool(over.any()):
        worst = (diff - bound).argmax()
        raise AssertionError(
            f"{name}: {int(over.sum())} of {diff.numel()} entries beyond their conditioning bound; e.g. diff "
            f"{diff.flatten()[worst].item():.3g} where the bound is {bound.flatten()[worst].item():.3g}"
        )


def well_conditioned_share(bound: torch.Tensor, tol: float) -> float:
    """Share of entries whose bound is within ``tol`` (the fixture's strict tolerance)."""
    return (bound <= tol).double().mean().item()


def one_ulp_perturbations(wave: torch.Tensor, count: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """``count`` copies of a float32 ``wave`` with every sample moved one ulp up or down at random."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        up = torch.randint(0, 2, wave.shape, generator=gen).bool()
        target = torch.where(up, torch.full_like(wave, float("inf")), torch.full_like(wave, float("-inf")))
        out.append(torch.nextafter(wave, target))
    return out
