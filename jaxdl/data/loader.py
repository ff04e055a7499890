"""`load`: a data config in, checked train / validation / test arrays out."""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data import records, sources, text, tfds_door
from jaxdl.data.splits import Arrays, DataInfo, Splits, carve, check_splits
from jaxdl.errors import InputError, check_range, did_you_mean

# The keys of a data config and their defaults (the `data` section of the experiment configs,
# `jaxdl.run.config.add_data_section`, but its name); see `load`.
DEFAULTS = {"data_dir": "", "validation_fraction": 0.1, "split_seed": 0, "download": False, "sequence_length": 0,
            "label": "", "task": "auto", "image_size": ()}
# Also known in a data config: how the training split is fed (jaxdl.data.stream), read by `load_for_pipeline`.
PIPELINE_KEYS = ("pipeline", "memory_budget_mb", "chunk_steps")
READ_BATCH = 4096  # examples decoded at a time into a split's arrays


def data_config(config: str | dict | ml_collections.ConfigDict | None = None, /, **keys) -> ml_collections.ConfigDict:
    """A complete data config: `config` (a dataset name, a dict or a ConfigDict) with `keys` set over
    it and every missing key at its default (DEFAULTS). A dict or keyword with a key `load` does not
    know is an InputError; a ConfigDict (an experiment's `data` section) may hold more keys."""
    if isinstance(config, str):
        config = {"name": config}
    if isinstance(config, ml_collections.ConfigDict):
        given = config.to_dict()
    elif isinstance(config, dict) or config is None:
        given = dict(config or {})
        check_keys(given, "config")
    else:
        raise InputError("config", "wrong type", got=type(config).__name__,
                         expected="a dataset name such as 'digits', a dict or an ml_collections.ConfigDict")
    check_keys(keys, "")
    merged = {**DEFAULTS, **given, **keys}
    if not isinstance(merged.get("name"), str) or not merged["name"]:
        raise InputError("name", "missing: which dataset to load", got=merged.get("name"),
                         expected="a name such as 'digits', 'mnist', 'folder:PATH', 'csv:PATH' or 'npz:PATH'")
    return ml_collections.ConfigDict(merged)


def check_keys(keys: dict, where: str) -> None:
    known = ["name", *DEFAULTS, *PIPELINE_KEYS]
    for key in keys:
        if key not in known:
            suggestion = did_you_mean(key, known)
            raise InputError(f"{where}[{key!r}]" if where else key, "unknown data config key", got=key,
                             expected="one of " + ", ".join(known),
                             hint=f"did you mean {suggestion!r}?" if suggestion else None)


@tfds_door.quiet_tfds_logs()
def load(config: str | dict | ml_collections.ConfigDict | None = None, /, **keys) -> Splits:
    """Loads a dataset through TFDS and splits it: `load("digits")`, `load("folder:photos",
    image_size=(64, 64))`, or `load(config.data)` (a ConfigDict or a dict; keyword arguments are set
    over it). Every key not given has its default (DEFAULTS, as in the experiment configs).

    `name` is a TFDS name (a project builder such as `digits`, or a catalog name) or the user's own
    files, `folder:PATH`, `csv:PATH` or `npz:PATH` (see `jaxdl.data.sources`).

    Keys: `name`, `data_dir` ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets), `validation_fraction`
    (carved from train when the dataset has no validation split), `split_seed`, `download`
    (prepare a catalog dataset that is not prepared yet; needs the network), `sequence_length`
    (0: the dataset's own; the length of a project sequence set such as `adding`, or the bytes kept
    of each text of a catalog text set such as `imdb_reviews`), `label` (the label column of a
    `csv:` table; "" = the last), `task` (auto | classification | regression: how a `csv:` or `npz:`
    label is read), `image_size` ((height, width) that `folder:` images are resized to; () = their own).
    """
    config = data_config(config, **keys)
    builder, wanted, info = open_dataset(config)
    sources = tfds_door.data_sources(builder, wanted, download=config.get("download", False))
    arrays = {split: read_arrays(source, rows, builder, info, split)
              for split, (source, rows) in split_rows(sources, builder, info, config).items()}
    splits = Splits(train=arrays["train"], validation=arrays["validation"], test=arrays["test"], info=info)
    # A source that learns its preprocessing from the training split (a table's standardisation) does it now.
    finish = getattr(builder, "finish_splits", None)
    if finish is not None:
        splits = finish(splits)
    check_splits(splits)
    return splits


