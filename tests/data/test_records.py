"""`jaxdl.data.records`: batches decoded from raw records hold TFDS's own decoded values, bit for bit,
for every encoding a prepared set may hold (raw bytes, zlib, int64 varints / float lists of older
sets); the project's image builders store raw bytes; a set prepared by an older version is
prepared again."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxdl.data import records, tfds_door

DTYPES = (np.uint8, np.int32, np.int64, np.float32, np.bool_)
ENCODINGS = ("none", "bytes", "zlib")


@st.composite
def feature_sets(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    encoding = draw(st.sampled_from(ENCODINGS))
    n = draw(st.integers(0, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        values = rng.normal(0, 1e3, (n, *shape)).astype(dtype)
    elif dtype.kind == "b":
        values = rng.integers(0, 2, (n, *shape)).astype(bool)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, (n, *shape), dtype=dtype, endpoint=True)
    return dtype, shape, encoding, values, rng.integers(0, 7, n)


@settings(max_examples=40, deadline=None)
@given(feature_sets())
def test_decoded_batches_hold_tfds_own_values(case):
    dtype, shape, encoding, values, labels = case
    if encoding != "none" and not shape:
        shape, values = (1,), values.reshape(-1, 1)  # TFDS encodes only tensors of rank >= 1 as bytes
    features = tfds.features.FeaturesDict({
        "x": tfds.features.Tensor(shape=shape, dtype=dtype, encoding=encoding),
        "y": tfds.features.ClassLabel(num_classes=7),
    })
    serialized = [features.serialize_example({"x": x, "y": int(y)}) for x, y in zip(values, labels, strict=True)]
    decoders = {key: records.feature_decoder(features[key]) for key in ("x", "y")}
    decoded = records.decode_records(list(serialized), decoders)
    expected = [features.deserialize_example_np(s) for s in serialized]
    want_x = np.stack([np.asarray(e["x"]) for e in expected]) if expected else np.zeros((0, *shape), dtype)
    if not shape:  # TFDS gives a scalar as a Python number (`.item()`) of the stored dtype
        want_x = want_x.astype(dtype)
    assert decoded["x"].dtype == want_x.dtype and decoded["x"].shape == (len(values), *shape)
    assert decoded["x"].tobytes() == want_x.tobytes()
    np.testing.assert_array_equal(decoded["y"], np.asarray([e["y"] for e in expected], np.int64))


def test_features_it_cannot_decode_are_left_to_tfds():
    assert records.feature_decoder(tfds.features.Image(shape=(4, 4, 3))) is None
    assert records.feature_decoder(tfds.features.Tensor(shape=(None, 2), dtype=np.float32)) is None
    assert records.feature_decoder(tfds.features.Text()) is None


def test_digits_stores_raw_bytes_and_an_older_prepared_copy_is_prepared_again(tmp_path):
    data_dir = str(tmp_path)
    old = os.path.join(data_dir, "digits", "1.0.0")
    os.makedirs(old)  # what an older jaxdl left behind (int64 varints): never read by this version
    builder = tfds_door.get_builder("digits", data_dir)
    assert str(builder.version) != "1.0.0"
    source = tfds_door.data_sources(builder, ["train"])["train"]
    assert builder.info.features["image"].get_serialized_info().np_dtype == np.object_  # one bytes value
    read = records.batch_reader(source, ("image", "label"))
    batch = read([0, 5, 3])
    direct = [source[i] for i in (0, 5, 3)]
    np.testing.assert_array_equal(batch["image"], np.stack([d["image"] for d in direct]))
    np.testing.assert_array_equal(batch["label"], [d["label"] for d in direct])
    assert batch["image"].dtype == np.uint8 and batch["image"].shape == (3, 8, 8, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_npz_stores_x_as_raw_bytes(tmp_path, dtype):
    import ml_collections  # noqa: PLC0415

    from jaxdl.data.loader import open_dataset  # noqa: PLC0415

    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(path, x=rng.integers(0, 255, (30, 3, 2)).astype(dtype), y=np.arange(30) % 3)
    config = ml_collections.ConfigDict({"name": f"npz:{path}", "data_dir": str(tmp_path / "tfds"),
                                        "validation_fraction": 0.1, "split_seed": 0, "download": False})
    builder, _, _ = open_dataset(config)
    feature = builder.info.features["x"]
    assert feature.get_serialized_info().np_dtype == np.object_ and records.feature_decoder(feature) is not None


def reference_load(config) -> dict:
    """What `load` gave before it read blocks into place: every example through TFDS's own decoding,
    `to_arrays`, then test and validation carved from the train arrays."""
    from jaxdl.data import loader  # noqa: PLC0415
    from jaxdl.data.splits import carve  # noqa: PLC0415

    builder, wanted, info = loader.open_dataset(loader.data_config(config))
    sources = tfds_door.data_sources(builder, wanted)
    arrays = {split: loader.to_arrays([source[i] for i in range(len(source))], builder, info, split)
              for split, source in sources.items()}
    train = arrays["train"]
    if "test" not in arrays:
        train, arrays["test"] = carve(train, 0.2, config["split_seed"] + 1)
    if "validation" not in arrays:
        train, arrays["validation"] = carve(train, config["validation_fraction"], config["split_seed"])
    return {**arrays, "train": train}


@settings(max_examples=8, deadline=None)
@given(st.sampled_from((np.uint8, np.float32, np.int16)), st.integers(12, 40), st.sampled_from(((), ("test",),
       ("validation",), ("validation", "test"))), st.floats(0.1, 0.4), st.integers(0, 3), st.integers(0, 2**16),
       st.booleans(), st.integers(1, 9))
def test_load_reads_the_values_and_order_of_tfds_own_decoding(tmp_path_factory, dtype, n, own, fraction, split_seed,
                                                              seed, regression, read_batch):
    """`load` decodes jaxdl's raw-byte sets a block at a time into the final arrays and carves the
    missing splits from the labels alone: the same arrays, bit for bit and row for row, as decoding
    every example through TFDS and carving the arrays (classes or (N, 2) float targets; blocks of
    1-9 rows, so every split takes several)."""
    from jaxdl.data import loader  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    folder = tmp_path_factory.mktemp("set")
    info = np.iinfo(dtype) if dtype != np.float32 else None
    files = {}
    for split, count in (("", n), ("_validation", 6), ("_test", 7)):
        if split and split[1:] not in own:
            continue
        x = rng.integers(info.min, info.max, (count, 3, 2), endpoint=True) if info else rng.normal(0, 9, (count, 3, 2))
        files[f"x{split}"] = x.astype(dtype)
        files[f"y{split}"] = (rng.normal(0, 3, (count, 2)) if regression
                              else np.arange(count) % 3)  # every class in every split
    np.savez(folder / "set.npz", **files)
    config = {"name": f"npz:{folder / 'set.npz'}", "data_dir": str(folder / "tfds"), "validation_fraction": fraction,
              "split_seed": split_seed}
    original = loader.READ_BATCH
    loader.READ_BATCH = read_batch
    try:
        splits = loader.load(config)
    finally:
        loader.READ_BATCH = original
    assert splits.info.task == ("regression" if regression else "classification")
    want = reference_load(config)
    for split in ("train", "validation", "test"):
        got = getattr(splits, split)
        assert got["x"].dtype == want[split]["x"].dtype == np.float32
        assert got["x"].tobytes() == want[split]["x"].tobytes()
        np.testing.assert_array_equal(got["y"], want[split]["y"])
        assert got["y"].dtype == want[split]["y"].dtype


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=12), st.integers(0, 5000))
def test_a_stored_class_beyond_int32_is_an_error_not_a_wrapped_label(labels, first):
    """Labels are held as int32: a stored int64 class int32 cannot hold (a corrupt or foreign set) is one
    InputError naming its example, never a cast that wraps it into range (2**32 + 1 would become 1)."""
    from jaxdl.data import loader  # noqa: PLC0415
    from jaxdl.data.splits import DataInfo  # noqa: PLC0415
    from jaxdl.errors import InputError  # noqa: PLC0415

    info = DataInfo(name="set", input_shape=(2,), num_classes=3, task="classification")
    values = np.asarray(labels, np.int64)
    beyond = [i for i, label in enumerate(labels) if not -2**31 <= label < 2**31]
    if not beyond:
        typed = loader.typed_labels(values, info, "test", first)
        assert typed.dtype == np.int32 and typed.tolist() == labels
        return
    with pytest.raises(InputError) as raised:
        loader.typed_labels(values, info, "test", first)
    assert f"label of example {first + beyond[0]} out of range" in str(raised.value)
    assert str(labels[beyond[0]]) in str(raised.value) and "test split" in str(raised.value)


def test_a_loaded_split_is_placed_on_a_cpu_device_without_a_copy(tmp_path):
    """`load`'s arrays are 64-byte aligned, so on the CPU backend `jax.device_put` (as `fit` places the
    training split) uses their memory in place: the split is held once, not twice."""
    import jax  # noqa: PLC0415

    from jaxdl.data import loader  # noqa: PLC0415

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "set.npz", x=rng.integers(0, 256, (50, 4, 4, 3)).astype(np.uint8), y=np.arange(50) % 2)
    splits = loader.load(f"npz:{tmp_path / 'set.npz'}", data_dir=str(tmp_path / "tfds"))
    x = splits.train["x"]
    assert x.dtype == np.float32 and x.ctypes.data % 64 == 0
    placed = jax.device_put(x, jax.devices("cpu")[0])
    assert np.shares_memory(np.asarray(placed), x)
    np.testing.assert_array_equal(np.asarray(placed), x)
