"""`csv:PATH`: a table in one CSV file, as a TFDS builder (see `jaxdl.data.sources`).

The file is comma-separated (UTF-8, an optional byte-order mark) with a header row of unique
column names. `data.label` names the label column ("" = the last column); every other column is
a feature.

Label: classification when `data.task` is "classification", or under "auto" when the label holds
any non-number or integers with at most `MAX_INTEGER_CLASSES` distinct values; regression when
`data.task` is "regression" or under "auto" otherwise (numbers). Classes are the distinct labels,
sorted (numerically when all are numbers); a label cell may not be missing.

Features: a column whose present values are all numbers is numeric; any other column is
categorical when it has at most `MAX_CATEGORIES` distinct values, and an error otherwise (free
text, IDs). The prepared dataset holds numeric columns as raw float32 (NaN where missing) and
categorical columns one-hot over their sorted values in the whole file (all zero where missing).
`load` then standardises each numeric column with the mean and standard deviation of the training
split only (after the validation and test carve; a constant column gets std 1) and sets missing
numbers to 0 (the training mean); the statistics, the column layout and the vocabularies are kept
in `DataInfo.preprocessing` and written to `preprocessing.json` in the workdir. Missing cells are
empty or one of `MISSING` (any case).
"""

from __future__ import annotations

import csv
import dataclasses
import os

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data.own_files import OwnFilesBuilder, SourceConfig, fingerprint
from jaxdl.data.splits import Splits
from jaxdl.errors import InputError, check_choice, did_you_mean

MISSING = ("", "na", "n/a", "nan", "null", "?")
MAX_CATEGORIES = 50
MAX_INTEGER_CLASSES = 20
TASKS = ("auto", "classification", "regression")
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the prepared table holds float32
FORMAT = 1  # bump when the prepared examples change, so old preparations are not reused


@dataclasses.dataclass(frozen=True)
class Column:
    """One feature column: numeric (one input) or categorical (one input per category)."""

    name: str
    kind: str  # "numeric" | "categorical"
    categories: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """A checked table: features x (N, F) float32 (raw numbers, NaN where missing; one-hot
    categories), labels y (N,) int64 class indices or float32 targets."""

    path: str
    columns: tuple[Column, ...]
    label: str
    task: str
    class_names: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def as_number(cell: str) -> float | None:
    """The cell's number, None unless it is one that float32 holds (inf, 1e39 are not)."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if np.isfinite(value) and abs(value) <= FLOAT32_MAX else None


def check_finite(name: str, values: tuple[str, ...], where: str) -> None:
    """Refuses a column with a cell that is a number float32 cannot hold (inf, -inf, 1e39): it
    would become infinite, or, read as text, a category."""
    for line, cell in enumerate(values, start=2):
        text = cell.strip()
        if is_missing(text) or as_number(text) is not None:
            continue
        try:
            float(text)
        except ValueError:
            continue
        raise InputError(where, f"column {name!r}, row {line}: not a finite number", got=text,
                         expected=f"finite numbers within +-{FLOAT32_MAX:.4g}, or an empty cell for a missing value")


def read_rows(path: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the CSV file; InputError for a missing, empty or ragged file."""
    where = "config.data.name"
    if not os.path.isfile(path):
        raise InputError(where, "no such file" if not os.path.exists(path) else "not a file", got=f"csv:{path}",
                         expected="csv:PATH of a CSV file with a header row")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(where, f"cannot read the CSV file ({error})", got=f"csv:{path}") from error
    if not rows:
        raise InputError(where, "the CSV file is empty", got=f"csv:{path}", expected="a header row and data rows")
    header = [cell.strip() for cell in rows[0]]
    if all(as_number(cell) is not None or is_missing(cell) for cell in header):
        raise InputError(where, "the first row holds no column names", got=",".join(header[:5]),
                         expected="a header row naming the columns")
    if any(not name for name in header):
        raise InputError(where, f"column {header.index('') + 1} has no name", got=",".join(header[:5]),
                         expected="a name for every column in the header row")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise InputError(where, "repeated column name in the header", got=repeated[0], expected="unique names")
    if len(rows) < 2:
        raise InputError(where, "the CSV file has no data rows", got=f"csv:{path}", expected="rows below the header")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(where, f"row {line} has {len(row)} cells, the header {len(header)}", got=f"csv:{path}",
                             expected="the same number of cells in every row")
    return header, rows[1:]


