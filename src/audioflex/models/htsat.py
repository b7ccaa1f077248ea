"""HTS-AT: hierarchical token-semantic audio transformer (Chen et al., ICASSP 2022; REFERENCE.md §3).

Input: the log-mel spectrogram in dB ``[B, F=64, T]`` of :class:`~audioflex.audio.frontend.logmel.
LogMel` (T <= 1024 frames = 10.24 s). Inside the model:

1. ``bn0``: BatchNorm over the mel bins (as the reference);
2. fit the time axis to the 1024-frame window (see below) and **fold** ``[F=64, T=1024]`` into a
   256x256 image: 4 chunks of 256 frames stacked along the height (row = chunk * 64 + mel,
   column = frame - 256 * chunk);
3. conv patch embedding 4x4 / stride 4 + LayerNorm -> 64x64 tokens; Swin stages with shifted
   windows and relative position bias, patch merging between stages;
4. token-semantic head: final LayerNorm, un-fold the 8x8 grid to 2 (freq) x 32 (time) in temporal
   order, ``Conv2d(D, C, (2, 3), padding=(0, 1))`` -> frame logits ``[B, 32, C]``;
   clip logits = their mean over time; embedding = the mean of the final tokens.

Fitting short inputs (< 1024 frames):
- default: **zero padding after bn0** (a normalised value of 0 = the running mean, i.e. "average"
  input rather than a large negative dB value), time stays real: ``frame_hop_s`` = 0.32 s, and the
  clip logits / embedding average only the 32-frame steps that overlap real frames;
- ``stretch_short=True``: bicubic stretch of each clip's valid frames to 1024 (the reference;
  the default of checkpoints converted from the official ones, see
  ``checkpoints.convert.htsat``); the clip logits / embedding average all 32 steps of the
  stretched clip, as the reference;
- ``repeat_short=True``: tile ``floor(1024 / T)`` times, then stretch (the reference's
  ``infer_mode``).
Frame logits when stretching: without ``frames`` they are the reference's (32 steps spanning the
stretched clip, ``frame_hop_s = T * input_hop_s / 32``, so ``sigmoid`` + repeat x32 is its
``framewise_output``); with ``frames`` (a padded batch: how the pipeline, detection and training
call the model) each clip's 32 steps are linearly resampled back onto the model's own timeline of
``step_frames`` frames per step (``frame_hop_s`` = 0.32 s, valid steps ``ceil(frames / 32)``), so
clips of different lengths share one timeline.
Longer inputs raise: use sliding-window inference (the pipeline does it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from audioflex.layers.block import init_vit_weights
from audioflex.layers.mlp import drop_path_rates
from audioflex.layers.swin import SwinStage
from audioflex.models.contract import ModelContract, check_frames, check_pool
from audioflex.models.outputs import AudioOutput
from audioflex.models.registry import register_model

if TYPE_CHECKING:
    from audioflex.packing import PackedBatch

__all__ = ["HTSAT", "fold_spectrogram", "unfold_image"]


def fold_spectrogram(spec: torch.Tensor, chunks: int) -> torch.Tensor:
    """``[B, F, T]`` -> ``[B, 1, chunks * F, T / chunks]``: time chunks stacked along the height
    (row = chunk * F + f, column = t - chunk * T / chunks)."""
    b, f, t = spec.shape
    if t % chunks:
        raise ValueError(f"cannot fold {t} frames into {chunks} equal chunks")
    x = spec.reshape(b, f, chunks, t // chunks).permute(0, 2, 1, 3)
    return x.reshape(b, 1, chunks * f, t // chunks)


def unfold_image(image: torch.Tensor, chunks: int) -> torch.Tensor:
    """Inverse of :func:`fold_spectrogram`: ``[B, 1, chunks * F, W]`` -> ``[B, F, chunks * W]``."""
    b, _, h, w = image.shape
    x = image.reshape(b, chunks, h // chunks, w).permute(0, 2, 1, 3)
    return x.reshape(b, h // chunks, chunks * w)


class HTSAT(nn.Module):
    """HTS-AT on log-mel spectrograms ``[B, F, T]`` (dB, T <= ``spec_size * spec_size / F``).

    Args:
        num_classes: output classes C.
        num_mel_bins: F; ``spec_size`` must be a multiple of it (chunks = spec_size / F).
        spec_size: side of the folded square image (256).
        patch_size: conv patch embedding kernel and stride (4).
        embed_dim, depths, num_heads, window_size, mlp_ratio, qkv_bias: Swin backbone.
        drop, attn_drop, drop_path: dropout, attention dropout, max stochastic depth.
        stretch_short: bicubically stretch short inputs to the window (the reference).
        repeat_short: tile short inputs, then stretch (the reference's ``infer_mode``).
        input_hop_s: seconds per input frame (10 ms for the LogMel front end), for ``frame_hop_s``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 527,
        num_mel_bins: int = 64,
        spec_size: int = 256,
        patch_size: int = 4,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.1,
        stretch_short: bool = False,
        repeat_short: bool = False,
        input_hop_s: float = 0.01,
    ) -> None:
        super().__init__()
        depths, num_heads = tuple(int(d) for d in depths), tuple(int(h) for h in num_heads)
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"depths {depths} and num_heads {num_heads} must have the same length")
        if spec_size % num_mel_bins:
            raise ValueError(f"spec_size {spec_size} must be a multiple of num_mel_bins {num_mel_bins}")
        self.chunks = spec_size // num_mel_bins
        grid = spec_size // patch_size
        self.final_grid = grid // 2 ** (len(depths) - 1)
        if spec_size % patch_size or self.final_grid * 2 ** (len(depths) - 1) != grid:
            raise ValueError(
                f"spec_size {spec_size} / patch_size {patch_size} must halve evenly "
                f"{len(depths) - 1} times"
            )
        if self.final_grid % self.chunks:
            raise ValueError(
                f"the final {self.final_grid}x{self.final_grid} grid cannot be split into "
                f"{self.chunks} time chunks; use a smaller patch_size or fewer stages"
            )
        self.num_classes, self.num_mel_bins, self.spec_size = num_classes, num_mel_bins, spec_size
        self.target_frames = spec_size * self.chunks
        self.freq_bins = self.final_grid // self.chunks  # token rows per chunk at the end
        self.num_steps = self.final_grid * self.chunks  # frame-logit steps per window
        self.step_frames = self.target_frames // self.num_steps
        self.stretch_short, self.repeat_short = stretch_short, repeat_short
        self.input_hop_s = input_hop_s
        self.num_features = embed_dim * 2 ** (len(depths) - 1)

        self.bn0 = nn.BatchNorm1d(num_mel_bins)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(1, embed_dim, patch_size, patch_size)
        self.patch_embed.norm = nn.LayerNorm(embed_dim)
        rates = drop_path_rates(drop_path, sum(depths))
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            res = grid // 2**i
            self.layers.append(
                SwinStage(
                    embed_dim * 2**i, (res, res), depth, heads, window_size, mlp_ratio, qkv_bias,
                    drop, attn_drop, rates[sum(depths[:i]) : sum(depths[: i + 1])],
                    downsample=i < len(depths) - 1,
                )
            )
        self.norm = nn.LayerNorm(self.num_features)
        self.tscam_conv = nn.Conv2d(
            self.num_features, num_classes, (self.freq_bins, 3), padding=(0, 1)
        )
        self.apply(init_vit_weights)

    # ------------------------------------------------------------------ input -> image
    def spectrogram_to_image(
        self, spec: torch.Tensor, frames: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """dB ``[B, F, T]`` -> (folded image ``[B, 1, S, S]``, valid steps ``[B]``, input frames
        each image step spans ``[B]`` (float; ``step_frames`` unless stretched)).

        Applies ``bn0`` (only over the valid frames when ``frames [B]`` is given), then pads
        (default), or stretches / tiles + stretches each clip's valid frames to the window, then
        folds.
        """
        if spec.ndim != 3 or spec.shape[1] != self.num_mel_bins:
            raise ValueError(
                f"HTSAT expects log-mel spectrograms [B, {self.num_mel_bins}, T], got shape "
                f"{tuple(spec.shape)}"
            )
        b, _, t = spec.shape
        if t > self.target_frames:
            raise ValueError(
                f"HTSAT takes at most {self.target_frames} frames "
                f"({self.target_frames * self.input_hop_s:.2f} s); got {t}. Use sliding-window "
                "inference for longer audio (Pipeline.detect / evaluate do this)."
            )
        if t == 0:
            raise ValueError("HTSAT got an empty spectrogram (0 frames)")
        frames = check_frames(frames, b, spec.device)
        x = self._normalise(spec, frames)
        if self.stretch_short or self.repeat_short:
            x, span = self._stretch(x, frames)
            steps = torch.full((b,), self.num_steps, dtype=torch.long, device=x.device)
            per_step = span / self.num_steps
        else:
            x = F.pad(x, (0, self.target_frames - t))
            valid = frames if frames is not None else torch.full((b,), t, device=x.device)
            steps = torch.div(valid + self.step_frames - 1, self.step_frames, rounding_mode="floor")
            per_step = torch.full((b,), float(self.step_frames), device=x.device)
        return fold_spectrogram(x, self.chunks), steps.clamp(min=1), per_step

    def _normalise(self, spec: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
        if frames is None:
            return self.bn0(spec)
        t = spec.shape[-1]
        mask = torch.arange(t, device=spec.device)[None, :] < frames[:, None]  # [B, T]
        x = spec.transpose(1, 2)  # [B, T, F]
        out = x.new_zeros(x.shape)
        out[mask] = self.bn0(x[mask])  # statistics (training) over the valid frames only
        return out.transpose(1, 2)

    def _stretch(self, x: torch.Tensor, frames: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference fitting of each clip's valid frames (``frames``, default all ``T``): optional
        tiling, then bicubic stretch -> (``[B, F, 1024]``, frames each clip spans ``[B]`` before
        stretching, tiles included). Clips of one length are stretched together."""
        b, f, t = x.shape
        lengths = [t] * b if frames is None else [max(1, min(int(n), t)) for n in frames.tolist()]
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(n, []).append(i)
        out: torch.Tensor | None = None
        spans = torch.empty(b, dtype=torch.float32)
        for n, rows in groups.items():
            xi = (x if len(rows) == b else x[rows])[..., :n]
            if self.repeat_short:
                xi = xi.repeat(1, 1, self.target_frames // n)
            spans[rows] = float(xi.shape[-1])
            if xi.shape[-1] < self.target_frames:
                img = xi.transpose(1, 2).unsqueeze(1)  # the reference's [B, 1, T, F] layout
                img = F.interpolate(img, (self.target_frames, f), mode="bicubic", align_corners=True)
                xi = img.squeeze(1).transpose(1, 2)
            if len(rows) == b:
                out = xi
            else:
                out = x.new_empty(b, f, self.target_frames) if out is None else out
                out[rows] = xi
        assert out is not None
        return out, spans.to(x.device)

    def _to_own_timeline(self, frame_logits: torch.Tensor, per_step: torch.Tensor) -> torch.Tensor:
        """Frame logits ``[B, S, C]`` whose steps span ``per_step [B]`` input frames each -> the
        model's timeline of ``step_frames`` frames per step (linear between step centres, clamped
        at the ends)."""
        b, s, c = frame_logits.shape
        centres = (torch.arange(s, device=per_step.device, dtype=torch.float32) + 0.5) * self.step_frames
        pos = (centres[None, :] / per_step[:, None].float() - 0.5).clamp(0, s - 1)  # [B, S] source steps
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=s - 1)
        w = (pos - lo.float()).unsqueeze(-1).to(frame_logits.dtype)
        a = torch.gather(frame_logits, 1, lo.unsqueeze(-1).expand(b, s, c))
        z = torch.gather(frame_logits, 1, hi.unsqueeze(-1).expand(b, s, c))
        return a * (1 - w) + z * w

    # ------------------------------------------------------------------ backbone and head
    def forward_features(
        self, image: torch.Tensor, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Folded image ``[B, 1, S, S]`` -> (final-normed tokens ``[B, G*G, D]``, requested
        block outputs; blocks are numbered across stages, each ``[B, N_stage, D_stage]``)."""
        x = self.patch_embed.proj(image).flatten(2).transpose(1, 2)
        x = self.patch_embed.norm(x)
        wanted, hidden, k = set(return_layers), {}, 0
        for stage in self.layers:
            for blk in stage.blocks:
                x = blk(x)
                if k in wanted:
                    hidden[k] = x
                k += 1
            if stage.downsample is not None:
                x = stage.downsample(x)
        missing = wanted - set(hidden)
        if missing:
            raise ValueError(f"return_layers {sorted(missing)} out of range: HTSAT has {k} blocks")
        return self.norm(x), tuple(hidden[i] for i in return_layers)

    def tokens_to_time(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, G*G, D]`` -> ``[B, D, freq_bins, num_steps]``: un-fold the chunks in time order."""
        b, _, d = tokens.shape
        g = self.final_grid
        x = tokens.transpose(1, 2).reshape(b, d, self.chunks, self.freq_bins, g)
        return x.permute(0, 1, 3, 2, 4).reshape(b, d, self.freq_bins, self.chunks * g)

    def forward_head(self, tokens: torch.Tensor, steps: torch.Tensor | None = None) -> AudioOutput:
        """Normed tokens ``[B, G*G, D]`` (+ valid steps ``[B]``) -> ``AudioOutput`` with clip
        logits ``[B, C]``, embedding ``[B, D]`` and frame logits ``[B, num_steps, C]`` on the
        model's own timeline (``frame_hop_s = step_frames * input_hop_s``). Pooling is over the
        valid steps (all steps without ``steps``)."""
        x = self.tokens_to_time(tokens)
        frame_logits = self.tscam_conv(x).flatten(2)  # [B, C, steps]
        hop = self.step_frames * self.input_hop_s
        if steps is None:
            clip, emb = frame_logits.mean(-1), x.flatten(2).mean(-1)
        else:
            valid = (torch.arange(self.num_steps, device=x.device)[None, :] < steps[:, None]).to(x.dtype)
            count = valid.sum(-1, keepdim=True)
            clip = (frame_logits * valid[:, None]).sum(-1) / count
            emb = (x * valid[:, None, None]).sum((-1, -2)) / (count * self.freq_bins)
        return AudioOutput(clip_logits=clip, embedding=emb, frame_logits=frame_logits.transpose(1, 2), frame_hop_s=hop)

    def forward(
        self,
        spec: torch.Tensor,
        frames: torch.Tensor | None = None,
        return_layers: Sequence[int] = (),
    ) -> AudioOutput:
        """Log-mel dB ``[B, F, T]`` (+ valid frames ``[B]``) -> ``AudioOutput`` with clip logits
        ``[B, C]``, embedding ``[B, D]`` and frame logits ``[B, 32, C]`` (their timeline: see the
        module docstring)."""
        image, steps, per_step = self.spectrogram_to_image(spec, frames)
        tokens, hidden = self.forward_features(image, return_layers)
        full = self.stretch_short or self.repeat_short
        out = dataclasses.replace(self.forward_head(tokens, None if full else steps), hidden_states=hidden)
        if full and frames is not None:
            assert out.frame_logits is not None
            out = dataclasses.replace(out, frame_logits=self._to_own_timeline(out.frame_logits, per_step))
        elif full:  # one length: the reference's grid over the stretched clip
            out = dataclasses.replace(out, frame_hop_s=float(per_step[0]) * self.input_hop_s)
        return out

    def time_steps(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens of any stage's folded ``r x r`` grid ``[B, r*r, D]`` -> one vector per time step
        ``[B, chunks * r, D]`` (mean over the frequency rows of each step, chunks in time order)."""
        b, n, d = tokens.shape
        r = math.isqrt(n)
        k = self.chunks
        x = tokens.transpose(1, 2).reshape(b, d, k, r // k, r)  # rows = chunk * (r / k) + freq
        return x.mean(3).reshape(b, d, k * r).transpose(1, 2)

    def forward_steps(
        self, spec: torch.Tensor, frames: torch.Tensor | None = None, return_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Time-resolved features of windows ``[B, F, T]`` (+ valid ``frames [B]``): (frame logits
        ``[B, num_steps, C]`` of the head, final tokens per step ``[B, num_steps, D]``, each
        requested block's tokens per step ``[B, S_k, D_k]``, ``S_k`` = its stage's time columns).
        Steps span the folded window's time axis (stretched clips: the stretched one)."""
        image, steps, _ = self.spectrogram_to_image(spec, frames)
        tokens, hidden = self.forward_features(image, return_layers)
        logits = self.forward_head(tokens, steps).frame_logits
        assert logits is not None
        return logits, self.time_steps(tokens), tuple(self.time_steps(h) for h in hidden)

    def pool_hidden(
        self, hidden: torch.Tensor, batch: PackedBatch | None = None, *, pool: str = "tokens"
    ) -> torch.Tensor:
        """A block output ``[B, N_stage, D_stage]`` -> ``[B, D_stage]``: the mean of all its tokens
        (the whole folded window, padding included). ``pool="cls"`` is refused: no CLS token."""
        check_pool(pool)
        if pool == "cls":
            raise ValueError("HTS-AT has no CLS token; pool its tokens (pool='tokens')")
        return hidden.mean(1)

    @property
    def contract(self) -> ModelContract:
        """Fixed window of ``target_frames`` (1024), frame head of ``num_steps`` steps of
        ``step_frames`` frames, tokens that un-fold onto time (:meth:`forward_steps`)."""
        return ModelContract(
            family="htsat",
            input_kind="grid",
            num_classes=self.num_classes,
            num_mel_bins=self.num_mel_bins,
            input_frames=self.target_frames,
            native_frames=self.target_frames,
            frame_step_frames=self.step_frames,
            frame_steps=self.num_steps,
            num_blocks=sum(len(stage.blocks) for stage in self.layers),
            step_features=True,
            pads_to_window=True,
            grid_tokens=(self.spec_size // self.patch_embed.proj.kernel_size[0]) ** 2,
        )

    def extra_repr(self) -> str:
        return (
            f"chunks={self.chunks}, window_frames={self.target_frames}, steps={self.num_steps}, "
            f"stretch_short={self.stretch_short}, repeat_short={self.repeat_short}"
        )


def _logmel_frontend() -> object:
    from audioflex.audio.frontend.logmel import LogMelConfig

    return LogMelConfig()


_VARIANTS = {
    "htsat_mini": ("HTS-AT mini (dim 48, depths 2-2-2-2)",
                   {"embed_dim": 48, "depths": (2, 2, 2, 2), "num_heads": (2, 4, 8, 16)}),
    "htsat_tiny": ("HTS-AT (paper config: dim 96, depths 2-2-6-2, 31 M params)",
                   {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (4, 8, 16, 32)}),
    "htsat_base": ("HTS-AT base (dim 128, depths 2-2-12-2)",
                   {"embed_dim": 128, "depths": (2, 2, 12, 2), "num_heads": (4, 8, 16, 32)}),
}

for _name, (_desc, _kw) in _VARIANTS.items():
    register_model(_name, HTSAT, frontend=_logmel_frontend, description=_desc, num_classes=527,
                   **_kw)


def variant_for(embed_dim: int, depths: Sequence[int], num_heads: Sequence[int]) -> str | None:
    """The registered variant name with this backbone, or None."""
    key = (embed_dim, tuple(depths), tuple(num_heads))
    for name, (_, kw) in _VARIANTS.items():
        if (kw["embed_dim"], kw["depths"], kw["num_heads"]) == key:
            return name
    return None

