"""The training loop: ``train(config) -> TrainResult`` (single process, or DDP under ``torchrun``).

Run directory layout::

    <out_dir>/config.yaml        the effective config
    <out_dir>/metrics.jsonl      one JSON object per log / evaluation
    <out_dir>/bad_files.txt      unreadable clips met (path <TAB> error), appended; clips used with a
                                 warning (truncated, too short) as path <TAB> "warning: ...", once each
    <out_dir>/last/              checkpoint + train_state.{safetensors,json} (resume from here)
    <out_dir>/best/              checkpoint with the best validation metric
    <out_dir>/.lock              pid and host of the live run (a second run there is refused)

A run that starts or resumes in a directory removes the checkpoint temporaries a killed run left
(``.last.tmp-*``, ``.best.tmp-*``: partial checkpoints, never read), and a resumed run drops the
rows of ``metrics.jsonl`` past its checkpoint's step (rewritten atomically), so the steps it
repeats are not counted twice.

Training data comes from a dataset read by ``read_dataset`` (indexed: token-budget batches planned
per epoch by ``BudgetBatchSampler``, exact mid-epoch resume) or from WebDataset shards
(``data.train.kind: shards``: streamed, shards split across ranks and DataLoader workers, batches
built on the fly by ``StreamingBatches``; a resumed run replays the interrupted epoch's stream and
skips the batches already trained on, or restarts the epoch with ``data.stream_resume: restart``).
Under DDP a stream's epoch ends for every rank as soon as one rank's shards run out (ranks hold
different shards, so their batch counts differ; the rest of the longer streams is dropped).

Loss normalisation: every optimiser step sums per-clip losses over all micro-batches of all
ranks and divides by the global number of clips (an all-reduce of the clip count before the
backward passes), scaled by the world size to undo DDP's gradient averaging. So packed batches
with different clip counts per rank give exactly the gradient of one process holding the whole
global batch.

The pieces: :mod:`~audioflex.train.builders` (model, data, optimiser), :mod:`~audioflex.train.state`
(``last/`` checkpoint and resume), :mod:`~audioflex.train.runlog` (``metrics.jsonl``,
``bad_files.txt``), :mod:`~audioflex.train.evaluation` (validation); this module runs the steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audioflex.checkpoints.io import save_checkpoint
from audioflex.data.datasets import Batch
from audioflex.models.contract import contract_of
from audioflex.train import state as st
from audioflex.train.builders import UNBOUNDED_STEPS, TrainSetup, build_setup
from audioflex.train.config import TrainConfig, load_config
from audioflex.train.distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from audioflex.train.evaluation import autocast, evaluate, evaluate_events, forward_batch
from audioflex.train.health import HealthCheck
from audioflex.train.lock import RunLock
from audioflex.train.losses import per_clip_loss, sed_per_clip_loss
from audioflex.train.optim import lr_factor, set_lr
from audioflex.train.runlog import RunLog, TrainMeter

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """What a finished run left behind.

    Attributes:
        run_dir: the run directory.
        steps: optimiser steps done (in total, including a resumed part).
        metric_name: the validation metric (``accuracy`` single-label, ``mAP`` multi-label, ``sed.select``
            for strong-label runs with strongly labelled validation clips).
        best_metric, best_step: best validation value and its step (None without validation).
        last_metrics: the last validation metrics.
        last_checkpoint, best_checkpoint: checkpoint directories (best None without validation).
        metrics_path: ``metrics.jsonl``.
        bad_files: number of unreadable clips met (listed in ``bad_files.txt``).
    """

    run_dir: Path
    steps: int
    metric_name: str
    best_metric: float | None
    best_step: int | None
    last_metrics: dict[str, float]
    last_checkpoint: Path
    best_checkpoint: Path | None
    metrics_path: Path
    bad_files: int


class _Trainer:
    """One run: the run directory prepared on construction, :meth:`build`, then :meth:`run`."""

    def __init__(self, cfg: TrainConfig, info: DistInfo) -> None:
        self.cfg, self.info = cfg, info
        self.resume_from: Path | None = None
        if cfg.resume:
            self.resume_from, run_dir = st.find_resume(Path(cfg.resume))
            self.run_dir = Path(cfg.out_dir) if cfg.out_dir else run_dir
        else:
            name = cfg.model.name or "model"
            self.run_dir = Path(cfg.out_dir) if cfg.out_dir else Path("runs") / name
        self.lock = RunLock(self.run_dir, enabled=info.is_main)
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()  # before touching anything a live run may be writing
            for d in st.remove_temporaries(self.run_dir, keep=self.resume_from):
                logger.info("removed %s (a partial checkpoint of a killed run)", d)
            cfg.to_yaml(self.run_dir / "config.yaml")
        barrier(info)
        self.runlog = RunLog(self.run_dir, is_main=info.is_main, tensorboard=cfg.tensorboard)
        self.progress = st.Progress()
        self.health: HealthCheck | None = None
        self.stopped = False  # the max_minutes budget ended the run
        self.fallback: Batch | None = None  # the last readable batch (stands in for an unreadable one)
        self.grid_tokens: int | None = None  # set by build()

    def build(self) -> None:
        """Build model, data and optimiser; load the resumed state."""
        self.s: TrainSetup = build_setup(self.cfg, self.info, self.run_dir, self.runlog)
        self.health = HealthCheck(self.s.chance_loss, self.cfg.health_check_steps)
        # patch tokens per clip of a grid model (packed batches count their own real tokens)
        self.grid_tokens = None if self.s.packed else contract_of(self.s.model).grid_tokens
        if self.resume_from is not None:
            s = self.s
            self.progress, self.runlog.bad_count = st.load_resume(
                self.resume_from, s.model, s.optimizer, s.scaler, self.info,
                stream=s.stream, stream_resume=self.cfg.data.stream_resume,
            )
            self.runlog.truncate(self.progress.step)

    # ---------------------------------------------------------------- checkpoints and validation
    def _extra(self) -> dict[str, Any]:
        return {
            "multilabel": self.s.multilabel,
            "loss": self.s.loss_kind,
            "step": self.progress.step,
            "metric_name": self.s.metric_name,
            "metric": self.progress.last_metrics.get("primary"),
            "train_state": st.STATE_JSON,
        }

    def _save_last(self) -> None:
        s = self.s
        st.save_last(
            self.run_dir, s.model, s.optimizer, s.scaler, self.progress, self.info, bad_files=self.runlog.bad_count,
            frontend=s.frontend, labels=s.labels.to_list(), extra=self._extra(),
        )

    def _tokens(self, micro: list[Batch], clips: int) -> int:
        """Patch tokens of a step: the real tokens of packed batches, ``grid_tokens`` per clip of a grid model."""
        if self.grid_tokens is None:
            return sum(b.num_tokens for b in micro)
        return clips * self.grid_tokens

    def _validate(self) -> None:
        """Validation on rank 0: log it, keep the best (``best/`` with ``keep_best``)."""
        s, p = self.s, self.progress
        if s.event_records:
            sed = self.cfg.sed
            res = evaluate_events(
                s.model, s.frontend, list(s.labels.names), s.event_records, device=self.info.device,
                select=sed.select, psds=sed.valid_psds,
            )
        else:
            assert s.valid_loader is not None
            res = evaluate(
                s.model, s.valid_loader, packed=s.packed, device=self.info.device, amp_dtype=s.amp_dtype,
                loss_kind=s.loss_kind, multilabel=s.multilabel, runlog=self.runlog,
            )
        if not res:
            return
        p.last_metrics = res
        self.runlog.log({"split": "valid", "step": p.step, "epoch": p.epoch, **res})
        value = res["primary"]
        if math.isfinite(value) and (p.best_metric is None or value > p.best_metric):
            p.best_metric, p.best_step = value, p.step
            if self.cfg.keep_best:
                save_checkpoint(
                    self.run_dir / "best", s.model, frontend=s.frontend, labels=s.labels.to_list(),
                    extra=self._extra(),
                )
        logger.info("step %d: valid %s %.4f (best %s @ %s)", p.step, s.metric_name, value,
                    "n/a" if p.best_metric is None else f"{p.best_metric:.4f}", p.best_step)

    def _maybe_eval_and_save(self, final: bool) -> None:
        cfg, step = self.cfg, self.progress.step
        do_eval = final or (cfg.eval_every > 0 and step % cfg.eval_every == 0)
        save_every = cfg.save_every if cfg.save_every is not None else cfg.eval_every
        do_save = final or (save_every > 0 and step % save_every == 0)
        if do_eval and self.info.is_main and (self.s.valid_loader is not None or self.s.event_records):
            self._validate()
        if do_eval or do_save:
            barrier(self.info)
        if do_save:
            self._save_last()
            barrier(self.info)

    # ---------------------------------------------------------------- one optimiser step
    def _micro_step(self, batch: Batch, n_global: float, sync: bool) -> float:
        """Forward + backward of one micro-batch; returns its summed clip loss."""
        s = self.s
        ctx = contextlib.nullcontext() if sync or not self.info.enabled else s.ddp_model.no_sync()
        with ctx:
            with autocast(self.info.device, s.amp_dtype):
                out = forward_batch(s.ddp_model, batch, s.packed)
            per_clip = per_clip_loss(out.clip_logits, batch.targets, s.loss_kind)
            if self.cfg.sed.enabled and batch.frame_targets is not None:
                sed = self.cfg.sed
                per_clip = sed_per_clip_loss(
                    out,
                    batch,
                    per_clip,
                    frame_weight=sed.frame_weight,
                    weak_frame_loss=sed.weak_frame_loss,
                    weak_pool=sed.weak_pool,
                )
            if batch.num_clips == 0:  # a stand-in batch (all clips unreadable): keep DDP in step
                per_clip = per_clip * 0.0
            loss = per_clip.sum() * (self.info.world_size / n_global)
            if s.scaler is not None:
                s.scaler.scale(loss).backward()
            else:
                loss.backward()
        return float(per_clip.detach().sum())

    def _stand_in(self, batch: Batch) -> Batch | None:
        """The batch to train on: ``batch``, or for an entirely unreadable one the last readable
        batch with no clips counted (DDP needs every rank's backward; alone it is skipped: None)."""
        if batch.inputs is not None:
            self.fallback = batch
            return batch
        if self.fallback is None:
            if not self.info.enabled:
                return None
            raise RuntimeError("a rank's first batch was entirely unreadable; check bad_files.txt")
        return dataclasses.replace(self.fallback, index=())

    def _optimizer_step(self, micro: list[Batch], n_global: float) -> float:
        """Forward/backward of the micro-batches (the gradient synchronised on the last), gradient
        clipping and the optimiser step; returns the summed clip loss."""
        s, optim = self.s, self.cfg.optim
        set_lr(s.optimizer, optim.lr, lr_factor(self.progress.step, optim, self._schedule_steps()))
        loss_sum = 0.0
        for k, b in enumerate(micro):
            used = self._stand_in(b)
            if used is not None:
                loss_sum += self._micro_step(used.to(self.info.device), n_global, sync=k == optim.grad_accum - 1)
        if s.scaler is not None:
            s.scaler.unscale_(s.optimizer)
        if optim.grad_clip is not None and optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(s.model.parameters(), optim.grad_clip)
        if s.scaler is not None:
            s.scaler.step(s.optimizer)
            s.scaler.update()
        else:
            s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
        return loss_sum

    # ---------------------------------------------------------------- epochs
    def _epoch_batches(self) -> Iterator[Batch]:
        """This rank's batches of the current epoch from the saved position on."""
        s, p = self.s, self.progress
        if s.stream:
            assert s.train_stream is not None
            s.train_stream.set_epoch(p.epoch)
            it = iter(s.train_loader)
            for _ in range(p.position):  # stream_resume=skip: replay up to the checkpoint
                next(it, None)
            return it
        assert s.sampler is not None
        s.sampler.set_epoch(p.epoch)
        s.sampler.load_state_dict({"epoch": p.epoch, "position": p.position})
        s.train_ds.set_epoch(p.epoch)
        return iter(s.train_loader)

    def _next_micro(self, it: Iterator[Batch]) -> list[Batch] | None:
        """The next ``grad_accum`` batches, or None at the epoch's end (for a stream: as soon as
        one rank's shards run out, on every rank)."""
        accum = self.cfg.optim.grad_accum
        micro = []
        for _ in range(accum):
            b = next(it, None)
            if b is None:
                break
            micro.append(b)
        if self.s.stream:  # ranks stream different shards: stop together when one runs out
            if all_reduce_sum(int(len(micro) == accum), self.info) < self.info.world_size:
                return None
        elif len(micro) < accum:
            return None
        if self.s.device_frontend is not None:
            micro = [self.s.device_frontend(b) for b in micro]
        return micro

    def _log_train(self, meter: TrainMeter, bar: Any) -> None:
        p, lr = self.progress, self.s.optimizer.param_groups[0]["lr"]
        rec = meter.record(self.info, step=p.step, epoch=p.epoch, lr=lr, bad_files=self.runlog.bad_count)
        self.runlog.log(rec)
        bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{lr:.2e}", clips_s=f"{rec['clips_per_s']:.1f}")

    def _schedule_steps(self) -> int:
        """The steps the learning-rate schedule spans: the run's total, or with ``max_minutes`` the
        steps the remaining budget allows at the speed measured so far (if fewer)."""
        total, p, budget = self.s.total_steps, self.progress, self.cfg.max_minutes
        if budget is None or p.step == 0 or p.train_seconds <= 0:
            return total
        return max(1, min(total, round(p.step * budget * 60 / p.train_seconds)))

    def _out_of_time(self) -> bool:
        """Whether the ``max_minutes`` budget is spent (rank 0 decides for all ranks)."""
        budget = self.cfg.max_minutes
        if budget is None:
            return False
        spent = int(self.info.is_main and self.progress.train_seconds >= budget * 60)
        return all_reduce_sum(spent, self.info) > 0

    def _check_health(self, loss: float) -> None:
        assert self.health is not None
        warning = self.health.update(self.progress.step, loss)
        if warning is not None and self.info.is_main:
            logger.warning("%s", warning)

    def _train_epoch(self, meter: TrainMeter, bar: Any) -> bool:
        """Train on the current epoch; True when its batches ran out before the last step."""
        cfg, p, total = self.cfg, self.progress, self.s.total_steps
        it = self._epoch_batches()
        clock = time.perf_counter()
        while p.step < total and not self.stopped:
            micro = self._next_micro(it)
            if micro is None:
                return True
            p.position += cfg.optim.grad_accum
            for b in micro:
                self.runlog.report_batch(b.bad, b.notes)
            n_local = sum(b.num_clips for b in micro)
            n_global = all_reduce_sum(n_local, self.info)
            if n_global == 0:
                logger.warning("step %d: every clip of the global batch was unreadable; skipped", p.step)
                continue
            loss_sum = self._optimizer_step(micro, n_global)
            p.step += 1
            now = time.perf_counter()
            p.train_seconds += now - clock
            if self._out_of_time():
                self.stopped = True
                logger.info("max_minutes=%g reached at step %d", self.cfg.max_minutes, p.step)
            meter.add(n_local, self._tokens(micro, n_local), loss_sum)
            self._check_health(loss_sum / max(n_local, 1))
            if p.step % max(1, cfg.log_every) == 0 or p.step in (1, total) or self.stopped:
                self._log_train(meter, bar)
            bar.update(1)
            if not math.isfinite(loss_sum):
                raise FloatingPointError(f"step {p.step}: loss is {loss_sum}; lower optim.lr or use amp=no")
            if p.step < total and not self.stopped:
                self._maybe_eval_and_save(final=False)
            clock = time.perf_counter()  # validation and saving do not count against max_minutes
        return False

    def _next_epoch(self, start_position: int, steps_before: int) -> None:
        """Move on to the next epoch; errors when an epoch cannot give one optimiser step."""
        p, s, accum = self.progress, self.s, self.cfg.optim.grad_accum
        p.epoch += 1
        p.position = 0
        if s.sampler is not None and len(s.sampler) < accum:
            raise ValueError("the training set gives fewer batches per epoch than optim.grad_accum")
        if s.sampler is None and p.step == steps_before and start_position == 0:
            raise ValueError(
                "data.train: the shard stream gave fewer batches per epoch than optim.grad_accum on a rank "
                "(too few clips or shards per rank)"
            )

    def run(self) -> TrainResult:
        """Train to ``total_steps`` (validating and saving on the way and at the end)."""
        from tqdm.auto import tqdm

        s, p = self.s, self.progress
        s.model.train()
        logger.info(
            "training %s on %s from step %d (%s); run dir %s", s.model_name, self.info.device, p.step,
            f"up to {self.cfg.max_minutes:g} min" if s.total_steps == UNBOUNDED_STEPS else f"{s.total_steps} steps",
            self.run_dir,
        )
        bar = tqdm(
            total=None if s.total_steps == UNBOUNDED_STEPS else s.total_steps, initial=p.step,
            disable=not (self.cfg.progress and self.info.is_main), desc="train", dynamic_ncols=True,
        )
        meter = TrainMeter()
        self.stopped = self._out_of_time()  # a resumed run whose budget is already spent
        while p.step < s.total_steps and not self.stopped:
            start_position, steps_before = p.position, p.step
            if self._train_epoch(meter, bar):
                self._next_epoch(start_position, steps_before)
        bar.close()
        self._maybe_eval_and_save(final=True)
        if self.s.valid_loader is None and not self.s.event_records and self.cfg.keep_best and self.info.is_main:
            logger.warning(
                "no validation data (data.valid): best/ is not written; the final model is in %s",
                self.run_dir / "last",
            )
        self.runlog.close()
        best = self.run_dir / "best"
        return TrainResult(
            run_dir=self.run_dir,
            steps=p.step,
            metric_name=s.metric_name,
            best_metric=p.best_metric,
            best_step=p.best_step,
            last_metrics=p.last_metrics,
            last_checkpoint=self.run_dir / "last",
            best_checkpoint=best if best.is_dir() else None,
            metrics_path=self.runlog.metrics_path,
            bad_files=self.runlog.bad_count,
        )


def train(config: TrainConfig | str | Path | dict[str, Any], overrides: Sequence[str] = ()) -> TrainResult:
    """Train a model as ``config`` says; returns where everything went.

    Args:
        config: a :class:`TrainConfig`, a YAML file (or run directory holding ``config.yaml``), or
            a dict of the same shape.
        overrides: ``"a.b=value"`` strings applied on top (values parsed as YAML), e.g.
            ``["optim.lr=3e-4", "resume=runs/x"]``.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every process calls this; the process group is
    joined from the environment (``gloo`` on CPU, ``nccl`` on CUDA), the model is wrapped in
    DDP, each rank reads its own token-budget batches, and only rank 0 writes files. A run
    killed at any point resumes from its last checkpoint with ``resume=<run dir>``.
    """
    cfg = load_config(config, overrides)
    if cfg.deterministic:
        # bit-reproducible runs (the packed path's index/scatter backward is otherwise order-dependent)
        torch.use_deterministic_algorithms(True, warn_only=True)
    info = init_distributed(cfg.device)
    trainer: _Trainer | None = None
    try:
        trainer = _Trainer(cfg, info)
        trainer.build()
        result = trainer.run()
        # ranks leave together: none tears its gloo/nccl connections down while another is still
        # finishing (rank 0 writes the last files after the final barrier)
        barrier(info)
        return result
    finally:
        if trainer is not None:
            trainer.lock.release()
        trainer = None  # the DDP wrapper and its reducer go before the process group they use
        cleanup(info)


__all__ = ["TrainResult", "train"]
