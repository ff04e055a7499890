"""The output of one process of a multi-process run, relayed so that a lost peer ends in one `error:` line.

When another process of the run dies without warning (kill -9, a crashed or unreachable host),
JAX's distributed runtime notices its missing heartbeats (or gloo its closed socket) and ends this
process from C++ (LOG(FATAL) or an uncaught C++ exception: abort, exit code 134) with a page of log
lines and a stack trace, which Python cannot catch. So the command line (jaxdl.run.cli) sends its
stdout and stderr through this small relay, started as a separate process (`python output_guard.py
OUT_FD ERR_FD JOINING_ERROR [keep]`, no JAX imported, reading the two pipes OUT_FD and ERR_FD): it passes every
line through, drops the runtime's known multi-process noise (gloo's "connected to peer ranks"
lines on stdout, the coordination service's warnings about a lost peer), and when the fatal line
comes, writes on stderr

    error: another process of this multi-process run stopped (killed, crashed or unreachable) ...

and nothing after it (JOINING_ERROR instead, when the processes never all joined). With `--debug`
(argument `keep`), nothing is dropped; the `error:` line is still added. The relay ignores SIGINT
and SIGTERM (those are for the training process) and ends when the training process closes its
output (it exits or is killed).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import sys

FATAL = ("Terminating process because the JAX distributed service detected fatal errors",
         "terminate called after throwing an instance of 'gloo::")
NOISE = re.compile(  # searched anywhere in a line: gloo's threads interleave their lines
    r"\[Gloo\] Rank|connected peer ranks|is connected to \d+ peer ranks"
    r"|^[EW]\d{4} [\d:.]+\s+\d+ (coordination_service(_agent)?|preemption_sync_manager|client)\.(cc|h):"
    r"|^Additional GRPC error information from remote target"
    r"|^:UNKNOWN:Error received from peer")
# Lines that continue a dropped runtime message (the ids of the lost processes, the runtime's advice).
CONTINUATION = re.compile(r"^(\d+(,\s*\d+)*|The tasks have crashed\..*|RPC: .*|\s*)$")
JOINED = "jaxdl: joined the other processes"  # written by the command line once initialize returned; not shown
MESSAGE = ("error: another process of this multi-process run stopped (killed, crashed or unreachable), so this one "
           "cannot go on; run all the processes again with the same commands to resume from the last checkpoint")


class Relay:
    """Copies pipes to sinks segment by segment (a segment ends in "\\n" or "\\r", so a progress bar
    is shown as it is drawn), dropping noise, until every pipe is closed.

    Args:
      errors: the binary stream the `error:` line goes to (the original stderr).
      joining: the `error:` line for a fatal error before the JOINED line (the processes never all met).
      keep: drop nothing.
    """

    def __init__(self, errors, *, joining: str = MESSAGE, keep: bool = False):
        self.errors, self.joining, self.keep = errors, joining, keep
        self.fatal = self.reported = self.joined = False
        self.dropping: dict[int, bool] = {}

    def segment(self, source: int, segment: bytes, sink) -> None:
        text = segment.decode("utf-8", "replace")
        if text.rstrip("\n") == JOINED:
            self.joined = True
            return
        if any(sign in text for sign in FATAL) and not self.reported:
            self.errors.write(((MESSAGE if self.joined else self.joining) + "\n").encode())
            self.errors.flush()
            self.reported = True
        self.fatal = self.fatal or any(sign in text for sign in FATAL)
        self.reported = self.reported or text.startswith("error: ")
        continued = self.dropping.get(source, False) and CONTINUATION.match(text) is not None
        self.dropping[source] = not self.keep and (NOISE.search(text) is not None or continued)
        if not (self.fatal and not self.keep) and not self.dropping[source]:
            sink.write(segment)

    def run(self, pipes: dict[int, object]) -> None:
        """`pipes`: {file descriptor to read: binary sink}."""
        selector = selectors.DefaultSelector()
        pending = {}
        for source, sink in pipes.items():
            selector.register(source, selectors.EVENT_READ, sink)
            pending[source] = b""
        while selector.get_map():
            for key, _ in selector.select():
                source, sink = key.fd, key.data
                chunk = os.read(source, 65536)
                if not chunk:
                    selector.unregister(source)
                    if pending[source] and not self.fatal:
                        sink.write(pending[source])
                        sink.flush()
                    continue
                segments = re.split(rb"(?<=[\r\n])", pending[source] + chunk)
                pending[source] = segments.pop()
                for segment in segments:
                    self.segment(source, segment, sink)
                sink.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out, err, joining = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    Relay(sys.stderr.buffer, joining=joining, keep="keep" in sys.argv[4:]).run({out: sys.stdout.buffer,
                                                                                err: sys.stderr.buffer})


if __name__ == "__main__":
    main()
