"""Ctrl-C and SIGTERM stop a training run at the next step boundary, so that it ends with a checkpoint.

A signal only sets a flag. The loop reads it after each optimiser step (all ranks agree on it, so that they
stop at the same step), writes a checkpoint unless it has just written one, and raises :class:`Interrupted`,
whose message is the one line the CLI prints. SIGTERM is what a cluster sends before it pre-empts a job.
A second Ctrl-C raises KeyboardInterrupt at once, for a step that would take too long to finish.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Dict, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Training stopped on a signal after writing (or having just written) the checkpoint of ``step``."""

    def __init__(self, signum: int, step: int, output_dir: str) -> None:
        self.signum, self.step, self.output_dir = signum, step, output_dir
        super().__init__(f"{signal.Signals(signum).name}: interrupted at step {step}, checkpoint written; "
                         f"resume with --resume --output {output_dir}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # what a shell reports for a process the signal ended


def ignore_in_worker() -> None:
    """For data-loader workers: Ctrl-C in a terminal reaches the whole process group and a cluster signals
    every process of a job; the main process decides when to stop and shuts its workers down itself."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class StopRequests:
    """While active (``with StopRequests() as stop``), SIGINT and SIGTERM set :attr:`signum` instead of
    ending the process. Only the main thread can handle signals; elsewhere it changes nothing."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, object] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        # os.write, not logging or print: a handler that writes to a buffered stream the main thread is
        # writing to at that moment raises "reentrant call"
        os.write(2, f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint (Ctrl-C "
                    f"again stops at once, without one)\n".encode())
