"""``Pipeline``: front end + model + labels, for tagging, detection and embeddings of audio of any
length and frame shift.

How a long input is handled by ``Pipeline.tag`` and ``Pipeline.clip_scores``:

- **Packed models (ElasticAST).** The audio is cut into consecutive, non-overlapping pieces of at
  most ``piece_s`` seconds (default: the span the model's time-position table covers at the
  front end's frame shift, ``contract.native_frames``: e.g. 10.24 s at 10 ms, 20.48 s at 20 ms;
  a clip up to that length is one piece, fed at its native length). Pieces are read from disk
  one at a time (:class:`~audioflex.audio.stream.AudioReader`), their spectrograms are packed
  into batches of at most ``max_tokens`` tokens, and each piece is scored as its own clip. The
  file's scores are the duration-weighted mean of the pieces' probabilities (``aggregate="mean"``)
  or their maximum (``"max"``). Memory is bounded by one batch of pieces.
- **Fixed-window models (AST, HTS-AT, PaSST).** The audio is cut into windows of the model's input
  length (``contract.input_frames``) with ``window_hop`` overlap (default 50 %); short inputs and
  the last window are padded to the window and passed with their valid frames (HTS-AT fits
  only those; AST and PaSST read the padded grid as in training). Windows are scored in batches
  of ``batch_size``; scores are aggregated the same way.

Frame scores and events (:meth:`Pipeline.frame_scores`, :meth:`Pipeline.detect`) slide windows
with overlap-add (:mod:`audioflex.inference.frames`); embeddings go through the HEAR embedding
model (:mod:`audioflex.hear.embedder`). Files that are used but suspicious are reported with a
``logging`` warning naming the file (:func:`~audioflex.audio.stream.check_audio_file`): a
truncated file (its header promises more than it holds; the part it holds is used) and audio
shorter than one front-end window (packed models: one patch of frames; it is padded to that).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audioflex.audio.frontend.base import Frontend, FrontendConfig, build_frontend
from audioflex.audio.stream import AudioInput, AudioReader, Piece, check_audio_file, iter_pieces
from audioflex.checkpoints import CheckpointError, load_checkpoint
from audioflex.evaluate.events import Event, PostProcessing
from audioflex.hear.embedder import EmbeddingModel
from audioflex.hear.options import EmbedOptions
from audioflex.inference.frames import FrameScores, frame_scores, scores_to_events
from audioflex.inference.windows import aggregate_scores
from audioflex.models.autocast import AutocastModel
from audioflex.models.contract import ModelContract, contract_of, model_device
from audioflex.packing import collate_packed, num_tokens, plan_batches

MAX_SHIFT_PER_WINDOW = 2.0
"""A frame shift may be at most this many analysis windows (``frame_length_ms``) long."""


def check_frame_shift(config: FrontendConfig, shift_ms: float, option: str = "frame_shift_ms") -> float:
    """``shift_ms`` as a float if ``config``'s front end can use it, else ``ValueError`` naming ``option``.

    Rule: the front end must have a ``frame_shift_ms`` (Kaldi fbank; the STFT front ends of HTS-AT
    and PaSST have a fixed hop), and ``0 < shift_ms <= 2 * frame_length_ms`` (50 ms for the 25 ms
    window: beyond that more than half of the audio falls between frames and is never analysed;
    ElasticAST trains at 10-40 ms).
    """
    if not hasattr(config, "frame_shift_ms"):
        raise ValueError(
            f"{option}: the {config.kind} front end has a fixed hop of {1000 * config.hop_s:g} ms; "
            "only Kaldi fbank front ends (AST, ElasticAST) take another frame shift"
        )
    try:
        shift = float(shift_ms)
    except (TypeError, ValueError):
        raise ValueError(f"{option}: expected a number of milliseconds, got {shift_ms!r}") from None
    window = float(getattr(config, "frame_length_ms", 25.0))
    high = MAX_SHIFT_PER_WINDOW * window
    if not 0 < shift <= high:
        raise ValueError(
            f"{option}: {shift:g} ms is outside (0, {high:g}] ms (a shift must be positive and at most twice "
            f"the {window:g} ms analysis window; ElasticAST is trained at 10-40 ms)"
        )
    return shift


def _load_model(
    path: str | Path, device: str | torch.device, runtime: str, int8: str | None,
    calibration: list[str | Path] | None, bf16: bool = False,
) -> tuple[nn.Module, FrontendConfig | None, list[str] | None, bool]:
    """(model, front-end config, labels, multilabel) of a checkpoint directory or ONNX export."""
    from audioflex.export.loader import check_runtime, is_onnx_file

    if is_onnx_file(path):
        runtime = "onnx"
    check_runtime(runtime, int8)
    if bf16 and runtime != "torch":
        raise ValueError(
            "bf16 runs the torch model under autocast (--bf16); ONNX Runtime (--runtime onnx, --int8, an .onnx "
            "file) runs float32 or int8: drop --bf16, or drop the others and use a checkpoint directory"
        )
    if runtime == "onnx":
        from audioflex.export.loader import load_onnx_runtime

        if torch.device(device).type != "cpu":
            raise ValueError(f"runtime='onnx' runs on the CPU; got device {device!r} (use --runtime torch on a GPU)")
        b = load_onnx_runtime(path, int8=int8, calibration=calibration)
        return b.model, b.frontend, b.labels, b.multilabel
    ck = load_checkpoint(path, map_location=device)
    multilabel = bool(ck.meta.get("extra", {}).get("multilabel", True))
    model = AutocastModel(ck.model, torch.bfloat16) if bf16 else ck.model
    return model, ck.frontend.config if ck.frontend is not None else None, ck.labels, multilabel


@dataclass(frozen=True)
class Tag:
    """One predicted label of a clip."""

    label: str
    score: float
    index: int


class Pipeline:
    """Tag audio files or waveforms with a model and its front end.

    Args:
        model: an audioflex model (its :class:`~audioflex.models.contract.ModelContract` says
            whether it is packed or takes a fixed grid).
        frontend: the front end the model was trained with.
        labels: class names (default ``class_0`` …).
        multilabel: sigmoid scores (AudioSet-style) if True, softmax otherwise.
        device: where to run (default: the model's device).
        max_tokens: token budget per packed batch (packed models).
        piece_s: longest piece fed as one clip to a packed model (default: what its time table
            covers at the front end's frame shift).
        window_hop: hop between windows of fixed-window models, as a fraction of the window.
        batch_size: windows per forward pass (fixed-window models).
        aggregate: ``mean`` (duration-weighted) or ``max`` over pieces/windows.
    """

    def __init__(
        self,
        model: nn.Module,
        frontend: Frontend | FrontendConfig,
        labels: list[str] | None = None,
        *,
        multilabel: bool = True,
        device: str | torch.device | None = None,
        max_tokens: int = 8192,
        piece_s: float | None = None,
        window_hop: float = 0.5,
        batch_size: int = 8,
        aggregate: str = "mean",
    ) -> None:
        if isinstance(frontend, FrontendConfig):
            frontend = build_frontend(frontend)
        if hasattr(frontend.config, "frame_shift_ms"):
            check_frame_shift(frontend.config, frontend.config.frame_shift_ms)
        self.contract: ModelContract = contract_of(model)
        self.device = torch.device(device) if device is not None else model_device(model)
        self.model = model.to(self.device).eval()
        self.frontend = frontend.to(self.device).eval()
        n = self.contract.num_classes
        self.labels = list(labels) if labels is not None else [f"class_{i}" for i in range(n)]
        if len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for a model with {n} classes")
        self.multilabel = multilabel
        self.max_tokens = max_tokens
        self._piece_s = piece_s
        if not 0 < window_hop <= 1:
            raise ValueError(f"window_hop must be in (0, 1], got {window_hop}")
        self.window_hop = window_hop
        self.batch_size = batch_size
        if aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
        self.aggregate = aggregate

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        runtime: str = "torch",
        int8: str | None = None,
        calibration: list[str | Path] | None = None,
        bf16: bool = False,
        **kwargs: Any,
    ) -> Pipeline:
        """Build from an audioflex checkpoint directory (model, front end and labels travel with it)
        or an ``.onnx`` file written by ``audioflex export onnx`` (its metadata carries them).

        ``runtime``: ``"torch"`` (default) or ``"onnx"`` (ONNX Runtime on the CPU; a checkpoint
        directory is exported on the fly; an ``.onnx`` path implies it). ``int8``: ``"dynamic"`` or
        ``"static"`` int8 quantization (ONNX only; static calibrates on the ``calibration`` audio
        files), see :mod:`audioflex.export`. ``bf16``: run the torch model under bfloat16 autocast
        (:class:`~audioflex.models.autocast.AutocastModel`: faster on CPUs with AMX and on GPUs,
        probabilities within bfloat16 rounding of float32). ``frame_shift_ms=...`` among ``kwargs`` changes the
        front end's frame shift (packed models handle any resolution; allowed values:
        :func:`check_frame_shift`).
        """
        shift = kwargs.pop("frame_shift_ms", None)
        model, config, labels, multilabel = _load_model(path, device, runtime, int8, calibration, bf16)
        if config is None:
            raise CheckpointError(f"{path}: the checkpoint has no front-end config; pass a Frontend to Pipeline()")
        if shift is not None:
            config = config.replace(frame_shift_ms=check_frame_shift(config, shift))
        kwargs.setdefault("multilabel", multilabel)
        return cls(model, config, labels, device=device, **kwargs)

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def is_packed(self) -> bool:
        return self.contract.packed

    @property
    def piece_s(self) -> float:
        """Length of the pieces (packed) or windows (fixed) the input is cut into, in seconds."""
        if self._piece_s is not None:
            return self._piece_s
        if self.contract.input_frames is None:  # packed: what the time table covers at this shift
            return self.contract.native_frames * self.frontend.hop_s
        frames = self.contract.input_frames
        hop = round(self.frontend.hop_s * self.sample_rate)
        n = frames * hop
        while n > hop and self.frontend.num_frames(n) > frames:  # e.g. centred STFTs give one extra frame
            n -= hop
        return n / self.sample_rate

    def check_file(self, audio: AudioInput) -> list[str]:
        """Warnings about an input file (truncated; shorter than one front-end window, or one patch
        for packed models), each logged; nothing for waveforms."""
        if isinstance(audio, torch.Tensor):
            return []
        return check_audio_file(audio, self.frontend, self.contract.column_frames)

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)

    def _spectrograms(self, pieces: list[Piece]) -> list[torch.Tensor]:
        """Front end over pieces -> list of ``[F, T_i]`` (natural lengths)."""
        spec, frames = self.frontend(*self._padded(pieces))
        return [spec[i, :, : max(1, int(f))] for i, f in enumerate(frames.tolist())]

    @torch.no_grad()
    def _score_pieces(self, pieces: list[Piece]) -> torch.Tensor:
        """Scores ``[P, C]`` of pieces (already batched by the caller)."""
        if not self.is_packed:  # the window, with each piece's valid frames (HTS-AT fits those only)
            spec, frames = self.frontend(*self._padded(pieces, round(self.piece_s * self.sample_rate)))
            frames = frames.clamp(max=spec.shape[-1])
            return self._activate(self.model(spec, frames).clip_logits.float())
        specs = self._spectrograms(pieces)
        batch = collate_packed(specs, patch=self.contract.column_frames, pad_value=self.frontend.config.pad_value)
        out = self.model(batch.to(self.device))
        return self._activate(out.clip_logits.float())

    def _padded(self, pieces: list[Piece], min_samples: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Pieces zero-padded into ``wave [P, max(T_i, min_samples)]`` plus their lengths ``[P]``."""
        lengths = torch.tensor([p.num_samples for p in pieces])
        size = max(int(lengths.max()), min_samples)
        wave = torch.zeros(len(pieces), size, device=self.device)
        for i, p in enumerate(pieces):
            wave[i, : p.num_samples] = p.wave.to(self.device)
        return wave, lengths.to(self.device)

    def _tokens(self, piece: Piece) -> int:
        """Tokens a piece gives a packed model."""
        frames = max(1, self.frontend.num_frames(piece.num_samples))
        return num_tokens(self.contract.num_mel_bins, frames, self.contract.column_frames)

    def _batches(self, pieces: Iterator[Piece]) -> Iterator[list[Piece]]:
        """Group streamed pieces into batches (token budget for packed models)."""
        buf: list[Piece] = []
        tokens = 0
        for p in pieces:
            if self.is_packed:
                n = self._tokens(p)
                if buf and tokens + n > self.max_tokens:
                    yield buf
                    buf, tokens = [], 0
                buf.append(p)
                tokens += n
            else:
                buf.append(p)
                if len(buf) == self.batch_size:
                    yield buf
                    buf = []
        if buf:
            yield buf

    def clip_scores(self, audio: AudioInput, sample_rate: int | None = None) -> torch.Tensor:
        """Class scores ``[C]`` (probabilities) of a file or waveform ``[T]`` of any length
        (a truncated or too short file is used with a logged warning, see :meth:`check_file`)."""
        self.check_file(audio)
        hop = self.piece_s if self.is_packed else self.piece_s * self.window_hop
        min_piece = 0.0 if self.is_packed else 0.25 * self.piece_s
        pieces = iter_pieces(audio, self.sample_rate, self.piece_s, hop, source_rate=sample_rate, min_piece_s=min_piece)
        scores, weights = [], []
        for batch in self._batches(pieces):
            scores.append(self._score_pieces(batch).cpu())
            weights += [p.num_samples for p in batch]
        return aggregate_scores(torch.cat(scores), torch.tensor(weights, dtype=torch.float32), self.aggregate)

    def tag(self, audio: AudioInput, top_k: int = 5, sample_rate: int | None = None) -> list[Tag]:
        """The ``top_k`` labels (at least 1; more than the classes gives them all) of a file or
        waveform ``[T]`` with their scores."""
        try:
            k = operator.index(top_k)
        except TypeError:
            k = 0
        if isinstance(top_k, bool) or k < 1:
            raise ValueError(f"top_k must be an integer >= 1 (1 to {len(self.labels)} classes), got {top_k!r}")
        scores = self.clip_scores(audio, sample_rate)
        k = min(k, scores.numel())
        vals, idx = scores.topk(k)
        return [Tag(self.labels[i], float(v), int(i)) for v, i in zip(vals.tolist(), idx.tolist())]

    def frame_scores(self, audio: AudioInput, sample_rate: int | None = None, **options: Any) -> FrameScores:
        """Frame probabilities of a file or waveform ``[T]`` of any length on one timeline.

        Sliding windows with overlap-add for HTS-AT, packed pieces for a frame-head ElasticAST
        (see :mod:`audioflex.inference.frames`); ``options`` go to
        :func:`~audioflex.inference.frames.frame_scores` (``hop``, ``weighting``, ``aggregate``,
        ``keep_spectrogram``, ...; default: this pipeline's window hop, aggregation, batch size,
        activation, device and, for packed models, ``piece_s`` as the window). Returns
        ``FrameScores`` (``probs [T', C]``, ``frame_hop_s``, ``clip [C]``). A file that is
        truncated or too short is used with a logged warning (:meth:`check_file`).
        """
        self.check_file(audio)
        opts: dict[str, Any] = {
            "labels": self.labels,
            "hop": self.window_hop,
            "aggregate": self.aggregate,
            "batch_size": self.batch_size,
            "multilabel": self.multilabel,
            "device": self.device,
        }
        if self.is_packed and self._piece_s is not None:
            opts["window_s"] = self._piece_s
        opts.update(options)
        return frame_scores(self.model, self.frontend, audio, sample_rate=sample_rate, **opts)

    def detect(
        self,
        audio: AudioInput,
        post: PostProcessing | None = None,
        *,
        sample_rate: int | None = None,
        filename: str | None = None,
        **options: Any,
    ) -> list[Event]:
        """Sound events (``evaluate.events.Event``: onset/offset in seconds, label) of a file or
        waveform ``[T]``: :meth:`frame_scores`, then ``post`` (per-class thresholds, median
        filtering, minimum duration and gap merging; None: threshold 0.5, nothing else)."""
        scores = self.frame_scores(audio, sample_rate, **options)
        if filename is None and not isinstance(audio, torch.Tensor):
            filename = str(audio)
        return scores_to_events(scores, post, filename=filename)

    def scores_batch(self, waves: list[torch.Tensor]) -> torch.Tensor:
        """Scores ``[N, C]`` of many clips (waveforms ``[T_i]`` at ``sample_rate``) at once, each
        fed whole (packed across clips for ElasticAST; fixed-window models crop/pad)."""
        pieces = [Piece(0.0, w) for w in waves]
        if not self.is_packed:
            return torch.cat(
                [self._score_pieces(pieces[i : i + self.batch_size]) for i in range(0, len(pieces), self.batch_size)]
            )
        counts = [self._tokens(p) for p in pieces]
        out = torch.empty(len(pieces), len(self.labels))
        for group in plan_batches(counts, self.max_tokens):
            out[group] = self._score_pieces([pieces[i] for i in group]).cpu()
        return out

    def embedding_model(self, **options: Any) -> EmbeddingModel:
        """The HEAR-style :class:`~audioflex.hear.embedder.EmbeddingModel` over this pipeline's model
        (options: ``hop_ms``, ``window_ms``, ``layers``, ``levels``, ... see ``EmbedOptions``)."""
        return EmbeddingModel(self.model, self.frontend, EmbedOptions.parse(None, **options), labels=self.labels)

    def _source(self, audio: AudioInput, sample_rate: int | None) -> AudioReader:
        """The input as an :class:`AudioReader` at the model's rate (a file: checked and logged,
        :meth:`check_file`)."""
        reader = AudioReader(audio, self.sample_rate, source_rate=sample_rate)
        if not isinstance(audio, torch.Tensor):
            check_audio_file(audio, self.frontend, self.contract.column_frames, reader.info)
        return reader

    def embed(self, audio: AudioInput, sample_rate: int | None = None, **options: Any) -> torch.Tensor:
        """Scene embedding ``[D]`` of a file or waveform ``[T]`` of any length (streamed)."""
        return self.embedding_model(**options).scene_from_source(self._source(audio, sample_rate))

    def embed_timestamps(
        self, audio: AudioInput, sample_rate: int | None = None, **options: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Timestamp embeddings ``[T, D]`` and their times ``[T]`` (ms, window centres) of a file or
        waveform of any length, computed block by block."""
        model = self.embedding_model(**options)
        blocks = list(model.iter_timestamp_blocks(self._source(audio, sample_rate)))
        emb = torch.cat([b[0] for b in blocks])
        ts = torch.cat([b[1] for b in blocks])
        return emb, ts