def open_dataset(config: ml_collections.ConfigDict) -> tuple[tfds.core.DatasetBuilder, list[str], DataInfo]:
    """The builder of `config.name` (a project builder prepared), the splits to read ("train" and those
    of "validation", "test" it has), and its DataInfo; nothing is read yet."""
    sequence_length = config.get("sequence_length", 0)
    check_range("config.data.sequence_length", sequence_length, low=0, integer=True)
    if sources.is_source(config.name):
        builder = sources.get_source_builder(config.name, config, config.data_dir or tfds_door.default_data_dir())
    else:
        builder = tfds_door.get_builder(config.name, config.data_dir or None, sequence_length=sequence_length)
    declared = tfds_door.available_splits(builder)
    wanted = [s for s in ("train", "validation", "test") if s in declared] or declared[:1]
    if "train" not in wanted:
        raise InputError("config.data.name", "dataset has no train split", got=config.name,
                         expected="a dataset with a 'train' split")
    is_project = tfds_door.is_project_builder(builder)
    info = describe(builder, text_length=0 if is_project else sequence_length)
    if sources.is_source(config.name):
        info = dataclasses.replace(info, stored=source_form(sources.split_name(config.name)[0], info))
    return builder, wanted, info


def describe(builder: tfds.core.DatasetBuilder, text_length: int = 0) -> DataInfo:
    """DataInfo from the builder's features and supervised keys.

    A text input becomes (text_length,) byte tokens (see `jaxdl.data.text`); `text_length` must
    then be > 0, and must be 0 for any other catalog input.
    """
    input_key, label_key = supervised_keys(builder)
    features = builder.info.features
    label = features[label_key]
    if isinstance(features[input_key], tfds.features.Text):
        if not text_length:
            raise InputError("config.data.sequence_length", f"{builder.name!r} holds text: say how many bytes "
                             "of each text to keep", got=0, expected="a length such as 512")
        input_shape = (text_length,)
    elif text_length:
        raise InputError("config.data.sequence_length", f"{builder.name!r} is not a text or sequence dataset",
                         got=text_length, expected="0")
    else:
        input_shape = tuple(features[input_key].shape)
        check_fixed_numeric(builder.name, input_key, features[input_key])
    check_fixed_numeric(builder.name, label_key, features[label_key])
    stored = stored_form(features[input_key], text_length)
    if isinstance(label, tfds.features.ClassLabel):
        return DataInfo(name=builder.name, task="classification", input_shape=input_shape,
                        num_classes=label.num_classes, class_names=tuple(label.names), stored=stored)
    return DataInfo(name=builder.name, task="regression", input_shape=input_shape,
                    target_shape=tuple(label.shape), stored=stored)


def stored_form(feature: tfds.features.FeatureConnector, text_length: int) -> dict:
    """`DataInfo.stored` of a TFDS input feature: uint8 is an image (`to_arrays` scales it by 1/255)."""
    if text_length:
        return {"kind": "text", "dtype": "string"}
    dtype = np.dtype(feature.np_dtype).name
    return {"kind": "image" if dtype == "uint8" else "array", "dtype": dtype}


def source_form(kind: str, info: DataInfo) -> dict:
    """`DataInfo.stored` of the user's own files (`kind` of `jaxdl.data.sources`)."""
    if kind == "folder":  # every image was decoded by `folder.to_array` to (height, width, channels)
        height, width, channels = info.input_shape
        return {"kind": "folder", "dtype": "uint8", "image_size": [height, width],
                "mode": "L" if channels == 1 else "RGB"}
    if kind == "csv":
        return {"kind": "table", "dtype": "float32"}
    return info.stored


def check_fixed_numeric(name: str, key: str, feature: tfds.features.FeatureConnector) -> None:
    """Models need inputs and labels of one fixed shape and a numeric dtype."""
    where = f"data {name!r}, feature {key!r}"
    if not isinstance(getattr(feature, "shape", None), tuple) or not hasattr(feature, "np_dtype"):
        raise InputError(where, "not a single array", got=type(feature).__name__,  # e.g. a FeaturesDict
                         expected="a Tensor, Image or ClassLabel feature")
    if any(dim is None for dim in feature.shape):
        raise InputError(where, "variable shape", got=tuple(feature.shape),
                         expected="a fixed shape (pad or resize the examples when preparing the dataset)")
    if not (np.issubdtype(feature.np_dtype, np.number) or feature.np_dtype == np.bool_):
        raise InputError(where, "not numeric", got=str(feature.np_dtype), expected="a numeric dtype")


