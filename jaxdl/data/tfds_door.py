"""The one door to datasets: a TFDS name in, numpy arrays per split out.

Project builders (`digits`, ...) are prepared on first use, offline. Catalog datasets (`mnist`,
`fashion_mnist`, `cifar10`, ...) are read if they are already prepared in `data_dir`; preparing
one needs the network (and, for some builders, TensorFlow), so it only happens when asked for
with `data.download=True`. Data is read through `tfds.data_source` (ArrayRecord): no TensorFlow
at training time, and no pickle.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data.adding import Adding, AddingPerStep
from jaxdl.data.digit_sequences import DigitSequences
from jaxdl.data.digits import Digits
from jaxdl.data.playground import PLAYGROUND_BUILDERS
from jaxdl.data.sequences import SequenceBuilder
from jaxdl.data.signals import Signals
from jaxdl.errors import InputError, check_range, did_you_mean


@contextlib.contextmanager
def quiet_tfds_logs():
    """Keeps TFDS's absl WARNING lines ("Using custom data configuration ...", "... has no
    dataset_info.json") out of a Python session that loads data, unless a level was chosen for the
    absl logger (the command line's --debug shows them). Also a decorator."""
    logger = logging.getLogger("absl")
    if logging.NOTSET < logger.level < logging.ERROR:  # asked for
        yield
        return
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


# Builders that ship with jaxdl and need no download, by the name users give in `data.name`.
PROJECT_BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
    "digits": Digits,
    "adding": Adding,
    "adding_per_step": AddingPerStep,
    "digit_sequences": DigitSequences,
    "signals": Signals,
    **PLAYGROUND_BUILDERS,
}

# Where TFDS downloads most catalog sets from (and its mirror of prepared sets): reaching it
# first turns "no network" into an immediate error instead of minutes of retries.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)

OFFLINE_HINT = ("prepare it once on a machine with network access: "
                "pip install 'jaxdl[catalog]' && python -m jaxdl.data.prepare {name} --data_dir {dir}")
PREPARE_HINT = OFFLINE_HINT + " (or run with --config.data.download=true)"


def default_data_dir() -> str:
    """TFDS's own default: $TFDS_DATA_DIR or ~/tensorflow_datasets."""
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def get_builder(name: str, data_dir: str | None = None, *, sequence_length: int = 0,
                **builder_kwargs) -> tfds.core.DatasetBuilder:
    """A project builder or a catalog builder for `name` (`name/config` and `name:version` allowed).

    `sequence_length` > 0 picks the length of a project sequence builder (`adding`,
    `digit_sequences`); catalog builders ignore it (text sets are cut to it when loaded).
    """
    data_dir = data_dir or default_data_dir()
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise InputError("config.data.data_dir", "not a directory", got=data_dir,
                         expected="a folder for TFDS datasets")
    base = name.split("/", maxsplit=1)[0].split(":", maxsplit=1)[0]
    if base in PROJECT_BUILDERS:
        config = name.split("/", 1)[1] if "/" in name else None
        if sequence_length:
            config = sequence_config(base, sequence_length, named=config)
        if config is not None:
            builder_kwargs["config"] = config
        try:
            return PROJECT_BUILDERS[base](data_dir=data_dir, file_format="array_record", **builder_kwargs)
        except ValueError as error:  # TFDS's "BuilderConfig ... not found"
            configs = ", ".join(f"{base}/{c}" for c in PROJECT_BUILDERS[base].builder_configs)
            raise InputError("config.data.name", "unknown dataset config", got=name,
                             expected=configs or f"{base} without a config") from error
    catalog = tfds.list_builders(with_community_datasets=False)
    if base not in catalog:
        suggestion = did_you_mean(base, list(PROJECT_BUILDERS) + catalog)
        raise InputError("config.data.name", "unknown dataset", got=name,
                         expected="a jaxdl builder (" + ", ".join(PROJECT_BUILDERS) + ") or a TFDS catalog name",
                         hint=f"did you mean {suggestion!r}?" if suggestion else None)
    return tfds.builder(name, data_dir=data_dir, **builder_kwargs)


