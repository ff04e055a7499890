"""The one path layer for workdir files: `etils.epath`, which TFDS and Orbax use too.

A workdir may be a local folder or a bucket URL (`gs://bucket/run`, or any scheme etils can reach).
Every file jaxdl writes or reads in a workdir goes through `epath.Path`; a local path is made
absolute first, as before, so local runs write the same files with the same bytes.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from typing import Any

from etils import epath

from jaxdl.errors import InputError

# Bucket schemes a command checks up front: (the package etils needs, the `pip install` extra, the host).
STORAGE = {"gs": ("gcsfs", "jaxdl[gcs]", "storage.googleapis.com")}
STORAGE_SECONDS = 10.0  # at most this long to find credentials and reach the storage host


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


def check_storage(path: Any, where: str = "--workdir") -> None:
    """For a bucket URL given on the command line: its package is installed, credentials are found and the
    storage host answers, within STORAGE_SECONDS; else one InputError (rather than an ImportError traceback,
    or a minute of retries logged by gcsfs). Nothing for a local path or another scheme."""
    text = os.fspath(path)
    scheme = text.partition("://")[0] if is_url(text) else ""
    if scheme not in STORAGE:
        return
    package, extra, host = STORAGE[scheme]
    if importlib.util.find_spec(package) is None:
        raise InputError(where, f"a {scheme}:// workdir needs {package}, which is not installed", got=text,
                         hint=f"pip install '{extra}'")
    found: dict = {}

    def look() -> None:
        try:
            found["problem"] = storage_problem(host)
        except Exception as error:  # noqa: BLE001 (any failure to check is said, not raised as a traceback)
            found["problem"] = f"cannot reach storage ({type(error).__name__}: {error})"

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    thread.join(STORAGE_SECONDS)
    problem = found.get("problem", f"cannot reach storage ({host}: no answer within {STORAGE_SECONDS:g} s)")
    if problem:
        raise InputError(where, problem, got=text, expected="a bucket this machine can reach with its credentials")


def storage_problem(host: str) -> str | None:
    """None when Google credentials are found and `host` answers on port 443; else what is wrong."""
    try:
        import google.auth
        import google.auth.exceptions
    except ImportError:
        return "no credentials (google-auth is not installed)"
    try:
        google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError:
        return ("no credentials (run `gcloud auth application-default login`, or set "
                "GOOGLE_APPLICATION_CREDENTIALS to a service account's key file)")
    try:
        socket.create_connection((host, 443), timeout=STORAGE_SECONDS / 2).close()
    except OSError as error:
        return f"cannot reach storage ({host}: {error.strerror or error})"
    return None
