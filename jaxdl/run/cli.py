"""The command line every experiment shares.

    python -m experiments.<name> [--config configs/<name>.py[:ARG]] [--config.KEY=VALUE ...]
                                 [--workdir DIR] [--debug] [--quiet]
                                 [--coordinator HOST:PORT --num_processes N --process_id I
                                  [--distributed_timeout SECONDS]]

Many processes (`jax.distributed`): start the same command once per process, each with its own
`--process_id` (0 .. N-1) and the same `--coordinator` (process 0's host and a free port) and
`--num_processes`. Together they form one mesh over all devices of all processes; process 0 alone
writes the run's files and shows the progress bar, every process takes part in the checkpoints.
On CPU the processes talk through gloo. `--distributed_timeout` (seconds, default 300) bounds the
wait for the other processes at start-up, and how long a process that dies without warning goes
unnoticed by the others (the heartbeat timeout, at most 100 s) before they exit with an `error:`
line. On a Cloud TPU VM (libtpu installed and TPU chips at /dev/accel* or /dev/vfio/) none of the
flags are needed: `jax.distributed.initialize()` is called without arguments and finds the
slice's hosts itself (a single-host VM is then one process, as without the flags).

Exit codes:
  0    done;
  2    bad input, reported as one `error:` line on stderr (`--debug` adds the traceback); this
       includes a run that diverged (NaN or infinite loss, see jaxdl.train.nonfinite);
  130  stopped by SIGINT (Ctrl-C), 143 stopped by SIGTERM: the last epoch is checkpointed and the
       message on stderr gives the command that resumes the run (with many processes, a signal to
       any one stops all after the same epoch: the others exit with 143);
  2 or 134  (many processes) another process died without warning, or the processes never all
       joined: one `error:` line; 134 when JAX's runtime aborted this process (its trace is kept
       off the terminal by jaxdl/run/output_guard.py, `--debug` shows it);
  anything else is a bug.

Library warnings (TFDS, Orbax, absl) are hidden unless `--debug`; jaxdl's own show as `warning:` lines.

Compilation cache: only the command line sets it (library and experiment code change no global
JAX setting). By default a command keeps JAX's compilation cache in a folder of its own for as long
as it runs (removed at exit): a program it compiles again (the transfer experiment trains 90 models
of one architecture, each `fit` tracing its programs anew) is read back instead. `JAXDL_COMPILATION_CACHE=DIR`
keeps the cache in DIR across commands instead, so a repeated or resumed command reads its programs
back too (JAX's own `JAX_COMPILATION_CACHE_DIR` works too); `JAXDL_COMPILATION_CACHE=off` turns it off.
A shared DIR is opt-in: when XLA loads a program compiled for other CPU features it logs a line on
stderr, which would break the one-`error:`-line contract of a failing command; a command's own cache
only ever holds what it compiled itself.
"""

from __future__ import annotations

import atexit
import datetime
import glob
import importlib.util
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import jax
import ml_collections

from jaxdl import paths
from jaxdl.errors import InputError, did_you_mean, parse_number
from jaxdl.report.console import configure_logging, final_table, report_error
from jaxdl.run import output_guard
from jaxdl.run.config import apply_override, load_config, resolve_config, split_overrides
from jaxdl.run.config_help import experiment_help
from jaxdl.train.preemption import RunInterrupted

USAGE = ("usage: python -m experiments.<name> [--config NAME|FILE.py[:VARIANT]] [--config.KEY=VALUE ...] "
         "[--workdir DIR] [--debug] [--quiet] [--coordinator HOST:PORT --num_processes N --process_id I "
         "[--distributed_timeout SECONDS]]")
DISTRIBUTED_FLAGS = ("coordinator", "num_processes", "process_id", "distributed_timeout")
FLAGS = ("config", "workdir", "debug", "quiet", "help", *DISTRIBUTED_FLAGS)
OUTPUT_GUARD = output_guard.__file__
SHUTDOWN_SECONDS = 600
PEER_LOST_SIGNS = ("Gloo", "Connection closed by peer", "UNAVAILABLE", "heartbeat")
MAX_PROCESSES = 65536  # --num_processes: 1 .. this; --process_id: 0 .. --num_processes - 1
MAX_TIMEOUT_SECONDS = 86400  # --distributed_timeout: 1 s .. one day
RESOLVE_SECONDS = 5  # at most this long to resolve --coordinator's host name
HEARTBEAT_SECONDS = 100  # jax.distributed's default: how long a silent process goes unnoticed, at most


def check_flags(flags: dict) -> None:
    for name in flags:
        if name not in FLAGS:
            suggestion = did_you_mean(name, FLAGS)
            raise InputError(f"--{name}", "unknown flag", expected=", ".join(f"--{f}" for f in FLAGS),
                             hint=f"did you mean --{suggestion}?" if suggestion else None)


