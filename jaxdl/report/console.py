"""What a command shows on the terminal: warning and `error:` lines, a progress bar over epochs, the final table.

Every jaxdl command (`python -m experiments.<name>`, `jaxdl.predict`, `jaxdl.export`) shows jaxdl's
warnings as `warning: ...` lines and bad input as one `error: <where>: <what>` line on stderr.
"""

from __future__ import annotations

import logging
import sys
import traceback
import warnings

from jaxdl.errors import InputError
from jaxdl.evaluate.good_enough import percent
from jaxdl.models.summary import format_layers
from jaxdl.train.progress import Progress  # noqa: F401 (the bar of every command, beside `fit`, which shows it too)

# Libraries whose loggers may have a level of their own: set to CRITICAL unless --debug (then left as they are;
# absl's and urllib3's show everything).
QUIET_LOGGERS = ("absl", "urllib3", "gcsfs", "google", "google.auth", "fsspec", "matplotlib", "PIL", "jax", "orbax",
                 "tensorflow_datasets")


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is logged (it may be redirected)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure_logging(debug: bool) -> None:
    """jaxdl warnings as `warning: ...` lines on stderr; other libraries' logs and Python warnings
    (Pillow's decompression-bomb warning, matplotlib's missing glyphs, numpy's overflow, absl's and
    gcsfs's log lines) only with --debug. Every command calls this first (jaxdl.run.cli,
    jaxdl.deploy.command)."""
    logger = logging.getLogger("jaxdl")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING)  # its own: not the root's, which is CRITICAL below
    for name in ("absl", "urllib3"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)
    if not debug:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        # Loggers without a level of their own take the root's: nothing of theirs reaches Python's
        # last-resort handler (stderr). jaxdl's own logger has its handler and does not propagate.
        logging.getLogger().setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore")
        try:  # absl's own handler writes to stderr whatever the logger levels, once absl.app or a library sets it up
            from absl import logging as absl_logging
            absl_logging.set_verbosity(absl_logging.FATAL)
            absl_logging.set_stderrthreshold(absl_logging.FATAL)
        except ImportError:
            pass


def report_error(error: InputError, debug: bool) -> int:
    """Prints `error` as one `error:` line on stderr (after the traceback with --debug); returns exit code 2."""
    if debug:
        traceback.print_exc()
    print("error: " + " ".join(str(error).split()), file=sys.stderr)
    return 2


def member_setting(member: dict) -> str:
    """A sweep member's hyperparameters and seed, e.g. "lr=0.01 wd=0 seed=0"."""
    short = {"learning_rate": "lr", "weight_decay": "wd"}
    values = [f"{short.get(name, name)}={value:g}" for name, value in member.get("hyperparameters", {}).items()]
    return " ".join([*values, f"seed={member.get('seed', '?')}"])


def member_line(member: dict, best: int) -> str:
    """One row of a sweep's members: its setting, test figures and epochs."""
    test = " ".join(f"{k} {v:.4f}" for k, v in member.get("test", {}).items() if k != "count")
    epochs = f"epochs {member.get('epochs_run')} (best {member.get('best_epoch')})"
    state = "diverged" if member.get("diverged") else epochs
    return f"{member_setting(member)}: test {test}, {state}" + ("  <- best" if member["member"] == best else "")


