"""Command lines of the tests' training runs, and running one in this test process.

`run_experiment` runs the code of `python -m experiments.<name> ARGS` (`jaxdl.run.cli.main`: its argument
parsing, exit code, stdout and stderr) without starting a new interpreter (~3 s of imports, and every
program traced and loaded again): for tests about what a run computes and writes. Tests of signals,
`kill -9`, or of what a real process prints and exits with, start real processes (conftest.run_cli).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator

from conftest import REPO

from jaxdl.run import cli

TINY = os.path.join(REPO, "configs", "mlp.py") + ":tiny"  # absolute: the same command line from any folder
# What the tests that pass these flags never read: the report, the questions' answers, and "auto" timing
# the step programs (whatever K trains the same bits: tests/train/test_steps_per_call.py). "epoch" is
# what auto keeps without timing the others in a run shorter than its compile (the tests' runs, from a
# cold compilation cache).
CHEAP = ["--config.eval.report=false", "--config.eval.questions=none", "--config.train.steps_per_call=epoch"]
# The tiny MLP with dropout (the RNG stream matters) saving every epoch, as test_resume, test_readers and
# test_stream_fit train it: the same programs whatever the epochs, compiled once for all of their runs
# (the suite's persistent compilation cache is shared by the workers and every process).
TINY_MLP = ["--config", TINY, "--config.model.dropout=0.1", "--config.checkpoint.every_epochs=1", *CHEAP, "--quiet"]


@contextlib.contextmanager
def logging_left_as_it_was() -> Iterator[None]:
    """`cli.main` configures logging for a whole process (jaxdl's `warning:` handler, the root logger and
    absl silenced, Python warnings ignored); this puts back what the test process had."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger(), *(x for x in manager.loggerDict.values() if isinstance(x, logging.Logger))]
    saved = {id(x): (x, x.level, x.propagate, list(x.handlers), x.disabled) for x in loggers}
    try:
        from absl import flags
        absl = (flags.FLAGS["verbosity"].value, flags.FLAGS["stderrthreshold"].value)
    except (ImportError, KeyError):
        absl = None
    try:
        with warnings.catch_warnings():
            yield
    finally:
        if absl is not None:
            flags.FLAGS.verbosity, flags.FLAGS.stderrthreshold = absl
        for logger in [logging.getLogger(), *manager.loggerDict.values()]:
            if not isinstance(logger, logging.Logger):
                continue
            if id(logger) in saved:
                _, level, propagate, handlers, disabled = saved[id(logger)]
                logger.setLevel(level)
                logger.propagate, logger.handlers[:], logger.disabled = propagate, handlers, disabled
            else:  # made during the run: back to the defaults
                logger.setLevel(logging.NOTSET)
                logger.propagate, logger.handlers[:] = True, []


def run_experiment(module: str, *argv: str) -> subprocess.CompletedProcess:
    """`python -m <module> <argv>` in this process: (args, returncode, stdout, stderr) as `subprocess.run` gives
    them. Relative paths in `argv` are read from the current folder, so give absolute ones."""
    experiment = importlib.import_module(module)
    out, err = io.StringIO(), io.StringIO()
    with logging_left_as_it_was(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(experiment.run, experiment.DEFAULT_CONFIG, list(argv))
    return subprocess.CompletedProcess([module, *argv], code, out.getvalue(), err.getvalue())
