"""`data.pipeline`: the training split held in memory, or streamed from its ArrayRecord files.

memory: `load` reads every split into host memory as float32 and `fit` puts it on the devices once.
stream: the training split stays in the ArrayRecord files that TFDS (or a jaxdl builder) wrote; `fit`
reads it chunk by chunk through Grain (`StreamSplit.chunks`), each example in its stored dtype
(uint8 images stay uint8 on the host and in the transfer; they are scaled on the device). No
TensorFlow is involved. Validation and test are small and stay in memory in both pipelines.
auto: memory when the training split, in its stored dtype, fits `data.memory_budget_mb`, else stream.

The order of the examples is not decided here: `chunks` takes the permutation of each epoch from
the caller (`jaxdl.train.step.host_epoch_order`, the same permutation the memory pipeline draws on
the device), so both pipelines feed the model the same batches in the same order.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import ml_collections
import numpy as np

from jaxdl.data import loader, records, tfds_door
from jaxdl.data.splits import DataInfo, Splits, check_arrays
from jaxdl.errors import InputError, check_choice, check_range

PIPELINES = ("memory", "stream", "auto")
DEFAULT_MEMORY_BUDGET_MB = 1024


@dataclasses.dataclass(frozen=True, eq=False)
class StreamSplit:
    """A training split left in its ArrayRecord files.

    Attributes:
      source: random access to the decoded examples (a TFDS ArrayRecord data source).
      rows: (N,) int64, example i of the split is `source` row `rows[i]` (a split carved from the
        dataset's train split keeps the memory pipeline's rows and their order).
      input_key, label_key: the supervised keys.
      info: the dataset's DataInfo.
    """

    source: Any
    rows: np.ndarray
    input_key: str
    label_key: str
    info: DataInfo

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def input_dtype(self) -> np.dtype:
        """The dtype examples travel in: the stored one (uint8 images), else float32 as in memory."""
        return np.dtype(np.uint8) if self.info.stored.get("dtype") == "uint8" else np.dtype(np.float32)

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Examples `indices` (n,) of the split -> {"x": (n, *input_shape) stored dtype, "y": (n, ...)}.

        Labels come as the memory pipeline's: int32 classes or float32 targets.
        """
        arrays = self.reader(self.rows[np.asarray(indices)].tolist())
        x = arrays[self.input_key].astype(self.input_dtype, copy=False)
        y = arrays[self.label_key].astype(np.int32 if self.info.task == "classification" else np.float32)
        return {"x": x, "y": y}

    @functools.cached_property
    def reader(self) -> Callable[[list[int]], dict[str, np.ndarray]]:
        """rows -> {input_key, label_key: stacked arrays}, decoded from the raw records a chunk at a time
        (`jaxdl.data.records`), in the Grain thread that reads the chunk."""
        return records.batch_reader(self.source, (self.input_key, self.label_key))

    def chunks(self, order: Callable[[int], np.ndarray], *, batch_size: int, chunk_steps: int,
               rows: slice, first: int, last: int, threads: int = 2, prefetch: int = 2) -> Iterator[dict]:
        """Chunks `first` .. `last` - 1 of the run, read ahead on Grain's threads.

        Chunk g is chunk g % C of epoch g // C, C = `chunks_per_epoch`; it holds the steps
        [c * chunk_steps, (c + 1) * chunk_steps) of that epoch (fewer in the last chunk). `order(epoch)`
        gives the epoch's (steps * batch_size,) example indices; of each global batch only the
        columns `rows` (this process's rows) are read. Yields {"x": (k, rows, *input_shape) stored
        dtype, "y": (k, rows, ...)}; a chunk that fails the memory pipeline's checks raises InputError.
        """
        steps = len(self) // batch_size
        per_epoch = chunks_per_epoch(steps, chunk_steps)
        epoch_order = functools.lru_cache(maxsize=2)(order)

        def read_chunk(g: int) -> dict:
            epoch, c = divmod(g, per_epoch)
            batches = epoch_order(epoch).reshape(steps, batch_size)[c * chunk_steps:(c + 1) * chunk_steps, rows]
            arrays = self.read(batches.reshape(-1))
            if arrays["x"].dtype != np.uint8 or self.info.task != "classification":
                check_arrays(arrays, self.info, f"train (epoch {epoch + 1})")
            elif np.any((arrays["y"] < 0) | (arrays["y"] >= self.info.num_classes)):
                check_arrays(arrays, self.info, f"train (epoch {epoch + 1})")
            return {key: value.reshape(batches.shape + value.shape[1:]) for key, value in arrays.items()}

        import grain  # here, not at the top: only a streamed run needs it, and it adds to every command's start

        dataset = grain.MapDataset.range(first, last).map(read_chunk)
        return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)))


