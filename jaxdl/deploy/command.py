"""What the deploy commands share with every jaxdl command: flags, `error:` lines, exit codes.

Exit codes: 0 done; 2 bad input, printed as one `error: <where>: <what> (got X, expected Y)` line
on stderr (`--debug` adds the traceback); 130 interrupted. Library logs (absl, Orbax) are hidden
unless `--debug`; jaxdl's own warnings show as `warning:` lines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from jaxdl.errors import InputError, did_you_mean
from jaxdl.report.console import configure_logging, report_error


def parse_flags(argv: list[str], *, valued: tuple[str, ...], switches: tuple[str, ...],
                usage: str, repeated: tuple[str, ...] = ()) -> tuple[dict[str, str], list[str]]:
    """(flags {name: value, switch: ""}, positional arguments) of `--name VALUE`, `--name=VALUE`, `--switch`.

    A flag of `repeated` may be given several times: its values are joined with commas."""
    flags, positional, i = {}, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name in switches and not eq:
                flags[name] = ""
            elif name in valued:
                if not eq:
                    if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                        raise InputError(f"--{name}", "missing value", expected=usage)
                    i += 1
                    value = argv[i]
                flags[name] = f"{flags[name]},{value}" if name in repeated and name in flags else value
            else:
                known = (*valued, *switches)
                suggestion = did_you_mean(name, known)
                raise InputError(f"--{name}", "unknown flag", expected=", ".join(f"--{f}" for f in known),
                                 hint=f"did you mean --{suggestion}?" if suggestion else None)
        else:
            positional.append(arg)
        i += 1
    return flags, positional


def run_command(body: Callable[[list[str]], int], argv: list[str] | None, usage: str, doc: str) -> int:
    """Runs `body(argv)` with --help, the `error:` line and the exit codes of the module docstring."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--help" in argv or "-h" in argv:
        print(usage)
        print(doc)
        return 0
    debug = "--debug" in argv
    configure_logging(debug)
    try:
        return body([arg for arg in argv if arg != "--debug"])
    except InputError as error:
        return report_error(error, debug)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
