"""Examples of an ArrayRecord split read straight into stacked arrays, a batch at a time.

TFDS's data source decodes one example at a time through its generic feature machinery (about
40 us an example on top of the protobuf parse, whatever the example's size). For a split whose
wanted features are flat fixed-shape `Tensor`s or `ClassLabel`s, `batch_reader` reads the raw
records and decodes them here instead, into one preallocated array per feature: each record is
parsed once as a `tf.train.Example`; the bytes of a tensor stored as bytes (`Encoding.BYTES`, or
`ZLIB` after decompressing) are viewed with `np.frombuffer` and copied into their row; a tensor
stored as a value list (`Encoding.NONE`: int64 varints or floats) is converted with
`np.array(values, dtype)`, as TFDS's `ExampleParserNp` converts it. The
values are the ones TFDS's own decoding gives, bit for bit (tests/data/test_records.py). Anything
else (an encoded `Image`, nested or ragged features, the mock sources of `tfds.testing.mock_data`)
is read through TFDS as before.

jaxdl's own image builders store pixels with `Encoding.BYTES` (one byte a pixel on disk before
ArrayRecord's own compression, a memory copy to decode): `digits`, `digit_sequences`, `folder:`,
`npz:`. Sets prepared before that (int64 varints) are read too, only slower.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds


@dataclasses.dataclass(frozen=True)
class Decoder:
    """How one feature of a serialized example becomes its value: `get(feature proto)` -> an array
    (or number) of `shape` and `dtype`, as TFDS decodes it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    get: Callable[[Any], Any]


def batch_reader(source, keys: Sequence[str]) -> Callable[[Sequence[int]], dict[str, np.ndarray]]:
    """A function rows -> {key: (len(rows), *shape) array} over TFDS data source `source`.

    `fast_reader` when it applies; else TFDS's per-example decoding, item by item (the sources of
    `tfds.testing.mock_data` serve no `__getitems__`), stacked.
    """
    fast = fast_reader(source, keys)
    if fast is not None:
        return fast

    def read_decoded(rows: Sequence[int]) -> dict[str, np.ndarray]:
        examples = [source[int(row)] for row in rows]
        return {key: np.stack([np.asarray(e[key]) for e in examples]) for key in keys}

    return read_decoded


def fast_reader(source, keys: Sequence[str]) -> Callable[[Sequence[int]], dict[str, np.ndarray]] | None:
    """rows -> {key: stacked values} decoded here from the raw records (`decode_records`), when `source`
    is a plain ArrayRecord source and every feature in `keys` is a decodable tensor (`feature_decoder`);
    else None."""
    from tensorflow_datasets.core.data_sources.array_record import ArrayRecordDataSource  # noqa: PLC0415

    if type(source) is not ArrayRecordDataSource or source.decoders is not None:
        return None
    if type(source.data_source).__module__ != "array_record.python.array_record_data_source":
        return None  # not ArrayRecord's own reader: a mock of `tfds.testing.mock_data` generates examples
    features = source.dataset_info.features
    decoders = {key: feature_decoder(features[key]) if key in features.keys() else None for key in keys}
    if any(decoder is None for decoder in decoders.values()):
        return None

    def read_records(rows: Sequence[int]) -> dict[str, np.ndarray]:
        return decode_records(source.data_source.__getitems__(list(rows)), decoders)

    return read_records


def decode_records(records: list[bytes], decoders: dict[str, Decoder]) -> dict[str, np.ndarray]:
    """Serialized `tf.train.Example`s -> {key: stacked values} through `decoders` (`feature_decoder`),
    filled record by record (each record's bytes are dropped from `records` once decoded)."""
    from tensorflow_datasets.proto import tf_example_pb2  # noqa: PLC0415

    out = {key: np.empty((len(records), *d.shape), d.dtype) for key, d in decoders.items()}
    for i, record in enumerate(records):
        feature = tf_example_pb2.Example.FromString(record).features.feature
        records[i] = b""
        for key, decoder in decoders.items():
            out[key][i] = decoder.get(feature[key])
    return out


def feature_decoder(feature: tfds.features.FeatureConnector) -> Decoder | None:
    """The decoder of a flat fixed-shape Tensor or ClassLabel feature; None for any other."""
    if type(feature) not in (tfds.features.Tensor, tfds.features.ClassLabel):
        return None
    shape = tuple(feature.shape)
    if any(dim is None for dim in shape):
        return None
    dtype = np.dtype(feature.np_dtype)
    encoding = getattr(feature, "_encoding", None)
    if encoding in (tfds.features.Encoding.BYTES, tfds.features.Encoding.ZLIB):
        unpack = zlib.decompress if encoding == tfds.features.Encoding.ZLIB else None

        def get_bytes(proto):
            data = proto.bytes_list.value[0]
            return np.frombuffer(unpack(data) if unpack else data, dtype=dtype).reshape(shape)

        return Decoder(shape, dtype, get_bytes)
    if encoding != tfds.features.Encoding.NONE or dtype.kind not in "biuf":
        return None
    stored = np.dtype(feature.get_serialized_info().np_dtype)  # what TFDS's parser converts to
    field = "float_list" if stored.kind == "f" else "int64_list"
    if not shape:
        return Decoder(shape, stored, lambda proto: getattr(proto, field).value[0])
    return Decoder(shape, stored, lambda proto: np.array(getattr(proto, field).value, dtype=stored).reshape(shape))