def parse_args(argv: list[str], default_config: str) -> tuple[ml_collections.ConfigDict, str, bool, bool]:
    """argv -> (config with overrides applied, workdir, debug, quiet)."""
    flags, overrides = split_overrides(argv)
    check_flags(flags)
    config = load_config(flags.get("config") or default_config)
    for key, text in overrides.items():
        apply_override(config, key, text)
    name = config.get("experiment", "run")
    workdir = flags.get("workdir") or os.path.join(
        "runs", f"{name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    return config, workdir, "debug" in flags, "quiet" in flags


def resume_command(argv: list[str], workdir: str) -> str:
    """The command line that continues this run: same flags, absolute --config and --workdir."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    python = sys.executable or "python"
    program = [python, "-m", main_spec.name] if main_spec is not None else [python, os.path.abspath(sys.argv[0])]
    args, i = [], 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in ("--workdir", "--config"):
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else ""
                i += 1
            if name == "--config":
                path, variant = resolve_config(value)  # a config named by experiment too
                args.append(f"--config={os.path.abspath(path)}" + (f":{variant}" if variant else ""))
        else:
            args.append(argv[i])
        i += 1
    return shlex.join([*program, *args, f"--workdir={paths.join(workdir)}"])  # a bucket URL stays one


def use_compilation_cache() -> None:
    """Turns on JAX's compilation cache (module docstring): in $JAXDL_COMPILATION_CACHE if set, "off" for
    none, else in a folder of this process's own, removed at exit. One JAX already has is left alone."""
    folder = os.environ.get("JAXDL_COMPILATION_CACHE", "")
    if jax.config.jax_compilation_cache_dir or folder.lower() == "off":
        return
    if not folder:
        folder = tempfile.mkdtemp(prefix="jaxdl-xla-cache-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        # a repeated program is worth reading back even when it compiled fast (JAX's default: 1 s)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(folder))


def distributed_args(argv: list[str]) -> dict | None:
    """The `jax.distributed.initialize` arguments the flags ask for, checked on the host; None for one process.

    {} on a Cloud TPU VM without the flags (JAX finds the slice itself).
    """
    flags, _ = split_overrides(argv)
    check_flags(flags)
    given = {name: flags[name] for name in DISTRIBUTED_FLAGS if name in flags}
    if not given:
        return {} if on_cloud_tpu_vm() else None
    timeout = parse_number("--distributed_timeout", given.get("distributed_timeout", "300"), low=1,
                           high=MAX_TIMEOUT_SECONDS, integer=True)
    missing = [f"--{name}" for name in DISTRIBUTED_FLAGS[:3] if name not in given]
    if missing:
        raise InputError(missing[0], "missing: many processes need --coordinator, --num_processes and --process_id",
                         got=", ".join(f"--{name}" for name in given), expected="all three")
    count = parse_number("--num_processes", given["num_processes"], low=1, high=MAX_PROCESSES, integer=True)
    index = parse_number("--process_id", given["process_id"], low=0, high=MAX_PROCESSES - 1, integer=True)
    if index >= count:
        raise InputError("--process_id", f"is out of range for --num_processes={count}", got=index,
                         expected=f"0 .. {count - 1}")
    host, colon, port = given["coordinator"].rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError("--coordinator", "must be HOST:PORT", got=given["coordinator"],
                         expected="e.g. localhost:12355 (process 0's host and a free port)")
    return {"coordinator_address": given["coordinator"], "num_processes": count, "process_id": index,
            "initialization_timeout": timeout, "heartbeat_timeout_seconds": min(timeout, HEARTBEAT_SECONDS),
            # At the end the others wait for process 0, which alone writes the report and figures (tens of
            # seconds on a loaded CPU); a process lost meanwhile is caught by the heartbeat, not this.
            "shutdown_timeout_seconds": max(timeout, SHUTDOWN_SECONDS)}


def on_cloud_tpu_vm() -> bool:
    """libtpu is installed and the machine has TPU chips: a Cloud TPU VM, where JAX finds the slice itself."""
    if importlib.util.find_spec("libtpu") is None:
        return False
    return bool(glob.glob("/dev/accel[0-9]*") or glob.glob("/dev/vfio/[0-9]*"))


def start_distributed(args: dict | None, debug: bool) -> None:
    """Joins the processes of a multi-process run (before any JAX computation); nothing for one process.

    Checked first, as bad input (exit 2): process 0 can bind the coordinator's port; another process
    reaches it within the timeout. Then the output goes through the relay (guard_output).
    """
    if args is None:
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    # JAX's preemption service would catch SIGTERM for the whole process, from here on: a SIGTERM before
    # `fit` installs jaxdl's handler (jaxdl.train.preemption) was logged and ignored, and the run went on to
    # exit 0. Without it a signal does what it does in a one-process run: during fit, a clean stop after
    # the epoch on every process; before, the end of this process (and the lost-peer line on the others).
    jax.config.update("jax_enable_preemption_service", False)
    seconds = args.get("initialization_timeout", 300)
    address = args.get("coordinator_address")
    if address is not None:
        check_coordinator(address, args["process_id"], seconds)
    where = "--coordinator" if address is not None else "jax.distributed.initialize"
    joining = InputError(where, f"could not join the other processes within {seconds} s",
                         got=address or "the Cloud TPU slice",
                         expected=f"all {args.get('num_processes', 'the')} processes started with the same flags "
                                  "within the timeout (--distributed_timeout)")
    guard_output(debug, f"error: {joining}")
    try:
        jax.distributed.initialize(**args)
    except Exception as error:  # noqa: BLE001 (XLA raises its own types for a coordinator that never answers)
        raise joining from error
    print(output_guard.JOINED, file=sys.stderr, flush=True)


def check_coordinator(address: str, process_id: int, seconds: float) -> None:
    """Process 0: the coordinator's port is free here. Others: something answers at `address` within `seconds`."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    resolve_host(host, int(port), address)
    if process_id == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("", int(port)))
            except OSError as error:
                raise InputError("--coordinator", f"process 0 cannot listen on port {port} ({error.strerror})",
                                 got=address, expected="a free port on process 0's host") from error
        return
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError as error:
            if time.monotonic() >= deadline:
                reason = error.strerror or str(error)
                raise InputError("--coordinator", f"nothing answers there within {seconds:g} s ({reason})",
                                 got=address, expected="process 0 started with the same --coordinator (its host "
                                 "and a free port), reachable from this host") from error
            time.sleep(0.2)


def resolve_host(host: str, port: int, address: str, seconds: float = RESOLVE_SECONDS) -> None:
    """InputError unless `host` resolves within `seconds` (every process connects to it: a name that never
    resolves would otherwise leave JAX retrying silently until --distributed_timeout)."""
    found: dict = {}

    def look_up() -> None:
        try:
            found["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            found["error"] = getattr(error, "strerror", None) or str(error)

    thread = threading.Thread(target=look_up, daemon=True)  # getaddrinfo itself takes no timeout
    thread.start()
    thread.join(seconds)
    if "addresses" not in found:
        reason = found.get("error") or f"no answer within {seconds:g} s"
        raise InputError("--coordinator", f"cannot resolve host {host!r} ({reason})", got=address,
                         expected="process 0's host name or IP address and a free port, e.g. localhost:12355")


def guard_output(debug: bool, joining: str) -> None:
    """Sends this process's stdout and stderr through jaxdl/run/output_guard.py, a separate small process,
    so that a lost peer ends in one `error:` line rather than the runtime's abort trace, and gloo's
    chatter stays off the terminal (see that module); `joining` is that line while the processes
    have not all joined yet."""
    sys.stdout.flush()
    sys.stderr.flush()
    pipes = [os.pipe(), os.pipe()]
    reads = [read for read, _ in pipes]
    subprocess.Popen([sys.executable, OUTPUT_GUARD, *map(str, reads), joining, *(["keep"] if debug else [])],
                     stdin=subprocess.DEVNULL, pass_fds=reads)
    for target, (read, write) in zip((1, 2), pipes, strict=True):
        os.close(read)
        os.dup2(write, target)
        os.close(write)


def lost_peer(error: Exception) -> bool:
    """Whether a runtime error of a multi-process run says that another process went away."""
    text = str(error)
    return jax.process_count() > 1 and any(sign in text for sign in PEER_LOST_SIGNS)


def main(run: Callable[..., dict], default_config: str, argv: list[str] | None = None) -> int:
    """Parses flags, calls `run(config, workdir)`, prints the final table; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        print(USAGE)
        print(experiment_help(argv, default_config))
        print(__doc__)
        return 0
    debug = "--debug" in argv
    configure_logging(debug)
    use_compilation_cache()
    try:
        start_distributed(distributed_args(argv), debug)
        config, workdir, debug, quiet = parse_args(argv, default_config)
        paths.check_storage(workdir)
        summary = run(config, workdir, progress=not quiet)
    except InputError as error:
        return report_error(error, debug)
    except jax.errors.JaxRuntimeError as error:
        if not lost_peer(error) or debug:
            raise
        print(output_guard.MESSAGE, file=sys.stderr, flush=True)
        os._exit(2)  # a clean shutdown would wait for the lost process
    except RunInterrupted as stop:
        print(f"{stop}. The run can be resumed from there: {resume_command(argv, stop.workdir)}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if jax.process_index() == 0:  # one table for a multi-process run
        print(final_table(summary))
    return 0
