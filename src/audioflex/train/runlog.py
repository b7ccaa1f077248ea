"""What a training run writes beside its checkpoints: ``metrics.jsonl``, ``bad_files.txt`` and,
optionally, TensorBoard scalars.

``metrics.jsonl`` holds one JSON object per log / evaluation (rank 0 only); ``bad_files.txt``
lists the unreadable clips met (``path <TAB> error``, appended by every rank, one append per
batch) and, once per run directory, the clips used with a warning (``path <TAB> "warning: ..."``:
truncated, too short).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audioflex.data.datasets import BadClip
from audioflex.train import state as st
from audioflex.train.distributed import DistInfo, all_reduce_sum

logger = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
BAD_FILES = "bad_files.txt"


class RunLog:
    """The run directory's log files.

    Args:
        run_dir: the run directory (must exist).
        is_main: whether this process is rank 0 (the only one writing ``metrics.jsonl``).
        tensorboard: also write TensorBoard scalars to ``<run_dir>/tb`` (rank 0; silently off
            when tensorboard is not installed).

    Attributes:
        metrics_path, bad_path: ``metrics.jsonl`` and ``bad_files.txt``.
        bad_count: unreadable clips met so far (in total, including a resumed part).
    """

    def __init__(self, run_dir: Path, *, is_main: bool = True, tensorboard: bool = False) -> None:
        self.is_main = is_main
        self.metrics_path = run_dir / METRICS
        self.bad_path = run_dir / BAD_FILES
        self.bad_count = 0
        self.noted: set[str] = set()  # "path\twarning: ..." lines already in bad_files.txt
        if self.bad_path.is_file():
            self.noted = {ln for ln in self.bad_path.read_text().splitlines() if "\twarning: " in ln}
        self.tb: Any = None
        if is_main and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except Exception:  # noqa: BLE001 (tensorboard missing or broken: optional)
                self.tb = None

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``metrics.jsonl`` (and its numbers to TensorBoard); rank 0 only."""
        if not self.is_main:
            return
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            prefix = record.get("split", "train")
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, record.get("step", 0))

    def report_bad(self, bad: Iterable[BadClip]) -> None:
        """Count and list unreadable clips (one append per call: ranks don't interleave lines)."""
        bad = list(bad)
        if not bad:
            return
        self.bad_count += len(bad)
        lines = "".join(f"{b.path}\t{' '.join(b.error.split())}\n" for b in bad)
        with open(self.bad_path, "a") as fh:
            fh.write(lines)
        logger.warning("skipped %d unreadable clip(s) (%d so far, see %s)", len(bad), self.bad_count, self.bad_path)

    def report_notes(self, notes: Iterable[tuple[str, str]]) -> None:
        """Clips used with a warning (truncated, too short): logged and listed once per run dir."""
        new = []
        for path, reason in notes:
            line = f"{path}\twarning: {' '.join(reason.split())}"
            if line not in self.noted:
                self.noted.add(line)
                new.append(line)
                logger.warning("%s: %s", path, reason)
        if new:
            with open(self.bad_path, "a") as fh:
                fh.write("".join(line + "\n" for line in new))

    def report_batch(self, bad: Iterable[BadClip], notes: Iterable[tuple[str, str]]) -> None:
        """:meth:`report_bad` and :meth:`report_notes` of one batch."""
        self.report_bad(bad)
        self.report_notes(notes)

    def truncate(self, step: int) -> None:
        """Drop the ``metrics.jsonl`` rows past ``step`` (a resumed run repeats them); rank 0 only."""
        if not self.is_main:
            return
        dropped = st.truncate_metrics(self.metrics_path, step)
        if dropped:
            logger.info("metrics.jsonl: dropped %d row(s) past step %d (repeated from there)", dropped, step)

    def close(self) -> None:
        """Warn about skipped clips and close TensorBoard."""
        if self.bad_count:
            logger.warning("%d unreadable clip(s) were skipped; see %s", self.bad_count, self.bad_path)
        if self.tb is not None:
            self.tb.close()


@dataclasses.dataclass
class TrainMeter:
    """Loss and throughput since the last train log row (this rank's counts)."""

    clips: int = 0
    tokens: int = 0
    loss_sum: float = 0.0
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, clips: int, tokens: int, loss_sum: float) -> None:
        """Count one optimiser step: its clips, tokens and summed clip loss."""
        self.clips += clips
        self.tokens += tokens
        self.loss_sum += loss_sum

    def record(self, info: DistInfo, *, step: int, epoch: int, lr: float, bad_files: int) -> dict[str, Any]:
        """The ``metrics.jsonl`` train row (mean clip ``loss`` and ``clips_per_s``/``tokens_per_s``
        over all ranks) and a restart of the counts. Every rank calls this (the loss is all-reduced)."""
        dt = max(time.perf_counter() - self.t0, 1e-9)
        rec = {
            "split": "train",
            "step": step,
            "epoch": epoch,
            "loss": all_reduce_sum(self.loss_sum, info) / max(all_reduce_sum(self.clips, info), 1),
            "lr": lr,
            "clips_per_s": self.clips * info.world_size / dt,
            "tokens_per_s": self.tokens * info.world_size / dt,
            "bad_files": bad_files,
        }
        self.clips, self.tokens, self.loss_sum, self.t0 = 0, 0, 0.0, time.perf_counter()
        return rec


__all__ = ["BAD_FILES", "METRICS", "RunLog", "TrainMeter"]
