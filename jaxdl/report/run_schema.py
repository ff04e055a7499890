"""The run door: every JSON file of a workdir read through one typed schema, before it is used.

Predict, export, serve, drift and resume read what a run wrote (config.json, summary.json,
data_info.json, preprocessing.json, drift_reference.json, metrics.jsonl). A file that is not
UTF-8 JSON, not an object, or holds a field of the wrong type or out of range is refused with one
line that names the file and the field:

    error: --workdir: summary.json: params_sha256: wrong type (got 12345, expected 64 hex digits)

`read_workdir_json(workdir, name)` reads file `name` and checks it against `SCHEMAS[name]`; a
schema is built from the small checkers of `jaxdl.report.schema_checks` (`Obj`, `List`, `Int`,
`Num`, `Str`, ...), each a callable `(value, field) -> value` that raises `SchemaError`. Fields
a schema does not name are kept as they are (a newer jaxdl may add some); the fields the readers
rely on are required.
It lives with the writers of these files (`jaxdl.report.log`), below every reader of a workdir.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jaxdl import paths
from jaxdl.errors import InputError
from jaxdl.report.schema_checks import (
    Any_,
    Bool,
    Check,
    Float,
    Hex,
    Int,
    List,
    Num,
    Obj,
    OneOf,
    Optional,
    SchemaError,
    Str,
    join,
)
from jaxdl.train.sweep import members_of

WHERE = "--workdir"
INT32_MAX = 2**31 - 1  # counts that become step numbers on the devices
# --- the workdir files ---------------------------------------------------------------------------

SHAPE = List(Int(low=1))


def data_info_rule(record: dict, field: str) -> None:
    if record["task"] == "classification" and record["num_classes"] < 1:
        raise SchemaError("num_classes", "out of range", record["num_classes"], "an integer >= 1 for classification")
    names = record["class_names"]
    if record["task"] == "classification" and names and len(names) != record["num_classes"]:
        raise SchemaError("class_names", "not one name per class", len(names), f"{record['num_classes']} names")
    if not record["input_shape"]:
        raise SchemaError("input_shape", "wrong length", 0, "at least one dimension")


DATA_INFO = Obj({
    "name": Str,
    "task": OneOf("classification", "regression"),
    "input_shape": SHAPE,
    "num_classes": Int(low=0),
    "target_shape": SHAPE,
    "class_names": List(lambda value, field: value if isinstance(value, (str, int)) and not isinstance(value, bool)
                        else Str(value, field)),
    "stored": Obj(optional={"kind": Str, "dtype": Str, "image_size": SHAPE,
                            "mode": Str}),
    "sizes": Obj({"train": Int(low=0)}, values=Int(low=0)),
}, rule=data_info_rule)

def answered_rule(record: dict, field: str) -> None:
    """An answer that ran says it in words; one that did not says why."""
    needed = "answer" if record["run"] else "reason"
    if needed not in record:
        raise SchemaError(join(field, needed), "missing", None, "an answer's words" if record["run"] else
                          "why the question was not answered")


def question(**fields: Check) -> Check:
    """One entry of summary.json's `questions` (`jaxdl.evaluate.questions`)."""
    return Obj({"run": Bool}, {"answer": Str, "reason": Str, **fields}, rule=answered_rule)


SCORE = Obj({"metric": OneOf("accuracy", "mse"), "value": Float, "low": Float, "high": Float, "count": Int(low=0)})
QUESTIONS = Obj(optional={
    "simpler_methods": question(deep=SCORE, methods=List(Obj({"name": Str, "test": SCORE,
                                                             "vs_deep": OneOf("better", "overlapping", "worse")}))),
    "why": question(),
    "good_enough": question(test=SCORE, ece=Num(low=0), coverage=List(Obj({"threshold": Num(), "coverage": Num(low=0),
                                                                           "answered": Int(low=0)}))),
    "data": question(sizes=Obj(values=Int(low=0)), tiny_test=Bool,
                     duplicates=Obj({"exact": Int(low=0), "near": Int(low=0)})),
    "compute": question(flops_per_step=Optional(Num(low=0)), projected_epoch_seconds=Num(low=0),
                        seconds_per_step=Num(low=0)),
})

SUMMARY = Obj(optional={
    "questions": QUESTIONS,
    "params_sha256": Hex(64),
    "best_member": Int(low=0),
    "epochs_run": Int(low=0),
    "best_epoch": Optional(Int(low=0)),
    "test": Optional(Obj()),
    "experiment": Str,
    "task": OneOf("classification", "regression"),
})

