"""`load`: a data config in, checked train / validation / test arrays out."""

from __future__ import annotations

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data import tfds_door
from jaxdl.data.splits import Arrays, DataInfo, Splits, carve, check_splits
from jaxdl.errors import InputError


def load(config: ml_collections.ConfigDict) -> Splits:
    """Loads `config.name` through TFDS and splits it.

    Config keys: `name`, `data_dir` ("" = TFDS default), `validation_fraction` (carved from train
    when the dataset has no validation split), `split_seed`, `download` (prepare a catalog dataset
    that is not prepared yet; needs the network).
    """
    builder = tfds_door.get_builder(config.name, config.data_dir or None)
    declared = tfds_door.available_splits(builder)
    wanted = [s for s in ("train", "validation", "test") if s in declared] or declared[:1]
    if "train" not in wanted:
        raise InputError("config.data.name", "dataset has no train split", got=config.name,
                         expected="a dataset with a 'train' split")
    raw = tfds_door.read_splits(builder, wanted, download=config.get("download", False))
    info = describe(builder)
    arrays = {split: to_arrays(examples, builder, info, split) for split, examples in raw.items()}
    train = arrays["train"]
    if "test" not in arrays:
        train, arrays["test"] = carve(train, 0.2, config.split_seed + 1)
    if "validation" not in arrays:
        train, arrays["validation"] = carve(train, config.validation_fraction, config.split_seed)
    splits = Splits(train=train, validation=arrays["validation"], test=arrays["test"], info=info)
    check_splits(splits)
    return splits


def describe(builder: tfds.core.DatasetBuilder) -> DataInfo:
    """DataInfo from the builder's features and supervised keys."""
    input_key, label_key = supervised_keys(builder)
    features = builder.info.features
    label = features[label_key]
    input_shape = tuple(features[input_key].shape)
    for key in (input_key, label_key):
        check_fixed_numeric(builder.name, key, features[key])
    if isinstance(label, tfds.features.ClassLabel):
        return DataInfo(name=builder.name, task="classification", input_shape=input_shape,
                        num_classes=label.num_classes, class_names=tuple(label.names))
    return DataInfo(name=builder.name, task="regression", input_shape=input_shape,
                    target_shape=tuple(label.shape))


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


def to_arrays(examples: list[dict], builder: tfds.core.DatasetBuilder, info: DataInfo, split: str) -> Arrays:
    """Example dicts of `split` -> {"x": float32 (N, ...), "y": int32 (N,) or float32 (N, ...)}.

    uint8 inputs (images) are scaled to [0, 1]; other inputs are used as they are. `load` checks
    the result (finite, labels in range, shapes: `check_splits`).
    """
    input_key, label_key = supervised_keys(builder)
    if not examples:
        return {"x": np.zeros((0, *info.input_shape), np.float32),
                "y": np.zeros((0, *info.target_shape), np.int32 if info.num_classes else np.float32)}
    x = tfds_door.stack_feature(examples, input_key)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    y = tfds_door.stack_feature(examples, label_key)
    y = y.astype(np.int32 if info.task == "classification" else np.float32)
    return {"x": x, "y": y}
