"""Files -> inputs in the form a run's dataset stores them, named, with labels where the files give them.

  - `.npy`: x (N, *input_shape); `.npz`: arrays `x` and optionally `y` (labels, as `npz:` sources);
  - an image file (.png, .jpg, ... as `folder:` sources), or a folder of them (searched
    recursively; hidden files skipped): decoded and resized exactly as the `folder:` builder did
    (`jaxdl.data.folder.decode` and `to_array`: upright, gray or RGB, bilinear to the run's
    (height, width)). In a folder, images inside a subfolder named like a class get that label;
  - `.csv` (runs on a `csv:` table): a header row with the run's feature columns (others are
    ignored); the run's label column, if present, gives the labels.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import zipfile

import numpy as np
from PIL import Image

from jaxdl.data import DataInfo
from jaxdl.data import folder as folder_lib
from jaxdl.data import table as table_lib
from jaxdl.deploy.input_check import check_inputs, check_labels
from jaxdl.deploy.run_loader import encode_table
from jaxdl.errors import InputError

WHERE = "inputs"


@dataclasses.dataclass
class Inputs:
    """names: one per input (a file's path, or `path[row]` for a row of an array or table file);
    x: (N, *input_shape) in the stored form; labels: (N,) class indices or (N, ...) targets, or None
    when some input has none."""

    names: list[str]
    x: np.ndarray
    labels: np.ndarray | None


def read_inputs(paths: list[str], info: DataInfo) -> Inputs:
    """All `paths` read for a run described by `info`, in the order given."""
    if not paths:
        raise InputError(WHERE, "no input files given", expected=".npy, .npz, .csv, image files or folders")
    parts = [read_path(path, info) for path in paths]
    names = [name for part in parts for name in part.names]
    xs = [part.x for part in parts]
    shapes = {x.shape[1:] for x in xs}
    if len(shapes) > 1:
        raise InputError(WHERE, "inputs of different shapes", got=sorted(shapes), expected=tuple(info.input_shape))
    labels = None
    if all(part.labels is not None for part in parts):
        labels = np.concatenate([part.labels for part in parts])
    return Inputs(names=names, x=np.concatenate(xs), labels=labels)


def read_path(path: str, info: DataInfo) -> Inputs:
    if not os.path.exists(path):
        raise InputError(WHERE, "no such file or folder", got=path)
    lower = path.lower()
    if os.path.isdir(path):
        return read_image_folder(path, info)
    if lower.endswith(".npy"):
        x = check_inputs(load_numpy(path), info, where=f"{WHERE}: {path}")
        return Inputs([f"{path}[{i}]" for i in range(len(x))], x, None)
    if lower.endswith(".npz"):
        return read_npz(path, info)
    if lower.endswith(".csv"):
        return read_csv(path, info)
    if lower.endswith(folder_lib.IMAGE_EXTENSIONS):
        return Inputs([path], read_image(path, info)[None], None)
    raise InputError(WHERE, "unknown kind of file", got=path,
                     expected=".npy, .npz, .csv, an image (" + ", ".join(folder_lib.IMAGE_EXTENSIONS) + ") or a folder")


def load_numpy(path: str) -> np.ndarray:
    """The array of a .npy file (never unpickled)."""
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as error:
        raise InputError(WHERE, f"cannot read the array ({error})", got=path,
                         expected="a numeric array written by numpy.save") from error


def read_npz(path: str, info: DataInfo) -> Inputs:
    try:
        with np.load(path, allow_pickle=False) as loaded:
            keys = set(loaded.files)
            if "x" not in keys:
                raise InputError(WHERE, "the .npz file holds no array 'x'", got=f"{path}: {sorted(keys)}",
                                 expected="arrays x (and optionally y)")
            x, y = loaded["x"], (loaded["y"] if "y" in keys else None)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(WHERE, f"cannot read the arrays ({error})", got=path,
                         expected="numeric arrays written by numpy.savez") from error
    for name, array in (("x", x), ("y", y)):
        if array is not None and not isinstance(array, np.ndarray):  # a member that is no .npy file
            raise InputError(f"{WHERE}: {path}", f"member {name!r} is not a numpy array",
                             expected="arrays x (and optionally y) written by numpy.savez")
    x = check_inputs(x, info, where=f"{WHERE}: {path}: x")
    if y is not None:
        y = check_labels(y, info, len(x), where=f"{WHERE}: {path}: y")
    return Inputs([f"{path}[{i}]" for i in range(len(x))], x, y)


def image_geometry(info: DataInfo, path: str) -> tuple[int, int, int]:
    """(height, width, channels) images are made into for this run; InputError for a run not on images."""
    shape = tuple(info.input_shape)
    if info.stored.get("dtype") != "uint8" or len(shape) != 3 or shape[2] not in (1, 3):
        raise InputError(WHERE, "the run was not trained on images", got=path,
                         expected=f"arrays of shape (N, {', '.join(map(str, shape))}) in .npy / .npz files")
    return shape


def read_image(path: str, info: DataInfo) -> np.ndarray:
    """uint8 (height, width, channels), decoded as the `folder:` builder decoded training images."""
    height, width, channels = image_geometry(info, path)
    try:
        image = folder_lib.decode(path)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise InputError(WHERE, f"not a readable image ({error})", got=path) from error
    return folder_lib.to_array(image, channels, (height, width))


def read_image_folder(root: str, info: DataInfo) -> Inputs:
    image_geometry(info, root)
    paths = []
    for parent, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths += [os.path.join(parent, f) for f in sorted(files)
                  if not f.startswith(".") and f.lower().endswith(folder_lib.IMAGE_EXTENSIONS)]
    if not paths:
        raise InputError(WHERE, "no image files in the folder", got=root,
                         expected="files ending in " + ", ".join(folder_lib.IMAGE_EXTENSIONS))
    x = np.stack([read_image(path, info) for path in paths])
    classes = [os.path.relpath(path, root).split(os.sep)[0] for path in paths]
    labels = None
    if info.task == "classification" and all(name in info.class_names for name in classes):
        labels = np.asarray([info.class_names.index(name) for name in classes], np.int64)
    return Inputs(paths, x, labels)


def read_csv(path: str, info: DataInfo) -> Inputs:
    if info.stored.get("kind") != "table":
        raise InputError(WHERE, "a CSV file is read for runs on a csv: table only", got=path,
                         expected=".npy / .npz arrays or images for this run")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(WHERE, f"cannot read the CSV file ({error})", got=path) from error
    if len(rows) < 2:
        raise InputError(WHERE, "the CSV file has no data rows", got=path, expected="a header row and data rows")
    header = [cell.strip() for cell in rows[0]]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(WHERE, f"row {line} has {len(row)} cells, the header {len(header)}", got=path)
    x = encode_table(info.preprocessing, header, rows[1:])
    label = info.preprocessing["label"]["name"]
    labels = None
    if label in header:
        cells = [row[header.index(label)].strip() for row in rows[1:]]
        labels = table_labels(cells, info, path)
    return Inputs([f"{path}[{i + 1}]" for i in range(len(rows) - 1)], x, labels)


def table_labels(cells: list[str], info: DataInfo, path: str) -> np.ndarray | None:
    """Label cells -> class indices (named as `jaxdl.data.table` named the classes) or float targets;
    None when a label is missing."""
    if any(table_lib.is_missing(cell) for cell in cells):
        return None
    if info.task != "classification":
        numbers = [table_lib.as_number(cell) for cell in cells]
        return None if None in numbers else np.asarray(numbers, np.float32)
    indices = []
    for cell in cells:
        number = table_lib.as_number(cell)
        name = str(int(number)) if number is not None and float(number).is_integer() else cell
        if name not in info.class_names:
            raise InputError(WHERE, "a label the run does not know", got=f"{cell} in {path}",
                             expected="one of " + ", ".join(info.class_names))
        indices.append(info.class_names.index(name))
    return np.asarray(indices, np.int64)
