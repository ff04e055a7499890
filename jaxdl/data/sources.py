"""The user's own files behind the one TFDS door: `folder:PATH`, `csv:PATH`, `npz:PATH`.

`data.name = "<kind>:<path>"` names a source. Each kind is a TFDS builder of the project
(`jaxdl/data/<kind module>.py`) that prepares the files once into ArrayRecord under
`data.data_dir`, in a builder config named by a fingerprint of the source files (paths, sizes,
modification times) and of the options that shape the prepared examples, so changed files are
prepared again and unchanged ones are read back. Bad input is found before anything is written.

A kind registers itself in `KINDS` with a function
`(path: str, data_config: ConfigDict, data_dir: str) -> tfds.core.DatasetBuilder`.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections
import tensorflow_datasets as tfds

from jaxdl.errors import InputError

BuilderFactory = Callable[[str, ml_collections.ConfigDict, str], tfds.core.DatasetBuilder]

# kind -> factory; filled by the kind modules below (imported at the end of this file).
KINDS: dict[str, BuilderFactory] = {}


def split_name(name: str) -> tuple[str, str] | None:
    """("folder", "PATH") for "folder:PATH"; None for a TFDS name (which never holds a ':' before a '/')."""
    kind, sep, path = name.partition(":")
    if not sep or "/" in kind or kind not in KINDS:
        return None
    if not path:
        raise InputError("config.data.name", f"{kind}: needs a path", got=name, expected=f"{kind}:PATH")
    return kind, path


def is_source(name: str) -> bool:
    return split_name(name) is not None


def get_source_builder(name: str, data_config: ml_collections.ConfigDict, data_dir: str) -> tfds.core.DatasetBuilder:
    """The (checked, not yet prepared) builder of source `name`."""
    kind, path = split_name(name)
    return KINDS[kind](path, data_config, data_dir)


# The kinds (imported last: each kind module imports only lower modules, never this one).
from jaxdl.data import arrays, folder, table  # noqa: E402

KINDS.update(csv=table.csv_builder, folder=folder.builder, npz=arrays.npz_builder)
