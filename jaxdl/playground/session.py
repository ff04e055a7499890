"""One browser tab's playground: its settings, points, and the training state of its members.

A `Session` trains one member (play) or 2..8 variants of it side by side ("compare": the same
network and points, one field varied), all as one vmapped call of `jaxdl.playground.chunk`. A
call runs as many epochs as fit in about `TARGET_SECONDS` (measured on the session's own
previous calls), so the page updates often whatever the network's size. `Sessions` holds at
most `max_sessions` of them and frees those idle for `idle_seconds`.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import threading
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.data.playground import GENERATORS, REGRESSION_GENERATORS, generate, make_config
from jaxdl.errors import InputError
from jaxdl.playground import chunk, network
from jaxdl.playground.settings import Settings

POINTS = 1200  # every set is padded to this many points: one shape for all
CLASSIFICATION_POINTS, REGRESSION_POINTS = 500, 1200  # as the playground
TARGET_SECONDS = 0.04  # a call's training time the epoch count aims at
MAX_EPOCHS_PER_CALL = 100


class SessionError(Exception):
    """A request the sessions cannot serve: HTTP `status` and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def make_points(settings: Settings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (n, 2) float32, targets (n,) float32: class 0 / 1 or the regression value, in_train (n,) bool)."""
    noise, fraction = settings.noise / 100.0, settings.train_percent / 100.0
    if settings.dataset in GENERATORS:
        config = make_config(num_examples=CLASSIFICATION_POINTS, noise=noise, train_fraction=fraction,
                             seed=settings.seed, where="settings")
        points, labels, in_train = generate(settings.dataset, config)
        return points, labels.astype(np.float32), in_train
    rng = np.random.default_rng([settings.seed, zlib.crc32(settings.dataset.encode())])
    points, targets = REGRESSION_GENERATORS[settings.dataset](rng, REGRESSION_POINTS, noise)
    in_train = np.zeros(REGRESSION_POINTS, bool)
    in_train[rng.permutation(REGRESSION_POINTS)[: int(round(fraction * REGRESSION_POINTS))]] = True
    return points.astype(np.float32), targets.astype(np.float32), in_train


def padded_data(points: np.ndarray, targets: np.ndarray, in_train: np.ndarray, regression: bool) -> chunk.Data:
    """The points padded to POINTS (padding is neither train nor test)."""
    n = len(points)
    pad = lambda a: np.concatenate([a, np.zeros((POINTS - n, *a.shape[1:]), a.dtype)])
    train = pad(in_train.astype(np.float32))
    test = pad((~in_train).astype(np.float32))
    return chunk.Data(pad(points), pad(targets), train, test, np.bool_(regression))


def hyper_of(settings: Settings) -> chunk.Hyper:
    """The arrays of one member's setting."""
    rate = np.float32(settings.regularization_rate)
    return chunk.Hyper(arch=network.make_arch(settings.features, settings.hidden, settings.regression),
                       activation=np.int32(network.ACTIVATION_NAMES.index(settings.activation)),
                       learning_rate=np.float32(settings.learning_rate),
                       l1=rate if settings.regularization == "L1" else np.float32(0),
                       l2=rate if settings.regularization == "L2" else np.float32(0),
                       batch_size=np.int32(settings.batch_size), adam=np.bool_(settings.optimizer == "adam"))


def encode(values: np.ndarray) -> str:
    """uint8 array -> base64 text (the page decodes it into the canvas)."""
    return base64.b64encode(np.ascontiguousarray(values, np.uint8).tobytes()).decode("ascii")