def question_rows(questions: dict) -> list[tuple[str, str]]:
    """One short line per question of summary.json's `questions` (the report has the whole answer)."""
    rows = []
    for name, answer in questions.items():
        label = "q: " + name.replace("_", " ")
        if name == "why" and answer.get("run"):
            continue  # the "why" row above says it
        if not answer.get("run"):
            rows.append((label, f"not answered ({answer.get('reason', 'not run')})"))
        elif name == "simpler_methods":
            verdicts = [m["vs_deep"] for m in answer["methods"]]
            best = max(answer["methods"], key=lambda m: m["test"]["value"] * (1 if m["test"]["metric"] == "accuracy"
                                                                              else -1), default=None)
            verdict = ("NO: a simpler method is as good or better" if "better" in verdicts else
                       "not clearly (intervals overlap)" if "overlapping" in verdicts else "yes, all worse")
            rows.append((label, verdict + (f"; best {best['name']} {best['test']['value']:.4f}" if best else "")))
        elif name == "good_enough" and "ece" in answer:
            shown = next((r for r in answer["coverage"] if r["threshold"] == 0.9), None)
            text = f"ECE {answer['ece']:.3f}"
            if shown and shown["answered"]:
                text += (f"; at 0.9 confidence {percent(shown['coverage'])} answered, "
                         f"{100 * shown['accuracy']:.1f}% right")
            if "target" in answer:
                text += f"; target {answer['target']['target']:g} {answer['target']['verdict']} (interval)"
            rows.append((label, text))
        elif name == "data":
            found, features = answer.get("duplicates") or {}, answer.get("features") or {}
            text = f"{found.get('exact', 0)} exact, {found.get('near', 0)} near duplicates of train in test" \
                if found else "duplicates not checked"
            text += f"; {features.get('constant', 0)} constant features" if features else ""
            text += "; TINY TEST SET" if answer.get("tiny_test") else ""
            curve = answer.get("learning_curve") or {}
            text += f"; learning curve: {curve['verdict']}" if curve.get("verdict") else ""
            rows.append((label, text))
        elif name == "compute":
            actual = answer.get("actual") or {}
            text = (f"{answer['flops_per_step'] or 0:.3g} FLOP/step, "
                    f"projected {answer['projected_epoch_seconds']:.3g} s/epoch")
            if actual.get("ratio"):
                text += f", measured {actual['epoch_seconds']:.3g} s ({actual['ratio']:.2f}x)"
            rows.append((label, text))
        else:
            rows.append((label, str(answer.get("short") or answer.get("answer", "answered"))[:100]))
    return rows


def final_table(summary: dict) -> str:
    """A short plain-text table of a run's outcome (of a `model.summary_only` dry run: the model's layers)."""
    if summary.get("summary_only"):
        return format_layers(summary["model_summary"])
    rows = [(f"test {name}", f"{value:.4f}") for name, value in summary["test"].items() if name != "count"]
    if "members" in summary:  # a sweep: the figures above are the best member's
        best = summary["best_member"]
        rows.insert(0, ("sweep", f"{len(summary['members'])} members, best: member {best} "
                                 f"({member_setting(summary['members'][best])})"))
        rows[1:1] = [(f"member {m['member']}", member_line(m, best)) for m in summary["members"]]
        rows += [(f"ensemble test {k}", f"{v:.4f}") for k, v in summary["ensemble"]["test"].items() if k != "count"]
    baseline = summary.get("baseline") or {}
    if "test" in baseline:
        rows += [(f"baseline test {k}", f"{v:.4f}  ({baseline['model']})")
                 for k, v in baseline["test"].items() if k != "count"]
    elif baseline.get("diverged"):
        rows.append(("baseline", f"diverged in epoch {baseline['epoch']}  ({baseline['model']})"))
    if summary.get("target"):
        target = summary["target"]
        rows.append((f"target {target['metric']}", f"{target['target']:g}: {'met' if target['met'] else 'NOT met'}"))
    if "overfitting" in summary:
        evidence = summary.get("overfitting_evidence", {})
        rows.append(("overfitting", f"yes (validation loss up since epoch {evidence.get('best_epoch')})"
                     if summary["overfitting"] else "no"))
    why = (summary.get("questions") or {}).get("why") or {}
    if "completeness" in why:  # the answer to "why did it decide so?" (jaxdl.evaluate.why)
        rows.append(("why", f"{len(why['examples'])} test answers attributed in the report (completeness "
                     + ("within 1%)" if why["completeness"]["within_1_percent"] else
                        f"gap up to {100 * why['completeness']['max_relative_gap']:.3g}%)")))
    rows += question_rows(summary.get("questions") or {})
    rows += [
        ("epochs", f"{summary['epochs_run']} (best {summary['best_epoch']}"
                   + (", stopped early)" if summary.get("stopped_early") else ")")),
        ("train time", f"{summary['train_seconds']:.1f} s"),
        ("parameters", f"{summary['num_params']:,}"),
        ("devices", f"{summary['devices']['count']} x {summary['devices']['kind']}"
                    + (f" in {summary['processes']} processes" if summary.get("processes", 1) > 1 else "")),
        ("workdir", summary.get("workdir", "")),
    ]
    if summary.get("report"):
        rows.append(("report", summary["report"]))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