CONFIG = Obj({
    "seed": Int(low=0, high=2**63 - 1),  # what jax.random.PRNGKey takes
    "data": Obj({"name": Str}),
    "model": Obj({"name": Str}),
    "optimizer": Obj({"name": Str}, {"learning_rate": Num(low=0)}),
    "train": Obj({"batch_size": Int(low=1, high=INT32_MAX), "epochs": Int(low=1, high=INT32_MAX),
                  "patience": Int(low=0, high=INT32_MAX)}),
}, {"sweep": Obj(), "eval": Obj(), "checkpoint": Obj()})


def table_rule(record: dict, field: str) -> None:
    """Columns of consecutive input ranges, each as wide as its kind says."""
    start = 0
    for i, column in enumerate(record["columns"]):
        where = f"columns[{i}]"
        first, end = column["inputs"]
        width = 1 if column["kind"] == "numeric" else len(column.get("categories", []))
        if first != start or end - first != width:
            raise SchemaError(f"{where}.inputs", "does not follow the previous column", [first, end],
                              f"[{start}, {start + width}]")
        if column["kind"] == "numeric":
            for name in ("mean", "std"):
                if name not in column:
                    raise SchemaError(f"{where}.{name}", "missing", None, "a numeric column's statistics")
        elif "categories" not in column:
            raise SchemaError(f"{where}.categories", "missing", None, "a categorical column's categories")
        start = end


PREPROCESSING = Obj(optional={
    "columns": List(Obj({"name": Str, "kind": OneOf("numeric", "categorical"), "inputs": List(Int(low=0), length=2)},
                        {"mean": Num(), "std": Num(low=0), "categories": List(Str)}), min_length=1),
    "label": Obj({"name": Str}),
}, rule=lambda record, field: table_rule(record, field) if "columns" in record else None)

EDGES = List(Num())
COUNTS = List(Int(low=0))


def histograms_rule(names_key: str | None) -> Callable[[dict, str], None]:
    """edges[i] has len(counts[i]) - 1 items, and (when named) one entry per name."""
    def rule(record: dict, field: str) -> None:
        edges, counts = record["edges"], record["counts"]
        if names_key is not None and not (len(record[names_key]) == len(edges) == len(counts)):
            raise SchemaError(join(field, "counts"), "not one histogram per name", len(counts),
                              f"{len(record[names_key])} (as many as {names_key})")
        for i, (edge, count) in enumerate(zip(edges, counts, strict=False)):
            if len(count) != len(edge) + 1:
                raise SchemaError(join(field, f"counts[{i}]"), "wrong length", len(count), f"{len(edge) + 1} bins")
    return rule


def one_histogram(record: dict, field: str) -> None:
    if len(record["counts"]) != len(record["edges"]) + 1:
        raise SchemaError(join(field, "counts"), "wrong length", len(record["counts"]), f"{len(record['edges']) + 1}")


def drift_rule(record: dict, field: str) -> None:
    features = record["features"]
    if len(features["mean"]) != len(features["names"]):
        raise SchemaError("features.mean", "not one per feature", len(features["mean"]), f"{len(features['names'])}")
    predictions = record["predictions"]
    if predictions["task"] != record["task"]:
        raise SchemaError("predictions.task", "differs from task", predictions["task"], record["task"])
    if record["task"] == "classification":
        for name in ("class_counts", "confidence"):
            if name not in predictions:
                raise SchemaError(f"predictions.{name}", "missing", None, "a classification run's reference")
        if len(predictions["class_counts"]) != len(record.get("class_names", [])):
            raise SchemaError("predictions.class_counts", "not one count per class", len(predictions["class_counts"]),
                              f"{len(record.get('class_names', []))}")
    elif "outputs" not in predictions:
        raise SchemaError("predictions.outputs", "missing", None, "a regression run's reference")


LAYOUT = Obj({"kind": OneOf("table", "blocks"), "input_shape": SHAPE, "grid": List(Int(low=1)),
              "channels": Int(low=1), "with_globals": Bool, "pixels": Bool,
              "column_means": List(List(Num(), length=2))})


