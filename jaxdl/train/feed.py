"""The epochs of the streamed pipeline (`data.pipeline=stream`): chunks read while the devices train.

An epoch of S steps is C = ceil(S / K) chunks of K steps. Grain's threads read the chunks of the
run ahead of time (`jaxdl.data.stream.StreamSplit.chunks`, each process only its own rows of every
global batch, in the stored dtype); the host turns each into one global array sharded over the
batch axis (`jax.make_array_from_process_local_data`) and one jitted `lax.scan` runs its K steps
(`jaxdl.train.step.train_chunk`, the same `train_step` as the memory pipeline). The order of the
examples is the memory pipeline's (`host_epoch_order`), so both give the same bits. At most two
chunks are on the devices at a time, and a few on the host: memory does not grow with the set.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.data.stream import StreamSplit, chunks_per_epoch
from jaxdl.train.state import stream_keys
from jaxdl.train.step import host_epoch_order, train_chunk

CHUNK_BYTES = 16 * 2**20  # inputs of one chunk when the caller does not choose K: small on the host, whole steps


def chunk_steps_for(split: StreamSplit, batch_size: int, requested: int = 0) -> int:
    """K: `requested`, or the steps whose inputs fill about CHUNK_BYTES; at least 1, at most an epoch."""
    steps = len(split) // batch_size
    if requested:
        return max(1, min(requested, steps))
    per_step = batch_size * int(np.prod(split.info.input_shape)) * split.input_dtype.itemsize
    return max(1, min(steps, CHUNK_BYTES // max(per_step, 1)))


def local_rows(sharding: jax.sharding.Sharding, batch_size: int) -> slice:
    """The rows of a global batch that this process's devices hold (every row with one process)."""
    spans = [index[1] for index in sharding.addressable_devices_indices_map((1, batch_size)).values()]
    return slice(min(span.start or 0 for span in spans), max(batch_size if span.stop is None else span.stop
                                                             for span in spans))


class StreamedEpochs:
    """Runs whole epochs of a streamed split: `run(fit_state) -> (fit_state, metrics)`, like the memory
    pipeline's compiled epoch. `waits` holds, per epoch run, the time the loop waited for chunks to be read."""

    def __init__(self, split: StreamSplit, *, mesh: Mesh, batch_size: int, chunk_steps: int, first_epoch: int,
                 epochs: int, order_key: np.ndarray, finish, skip_nonfinite: bool):
        self.steps = len(split) // batch_size
        self.chunk_steps = chunk_steps
        self.per_epoch = chunks_per_epoch(self.steps, chunk_steps)
        self.batch_size = batch_size
        self.sharding = parallel.batch_sharded(mesh, axis=1)
        order = functools.partial(host_epoch_order, order_key, num_examples=len(split), batch_size=batch_size)
        self.chunks = split.chunks(order, batch_size=batch_size, chunk_steps=chunk_steps,
                                   rows=local_rows(self.sharding, batch_size),
                                   first=first_epoch * self.per_epoch, last=epochs * self.per_epoch)
        self.train = jax.jit(functools.partial(train_chunk, batch_sharding=parallel.batch_sharded(mesh),
                                               skip_nonfinite=skip_nonfinite), donate_argnums=0)
        self.finish = jax.jit(finish, donate_argnums=0)
        self.waits = []  # seconds the loop waited for chunks, per epoch run

    def global_array(self, local: np.ndarray) -> jax.Array:
        """A chunk's (k, rows, ...) local part -> the global (k, batch_size, ...) array, batch-sharded."""
        shape = (local.shape[0], self.batch_size, *local.shape[2:])
        return jax.make_array_from_process_local_data(self.sharding, local, shape)

    def run(self, fit_state, val_batches):
        state, metrics, previous = fit_state.train, [], None
        self.waits.append(0.0)
        for _ in range(self.per_epoch):
            tick = time.perf_counter()
            chunk = next(self.chunks)
            self.waits[-1] += time.perf_counter() - tick
            state, step_metrics = self.train(state, {key: self.global_array(value) for key, value in chunk.items()})
            metrics.append(step_metrics)
            if previous is not None:  # at most two chunks on the devices: memory stays bounded
                jax.block_until_ready(previous)
            previous = step_metrics
        return self.finish(fit_state.replace(train=state), metrics, val_batches)


def order_key_of(state) -> np.ndarray:
    """The run's data-order key (`stream_keys(state)[1]`) on the host, from a replicated state."""
    return np.asarray(jax.jit(lambda state: stream_keys(state)[1])(state).addressable_data(0))


def concatenated(metrics: list[dict]) -> dict:
    """Per-step metrics of the chunks of an epoch -> one (steps,) array per name."""
    return {name: jnp.concatenate([m[name] for m in metrics]) for name in metrics[0]}
