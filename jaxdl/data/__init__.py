"""Datasets: the TFDS door, the project's own builders, and seeded splits."""

from jaxdl.data.loader import load
from jaxdl.data.splits import Arrays, DataInfo, Splits, carve, check_splits, size, take
from jaxdl.data.tfds_door import PROJECT_BUILDERS, get_builder

__all__ = ["PROJECT_BUILDERS", "Arrays", "DataInfo", "Splits", "carve", "check_splits", "get_builder", "load", "size",
           "take"]
