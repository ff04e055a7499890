"""Stopping a run cleanly on SIGTERM or SIGINT (preemption, Ctrl-C), so that it can be resumed.

While `stop_on_signals()` is active, the first SIGTERM or SIGINT only records a request: `fit`
finishes the epoch it is in (one compiled program, which cannot be cut short without losing
it), saves a checkpoint, and returns; the pipeline then raises `RunInterrupted`, and the command
line prints how to resume and exits with 128 + the signal number (143 for SIGTERM, 130 for
SIGINT), the shell's convention for "ended by this signal". A second signal stops at once
(KeyboardInterrupt), keeping whatever checkpoints were already written.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Callable flag: True once a stop signal arrived; `signum` says which."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


class RunInterrupted(Exception):
    """The run stopped on a signal after `epoch`, with a checkpoint of that epoch in `workdir`."""

    def __init__(self, signum: int, epoch: int, workdir: str):
        self.signum, self.epoch, self.workdir = signum, epoch, workdir
        super().__init__(f"stopped by {signal.Signals(signum).name} after epoch {epoch}; "
                         f"its checkpoint is in {workdir}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals(signals: tuple[int, ...] = SIGNALS) -> Iterator[StopRequest]:
    """Turns the first of `signals` into a StopRequest while active (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # Signal handlers can only be installed from the main thread.
        return

    def handle(signum, frame):
        if request.signum is not None:
            raise KeyboardInterrupt
        request.signum = signum
        print(f"\n{request.name} received: finishing this epoch, saving a checkpoint, then stopping "
              f"(send it again to stop at once)", file=sys.stderr, flush=True)

    previous = {signum: signal.signal(signum, handle) for signum in signals}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
