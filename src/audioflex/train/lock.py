"""One live run per run directory: ``<run_dir>/.lock`` holds the owner's pid and host.

A second ``train`` into a directory a live run is writing to is refused (two runs would
interleave ``metrics.jsonl`` and overwrite each other's checkpoints). A lock left by a killed run
(its process is gone) is stale and taken over, so ``resume`` after a crash just works.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["LOCK", "RunLock"]

LOCK = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """``acquire()`` the run directory for this process (ValueError if a live run holds it);
    ``release()`` when done. A no-op pair for ranks other than 0 (``enabled=False``)."""

    def __init__(self, run_dir: Path, *, enabled: bool = True) -> None:
        self.path = Path(run_dir) / LOCK
        self.enabled = enabled
        self.held = False

    def _owner(self) -> tuple[int, str] | None:
        try:
            pid, host = self.path.read_text().split()[:2]
            return int(pid), host
        except (OSError, ValueError):
            return None  # unreadable or half-written: treated as stale

    def acquire(self) -> None:
        """Take the lock, replacing a stale one; ValueError naming the live owner otherwise."""
        if not self.enabled:
            return
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner[0] != os.getpid() and (
                    owner[1] != socket.gethostname() or _alive(owner[0])
                ):
                    raise ValueError(
                        f"{self.path.parent} is in use by a live training run (pid {owner[0]} on {owner[1]}); "
                        f"choose another out_dir, or wait for that run to end (delete {self.path} if it is gone)"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            self.held = True
            return
        raise ValueError(f"{self.path}: could not take the run lock; another run is starting there")

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
