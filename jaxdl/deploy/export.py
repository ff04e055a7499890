"""A finished run's model as one file that needs only jax and numpy to run.

    python -m jaxdl.export --workdir RUN --output model.jaxexport [--platforms cpu,cuda,tpu] [--debug]

The file holds the bytes of `jax.export.Exported.serialize()`: the StableHLO of `Predictor.jitted`
(stored inputs -> class probabilities, or regression outputs) with the parameters as constants,
lowered for cpu, cuda and tpu, with a symbolic batch dimension. Using it:

    import jax, numpy as np
    model = jax.export.deserialize(open("model.jaxexport", "rb").read())
    probabilities = np.asarray(model.call(x))      # x: (batch, *input_shape) as below

Inputs are taken as the dataset stores them, and the run's preprocessing happens inside: uint8
pixels 0..255 for images (scaled by 1/255 inside); for a `csv:` table, float32 rows (batch, F) as
the prepared dataset holds them: numeric columns raw (NaN where missing; standardised with the
training statistics inside), categorical columns already one-hot (a string category cannot enter
a float function: `jaxdl.predict` and `jaxdl.deploy.run_loader.encode_table` encode CSV cells; the
layout is in FILE.json); float32 as stored otherwise. FILE.json, written beside, names the input
dtype and shape, the class names and the table layout; the model does not need it.

Same numbers as `jaxdl.load_run(RUN)(x)`: bit for bit on the same machine when `x` has the batch
size the predictor ran at (a power of two, up to 1024); at another batch size XLA's CPU kernels
may round the last bit differently (measured: probabilities differ by at most ~1e-7).
Bad input to `call` is a ValueError from jax.export, e.g. "Rank mismatch for args[0]: expected
(b, 8, 8, 1) and called with (2, 8, 8)", "Dtype mismatch for args[0]: expected uint8 and called
with float32", "Shape mismatch for args[0].shape[3] (expected same constant): ..."; an empty
batch is refused too ("Expected value >= 1 for dimension variable 'b'").
"""

from __future__ import annotations

import json
import os
import sys

import jax
from jax import export as jax_export

from jaxdl.deploy.command import parse_flags, run_command
from jaxdl.deploy.run_loader import Predictor, load_run
from jaxdl.errors import InputError
from jaxdl.paths import check_storage

USAGE = "usage: python -m jaxdl.export --workdir RUN --output FILE [--platforms cpu,cuda,tpu] [--debug]"
PLATFORMS = ("cpu", "cuda", "tpu")


def export_predictor(predictor: Predictor, platforms: tuple[str, ...] = PLATFORMS) -> jax_export.Exported:
    """`predictor.jitted` exported for inputs (b, *input_shape) of the stored dtype, b symbolic."""
    dims = ", ".join(str(d) for d in predictor.info.input_shape)
    spec = jax.ShapeDtypeStruct(jax_export.symbolic_shape(f"b, {dims}"), predictor.stored_dtype)
    return jax_export.export(predictor.jitted, platforms=platforms)(spec)


def description(predictor: Predictor, exported: jax_export.Exported) -> dict:
    """FILE.json: what the exported function takes and gives, for people and for code without jaxdl."""
    info = predictor.info
    record = {
        "workdir": predictor.workdir, "checkpoint_epoch": predictor.epoch, "kept_epoch": predictor.kept_epoch,
        "model": predictor.model_description, "sweep_member": predictor.member,
        "task": info.task, "input": {"shape": ["batch", *info.input_shape], "dtype": str(predictor.stored_dtype),
                                     "stored": info.stored},
        "output": {"shape": ["batch", *exported.out_avals[0].shape[1:]],
                   "means": "class probabilities" if info.task == "classification" else "regression outputs"},
        "class_names": list(info.class_names), "platforms": list(exported.platforms),
    }
    if info.stored.get("kind") == "table":
        record["table_columns"] = info.preprocessing["columns"]
    return record


def export_command(argv: list[str]) -> int:
    flags, positional = parse_flags(argv, valued=("workdir", "output", "platforms"), switches=(), usage=USAGE)
    if positional:
        raise InputError("command line", "unexpected argument", got=positional[0], expected=USAGE)
    for name in ("workdir", "output"):
        if not flags.get(name):
            raise InputError(f"--{name}", "missing", expected=USAGE)
    platforms = tuple(p.strip() for p in flags.get("platforms", ",".join(PLATFORMS)).split(",") if p.strip())
    unknown = sorted(set(platforms) - {"cpu", "cuda", "rocm", "tpu"})
    if unknown or not platforms:
        raise InputError("--platforms", "unknown platform", got=",".join(unknown) or "",
                         expected="a comma-separated list of cpu, cuda, rocm, tpu")
    check_storage(flags["workdir"])
    predictor = load_run(flags["workdir"])
    exported = export_predictor(predictor, platforms)
    data = exported.serialize()
    output = flags["output"]
    try:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "wb") as f:
            f.write(data)
        with open(output + ".json", "w") as f:
            json.dump(description(predictor, exported), f, indent=2)
            f.write("\n")
    except OSError as error:
        raise InputError("--output", f"cannot write the file ({error.strerror})", got=output) from error
    out_shape = ", ".join(["batch", *map(str, exported.out_avals[0].shape[1:])])
    in_shape = ", ".join(["batch", *map(str, predictor.info.input_shape)])
    print(f"wrote {output} ({len(data):,} bytes) and {output}.json: {predictor.stored_dtype} ({in_shape}) -> "
          f"{'probabilities' if predictor.info.task == 'classification' else 'outputs'} ({out_shape}), "
          f"for {', '.join(exported.platforms)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(export_command, argv, USAGE, __doc__)


if __name__ == "__main__":
    sys.exit(main())
