"""The command line every experiment shares.

    python -m experiments.<name> [--config configs/<name>.py[:ARG]] [--config.KEY=VALUE ...]
                                 [--workdir DIR] [--debug] [--quiet]

Exit codes:
  0    done;
  2    bad input, reported as one `error:` line on stderr (`--debug` adds the traceback); this
       includes a run that diverged (NaN or infinite loss, see jaxdl.train.nonfinite);
  130  stopped by SIGINT (Ctrl-C), 143 stopped by SIGTERM: the last epoch is checkpointed and the
       message on stderr gives the command that resumes the run;
  anything else is a bug.

Library warnings (TFDS, Orbax, absl) are hidden unless `--debug`; jaxdl's own show as `warning:` lines.

Compilation cache: only the command line sets it (library and experiment code change no global
JAX setting). `JAXDL_COMPILATION_CACHE=DIR` turns on JAX's persistent compilation cache in DIR, so
a repeated or resumed command reads its compiled programs back instead of compiling them again
(JAX's own `JAX_COMPILATION_CACHE_DIR` works too). It is off by default: when XLA loads a program
compiled for other CPU features it logs a line on stderr, which would break the one-`error:`-line
contract of a failing command.
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys
from collections.abc import Callable

import jax
import ml_collections

from jaxdl.errors import InputError, did_you_mean
from jaxdl.report.console import configure_logging, final_table, report_error
from jaxdl.run.config import apply_override, load_config, split_overrides
from jaxdl.train.preemption import RunInterrupted

USAGE = ("usage: python -m experiments.<name> [--config FILE.py[:ARG]] [--config.KEY=VALUE ...] "
         "[--workdir DIR] [--debug] [--quiet]")
FLAGS = ("config", "workdir", "debug", "quiet", "help")


def parse_args(argv: list[str], default_config: str) -> tuple[ml_collections.ConfigDict, str, bool, bool]:
    """argv -> (config with overrides applied, workdir, debug, quiet)."""
    flags, overrides = split_overrides(argv)
    for name in flags:
        if name not in FLAGS:
            suggestion = did_you_mean(name, FLAGS)
            raise InputError(f"--{name}", "unknown flag", expected=", ".join(f"--{f}" for f in FLAGS),
                             hint=f"did you mean --{suggestion}?" if suggestion else None)
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
                path, colon, variant = value.partition(":")
                args.append(f"--config={os.path.abspath(path)}{colon}{variant}")
        else:
            args.append(argv[i])
        i += 1
    return shlex.join([*program, *args, f"--workdir={os.path.abspath(workdir)}"])


def use_compilation_cache() -> None:
    """Turns on JAX's persistent compilation cache in $JAXDL_COMPILATION_CACHE, if set (module docstring)."""
    folder = os.environ.get("JAXDL_COMPILATION_CACHE", "")
    if folder and not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(folder))


def main(run: Callable[..., dict], default_config: str, argv: list[str] | None = None) -> int:
    """Parses flags, calls `run(config, workdir)`, prints the final table; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        print(USAGE)
        print(__doc__)
        return 0
    debug = "--debug" in argv
    configure_logging(debug)
    use_compilation_cache()
    try:
        config, workdir, debug, quiet = parse_args(argv, default_config)
        summary = run(config, workdir, progress=not quiet)
    except InputError as error:
        return report_error(error, debug)
    except RunInterrupted as stop:
        print(f"{stop}. The run can be resumed from there: {resume_command(argv, stop.workdir)}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(final_table(summary))
    return 0
