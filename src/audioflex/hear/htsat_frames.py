"""HTS-AT frame mode of the HEAR embedding model (``timestamp_mode="frames"``).

Instead of one forward per timestamp window, the clip is cut into the model's fixed windows
(10.24 s for HTS-AT) every half window (the first at 0, the last reaching the end; short ones
zero-padded with their valid frames passed on). Each feature source (the frame logits with
``include_logits``; the final tokens, or each requested block's output) is un-folded by the model
(``forward_steps``) into a timeline of steps, averaged over the windows covering a step and
linearly interpolated at the timestamps (step values sit at step centres; clamped at the clip's
first/last valid step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from audioflex.audio.frontend.base import Frontend
from audioflex.audio.stream import AudioReader
from audioflex.hear.options import merge_layers
from audioflex.hear.windows import Window, window_centres
from audioflex.models.contract import ModelContract, StepFeatureModel, model_device

_Steps = list[tuple[torch.Tensor, int]]  # per feature source: (values [S_k, D_k], valid steps)


class FrameTimeline:
    """Time-resolved step features of a :class:`~audioflex.models.contract.StepFeatureModel`.

    Args:
        net: the model (``forward_steps``; ``contract.input_frames`` and ``frame_steps`` set).
        frontend: its front end (``[B, L] -> [B, F, T]``).
        contract: the model's contract.
        layers: block indices whose outputs are the features (None: the final tokens).
        layer_mode: ``"concat"`` or ``"mean"`` over ``layers``.
        include_logits: put the frame logits first.
        max_frames: input frames per forward (windows per batch = ``max_frames // input_frames``).

    Attributes:
        fw_frames, fw_samples, fw_hop: window length in frames and samples, window hop in samples.
    """

    def __init__(self, net: StepFeatureModel, frontend: Frontend, contract: ModelContract, *,
                 layers: tuple[int, ...] | None, layer_mode: str, include_logits: bool, max_frames: int) -> None:
        if contract.input_frames is None or contract.frame_steps is None:
            raise ValueError(f"{contract.family}: step_features needs forward_steps, input_frames and frame_steps")
        self.net, self.frontend, self.contract = net, frontend, contract
        self.layers, self.layer_mode, self.include_logits = layers, layer_mode, include_logits
        self.max_frames = max_frames
        hop_len = round(frontend.hop_s * frontend.sample_rate)
        self.fw_frames = contract.input_frames
        self.fw_samples = self.fw_frames * hop_len
        self.fw_hop = self.fw_samples // 2

    def window_steps(self, wave: torch.Tensor, lengths: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Windows ``[B, W]`` (``lengths [B]`` real samples) -> per feature source (logits?, final
        features or each requested block) ``(values [B, S_k, D_k], valid steps [B])``."""
        device = model_device(self.net)
        spec, frames = self.frontend(wave.to(device), lengths.to(device))
        spec = spec[..., : self.fw_frames]
        frames = frames.clamp(max=self.fw_frames)
        logits, final, hidden = self.net.forward_steps(spec, frames, self.layers or ())
        sources: list[torch.Tensor] = []
        if self.include_logits:
            sources.append(logits)  # frame logits [B, S, C]
        if self.layers is None:
            sources.append(final)
        else:
            sources.extend(merge_layers(list(hidden), self.layer_mode))
        out = []
        for v in sources:
            step_frames = self.fw_frames // v.shape[1]
            valid = torch.div(frames + step_frames - 1, step_frames, rounding_mode="floor").clamp(min=1)
            out.append((v.float().cpu(), valid.cpu()))
        return out

    def _window_span(self, n: int, cen: torch.Tensor) -> tuple[int, int]:
        """First and last window index of a clip of ``n`` samples that cover timestamps ``cen``."""
        W, H = self.fw_samples, self.fw_hop
        margin = W // (self.contract.frame_steps or 1)  # one final step: the widest
        lo, hi = max(0, int(cen.min()) - margin), min(n, int(cen.max()) + margin + 1)
        last = 0 if n <= W else math.ceil((n - W) / H)
        return max(0, (lo - W) // H + 1), min(last, (hi - 1) // H)

    def _run_jobs(self, sources: Sequence[AudioReader], jobs: list[tuple[int, int]]) -> dict[tuple[int, int], _Steps]:
        """Step features of windows ``(clip, window index)``, batched by ``max_frames``."""
        W, H = self.fw_samples, self.fw_hop
        per = max(1, self.max_frames // self.fw_frames)
        results: dict[tuple[int, int], _Steps] = {}
        for s in range(0, len(jobs), per):
            chunk = jobs[s : s + per]
            wave = torch.zeros(len(chunk), W)
            lengths = torch.zeros(len(chunk), dtype=torch.long)
            for i, (clip, k) in enumerate(chunk):
                src = sources[clip]
                a, b = k * H, min(k * H + W, src.num_samples)
                wave[i, : b - a] = src.read(a, b).float()
                lengths[i] = b - a
            with torch.no_grad():
                feats = self.window_steps(wave, lengths)
            for i, job in enumerate(chunk):
                results[job] = [(v[i], int(valid[i])) for v, valid in feats]
        return results

    def _interpolate(self, per_window: list[tuple[torch.Tensor, int]], k0: int, n: int,
                     cen: torch.Tensor) -> torch.Tensor:
        """One feature source over windows ``k0 ..`` (``per_window``: values ``[S, D]`` and valid
        steps of each) -> its vectors ``[len(cen), D]`` at timestamp centres ``cen`` (samples)."""
        W, H = self.fw_samples, self.fw_hop
        s_win, dim = per_window[0][0].shape
        step = W / s_win  # samples per step
        hop_steps = round(H / step)
        total = max(1, math.ceil(n / step))  # valid steps of the clip
        base = k0 * hop_steps
        size = (len(per_window) - 1) * hop_steps + s_win
        acc = torch.zeros(size, dim, dtype=torch.float64)
        cnt = torch.zeros(size, dtype=torch.float64)
        for j, (v, valid) in enumerate(per_window):
            a = (k0 + j) * hop_steps - base
            acc[a : a + valid] += v[:valid].double()
            cnt[a : a + valid] += 1
        pos = cen / step - 0.5
        s0 = torch.floor(pos)
        frac = (pos - s0)[:, None]
        i0 = s0.long().clamp(0, total - 1)
        i1 = (s0.long() + 1).clamp(0, total - 1)
        vals = acc / cnt.clamp(min=1)[:, None]
        lo_i, hi_i = (i0 - base).clamp(0, size - 1), (i1 - base).clamp(0, size - 1)
        return ((1 - frac) * vals[lo_i] + frac * vals[hi_i]).float()

    def vectors(self, sources: Sequence[AudioReader], windows: Sequence[Window], hop_samples: float) -> torch.Tensor:
        """Vectors ``[sum(count), D]`` of the timestamps of ``windows`` (``hop_samples`` apart)."""
        spans, jobs = [], []
        for w in windows:
            k0, k1 = self._window_span(sources[w.clip].num_samples, window_centres(w.first, w.count, hop_samples))
            spans.append((k0, k1))
            jobs += [(w.clip, k) for k in range(k0, k1 + 1)]
        results = self._run_jobs(sources, jobs)
        out = []
        for w, (k0, k1) in zip(windows, spans):
            n = sources[w.clip].num_samples
            cen = window_centres(w.first, w.count, hop_samples).double()
            per_source = zip(*(results[(w.clip, k)] for k in range(k0, k1 + 1)))
            out.append(torch.cat([self._interpolate(list(ws), k0, n, cen) for ws in per_source], dim=-1))
        return torch.cat(out)


__all__ = ["FrameTimeline"]
