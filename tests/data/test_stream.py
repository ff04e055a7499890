"""The streamed training split (`jaxdl.data.stream`): the memory pipeline's examples, rows and order,
in the stored dtype, read chunk by chunk; `auto` by the stated budget; sets that cannot stream."""

from __future__ import annotations

import csv

import ml_collections
import numpy as np
import pytest

from jaxdl.data import StreamSplit, load_for_pipeline
from jaxdl.errors import InputError
from jaxdl.train.step import PIXEL_VALUES


def data_config(data_dir, **overrides) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": "digits", "data_dir": str(data_dir), "validation_fraction": 0.1,
                                      "split_seed": 0, "download": False, "label": "", "task": "auto",
                                      "pipeline": "stream", **overrides})


@pytest.fixture(scope="module")
def streamed(data_dir):
    splits, pipeline = load_for_pipeline(data_config(data_dir))
    assert pipeline == "stream" and isinstance(splits.train, StreamSplit)
    return splits


def test_streamed_split_holds_the_memory_splits_examples_in_their_stored_dtype(streamed, digits):
    train = streamed.train.read(np.arange(len(streamed.train)))
    assert train["x"].dtype == np.uint8 and train["x"].shape == digits.train["x"].shape
    # Scaled by the device's lookup table, each pixel has the bits the memory pipeline computes on the host.
    np.testing.assert_array_equal(PIXEL_VALUES[train["x"]].view(np.uint32), digits.train["x"].view(np.uint32))
    np.testing.assert_array_equal(train["y"], digits.train["y"])
    for split in ("validation", "test"):  # carved from train by the labels alone, as `load` carves them
        for key in ("x", "y"):
            np.testing.assert_array_equal(getattr(streamed, split)[key], getattr(digits, split)[key])
    assert streamed.sizes() == digits.sizes()


def test_chunks_follow_the_given_order_and_read_only_the_given_rows(streamed):
    split, batch, k = streamed.train, 32, 7
    steps = len(split) // batch  # 40 steps: chunks of 7 steps, the last of 5

    def order(epoch):
        return np.random.default_rng(epoch).permutation(len(split))[: steps * batch]

    chunks = list(split.chunks(order, batch_size=batch, chunk_steps=k, rows=slice(8, 24), first=5, last=14))
    per_epoch = -(-steps // k)
    assert per_epoch == 6 and len(chunks) == 9  # epoch 0's chunk 5, then epoch 1 and two chunks of epoch 2
    assert [c["x"].shape for c in chunks[:2]] == [(5, 16, 8, 8, 1), (7, 16, 8, 8, 1)]
    assert all(c["x"].dtype == np.uint8 and c["y"].dtype == np.int32 for c in chunks)
    epoch_1 = {key: np.concatenate([c[key] for c in chunks[1:7]]) for key in ("x", "y")}
    expected = split.read(order(1).reshape(steps, batch)[:, 8:24].reshape(-1))
    np.testing.assert_array_equal(epoch_1["x"].reshape(-1, 8, 8, 1), expected["x"])
    np.testing.assert_array_equal(epoch_1["y"].reshape(-1), expected["y"])


def test_auto_streams_only_a_training_split_over_the_budget(data_dir):
    _, pipeline = load_for_pipeline(data_config(data_dir, pipeline="auto", memory_budget_mb=1024.0))
    assert pipeline == "memory"  # digits' train split is 0.1 MB of uint8
    splits, pipeline = load_for_pipeline(data_config(data_dir, pipeline="auto", memory_budget_mb=0.05))
    assert pipeline == "stream" and isinstance(splits.train, StreamSplit)
    splits, pipeline = load_for_pipeline(data_config(data_dir, pipeline="memory"))
    assert pipeline == "memory" and isinstance(splits.train, dict)


def test_a_table_cannot_stream(tmp_path):
    path = tmp_path / "table.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "label"])
        writer.writerows([[i, i % 7, "xy"[i % 2]] for i in range(40)])
    config = data_config(tmp_path / "tfds", name=f"csv:{path}")
    with pytest.raises(InputError, match="^config.data.pipeline: .*cannot be streamed"):
        load_for_pipeline(config)
    with pytest.raises(InputError, match="^config.data.pipeline: "):
        load_for_pipeline(data_config(tmp_path / "tfds", pipeline="fast"))
