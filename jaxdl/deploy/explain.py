"""Why a finished run answers what it answers on new inputs: integrated gradients per input.

    python -m jaxdl.explain --workdir RUN INPUTS... [--output FILE.json | FOLDER] [--steps 64] [--debug]

INPUTS as `python -m jaxdl.predict` takes them: .npy / .npz arrays, image files or folders of
images, or a CSV table with the run's columns (`jaxdl.deploy.inputs`). Writes JSON: a header (the
model that answers, the method, the number of steps, the baseline, what is explained) and
`explanations`, one per input: `input` (its path, or `path[row]`), `predicted`, `probability` and
`probabilities` (classification) or `output` (regression), `output_at_input`, `output_at_baseline`,
`completeness_gap` (how far the attributions' sum is from their difference, relative),
`attributions` and `gradient_x_input` (nested lists of the stored input's shape); for tables also
`top_features` (signed contributions per CSV column) and a `sentence`.

Without --output the JSON goes to stdout. With FILE.json it goes there; with a FOLDER, to
FOLDER/explanations.json, and for an image run each input's attribution map over the image goes to
FOLDER/NNNN_<name>.png (red: pushed towards the answer, blue: against it; `overlay` in its row).
--steps: trapezoid intervals, 1..1024 (default 64). A sweep's workdir explains its best member.
Exit codes: 0 done, 2 bad input (one `error:` line), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import re
import sys

from jaxdl import paths
from jaxdl.deploy.command import parse_flags, run_command
from jaxdl.deploy.explainer import Explainer
from jaxdl.deploy.inputs import image_geometry, read_inputs
from jaxdl.deploy.run_loader import load_run
from jaxdl.errors import InputError, parse_number
from jaxdl.evaluate.attributions import DEFAULT_STEPS, MAX_STEPS
from jaxdl.report.why_figures import overlay_png

USAGE = ("usage: python -m jaxdl.explain --workdir RUN INPUTS... [--output FILE.json | FOLDER] [--steps 64] "
         "[--debug]")
FILE = "explanations.json"


def is_image_run(predictor) -> bool:
    try:
        image_geometry(predictor.info, "")
    except InputError:
        return False
    return True


def overlay_name(index: int, name: str) -> str:
    """NNNN_<the input's file name, without its extension, in safe characters>.png"""
    stem = os.path.splitext(os.path.basename(str(name)))[0]
    return f"{index:04d}_{re.sub(r'[^A-Za-z0-9_.-]+', '-', stem)[:60]}.png"


def write_output(output: str, document: dict, predictor, model_inputs, attributions) -> list[str]:
    """Writes the JSON (and a folder's overlays); returns the files written."""
    written = []
    try:
        if output.endswith(".json"):
            os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
            target = output
        else:
            os.makedirs(output, exist_ok=True)
            target = os.path.join(output, FILE)
            if is_image_run(predictor):
                for i, row in enumerate(document["explanations"]):
                    row["overlay"] = overlay_name(i, row["input"])
                    written.append(overlay_png(model_inputs[i], attributions[i], os.path.join(output, row["overlay"])))
        paths.write_text_atomic(target, json.dumps(document, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as error:
        raise InputError("--output", f"cannot write there ({error.strerror or error})", got=output,
                         expected="a writable FILE.json or folder") from error
    return [target, *written]


def explain_command(argv: list[str]) -> int:
    flags, inputs = parse_flags(argv, valued=("workdir", "output", "steps"), switches=(), usage=USAGE)
    if "workdir" not in flags:
        raise InputError("--workdir", "missing", expected="the workdir of a finished run")
    output = flags.get("output", "")
    if output and os.path.exists(output) and not os.path.isdir(output) and not output.endswith(".json"):
        raise InputError("--output", "neither a .json file nor a folder", got=output,
                         expected="FILE.json or a folder")
    steps = parse_number("--steps", flags.get("steps", str(DEFAULT_STEPS)), low=1, high=MAX_STEPS, integer=True)
    paths.check_storage(flags["workdir"])
    predictor = load_run(flags["workdir"])
    explainer = Explainer(predictor, steps=steps)
    found = read_inputs(inputs, predictor.info)
    x, model_x, attributions = explainer.attributions(found.x)
    rows = explainer.rows(x, model_x, attributions, found.names)
    document = {**explainer.describe(), "explanations": rows}
    if not output:
        print(json.dumps(document, allow_nan=False))
        return 0
    files = write_output(output, document, predictor, model_x, attributions.integrated_gradients)
    for row in rows:
        answer = f"{row['predicted']} ({row['probability']:.3f})" if "predicted" in row else f"output {row['output']}"
        print(f"{row['input']}: {answer}, completeness gap {100 * row['completeness_gap']:.2f}%")
    print(f"wrote {files[0]}" + (f" and {len(files) - 1} overlays" if len(files) > 1 else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(explain_command, argv, USAGE, __doc__)


if __name__ == "__main__":
    sys.exit(main())
