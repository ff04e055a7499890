"""What the builders of the user's own files share (`csv:`, `npz:`; see `jaxdl.data.sources`).

A source is prepared into a builder config named by `fingerprint`: the files' paths, sizes and
modification times plus the options that shape the prepared examples, so a changed file or option
gives a new config folder and is prepared again. A failure while preparing leaves no dataset
folder behind that a later run could take for a prepared one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable

import tensorflow_datasets as tfds


def fingerprint(paths: Iterable[str], options: dict) -> str:
    """16 hex digits of sha256 over the sorted absolute paths, their sizes and mtimes, and `options`
    (a JSON-able dict)."""
    digest = hashlib.sha256()
    for path in sorted(os.path.abspath(p) for p in paths):
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclasses.dataclass(eq=False)
class SourceConfig(tfds.core.BuilderConfig):
    """A builder config named by `fingerprint`; the builder itself holds the checked data."""


class OwnFilesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders of the user's files: prepared on first use (`OWN_FILES`), offline.

    Subclasses are built by their kind's factory with an already checked source (so bad input never
    reaches `download_and_prepare`) and a `SourceConfig` named by its fingerprint.
    """

    OWN_FILES = True
    BUILDER_CONFIGS = []  # one config per fingerprint, made by the factory

    def download_and_prepare(self, *args, **kwargs):
        try:
            super().download_and_prepare(*args, **kwargs)
        except BaseException:
            # TFDS removes its temporary folder but leaves the (empty) config folder; remove the
            # empty folders up to data_dir so nothing of the failed attempt remains.
            remove_empty_parents(self.data_dir, self.data_dir_root)
            raise


def remove_empty_parents(path: str, stop: str) -> None:
    """Removes `path` and its parents while they are empty, up to (not including) `stop`."""
    path, stop = os.path.abspath(path), os.path.abspath(stop)
    while path.startswith(stop + os.sep):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:  # not empty: a prepared dataset or another config lives there
            return
        path = os.path.dirname(path)