class Session:
    """A tab's settings, points and stacked training state. Thread-safe: one call at a time."""

    def __init__(self, settings: Settings):
        self.id = secrets.token_urlsafe(12)
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.seconds_per_epoch = 0.005  # a first guess, replaced by measurements
        self.configure(settings)

    def configure(self, settings: Settings, vary: str | None = None, values: list | None = None) -> None:
        """New settings (and "compare" variants of one field): new points and fresh weights."""
        self.settings, self.vary = settings, vary
        self.members = ([dataclasses.replace(settings, **{vary: value}) for value in values] if vary
                        else [settings])
        self.labels = [f"{vary} {value}" for value in values] if vary else [""]
        points, targets, in_train = make_points(settings)
        self.points = (points, targets, in_train)
        self.data = jax.device_put(padded_data(points, targets, in_train, settings.regression))
        self.hyper = jax.device_put(chunk.stack([hyper_of(member) for member in self.members]))
        self.reset()

    def reset(self) -> None:
        seeds = jnp.full((len(self.members),), self.settings.seed, jnp.int32)
        self.state = chunk.init_states(seeds, self.hyper)
        self.train_losses: list[list[float]] = [[] for _ in self.members]
        self.view = None

    def step(self, epochs: int | None) -> dict:
        """Trains `epochs` epochs (None: as many as fit in TARGET_SECONDS; 0: none) and returns the view."""
        if epochs is None:
            epochs = int(np.clip(TARGET_SECONDS / self.seconds_per_epoch, 1, MAX_EPOCHS_PER_CALL))
        started = time.perf_counter()
        self.state, out = chunk.train_chunk(self.state, self.hyper, self.data, jnp.int32(epochs))
        out = jax.device_get(out)
        params = jax.device_get(jax.tree.map(lambda a: a[0], self.state.params))
        seconds = time.perf_counter() - started
        if epochs:
            measured = seconds / epochs
            self.seconds_per_epoch = 0.5 * self.seconds_per_epoch + 0.5 * measured
        return self.describe(out, params, epochs, seconds)

    def describe(self, out: dict, params: dict, epochs: int, seconds: float) -> dict:
        """The JSON view: epoch, losses and surfaces of every member, member 0's tiles and weights."""
        regression = self.settings.regression
        kernel = params["out_kernel"]
        out_weights = kernel[:, 0] if regression else kernel[:, 1] - kernel[:, 0]  # what moves the shown value
        members = [{"label": label, "train_loss": float(out["train_loss"][i]), "test_loss": float(out["test_loss"][i]),
                    "output": encode(out["output"][i])} for i, label in enumerate(self.labels)]
        return {"session": self.id, "epoch": int(jax.device_get(self.state.epoch[0])), "epochs": epochs,
                "seconds": round(seconds, 5), "members": members, "tiles": encode(out["tiles"][0]),
                "grid": chunk.OUTPUT_GRID, "tile_grid": chunk.TILE_GRID, "extent": chunk.EXTENT,
                "weights": {"hidden": np.round(params["hidden_kernel"], 4).tolist(),
                            "output": np.round(out_weights, 4).tolist()}}

    def point_list(self) -> list[list[float]]:
        """[[x1, x2, target, 1 if train else 0], ...] of every point, for the page's plot."""
        points, targets, in_train = self.points
        return np.round(np.column_stack([points, targets, in_train]), 4).tolist()

    def host_state(self) -> tuple[dict, int]:
        """(member 0's params as numpy, epochs done)."""
        params = jax.device_get(jax.tree.map(lambda a: a[0], self.state.params))
        return params, int(jax.device_get(self.state.epoch[0]))


class Sessions:
    """At most `max_sessions` sessions; those idle for `idle_seconds` are freed when room is needed
    (and on `sweep`)."""

    def __init__(self, max_sessions: int = 16, idle_seconds: float = 600.0):
        self.max_sessions, self.idle_seconds = max_sessions, idle_seconds
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()

    def sweep(self) -> int:
        """Frees the idle sessions; returns how many are left."""
        now = time.monotonic()
        with self.lock:
            for key in [k for k, s in self.sessions.items() if now - s.last_used > self.idle_seconds]:
                del self.sessions[key]
            return len(self.sessions)

    def create(self, settings: Settings) -> Session:
        if self.sweep() >= self.max_sessions:
            raise SessionError(429, f"all {self.max_sessions} sessions are in use; close a tab or try again when "
                                    f"one has been idle for {self.idle_seconds:g} s")
        session = Session(settings)
        with self.lock:
            self.sessions[session.id] = session
        return session

    def get(self, key: str) -> Session:
        with self.lock:
            session = self.sessions.get(key)
        if session is None:
            raise SessionError(404, f"no session {key[:40]!r} (freed after {self.idle_seconds:g} s idle, or the server "
                                    "restarted); reload the page")
        session.last_used = time.monotonic()
        return session

    def close(self, key: str) -> None:
        with self.lock:
            self.sessions.pop(key, None)


__all__ = ["InputError", "Session", "SessionError", "Sessions"]
