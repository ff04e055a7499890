"""The stderr of one process of a multi-process run, relayed so that a lost peer ends in one `error:` line.

When another process of the run dies without warning (kill -9, a crashed or unreachable host),
JAX's distributed runtime notices its missing heartbeats (or the coordinator's closed socket) and
ends this process from C++ (LOG(FATAL): abort, exit code 134) with a page of log lines and a stack
trace, which Python cannot catch. So the command line (jaxdl.run.cli) sends its stderr through
this small relay, started as a separate process (`python stderr_guard.py`, no JAX imported): it
passes every line through, drops the runtime's known multi-process noise (gloo's "connected to
peer ranks" lines, the coordination service's warnings about the lost peer), and when the fatal
line comes, writes

    error: another process of this multi-process run stopped (killed, crashed or unreachable) ...

and nothing after it. With `--debug` (argument `keep`), nothing is dropped; the `error:` line is
still added. The relay ignores SIGINT and SIGTERM (those are for the training process) and ends
when the training process closes its stderr.
"""

from __future__ import annotations

import os
import re
import signal
import sys

FATAL = "Terminating process because the JAX distributed service detected fatal errors"
NOISE = re.compile(
    r"^\[Gloo\] Rank \d+ is connected to"
    r"|^[EW]\d{4} [\d:.]+\s+\d+ (coordination_service(_agent)?|preemption_sync_manager|client)\.(cc|h):"
    r"|^Additional GRPC error information from remote target"
    r"|^:UNKNOWN:Error received from peer")
# Lines that continue a dropped runtime message (the ids of the lost processes, the runtime's advice).
CONTINUATION = re.compile(r"^(\d+(,\s*\d+)*|The tasks have crashed\..*|RPC: .*|\s*)$")
MESSAGE = ("error: another process of this multi-process run stopped (killed, crashed or unreachable), so this one "
           "cannot go on; run all the processes again with the same commands to resume from the last checkpoint\n")


def relay(source: int, sink, *, keep: bool = False) -> None:
    """Copies `source` (a file descriptor) to `sink` (a binary stream) segment by segment (a segment ends
    in "\\n" or "\\r", so a progress bar is shown as it is drawn) until end of file."""
    pending, fatal, reported, dropping = b"", False, False, False
    while True:
        chunk = os.read(source, 65536)
        if not chunk:
            break
        pending += chunk
        segments = re.split(rb"(?<=[\r\n])", pending)
        pending = segments.pop()
        for segment in segments:
            text = segment.decode("utf-8", "replace")
            if FATAL in text and not reported:
                sink.write(MESSAGE.encode())
                reported = True
            fatal = fatal or FATAL in text
            reported = reported or text.startswith("error: ")
            continued = dropping and CONTINUATION.match(text) is not None
            dropping = not keep and (NOISE.match(text) is not None or continued)
            if (fatal and not keep) or dropping:
                continue
            sink.write(segment)
        sink.flush()
    if pending and not fatal:
        sink.write(pending)
        sink.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    relay(0, sys.stdout.buffer, keep="keep" in sys.argv[1:])


if __name__ == "__main__":
    main()
