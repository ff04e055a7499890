"""The command line every experiment shares.

    python -m experiments.<name> [--config configs/<name>.py[:ARG]] [--config.KEY=VALUE ...]
                                 [--workdir DIR] [--debug] [--quiet]

Exit codes: 0 done; 2 bad input, reported as one `error:` line on stderr (`--debug` adds the
traceback); anything else is a bug.
"""

from __future__ import annotations

import datetime
import os
import sys
import traceback
from collections.abc import Callable

import ml_collections

from jaxdl.errors import InputError

USAGE = ("usage: python -m experiments.<name> [--config FILE.py[:ARG]] [--config.KEY=VALUE ...] "
         "[--workdir DIR] [--debug] [--quiet]")
FLAGS = ("config", "workdir", "debug", "quiet", "help")


def parse_args(argv: list[str], default_config: str) -> tuple[ml_collections.ConfigDict, str, bool, bool]:
    """argv -> (config with overrides applied, workdir, debug, quiet)."""
    from jaxdl.config import apply_override, load_config, split_overrides  # noqa: PLC0415
    from jaxdl.errors import did_you_mean  # noqa: PLC0415

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


def main(run: Callable[..., dict], default_config: str, argv: list[str] | None = None) -> int:
    """Parses flags, calls `run(config, workdir)`, prints the final table; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        print(USAGE)
        print(__doc__)
        return 0
    debug = "--debug" in argv
    try:
        config, workdir, debug, quiet = parse_args(argv, default_config)
        summary = run(config, workdir, progress=not quiet)
    except InputError as error:
        if debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    from jaxdl.report import final_table  # noqa: PLC0415

    print(final_table(summary))
    return 0
