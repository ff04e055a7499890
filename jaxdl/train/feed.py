"""The epochs of the streamed pipeline (`data.pipeline=stream`): chunks read while the devices train.

An epoch of S steps is C = ceil(S / R) chunks of R steps. Grain's threads read the chunks of the
run ahead of time (`jaxdl.data.stream.StreamSplit.chunks`, each process only its own rows of every
global batch, in the stored dtype). The host cuts each chunk into pieces of K steps
(`train.steps_per_call`; R is a multiple of K), turns each piece into one global array sharded over
the batch axis (`jax.make_array_from_process_local_data`), and runs it as one compiled call: the
memory pipeline's calls (`jaxdl.train.calls`), the same `train_step`. The order of the examples is
the memory pipeline's (`host_epoch_order`), so both give the same bits. At most two chunks are on
the devices at a time, and a few on the host: memory does not grow with the set.
"""

from __future__ import annotations

import functools
import time

import jax
import numpy as np
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.data.stream import StreamSplit, chunks_per_epoch
from jaxdl.train import calls
from jaxdl.train.state import stream_keys
from jaxdl.train.step import host_epoch_order

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
    """Runs whole epochs of a streamed split: `run(fit_state, val_batches) -> (fit_state, metrics)`, like
    `jaxdl.train.calls.MemoryEpochs`, with the same step calls. Each chunk read is cut into pieces of K
    steps (`steps_per_call`; the epoch's last piece padded to K), each piece one call. `waits` holds, per
    epoch run, the time the loop waited for chunks to be read."""

    def __init__(self, split: StreamSplit, *, mesh: Mesh, batch_size: int, chunk_steps: int, first_epoch: int,
                 epochs: int, order_key: np.ndarray, finish, skip_nonfinite: bool,
                 steps_per_call: int | str = calls.AUTO):
        self.split, self.steps, self.batch_size = split, len(split) // batch_size, batch_size
        self.read_steps, self.first_epoch, self.epochs = chunk_steps, first_epoch, epochs
        self.sharding = parallel.batch_sharded(mesh, axis=1)
        self.rows = local_rows(self.sharding, batch_size)
        self.order = functools.partial(host_epoch_order, order_key, num_examples=len(split), batch_size=batch_size)
        self.skip_nonfinite, self.steps_per_call = skip_nonfinite, steps_per_call
        self.batch_sharding = parallel.batch_sharded(mesh)
        call = functools.partial(calls.stream_call, batch_sharding=self.batch_sharding, skip_nonfinite=skip_nonfinite)
        self.programs = {single: jax.jit(functools.partial(call, single=single), donate_argnums=(0, 1))
                         for single in (True, False)}
        self.finish = jax.jit(calls.solo_finish(finish), donate_argnums=(0,))
        self.begin = None
        self.k = self.chunks = self.choice = None
        self.waits = []  # seconds the loop waited for chunks, per epoch run

    def global_array(self, local: np.ndarray) -> jax.Array:
        """A piece's (k, rows, ...) local part -> the global (k, batch_size, ...) array, batch-sharded."""
        shape = (local.shape[0], self.batch_size, *local.shape[2:])
        return jax.make_array_from_process_local_data(self.sharding, local, shape)

    def pieces(self, chunk: dict, k: int):
        """A chunk read {"x": (n, rows, ...), ...} -> global pieces of k steps (the last zero-padded to k)."""
        n = len(chunk["y"])
        for start in range(0, n, k):
            piece = {key: value[start:start + k] for key, value in chunk.items()}
            if len(piece["y"]) < k:
                piece = {key: np.concatenate([value, np.zeros((k - len(value), *value.shape[1:]), value.dtype)])
                         for key, value in piece.items()}
            yield {key: self.global_array(value) for key, value in piece.items()}

    def prepare(self, state, *, epochs: int, quiet: bool = True) -> calls.Choice:
        """Settles K (timing the candidates on the epoch's first steps when "auto") and starts reading."""
        first = self.split.read(self.order(self.first_epoch)[:calls.trial_steps(self.steps) * self.batch_size])
        first = {key: value.reshape(-1, self.batch_size, *value.shape[1:])[:, self.rows]
                 for key, value in first.items()}
        # a one-step piece, abstract, placed as the pieces are
        piece = {key: jax.ShapeDtypeStruct((1, self.batch_size, *value.shape[2:]), value.dtype, sharding=self.sharding)
                 for key, value in first.items()}
        dtypes = calls.piece_metric_dtypes(state, piece, batch_sharding=self.batch_sharding,
                                           skip_nonfinite=self.skip_nonfinite)
        replicated = parallel.replicated(self.sharding.mesh)
        self.begin = lambda: ({name: jax.device_put(np.zeros((self.steps,), dtype), replicated)
                               for name, dtype in dtypes.items()}, jax.device_put(np.int32(0), replicated))
        if self.steps_per_call == calls.AUTO:
            # the one-step program names the run: the loop's pieces are K steps long, so its shape changes with K
            program = calls.signature(self.programs[True].lower(state, *self.begin(), piece))
            self.choice = calls.choose(functools.partial(self.trial, state, first), calls.AUTO_CANDIDATES,
                                       quiet=quiet, total_steps=epochs * self.steps, program=program)
        else:
            self.choice = calls.Choice(self.steps_per_call)
        self.k = calls.steps_of(self.choice.value, min(self.read_steps, self.steps))
        read_steps = max(self.k, self.read_steps // self.k * self.k)
        self.per_epoch = chunks_per_epoch(self.steps, read_steps)
        self.metrics, self.position = self.begin()
        self.chunks = self.split.chunks(self.order, batch_size=self.batch_size, chunk_steps=read_steps, rows=self.rows,
                                        first=self.first_epoch * self.per_epoch, last=self.epochs * self.per_epoch)
        return self.choice

    def trial(self, state, first: dict, candidate: int | str) -> float:
        """Seconds per step of `candidate` over the epoch's first steps (`first`), trained on a copy of `state`."""
        steps = len(first["y"])
        k = calls.steps_of(candidate, min(self.read_steps, steps))
        copy = jax.jit(calls.copy_state)(state)
        metrics, position = self.begin()
        program = self.programs[k == 1]

        def run():
            nonlocal copy, metrics, position
            for piece in self.pieces(first, k):
                copy, metrics, position = program(copy, metrics, position, piece)
            return position

        return calls.timed(run) / steps

    def run(self, fit_state, val_batches):
        state, rest = fit_state.train, fit_state.replace(train=None)
        metrics, position = self.metrics, self.position
        program, previous = self.programs[self.k == 1], None
        self.waits.append(0.0)
        for _ in range(self.per_epoch):
            tick = time.perf_counter()
            chunk = next(self.chunks)
            self.waits[-1] += time.perf_counter() - tick
            for piece in self.pieces(chunk, self.k):
                state, metrics, position = program(state, metrics, position, piece)
            if previous is not None:  # at most two chunks on the devices: memory stays bounded
                jax.block_until_ready(previous)
            previous = position
        self.metrics, self.position = metrics, position
        fit_state, metrics = self.finish(rest, state, metrics, val_batches)
        return fit_state.replace(train=state), metrics


def order_key_of(state) -> np.ndarray:
    """The run's data-order key (`stream_keys(state)[1]`) on the host, from a replicated state."""
    return np.asarray(jax.jit(lambda state: stream_keys(state)[1])(state).addressable_data(0))