def read_table(path: str, label: str = "", task: str = "auto") -> Table:
    """Reads and checks the CSV file at `path` (see the module docstring); nothing is written."""
    check_choice("config.data.task", task, TASKS)
    header, rows = read_rows(path)
    label = label or header[-1]
    if label not in header:
        suggestion = did_you_mean(label, header)
        raise InputError("config.data.label", "no such column in the CSV file", got=label,
                         expected="one of " + ", ".join(header[:20]) + (" ..." if len(header) > 20 else ""),
                         hint=f"did you mean {suggestion!r}?" if suggestion else None)
    if len(header) < 2:
        raise InputError("config.data.name", "the table has no feature column", got=",".join(header),
                         expected="a label column and at least one feature column")
    cells = list(zip(*rows, strict=True))  # column-major
    index = header.index(label)
    task, class_names, y = read_labels(cells[index], label, task)
    columns, blocks = [], []
    for name, values in zip(header, cells, strict=True):
        if name != label:
            column, block = read_feature(name, values)
            columns.append(column)
            blocks.append(block)
    return Table(path=os.path.abspath(path), columns=tuple(columns), label=label, task=task,
                 class_names=class_names, x=np.concatenate(blocks, axis=1), y=y)


def read_labels(values: tuple[str, ...], label: str, task: str) -> tuple[str, tuple[str, ...], np.ndarray]:
    """(task, class names, y) of the label column: y int64 class indices or float32 targets (N,)."""
    where = "config.data.label"
    check_finite(label, values, where)
    empty = [line for line, cell in enumerate(values, start=2) if is_missing(cell)]
    if empty:
        raise InputError(where, f"label missing in row {empty[0]}", got=values[empty[0] - 2],
                         expected="a label in every row")
    values = tuple(cell.strip() for cell in values)
    numbers = [as_number(cell) for cell in values]
    numeric = all(number is not None for number in numbers)
    if task == "regression":
        if not numeric:
            first = numbers.index(None)
            raise InputError(where, f"regression needs numeric labels; row {first + 2} is not a number",
                             got=values[first], expected="numbers (or --config.data.task=classification)")
        return "regression", (), np.asarray(numbers, np.float32)
    integers = numeric and all(float(number).is_integer() for number in numbers)
    if task == "auto" and numeric and not (integers and len(set(numbers)) <= MAX_INTEGER_CLASSES):
        return "regression", (), np.asarray(numbers, np.float32)
    if integers:  # "1" and "1.0" are one class, named "1"; classes in numeric order
        values = tuple(str(int(number)) for number in numbers)
        names = tuple(str(int(n)) for n in sorted({int(n) for n in numbers}))
    elif numeric:
        names = tuple(sorted(set(values), key=float))
    else:
        names = tuple(sorted(set(values)))
    if len(names) < 2:
        raise InputError(where, "the label column holds one class only", got=names[0],
                         expected="at least two classes")
    lookup = {name: i for i, name in enumerate(names)}
    return "classification", names, np.asarray([lookup[v] for v in values], np.int64)


def read_feature(name: str, values: tuple[str, ...]) -> tuple[Column, np.ndarray]:
    """The column and its block of x: (N, 1) raw numbers with NaN where missing, or (N, K) one-hot."""
    check_finite(name, values, "config.data.name")
    present = [cell.strip() for cell in values if not is_missing(cell)]
    numbers = [as_number(cell) for cell in present]
    if all(number is not None for number in numbers):
        block = np.asarray([np.nan if is_missing(cell) else float(cell) for cell in values], np.float32)
        return Column(name, "numeric"), block[:, None]
    categories = tuple(sorted(set(present)))
    if len(categories) > MAX_CATEGORIES:
        raise InputError("config.data.name", f"column {name!r} is neither numbers nor a category "
                         f"({len(categories)} distinct values)", got=present[numbers.index(None)],
                         expected=f"numbers, or at most {MAX_CATEGORIES} distinct values",
                         hint="remove the column (free text or IDs) or encode it as numbers")
    lookup = {category: i for i, category in enumerate(categories)}
    block = np.zeros((len(values), len(categories)), np.float32)
    for row, cell in enumerate(values):
        if not is_missing(cell):
            block[row, lookup[cell.strip()]] = 1.0
    return Column(name, "categorical", categories), block


