"""`npz:PATH`: NumPy arrays, as a TFDS builder (see `jaxdl.data.sources`).

PATH is a `.npz` file holding arrays `x` and `y`, and optionally `x_test`, `y_test`,
`x_validation`, `y_validation`; or a folder holding the same names as `.npy` files (`x.npy`,
`y.npy`, ...; memory-mapped, so a large uint8 `x` is not read into memory to stream it). A split
without its own arrays is carved from train by `load`. Files are read with
`allow_pickle=False`: object arrays are an error, never unpickled.

Inputs: uint8 `x` stays uint8 on disk (images; `load` scales it to [0, 1]); any other numeric
`x` is stored as float32; either as raw bytes (`Encoding.BYTES`). Every split's `x` has the same
shape after the first axis.

Labels: under `data.task` "auto", integer (or bool) `y` of shape (N,) is classification with
classes 0..K-1, K = the largest label in any split + 1, named "0".."K-1"; float `y` (or integer
`y` of another shape) is regression with target shape `y.shape[1:]`. "classification" also takes
whole-number floats; "regression" takes any numbers. Train must hold two classes or more, and
every class of the test and validation arrays must occur in train.
"""

from __future__ import annotations

import os
import zipfile

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data.own_files import OwnFilesBuilder, SourceConfig, fingerprint
from jaxdl.errors import InputError, check_choice

SPLITS = {"train": "", "validation": "_validation", "test": "_test"}  # split -> suffix of x / y
TASKS = ("auto", "classification", "regression")
FORMAT = 2  # bump when the prepared examples change (2: x stored as raw bytes, Encoding.BYTES)
FLOAT32_MAX = float(np.finfo(np.float32).max)  # inputs and targets are stored as float32
MAX_CLASS = 2**31 - 1  # class labels are stored as int64 but counted in int32 on the devices


