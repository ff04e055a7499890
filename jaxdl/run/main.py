"""The `jaxdl` command: one entry point, from any folder, to every jaxdl command.

    jaxdl train EXPERIMENT [--config NAME[:VARIANT] | FILE.py[:VARIANT]] [--config.KEY=VALUE ...] [--workdir DIR] ...
    jaxdl experiments                     the experiments and their variants
    jaxdl predict --workdir RUN INPUTS... (python -m jaxdl.predict)
    jaxdl export --workdir RUN --output FILE (python -m jaxdl.export)
    jaxdl serve --workdir RUN [--port 8000] (python -m jaxdl.serve)
    jaxdl drift --workdir RUN NEW_DATA... (python -m jaxdl.drift)
    jaxdl explain --workdir RUN INPUTS... (python -m jaxdl.explain)
    jaxdl compare RUN [RUN ...]           (python -m jaxdl.compare)
    jaxdl playground [--port 8000]        the live Neural Network Playground (python -m jaxdl.playground)
    jaxdl COMMAND --help                  that command's flags (for train: every config key and its default)

`jaxdl train mlp ARGS` is `python -m experiments.mlp ARGS`: the same flags, exit codes and files.
A config is named by experiment and variant (`--config mlp:tiny`) or by file (`--config
configs/mlp.py:tiny`; a relative configs/NAME.py that is not in the current folder is the one
that comes with jaxdl). Without `--workdir`, a run goes to a new folder under runs/ in the current folder.
"""

from __future__ import annotations

import ast
import os
import runpy
import sys
from collections.abc import Callable

from jaxdl.deploy import drift_report, explain, export, predict, serve
from jaxdl.errors import InputError, did_you_mean
from jaxdl.playground import app as playground
from jaxdl.report.console import report_error
from jaxdl.run import compare
from jaxdl.run.config import CONFIGS, packaged_configs

EXPERIMENTS = os.path.join(os.path.dirname(CONFIGS), "experiments")
COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "predict": predict.main, "export": export.main, "serve": serve.main, "drift": drift_report.main,
    "compare": compare.main, "explain": explain.main, "playground": playground.main,
}
USAGE = "usage: jaxdl {train EXPERIMENT,experiments," + ",".join(COMMANDS) + "} [ARGS ...] (jaxdl --help)"


def experiment_names() -> list[str]:
    """The experiments that can be trained: experiments/NAME.py with a config file configs/NAME.py."""
    configs = packaged_configs()
    if not os.path.isdir(EXPERIMENTS):
        return []
    return sorted(name[:-3] for name in os.listdir(EXPERIMENTS) if name.endswith(".py") and name[:-3] in configs)


def variants(path: str) -> list[tuple[str, str]]:
    """(variant, description) from the "Variants" list of a config file's docstring: its lines
    `  NAME   text` indented by two spaces (more indented lines continue the text)."""
    with open(path, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    found: list[tuple[str, str]] = []
    listing = False
    for line in doc.splitlines():
        if line.lower().startswith("variants"):
            listing = True
        elif listing and line.startswith("  ") and not line.startswith("   "):
            name, _, text = line.strip().partition("  ")
            found.append((name.strip(), " ".join(text.split())))
        elif listing and line.startswith("   ") and found:
            found[-1] = (found[-1][0], f"{found[-1][1]} {' '.join(line.split())}")
        elif listing and not line.strip():
            listing = False
    return found


def list_experiments() -> str:
    configs = packaged_configs()
    lines = ["Experiments (jaxdl train NAME --config NAME:VARIANT; jaxdl train NAME --help lists its config keys):"]
    for name in experiment_names():
        with open(configs[name], encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
        lines.append(f"\n{name}  {doc.splitlines()[0] if doc else ''}")
        listed = [(f"{name}:{variant}", text) for variant, text in variants(configs[name])]
        width = max((len(label) for label, _ in listed), default=0)
        lines += [f"  {label:<{width}}  {text}" for label, text in listed]
    return "\n".join(lines)


def train(argv: list[str]) -> int:
    """`jaxdl train NAME ARGS`: runs `python -m experiments.NAME ARGS` in this process."""
    names = experiment_names()
    if not argv or argv[0].startswith("-"):
        raise InputError("jaxdl train", "missing the experiment", expected="one of " + ", ".join(names),
                         hint="e.g. jaxdl train mlp --config mlp:tiny")
    name, rest = argv[0], argv[1:]
    if name not in names:
        suggestion = did_you_mean(name, names)
        raise InputError("jaxdl train", "unknown experiment", got=name, expected="one of " + ", ".join(names),
                         hint=f"did you mean {suggestion!r}?" if suggestion else None)
    argv_before, sys.argv = sys.argv, [f"jaxdl train {name}", *rest]
    try:
        runpy.run_module(f"experiments.{name}", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv = argv_before
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        print(__doc__)
        return 0
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    known = ["train", "experiments", *COMMANDS]
    try:
        if not command:
            raise InputError("jaxdl", "missing the command", expected="one of " + ", ".join(known),
                             hint="jaxdl --help tells more")
        if command == "train":
            return train(rest)
        if command == "experiments":
            print(list_experiments())
            return 0
        if command not in COMMANDS:
            suggestion = did_you_mean(command, known)
            raise InputError("jaxdl", "unknown command", got=command, expected="one of " + ", ".join(known),
                             hint=f"did you mean {suggestion!r}?" if suggestion else None)
    except InputError as error:
        return report_error(error, "--debug" in argv)
    return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())