def inverse_std(std: float) -> np.float32:
    """1 / std in float32. Standardising multiplies by it rather than dividing by std: XLA turns a
    division by a constant into this multiplication, so a compiled predictor (`jaxdl.deploy`)
    repeats training's inputs bit for bit."""
    return np.float32(1.0) / np.float32(std)


def preprocess(splits: Splits, table: Table) -> Splits:
    """Standardises the numeric columns with the training split's statistics (missing -> 0) and
    records the statistics and layout in `info.preprocessing`."""
    train = splits.train["x"]
    columns, start = [], 0
    x = {name: getattr(splits, name)["x"].copy() for name in ("train", "validation", "test")}
    for column in table.columns:
        entry = {"name": column.name, "kind": column.kind, "inputs": [start, start + column.width]}
        if column.kind == "numeric":
            values = train[:, start][np.isfinite(train[:, start])]
            mean = float(values.mean()) if values.size else 0.0
            std = float(values.std()) if values.size else 1.0
            std = std if std > 0 else 1.0
            for split in x.values():
                standard = (split[:, start] - np.float32(mean)) * inverse_std(std)
                split[:, start] = np.where(np.isfinite(standard), standard, 0.0)
            entry.update(mean=mean, std=std)
        else:
            entry["categories"] = list(column.categories)
        columns.append(entry)
        start += column.width
    preprocessing = {
        "source": f"csv:{table.path}",
        "columns": columns,
        "label": {"name": table.label, "task": table.task, "classes": list(table.class_names)},
        "missing": list(MISSING),
        "rules": "numeric: (value - mean) * (1 / std) in float32 with the training split's mean and std, "
                 "missing -> 0; "
                 "categorical: one-hot over `categories`, missing or unseen -> all zero",
    }
    info = dataclasses.replace(splits.info, preprocessing=preprocessing)
    return Splits(**{name: {**getattr(splits, name), "x": x[name]} for name in x}, info=info)


class CsvTable(OwnFilesBuilder, skip_registration=True):
    """A table from a CSV file: features (F,) float32, label (class or float32 target)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Numeric columns raw (NaN where missing), categorical columns one-hot."}

    def __init__(self, *, table: Table, **kwargs):
        self.table = table
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        table = self.table
        label = (tfds.features.ClassLabel(names=list(table.class_names)) if table.task == "classification"
                 else tfds.features.Tensor(shape=(), dtype=np.float32))
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"The table {table.path}, label column {table.label!r}.",
            features=tfds.features.FeaturesDict({
                "features": tfds.features.Tensor(shape=(table.x.shape[1],), dtype=np.float32),
                "label": label,
            }),
            supervised_keys=("features", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the user's own file: nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for row, (features, label) in enumerate(zip(self.table.x, self.table.y, strict=True)):
            yield row, {"features": features, "label": label}

    def finish_splits(self, splits: Splits) -> Splits:
        """Called by `load` after the validation and test carve: standardise with train statistics."""
        return preprocess(splits, self.table)


def csv_builder(path: str, data_config: ml_collections.ConfigDict, data_dir: str) -> CsvTable:
    """The `csv:PATH` factory: reads and checks the file, then a builder for its fingerprint."""
    path = os.path.expanduser(path)
    label, task = data_config.get("label", ""), data_config.get("task", "auto")
    table = read_table(path, label, task)
    name = fingerprint([path], {"label": table.label, "task": task, "format": FORMAT,
                                "max_categories": MAX_CATEGORIES, "max_integer_classes": MAX_INTEGER_CLASSES})
    config = SourceConfig(name=name, description=f"csv:{table.path} label={table.label} task={task}")
    return CsvTable(table=table, config=config, data_dir=data_dir, file_format="array_record")
