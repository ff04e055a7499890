"""Datasets: the TFDS door, the project's own builders, seeded splits, and the streamed training split."""

from jaxdl.data.loader import load
from jaxdl.data.splits import Arrays, DataInfo, Splits, carve, check_splits, size, take
from jaxdl.data.stream import PIPELINES, StreamSplit, load_for_pipeline
from jaxdl.data.tfds_door import PROJECT_BUILDERS, get_builder

__all__ = ["PIPELINES", "PROJECT_BUILDERS", "Arrays", "DataInfo", "Splits", "StreamSplit", "carve", "check_splits",
           "get_builder", "load", "load_for_pipeline", "size", "take"]
