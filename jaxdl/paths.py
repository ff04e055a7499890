"""The one path layer for workdir files: `etils.epath`, which TFDS and Orbax use too.

A workdir may be a local folder or a bucket URL (`gs://bucket/run`, or any scheme etils can reach).
Every file jaxdl writes or reads in a workdir goes through `epath.Path`; a local path is made
absolute first, as before, so local runs write the same files with the same bytes.
"""

from __future__ import annotations

import os
from typing import Any

from etils import epath


def is_url(path: Any) -> bool:
    """Whether `path` is a URL (`gs://...`), which `os.path` would mangle ("gs:/b")."""
    return "://" in os.fspath(path)


def as_path(path: Any, *, expanduser: bool = False) -> epath.Path:
    """`path` as an `epath.Path`: a URL as it is, a local path made absolute (`~` expanded if asked)."""
    if isinstance(path, epath.Path) and is_url(path):
        return path
    text = os.fspath(path)
    if is_url(text):
        return epath.Path(text)
    return epath.Path(os.path.abspath(os.path.expanduser(text) if expanduser else text))


def write_text_atomic(path: Any, text: str, *, encoding: str | None = None) -> None:
    """Writes `text` to `path` through a temporary name and a rename, so no reader sees half of it."""
    path = epath.Path(path)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(text, encoding=encoding)
    tmp.replace(path)


def save_figure(figure: Any, path: Any, **savefig_kwargs: Any) -> str:
    """`figure.savefig` into `path` (local or bucket) through epath; the format is the file's suffix."""
    path = epath.Path(path)
    with path.open("wb") as f:
        figure.savefig(f, format=path.suffix.lstrip("."), **savefig_kwargs)
    return os.fspath(path)


def join(workdir: Any, *names: str) -> str:
    """`workdir/names...` as a string (a URL stays a URL; a local path is absolute)."""
    return os.fspath(as_path(workdir).joinpath(*names))