def chunks_per_epoch(steps: int, chunk_steps: int) -> int:
    return -(-steps // chunk_steps)


def check_data_config(config: ml_collections.ConfigDict) -> None:
    """`pipeline` and `memory_budget_mb` of a data config (absent: memory)."""
    check_choice("config.data.pipeline", config.get("pipeline", "memory"), PIPELINES)
    check_range("config.data.memory_budget_mb", config.get("memory_budget_mb", DEFAULT_MEMORY_BUDGET_MB), low=0)


@tfds_door.quiet_tfds_logs()
def load_for_pipeline(config: ml_collections.ConfigDict) -> tuple[Splits, str]:
    """`config.data` loaded for its `pipeline` -> (splits, "memory" or "stream").

    With "stream" (or "auto" over budget) `splits.train` is a StreamSplit; validation and test
    are arrays, as `load` gives them.
    """
    check_data_config(config)
    pipeline = config.get("pipeline", "memory")
    if pipeline == "memory":
        return loader.load(config), "memory"
    builder, wanted, info = loader.open_dataset(config)
    if pipeline == "auto":
        budget = config.get("memory_budget_mb", DEFAULT_MEMORY_BUDGET_MB)
        if stored_megabytes(builder, info) <= budget:
            return loader.load(config), "memory"
    return load_streamed(config, builder, wanted, info), "stream"


def stored_megabytes(builder, info: DataInfo) -> float:
    """The size of the dataset's train split in its stored dtype (inputs only), in MB."""
    split = builder.info.splits["train"] if "train" in builder.info.splits else None
    count = split.num_examples if split is not None else 0
    itemsize = 1 if info.stored.get("dtype") == "uint8" else 4
    return count * int(np.prod(info.input_shape)) * itemsize / 2**20


def load_streamed(config: ml_collections.ConfigDict, builder, wanted: list[str], info: DataInfo) -> Splits:
    """Splits with a streamed training split: the same examples, in the same order, as `load`'s."""
    if getattr(builder, "finish_splits", None) is not None or info.stored.get("kind") in ("text", "table"):
        raise InputError("config.data.pipeline", f"{config.name!r} is preprocessed as a whole in memory "
                         "(a table's standardisation, text tokens): it cannot be streamed", got="stream",
                         expected="memory")
    sources = tfds_door.data_sources(builder, wanted, download=config.get("download", False))
    file_format = builder.info.file_format
    if file_format is None or file_format.value != "array_record":
        raise InputError("config.data.pipeline", f"{config.name!r} has no ArrayRecord files to stream from",
                         got="stream", expected="memory, or the set prepared as ArrayRecord")
    input_key, label_key = loader.supervised_keys(builder)
    where = loader.split_rows(sources, builder, info, config)
    arrays = {split: loader.read_arrays(*where[split], builder, info, split) for split in ("validation", "test")}
    train, rows = where["train"]
    stream = StreamSplit(source=train, rows=rows, input_key=input_key, label_key=label_key, info=info)
    for split in ("validation", "test"):
        check_arrays(arrays[split], info, split)
    if len(stream) == 0:
        raise InputError(f"data {info.name!r}, train split", "split is empty", got="0 examples",
                         expected="at least one example")
    return Splits(train=stream, validation=arrays["validation"], test=arrays["test"], info=info)

