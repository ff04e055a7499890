"""Text as bytes: the encoding, and a catalog text set (imdb_reviews) through the data door under mock data."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxdl import InputError
from jaxdl.data import load
from jaxdl.data.text import VOCAB_SIZE, decode_bytes, encode_bytes


def test_bytes_are_shifted_by_one_and_padded_with_zeros():
    tokens = encode_bytes(["ab", b"\x00\xff"], 4)
    np.testing.assert_array_equal(tokens, [[98, 99, 0, 0], [1, 256, 0, 0]])
    assert tokens.dtype == np.float32 and tokens.max() < VOCAB_SIZE


def test_long_texts_are_cut_and_text_round_trips():
    tokens = encode_bytes(["héllo wörld"], 6)
    assert tokens.shape == (1, 6) and np.all(tokens > 0)
    assert decode_bytes(tokens[0]) == "héllo"[:5]  # "héllo" is 6 bytes: h, é (2 bytes), l, l, o
    assert decode_bytes(encode_bytes(["héllo wörld"], 32)[0]) == "héllo wörld"


def imdb_config(data_dir: str, sequence_length: int) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": "imdb_reviews", "data_dir": data_dir, "validation_fraction": 0.1,
                                      "split_seed": 0, "download": False, "sequence_length": sequence_length})


def test_imdb_reviews_loads_as_byte_sequences(tmp_path):
    with tfds.testing.mock_data(num_examples=40):
        splits = load(imdb_config(str(tmp_path), 24))
    assert splits.info.task == "classification" and splits.info.num_classes == 2
    assert splits.info.input_shape == (24,)
    assert splits.train["x"].shape[1:] == (24,) and splits.test["x"].shape == (40, 24)
    tokens = np.concatenate([splits.train["x"], splits.test["x"]])
    assert tokens.min() >= 0 and tokens.max() < VOCAB_SIZE
    assert np.all(tokens == np.round(tokens))


def test_text_needs_a_sequence_length(tmp_path):
    with tfds.testing.mock_data(num_examples=4), pytest.raises(InputError) as error:
        load(imdb_config(str(tmp_path), 0))
    assert error.value.where == "config.data.sequence_length"


def test_a_sequence_length_on_an_image_set_is_an_error(tmp_path):
    config = imdb_config(str(tmp_path), 16)
    config.name = "mnist"
    with tfds.testing.mock_data(num_examples=4), pytest.raises(InputError, match="not a text or sequence"):
        load(config)