def sequence_config(base: str, length: int, named: str | None) -> tfds.core.BuilderConfig:
    """The builder config of project builder `base` for sequences of `length`."""
    builder = PROJECT_BUILDERS[base]
    if not issubclass(builder, SequenceBuilder):
        raise InputError("config.data.sequence_length", f"{base!r} has examples of a fixed size", got=length,
                         expected="0 (the dataset's own size)")
    check_range("config.data.sequence_length", length, low=builder.MIN_LENGTH, integer=True)
    if named is not None and named != f"length_{length}":
        raise InputError("config.data.sequence_length", "conflicts with the config in config.data.name",
                         got=length, expected=f"{named} or a name without '/{named}'")
    return builder.config_for_length(length)


def data_sources(builder: tfds.core.DatasetBuilder, splits: Sequence[str], *, download: bool = False) -> dict:
    """Random access to each split's decoded examples over its ArrayRecord files (`as_data_source`),
    the set prepared first (a project builder) or on request (`download`, a catalog set)."""
    name = builder.name
    prepare_project_builder(builder)
    try:
        sources = {split: builder.as_data_source(split=split) for split in splits}
    except Exception as error:  # noqa: BLE001 (TFDS raises several kinds for an unprepared set)
        if builder.is_prepared():
            raise
        if not download:
            raise InputError("config.data.name", f"catalog dataset {name!r} is not prepared in "
                             f"{builder.data_dir_root}",
                             hint=PREPARE_HINT.format(name=name, dir=builder.data_dir_root)) from error
        prepare(builder)
        sources = {split: builder.as_data_source(split=split) for split in splits}
    return sources


def is_project_builder(builder: tfds.core.DatasetBuilder) -> bool:
    """A builder of jaxdl's (prepared on first use, offline): a PROJECT_BUILDERS set or the user's own
    files (`jaxdl.data.sources`, whose builders set OWN_FILES)."""
    return builder.name in PROJECT_BUILDERS or getattr(builder, "OWN_FILES", False)


def prepare_project_builder(builder: tfds.core.DatasetBuilder) -> None:
    """Prepares a project builder on first use (offline); catalog builders are left alone."""
    if is_project_builder(builder) and not builder.is_prepared():
        tfds.display_progress_bar(False)
        try:
            # TFDS prints "Downloading and preparing ..." on stdout, which holds only the final table
            # (and stderr only progress and `error:` lines); nothing is downloaded here anyway.
            with contextlib.redirect_stdout(io.StringIO()):
                builder.download_and_prepare(file_format="array_record")
        except ModuleNotFoundError as error:
            # TFDS sorts a split's examples in memory up to about 1 GB and spills larger ones to disk
            # through TensorFlow's file layer, which the default install leaves out.
            raise InputError("config.data.name", f"preparing {builder.name!r} needs {error.name!r} (a split of "
                             "more than about 1 GB is sorted on disk through TensorFlow)",
                             hint="pip install 'jaxdl[catalog]'") from error
        except OSError as error:
            raise InputError("config.data.data_dir", f"cannot prepare {builder.name!r} there "
                             f"({error.strerror or error})", got=builder.data_dir_root,
                             expected="a writable folder") from error


def prepare(builder: tfds.core.DatasetBuilder) -> None:
    """Downloads and prepares a catalog dataset as ArrayRecord; a clear error when that cannot work."""
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=10).close()
    except OSError as error:
        raise InputError("config.data.name", f"cannot download {builder.name!r}: no network "
                         f"({DOWNLOAD_HOST[0]} unreachable: {error})",
                         hint=OFFLINE_HINT.format(name=builder.name, dir=builder.data_dir_root)) from error
    try:
        builder.download_and_prepare(file_format="array_record")
    except ModuleNotFoundError as error:
        raise InputError("config.data.name", f"preparing {builder.name!r} needs {error.name!r}",
                         hint="pip install 'jaxdl[catalog]'") from error
    except OSError as error:
        raise InputError("config.data.name", f"could not download {builder.name!r} ({error})",
                         hint=PREPARE_HINT.format(name=builder.name, dir=builder.data_dir_root)) from error


def available_splits(builder: tfds.core.DatasetBuilder) -> list[str]:
    """The split names the builder declares; ['train', 'test'] when they are not known yet.

    A project builder is prepared first, so that its own splits (e.g. a validation split) are known.
    """
    prepare_project_builder(builder)
    known = list(builder.info.splits.keys())
    return known or ["train", "test"]


def stack_feature(examples: list[dict], key: str) -> np.ndarray:
    """Stacks one feature of a list of examples into an array (N, ...)."""
    return np.stack([np.asarray(example[key]) for example in examples])