def read_files(path: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays by name (`x`, `y`, `x_test`, ...) and the files they came from."""
    where = "config.data.name"
    if os.path.isdir(path):
        files = {name[:-4]: os.path.join(path, name) for name in sorted(os.listdir(path)) if name.endswith(".npy")}
        if not files:
            raise InputError(where, "the folder holds no .npy files", got=f"npz:{path}",
                             expected="x.npy and y.npy (optionally x_test.npy, y_test.npy, ...)")
        loaded = {}
        for name, file in files.items():
            loaded[name] = load_array(file, lambda file=file: load_npy(file), name)
        return loaded, list(files.values())
    if not os.path.isfile(path):
        raise InputError(where, "no such file or folder", got=f"npz:{path}",
                         expected="npz:PATH of a .npz file or of a folder of .npy files")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(where, f"cannot read it as a .npz file ({error})", got=f"npz:{path}",
                         expected="a file written by numpy.savez") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(where, "a single array, not a .npz archive", got=f"npz:{path}",
                         expected="numpy.savez(PATH, x=..., y=...) or a folder of x.npy and y.npy")
    with archive:
        loaded = {name: load_array(path, lambda name=name: archive[name], name) for name in archive.files}
    return loaded, [path]


def load_npy(file: str) -> np.ndarray:
    """A .npy file memory-mapped (read only): a prepared set is fingerprinted and checked without
    reading its images into memory, so `data.pipeline=stream` holds none of them."""
    try:
        return np.load(file, allow_pickle=False, mmap_mode="r")
    except ValueError:  # an object array cannot be mapped: read it, to get numpy's own error
        return np.load(file, allow_pickle=False)


def load_array(file: str, read, name: str) -> np.ndarray:
    """Reads one array; object arrays (which would need pickle) and non-numbers are errors."""
    try:
        array = read()
    except (OSError, ValueError) as error:
        what = ("holds Python objects (needs pickle, never loaded)" if "pickle" in str(error)
                else f"cannot be read ({error})")
        raise InputError("config.data.name", f"array {name!r} {what}", got=file,
                         expected="numeric arrays (numpy.savez of int, float or uint8 arrays)") from error
    if not isinstance(array, np.ndarray):  # a member of the archive that is not a .npy file (a README)
        raise InputError("config.data.name", f"member {name!r} is not a numpy array", got=f"{file}: {name}",
                         expected="only arrays (x, y, x_test, ...) written by numpy.savez")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or np.iscomplexobj(array):
        raise InputError("config.data.name", f"array {name!r} is not numbers", got=str(array.dtype),
                         expected="int, float, bool or uint8 arrays")
    return array


def check_float32(array: np.ndarray, name: str, what: str) -> None:
    """Refuses float values that are NaN, infinite, or beyond float32's range (cast, they would
    become infinite), naming the first such example; before anything is cast or written."""
    if not np.issubdtype(array.dtype, np.floating) or not array.size:
        return
    flat = array.reshape(len(array), -1)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = np.flatnonzero(~(np.isfinite(flat) & (np.abs(flat) <= FLOAT32_MAX)).all(axis=1))
    if bad.size:
        first = int(bad[0])
        values = flat[first]
        with np.errstate(invalid="ignore", over="ignore"):
            value = values[~(np.isfinite(values) & (np.abs(values) <= FLOAT32_MAX))][0]
        raise InputError("config.data.name", f"'{name}' holds NaN, infinite values or values beyond float32's range "
                         f"(example {first})", got=float(value), expected=f"finite {what} within +-{FLOAT32_MAX:.4g}")


def read_arrays(path: str, task: str = "auto") -> dict:
    """Reads and checks the arrays at `path`: {"splits": {split: (x, y)}, "task", "num_classes",
    "input_dtype", "target_shape"}; nothing is written."""
    check_choice("config.data.task", task, TASKS)
    where = "config.data.name"
    loaded, files = read_files(path)
    if "x" not in loaded or "y" not in loaded:
        raise InputError(where, "needs arrays 'x' and 'y'", got=", ".join(sorted(loaded)) or "no arrays",
                         expected="x, y and optionally x_test, y_test, x_validation, y_validation")
    known = {f"{key}{suffix}" for suffix in SPLITS.values() for key in ("x", "y")}
    unknown = sorted(set(loaded) - known)
    if unknown:
        raise InputError(where, f"unknown array {unknown[0]!r}", got=", ".join(sorted(loaded)),
                         expected="x, y and optionally x_test, y_test, x_validation, y_validation")
    splits = {}
    for split, suffix in SPLITS.items():
        x, y = loaded.get(f"x{suffix}"), loaded.get(f"y{suffix}")
        if x is None and y is None:
            continue
        if x is None or y is None:
            raise InputError(where, f"'x{suffix}' and 'y{suffix}' come together",
                             got=f"only {'x' if y is None else 'y'}{suffix}",
                             expected="both or neither")
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise InputError(where, f"'x{suffix}' and 'y{suffix}' differ in length",
                             got=f"shapes {x.shape} and {y.shape}", expected="one label per input (same first axis)")
        if len(x) == 0:
            raise InputError(where, f"'x{suffix}' is empty", got=x.shape, expected="at least one example")
        splits[split] = (x, y)
    train_x, train_y = splits["train"]
    for split, (x, y) in splits.items():
        if x.shape[1:] != train_x.shape[1:] or y.shape[1:] != train_y.shape[1:]:
            raise InputError(where, f"{split} arrays differ in shape from train",
                             got=f"{x.shape[1:]} and {y.shape[1:]}",
                             expected=f"{train_x.shape[1:]} and {train_y.shape[1:]} after the first axis")
        if 0 in x.shape[1:]:
            raise InputError(where, f"'x{SPLITS[split]}' holds no values per example", got=f"shape {x.shape}",
                             expected="at least one value per example")
        check_float32(x, f"x{SPLITS[split]}", "inputs")
        check_float32(y, f"y{SPLITS[split]}", "labels")
    if task != "regression":
        for split, (_, y) in splits.items():
            too_large = np.flatnonzero(np.abs(y.reshape(len(y), -1)).max(axis=1) > MAX_CLASS) if y.size else []
            if len(too_large) and (task == "classification" or y.dtype.kind in "iu"):
                first = int(too_large[0])
                raise InputError(where, f"class label of example {first} of 'y{SPLITS[split]}' is too large",
                                 got=y.reshape(len(y), -1)[first].max().item(), expected=f"labels 0..{MAX_CLASS}")
    integral = all(np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_ for _, y in splits.values())
    whole = integral or all(np.array_equal(y, np.round(y)) for _, y in splits.values())
    classify = task == "classification" or (task == "auto" and integral and train_y.ndim == 1)
    if task == "classification" and (train_y.ndim != 1 or not whole):
        raise InputError("config.data.task", "classification needs whole-number labels y of shape (N,)",
                         got=f"{train_y.dtype} {train_y.shape}", expected="int labels 0..K-1")
    num_classes = 0
    if classify:
        splits = {split: (x, y.astype(np.int64)) for split, (x, y) in splits.items()}
        lowest = min(int(y.min()) for _, y in splits.values())
        if lowest < 0:
            raise InputError(where, "negative class label", got=lowest, expected="labels 0..K-1")
        seen = np.unique(splits["train"][1])
        if len(seen) < 2:
            raise InputError(where, "'y' holds one class only", got=int(seen[0]), expected="at least two classes")
        for split, (_, y) in splits.items():
            new = np.setdiff1d(np.unique(y), seen)
            if new.size:
                raise InputError(where, f"class {int(new[0])} of the {split} labels never occurs in train",
                                 got=f"y{SPLITS[split]}", expected="classes that train holds")
        num_classes = max(int(y.max()) for _, y in splits.values()) + 1
    else:
        splits = {split: (x, y.astype(np.float32)) for split, (x, y) in splits.items()}
    input_dtype = np.uint8 if train_x.dtype == np.uint8 else np.float32
    splits = {split: (x.astype(input_dtype, copy=False), y) for split, (x, y) in splits.items()}
    return {"splits": splits, "task": "classification" if classify else "regression", "num_classes": num_classes,
            "input_dtype": input_dtype, "target_shape": train_y.shape[1:], "files": files}


class NpzArrays(OwnFilesBuilder, skip_registration=True):
    """Arrays from a .npz file or .npy folder: x (uint8 or float32), y (class or float32 target)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "x as uint8 (images) or float32; y as classes 0..K-1 or float32 targets."}

    def __init__(self, *, source: dict, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        source = self.source
        x = source["splits"]["train"][0]
        label = (tfds.features.ClassLabel(num_classes=source["num_classes"]) if source["task"] == "classification"
                 else tfds.features.Tensor(shape=tuple(source["target_shape"]), dtype=np.float32))
        return tfds.core.DatasetInfo(
            builder=self,
            description="The user's arrays " + ", ".join(source["files"]),
            features=tfds.features.FeaturesDict({
                "x": tfds.features.Tensor(shape=x.shape[1:], dtype=source["input_dtype"],
                                          encoding=tfds.features.Encoding.BYTES),
                "y": label,
            }),
            supervised_keys=("x", "y"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the user's own files: nothing to download
        return {split: self._generate_examples(split) for split in self.source["splits"]}

    def _generate_examples(self, split: str):
        x, y = self.source["splits"][split]
        for index in range(len(x)):
            yield index, {"x": x[index], "y": y[index]}


def npz_builder(path: str, data_config: ml_collections.ConfigDict, data_dir: str) -> NpzArrays:
    """The `npz:PATH` factory: reads and checks the arrays, then a builder for their fingerprint."""
    path = os.path.expanduser(path)
    task = data_config.get("task", "auto")
    source = read_arrays(path, task)
    name = fingerprint(source["files"], {"task": task, "format": FORMAT})
    config = SourceConfig(name=name, description=f"npz:{os.path.abspath(path)} task={task}")
    return NpzArrays(source=source, config=config, data_dir=data_dir, file_format="array_record")
