"""HEAR 2021 embedding model over any audioflex model (REFERENCE.md §4, §6).

:class:`EmbeddingModel` wraps a model and its front end and computes

- **timestamp embeddings**: one vector per timestamp ``t_i = i * hop_ms`` (``i = 0 ..
  floor(N / hop)``, so the last timestamp is never past the audio's end). The vector of ``t_i``
  comes from a waveform window of ``window_ms`` centred on ``t_i`` (reflect padding at the clip
  edges, zeros beyond one reflection for clips shorter than half a window); with several
  ``levels`` (window lengths) the vectors of all levels are concatenated, and ``include_mel``
  appends the raw front-end frames of a short window (PaSST's ``2lvl+mel``).
- **scene embeddings**: one forward over the whole clip when it is at most ``scene_window_ms``
  long, else the mean of window vectors (``scene_window_ms`` windows every ``scene_hop_ms``).

The vector of one window is ``[logits (C) if include_logits] + [features]``, where ``features``
is the model's pooled embedding (``layers=None``) or the pooled outputs of the requested blocks,
concatenated (``layer_mode="concat"``) or averaged (``"mean"``). Everything model-specific comes
from the model contract (:mod:`audioflex.models.contract`): block count, CLS-like prefix tokens,
``pool_hidden`` (what a block output pooled means), minimum and native lengths, and whether the
tokens un-fold onto time (frame mode). What a block output pooled means per family:

- AST / PaSST (``[B, n_tok + N, D]`` with CLS/distillation tokens): the mean of the patch tokens
  (``layer_pool="tokens"``, default) or of the CLS/distillation tokens (``"cls"``); block outputs
  are the raw residual stream (before the final LayerNorm).
- ElasticAST (packed ``[N_total, D]``): the mean of each window's tokens (masked by segment);
  ``"cls"`` is not available (no CLS token).
- HTS-AT (``[B, N_stage, D_stage]``, Swin blocks numbered across stages): the mean of all tokens of
  the folded 1024-frame image (including the zero-padded part of short windows). Stages have
  different widths, so ``layer_mode="mean"`` needs blocks of one stage.

**HTS-AT frame mode** (``timestamp_mode="frames"``, the default for HTS-AT without ``levels``):
padding every short window to HTS-AT's fixed 1024-frame input would cost a full forward per
timestamp, so instead the clip is cut into 10.24 s windows every 5.12 s (the first at 0, the last
reaching the end; short ones zero-padded with their valid frames passed on), and each feature
source is un-folded into time steps: the final tokens (mean over their 2 frequency rows) give 32
steps of 0.32 s per window, the outputs of a stage-``i`` block ``32 * 2 ** (3 - i)`` steps
(stage 0: 40 ms), ``include_logits`` the frame logits of the token-semantic head (0.32 s). A
step's value is averaged over the windows covering it; a timestamp's vector is the linear
interpolation between the two nearest step centres. Receptive field: a step's token attends,
through the shifted windows and patch merging, to its whole 10.24 s window (the last stage's 8 x 8
grid is one attention window), so a vector depends on up to ~10 s of audio on each side; its
time resolution is the step (0.32 s for the final tokens). ``window_ms`` is not used for the
timestamp vectors in this mode (``include_mel`` still uses ``mel_ms``). The frame mode lives in
:mod:`audioflex.hear.htsat_frames`, the options in :mod:`audioflex.hear.options`, loading from a
checkpoint in :mod:`audioflex.hear.files`.

Windows are never run one by one: the windows of all clips are gathered into batches (about
``max_frames`` input frames per forward; token-budget ``PackedBatch``es for ElasticAST) and run
through the front end and the model together. Long inputs are processed block by block
(:class:`~audioflex.audio.stream.AudioReader`), so memory is bounded by one batch plus the output.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

import torch
from torch import nn

from audioflex.audio.frontend.base import Frontend, build_frontend
from audioflex.audio.stream import AudioReader
from audioflex.hear.htsat_frames import FrameTimeline
from audioflex.hear.options import EmbedOptions, merge_layers
from audioflex.hear.windows import Window, gather_windows, window_centres
from audioflex.models.autocast import AutocastModel
from audioflex.models.contract import ModelContract, StepFeatureModel, contract_of, model_device
from audioflex.models.outputs import AudioOutput
from audioflex.models.registry import registered_name
from audioflex.packing import PackedBatch, collate_packed


class EmbeddingModel(nn.Module):
    """A HEAR 2021 model (``sample_rate``, ``scene_embedding_size``, ``timestamp_embedding_size``).

    Build with :func:`audioflex.hear.load_model` (from a checkpoint directory) or directly from a
    model and its front end. See the module docstring for what the vectors hold.
    """

    def __init__(self, model: nn.Module, frontend: Frontend, options: EmbedOptions | None = None,
                 *, labels: list[str] | None = None) -> None:
        super().__init__()
        try:
            c = contract_of(model)
        except TypeError as e:
            raise ValueError(f"embeddings need an audioflex model (AST, ElasticAST, HTS-AT, PaSST): {e}") from None
        self.contract: ModelContract = c
        self.family = family = c.family
        self.options = options or EmbedOptions()
        self.options.validate()
        if self.options.bf16 and not isinstance(model, AutocastModel):
            model = AutocastModel(model, torch.bfloat16)
        elif isinstance(model, AutocastModel) and model.dtype == torch.bfloat16 and not self.options.bf16:
            self.options = replace(self.options, bf16=True)  # e.g. Pipeline(bf16=True): describe() says so
        self.net = model.eval()
        self.frontend = frontend.eval()
        cfg = frontend.config
        # windows are fed at their natural length (AST's recipe pads scenes to target_length)
        wcfg = replace(cfg, target_length=None) if getattr(cfg, "target_length", None) else cfg
        self.window_frontend = build_frontend(wcfg).eval() if wcfg is not cfg else self.frontend
        self.labels = labels
        self.sample_rate = int(frontend.sample_rate)
        o = self.options
        self.include_logits = c.logits_in_embedding if o.include_logits is None else bool(o.include_logits)
        depth = c.num_blocks
        self.layers: tuple[int, ...] | None = None
        if o.layers is not None:
            bad = [i for i in o.layers if not -depth <= i < depth]
            if bad:
                raise ValueError(f"layers {bad} out of range: the model has {depth} blocks (0..{depth - 1})")
            self.layers = tuple(i % depth for i in o.layers)
            if o.layer_pool == "cls" and c.prefix_tokens == 0:
                raise ValueError(f"layer_pool='cls' needs CLS tokens (AST, PaSST); {family} has none")
        frame_ms = 1000.0 * frontend.hop_s
        if o.hop_ms < frame_ms - 1e-9:
            raise ValueError(
                f"hop_ms={o.hop_ms} is below the front end's frame hop ({frame_ms:g} ms); "
                f"use hop_ms >= {frame_ms:g}"
            )
        sr = self.sample_rate
        self.hop_samples = o.hop_ms * sr / 1000.0
        self.level_samples = [self._window_samples(ms, "window_ms/levels") for ms in o.window_levels]
        self.mel_samples = self._window_samples(o.mel_ms, "mel_ms", model_min=False) if o.include_mel else 0
        if o.timestamp_mode == "frames" and not c.step_features:
            raise ValueError(f"timestamp_mode='frames' needs HTS-AT (time-resolved tokens); {family} uses 'window'")
        if o.timestamp_mode == "frames" and o.levels is not None:
            raise ValueError("levels (several window lengths) need timestamp_mode='window'")
        self.frames_mode = c.step_features and (
            o.timestamp_mode == "frames" or (o.timestamp_mode == "auto" and o.levels is None)
        )
        self.frames: FrameTimeline | None = None
        if self.frames_mode:
            if not isinstance(model, StepFeatureModel):
                raise ValueError(f"{family}: step_features needs forward_steps, input_frames and frame_steps")
            self.frames = FrameTimeline(
                model, frontend, c, layers=self.layers, layer_mode=o.layer_mode, include_logits=self.include_logits,
                max_frames=o.max_frames,
            )
            self.fw_samples, self.fw_hop = self.frames.fw_samples, self.frames.fw_hop
        scene_ms = o.scene_window_ms or self.native_span_ms()
        self.scene_window = max(round(scene_ms * sr / 1000.0), self._min_samples())
        self.scene_hop = max(1, round((o.scene_hop_ms or scene_ms / 4) * sr / 1000.0))
        self._set_sizes()

    # --------------------------------------------------------------- sizes and limits

    def _min_samples(self, *, model_min: bool = True) -> int:
        """Shortest waveform the front end (and, with ``model_min``, the model) accepts."""
        fe = self.window_frontend
        n = int(getattr(fe, "min_samples", 1))
        need = self.contract.min_frames if model_min else 1
        while fe.num_frames(n) < need:
            n += max(1, int(fe.config.hop_s * self.sample_rate) // 4)
        return n

    def _window_samples(self, ms: float, name: str, model_min: bool = True) -> int:
        n = round(ms * self.sample_rate / 1000.0)
        low = self._min_samples(model_min=model_min)
        if n < low:
            raise ValueError(
                f"{name}={ms:g} ms gives {n} samples; {self.family} with this front end needs at "
                f"least {low} ({1000 * low / self.sample_rate:.1f} ms): use a longer window"
            )
        return n

    def native_span_ms(self) -> float:
        """The clip length the model was built for (ms, ``contract.native_frames``): the default
        ``scene_window_ms`` (10 s for PaSST, 10.24 s for AST and HTS-AT)."""
        return self.contract.native_frames * 1000.0 * self.frontend.hop_s

    def _set_sizes(self) -> None:
        """Measure the vector sizes with a dummy forward (exact for every option combination)."""
        g = torch.Generator().manual_seed(0)
        n = max(self.level_samples + [self.mel_samples])
        noise = 0.1 * torch.randn(1, n, generator=g)
        emb, _ = self.timestamp_embeddings(noise)
        self.timestamp_embedding_size = int(emb.shape[-1])
        self.scene_embedding_size = int(self.scene_embeddings(noise).shape[-1])

    @property
    def device(self) -> torch.device:
        return model_device(self.net)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (options, sizes, hop)."""
        return {
            "family": self.family,
            "model_name": registered_name(self.net) or type(self.net).__name__,
            "sample_rate": self.sample_rate,
            "scene_embedding_size": self.scene_embedding_size,
            "timestamp_embedding_size": self.timestamp_embedding_size,
            "include_logits": self.include_logits,
            "timestamp_mode": "frames" if self.frames_mode else "window",
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.options).items()},
        }

    # --------------------------------------------------------------- one batch of windows

    def _features(self, out: AudioOutput, batch: PackedBatch | None) -> torch.Tensor:
        parts = [out.clip_logits] if self.include_logits else []
        if self.layers is None:
            parts.append(out.embedding)
        else:
            pool = self.options.layer_pool
            pooled = [self.net.pool_hidden(h, batch, pool=pool) for h in out.hidden_states]
            parts.extend(merge_layers(pooled, self.options.layer_mode))
        return torch.cat([p.float() for p in parts], dim=-1)

    def embed_waves(self, wave: torch.Tensor, *, scene: bool = False) -> torch.Tensor:
        """Equal-length windows ``[W, L]`` -> vectors ``[W, D]`` (one batched forward)."""
        fe = self.frontend if scene else self.window_frontend
        wave = wave.to(self.device)
        low = self._min_samples()
        if wave.shape[-1] < low:  # very short clips: zero-pad to the shortest accepted input
            wave = nn.functional.pad(wave, (0, low - wave.shape[-1]))
        spec, frames = fe(wave)
        layers = self.layers or ()
        if self.contract.packed:
            t = max(1, int(frames[0]))
            pieces = list(spec[:, :, :t])
            batch = collate_packed(pieces, patch=self.contract.column_frames, pad_value=fe.config.pad_value)
            batch = batch.to(self.device)
            out = self.net(batch, return_layers=layers)
            return self._features(out, batch)
        out = self.net(spec, frames, return_layers=layers)
        return self._features(out, None)

    def mel_vectors(self, wave: torch.Tensor) -> torch.Tensor:
        """Windows ``[W, L]`` -> flattened front-end frames ``[W, F * T']``."""
        spec, _ = self.window_frontend(wave.to(self.device))
        return spec.flatten(1).float()

    def _batch_windows(self, samples: int) -> int:
        """Windows per forward for a window of ``samples`` samples (the ``max_frames`` budget)."""
        frames = max(1, self.window_frontend.num_frames(samples))
        if self.contract.pads_to_window and self.contract.input_frames is not None:
            frames = max(frames, self.contract.input_frames)  # e.g. HTS-AT always computes its full window
        return max(1, self.options.max_frames // frames)

    # --------------------------------------------------------------- timestamps

    def num_timestamps(self, num_samples: int) -> int:
        """``floor(N / hop) + 1`` timestamps for ``N`` samples."""
        return int(math.floor(num_samples / self.hop_samples + 1e-9)) + 1

    def _window_centres(self, first: int, count: int) -> torch.Tensor:
        return window_centres(first, count, self.hop_samples)

    def _gather(self, source: AudioReader, centres: torch.Tensor, win: int) -> torch.Tensor:
        """Windows ``[len(centres), win]`` centred at ``centres`` (reflect padding at the edges)."""
        return gather_windows(source, centres, win)

    def _vectors_at(self, sources: Sequence[AudioReader], windows: Sequence[Window], *,
                    scene: bool = False) -> torch.Tensor:
        """Vectors ``[sum(count), D]`` for the given windows (all levels + mel), batched."""
        items = [(w.clip, c) for w in windows for c in self._window_centres(w.first, w.count).tolist()]
        wins = [self.scene_window] if scene else self.level_samples
        cols = []
        if self.frames is not None and not scene:
            cols.append(self.frames.vectors(sources, windows, self.hop_samples))
            wins = []
        for win in wins:
            cols.append(self._run_windows(sources, items, win, scene=scene, mel=False))
        if self.mel_samples and not scene:
            cols.append(self._run_windows(sources, items, self.mel_samples, scene=False, mel=True))
        return torch.cat(cols, dim=-1)

    def _run_windows(self, sources: Sequence[AudioReader], items: list[tuple[int, int]], win: int,
                     *, scene: bool, mel: bool) -> torch.Tensor:
        per = self._batch_windows(win)
        outs = []
        for s in range(0, len(items), per):
            chunk = items[s : s + per]
            waves = []
            for clip in sorted({c for c, _ in chunk}):
                cen = torch.tensor([c for k, c in chunk if k == clip])
                waves.append(self._gather(sources[clip], cen, win))
            wave = torch.cat(waves)
            with torch.no_grad():
                outs.append((self.mel_vectors(wave) if mel else self.embed_waves(wave, scene=scene)).cpu())
        return torch.cat(outs)

    def iter_timestamp_blocks(self, source: AudioReader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Stream one clip: yields (vectors ``[k, D]``, timestamps ``[k]`` ms) in blocks of about
        ``stream_s`` seconds, so long inputs never need all windows at once."""
        total = self.num_timestamps(source.num_samples)
        per = max(1, int(self.options.stream_s * 1000.0 / self.options.hop_ms))
        for first in range(0, total, per):
            count = min(per, total - first)
            emb = self._vectors_at([source], [Window(0, first, count)])
            ts = torch.arange(first, first + count, dtype=torch.float64) * self.options.hop_ms
            yield emb, ts.float()

    def scene_from_source(self, source: AudioReader) -> torch.Tensor:
        """Scene vector ``[D]`` of one clip (one pass, or the mean of ``scene_window`` windows)."""
        n = source.num_samples
        if n <= self.scene_window:
            with torch.no_grad():
                return self.embed_waves(source.read(0, n).float()[None], scene=True)[0].cpu()
        hop = self.scene_hop
        count = n // hop + 1
        total, per = None, max(1, int(self.options.stream_s * self.sample_rate) // hop)
        for first in range(0, count, per):
            k = min(per, count - first)
            vec = self._scene_windows(source, first, k).sum(0)
            total = vec if total is None else total + vec
        return total / count

    def _scene_windows(self, source: AudioReader, first: int, count: int) -> torch.Tensor:
        cen = torch.arange(first, first + count) * self.scene_hop
        items = [(0, int(c)) for c in cen]
        return self._run_windows([source], items, self.scene_window, scene=True, mel=False)

    # --------------------------------------------------------------- HEAR API

    def _check_audio(self, audio: torch.Tensor | Any) -> torch.Tensor:
        if not isinstance(audio, torch.Tensor):
            audio = torch.as_tensor(audio)
        if audio.ndim != 2:
            raise ValueError(
                f"audio must be [n_sounds, n_samples] at {self.sample_rate} Hz, got shape {tuple(audio.shape)}"
            )
        if audio.shape[1] == 0:
            raise ValueError("audio has 0 samples per sound; pass at least one sample")
        if not audio.is_floating_point():
            raise ValueError(f"audio must be float (in [-1, 1]), got {audio.dtype}")
        return audio

    def timestamp_embeddings(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio [n, N]`` -> (embeddings ``[n, T, D]`` float32, timestamps ``[n, T]`` ms)."""
        audio = self._check_audio(audio)
        n, num = audio.shape
        cpu = audio.detach().float().cpu()
        sources = [AudioReader(cpu[i], self.sample_rate, check=False) for i in range(n)]
        total = self.num_timestamps(num)
        per = max(1, int(self.options.stream_s * 1000.0 / self.options.hop_ms))
        blocks = []
        for first in range(0, total, per):
            count = min(per, total - first)
            vec = self._vectors_at(sources, [Window(i, first, count) for i in range(n)])
            blocks.append(vec.reshape(n, count, -1))
        emb = torch.cat(blocks, dim=1)
        ts = (torch.arange(total, dtype=torch.float64) * self.options.hop_ms).float()
        return emb.to(audio.device), ts[None].expand(n, -1).contiguous().to(audio.device)

    def scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio [n, N]`` -> scene embeddings ``[n, D]`` float32."""
        audio = self._check_audio(audio)
        n, num = audio.shape
        cpu = audio.detach().float().cpu()
        if num <= self.scene_window:
            outs, per = [], self._batch_windows(num)
            with torch.no_grad():
                for s in range(0, n, per):
                    outs.append(self.embed_waves(cpu[s : s + per], scene=True).cpu())
            return torch.cat(outs).to(audio.device)
        rows = [AudioReader(cpu[i], self.sample_rate, check=False) for i in range(n)]
        return torch.stack([self.scene_from_source(r) for r in rows]).to(audio.device)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as :meth:`timestamp_embeddings`."""
        return self.timestamp_embeddings(audio)


__all__ = ["EmbeddingModel"]