def drift_reference(version: int) -> Check:
    return Obj({
        "version": OneOf(version),
        "task": OneOf("classification", "regression"),
        "input_shape": SHAPE,
        "layout": LAYOUT,
        "features": Obj({"names": List(Str), "edges": List(EDGES), "counts": List(COUNTS), "mean": List(Num())},
                        rule=histograms_rule("names")),
        "train": Obj({"sampled": Int(low=1)}),
        "predictions": Obj({"task": OneOf("classification", "regression"), "examples": Int(low=0)}, {
            "class_counts": COUNTS,
            "confidence": Obj({"edges": EDGES, "counts": COUNTS, "mean": Num()}, rule=one_histogram),
            "outputs": List(Obj({"name": Str, "edges": EDGES, "counts": COUNTS}, rule=one_histogram)),
        }),
    }, {
        "class_names": List(Any_),
        "pooled": Obj({"channels": List(Str), "edges": List(EDGES), "counts": List(COUNTS)},
                      rule=histograms_rule("channels")),
    }, rule=drift_rule)


METRICS_RECORD = Obj({"epoch": Int(low=1)}, {"seconds": Float, "val_loss": Float, "member": Int(low=0),
                                              "members": List(Obj({"epoch": Int(low=1)}))})

SCHEMAS: dict[str, Check] = {"config.json": CONFIG, "summary.json": SUMMARY, "data_info.json": DATA_INFO,
                             "preprocessing.json": PREPROCESSING}


def check_run(config: Any, summary: dict, data_info: dict, preprocessing: dict) -> None:
    """What spans the files of one run (each already checked alone): a table run's
    preprocessing.json covers its inputs; a sweep's summary.json names its best member."""
    if data_info["stored"].get("kind") == "table":
        for name in ("columns", "label"):
            if name not in preprocessing:
                raise InputError(WHERE, f"preprocessing.json: {name}: missing",
                                 expected="a csv: run's table statistics")
        width = preprocessing["columns"][-1]["inputs"][1]
        if list(data_info["input_shape"]) != [width]:
            raise InputError(WHERE, "preprocessing.json: columns: do not cover the inputs of data_info.json",
                             got=f"{width} inputs", expected=f"input_shape {data_info['input_shape']}")
    try:
        members = members_of(config)
    except InputError as error:
        raise InputError(WHERE, f"config.json: {error.where.removeprefix('config.')}: {error.what}", got=error.got,
                         expected=error.expected) from None
    if members:
        if "best_member" not in summary:
            raise InputError(WHERE, "summary.json: best_member: missing", expected="the best member of a sweep")
        if summary["best_member"] >= len(members):
            raise InputError(WHERE, "summary.json: best_member: out of range", got=summary["best_member"],
                             expected=f"0..{len(members) - 1} ({len(members)} members in config.json's sweep)")


def parse(text: bytes, name: str) -> Any:
    """The JSON value of a file's bytes; InputError naming the file when they are not UTF-8 JSON."""
    try:
        return json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise InputError(WHERE, f"{name}: not a text file (byte {error.start} is not UTF-8)",
                         expected="the JSON file the run wrote") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as error:
        raise InputError(WHERE, f"{name}: not valid JSON ({str(error)[:80]})",
                         expected="the JSON file the run wrote") from None


def check(value: Any, name: str, schema: Check | None = None) -> Any:
    """`value` (the parsed content of workdir file `name`) checked against its schema."""
    schema = schema or SCHEMAS[name]
    try:
        return schema(value, "")
    except SchemaError as error:
        field = f"{error.field}: " if error.field else ""
        raise InputError(WHERE, f"{name}: {field}{error.what}", got=error.got,
                         expected=error.expected) from None


def parse_lines(lines: list[str], name: str, schema: Check) -> list:
    """JSON lines (one record each) parsed and checked; errors name the file and the line."""
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            raise InputError(WHERE, f"{name}: line {number}: not valid JSON ({str(error)[:60]})",
                             expected="one JSON object per line, as the run wrote them") from None
        records.append(check(record, f"{name}: line {number}", schema))
    return records


def read_workdir_json(workdir: str, name: str, schema: Check | None = None) -> Any:
    """File `name` of `workdir` read, parsed and checked (see the module docstring); InputError
    `--workdir: <name>: ...` when it cannot be read or does not fit."""
    return read_file(paths.join(workdir, name), name, schema)


def read_file(path: str, name: str, schema: Check | None = None) -> Any:
    """`read_workdir_json` of the file at `path` (local or a bucket), which the run wrote as `name`."""
    path = paths.as_path(path)
    try:
        text = path.read_bytes()
    except OSError as error:
        raise InputError(WHERE, f"{name}: cannot read it ({error.strerror or error})", got=str(path)) from error
    return check(parse(text, name), name, schema)


__all__ = ["SCHEMAS", "SchemaError", "check", "check_run", "drift_reference", "parse", "parse_lines",
           "read_file", "read_workdir_json"]