def supervised_keys(builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise InputError("config.data.name", "dataset has no (input, label) supervised keys",
                         got=builder.name, expected="a supervised dataset")
    return keys


def split_rows(sources: dict, builder: tfds.core.DatasetBuilder, info: DataInfo,
               config: ml_collections.ConfigDict) -> dict[str, tuple[Any, np.ndarray]]:
    """Where each split's examples are: {"train" | "validation" | "test": (source, rows (n,) int64)}.

    A split the dataset has is its own source, whole. One it lacks is carved from train as `carve`
    carves arrays (test first: 20%, seed `split_seed` + 1; then validation: `validation_fraction`,
    seed `split_seed`), from the training labels alone, so no split is ever held twice in memory.
    """
    train = sources["train"]
    where = {split: (source, np.arange(len(source), dtype=np.int64)) for split, source in sources.items()}
    if "test" in sources and "validation" in sources:
        return where
    whole = {"y": read_labels(train, supervised_keys(builder)[1], info), "row": where["train"][1]}
    if "test" not in sources:
        whole, test = carve(whole, 0.2, config.split_seed + 1)
        where["test"] = (train, test["row"])
    if "validation" not in sources:
        whole, validation = carve(whole, config.validation_fraction, config.split_seed)
        where["validation"] = (train, validation["row"])
    where["train"] = (train, whole["row"])
    return where


def read_labels(source, label_key: str, info: DataInfo) -> np.ndarray:
    """(N,) labels of every row of `source`, typed as `to_arrays` types them, read a block at a time."""
    read = records.batch_reader(source, (label_key,))
    parts = [typed_labels(read(range(start, min(start + READ_BATCH, len(source))))[label_key], info, "train", start)
             for start in range(0, len(source), READ_BATCH)]
    return np.concatenate(parts) if parts else np.zeros((0,), label_dtype(info))


def typed_labels(values: np.ndarray, info: DataInfo, split: str, first: int = 0) -> np.ndarray:
    """Labels as `load` holds them: int32 classes, float32 targets. A stored class that int32 cannot
    hold (a corrupt or foreign set) is an InputError naming its example (`first`: the index of
    values[0] in the split), not a cast that would wrap it into range."""
    values = np.asarray(values)
    if info.task != "classification":
        return values.astype(label_dtype(info))
    if values.dtype.kind in "iu" and values.size:
        limits = np.iinfo(np.int32)
        beyond = np.flatnonzero((values.reshape(-1) < limits.min) | (values.reshape(-1) > limits.max))
        if beyond.size:
            raise InputError(f"data {info.name!r}, {split} split", f"label of example {first + int(beyond[0])} out "
                             "of range", got=int(values.reshape(-1)[beyond[0]]), expected=f"0..{info.num_classes - 1}")
    return values.astype(label_dtype(info))


def label_dtype(info: DataInfo) -> type:
    """How `load` holds labels: int32 classes, float32 regression targets."""
    return np.int32 if info.task == "classification" else np.float32


def read_arrays(source, rows: np.ndarray, builder: tfds.core.DatasetBuilder, info: DataInfo, split: str) -> Arrays:
    """Rows `rows` of `source` -> `to_arrays`'s arrays, the same values.

    Decodable tensors (`jaxdl.data.records.fast_reader`: jaxdl's image builders, own arrays) are read
    READ_BATCH rows at a time straight into the final float32 array, scaled in place: the host holds
    the split once, plus a block (a 1 GB uint8 set: 4 GB of float32, not twice that). Anything else
    (text, encoded images, mock sources) goes through TFDS's decoding and `to_arrays`.
    """
    input_key, label_key = supervised_keys(builder)
    read = records.fast_reader(source, (input_key, label_key)) if len(rows) else None
    if read is None:
        return to_arrays([source[int(row)] for row in rows], builder, info, split)
    x = y = None
    for start in range(0, len(rows), READ_BATCH):
        block = read(rows[start:start + READ_BATCH].tolist())
        inputs, labels = block[input_key], block[label_key]
        if x is None:
            x = aligned_empty((len(rows), *inputs.shape[1:]), np.float32)
            y = np.empty((len(rows), *labels.shape[1:]), label_dtype(info))
        part = x[start:start + len(inputs)]
        part[...] = inputs  # the cast of `astype(np.float32)`
        if inputs.dtype == np.uint8:
            np.divide(part, np.float32(255.0), out=part)  # `x.astype(np.float32) / 255.0`, the same bits
        y[start:start + len(labels)] = typed_labels(labels, info, split, start)
    return {"x": x, "y": y}


def aligned_empty(shape: tuple[int, ...], dtype, alignment: int = 64) -> np.ndarray:
    """An uninitialised array whose data starts on an `alignment`-byte boundary. On the CPU backend
    `jax.device_put` uses such a host array's memory as the device buffer instead of copying it (the
    memory pipeline's training split is then held once, not twice); numpy aligns to 16 bytes only."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def to_arrays(examples: list[dict], builder: tfds.core.DatasetBuilder, info: DataInfo, split: str) -> Arrays:
    """Example dicts of `split` -> {"x": float32 (N, ...), "y": int32 (N,) or float32 (N, ...)}.

    uint8 inputs (images) are scaled to [0, 1]; text becomes byte tokens; other inputs are used as
    they are. `load` checks the result (finite, labels in range, shapes: `check_splits`).
    """
    input_key, label_key = supervised_keys(builder)
    if not examples:
        return {"x": np.zeros((0, *info.input_shape), np.float32),
                "y": np.zeros((0, *info.target_shape), np.int32 if info.num_classes else np.float32)}
    if isinstance(builder.info.features[input_key], tfds.features.Text):
        x = text.encode_bytes([example[input_key] for example in examples], info.input_shape[0])
    else:
        x = tfds_door.stack_feature(examples, input_key)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    y = tfds_door.stack_feature(examples, label_key)
    y = typed_labels(y, info, split)
    return {"x": x, "y": y}
