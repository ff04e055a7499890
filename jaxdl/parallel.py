"""One code path for 1 to N devices and 1 to P processes: a mesh with a `data` axis, and where arrays live on it.

Batches are sharded along `data`; parameters, optimizer state and the (small) datasets are
replicated. XLA's SPMD partitioner turns the batch sharding into data parallelism, with the
gradient all-reduce and global batch-norm statistics included, and no `pmap`. A stack of runs
(a sweep) is split along `data` by member instead, when the member count allows it.

Many processes (`jax.distributed`, started by the command line): the mesh spans the devices of all
processes. Every process holds the same (small) host arrays, so `jax.device_put` of a host array
onto a replicated sharding builds the global array from each process's local copy. A process can
only read the shards on its own devices, so values come to the host through `host_get` (a
process allgather for a sharded array), never `jax.device_get`. Decisions that must be the same
everywhere (stop now? checkpoint now?) go through `agree`. Process 0 (`is_leader`) writes the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdl.errors import InputError

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over `devices` (default: all) with axis name `data`."""
    devices = list(devices if devices is not None else jax.devices())
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Dimension `axis` (the batch) is split across the `data` axis."""
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), DATA_AXIS))


def splits_members(mesh: Mesh, count: int) -> bool:
    """Whether a stack of `count` runs is split across the devices (a multiple of the device count)."""
    devices = mesh.devices.size
    return devices > 1 and count % devices == 0


def stacked(mesh: Mesh, count: int) -> NamedSharding:
    """Where a stack of `count` runs lives: its leading (member) axis split across `data` when
    `count` is a multiple of the device count, each device training whole members; else replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS)) if splits_members(mesh, count) else replicated(mesh)


def check_batch_size(where: str, batch_size: int, mesh: Mesh) -> None:
    """A batch must split evenly over the devices."""
    count = mesh.devices.size
    if batch_size % count:
        raise InputError(where, f"batch size must be divisible by the device count ({count})",
                         got=batch_size, expected=f"a multiple of {count}")


def describe_devices(mesh: Mesh) -> dict:
    """{"count": N, "kind": "cpu" / device kind, "platform": ...} for summaries."""
    first = mesh.devices.flat[0]
    return {"count": int(mesh.devices.size), "kind": first.device_kind, "platform": first.platform}


def is_leader() -> bool:
    """Whether this process writes the run's files and shows progress (process 0; always, for one process)."""
    return jax.process_index() == 0


def describe_processes() -> int:
    """The number of processes the mesh spans (summary.json "processes")."""
    return jax.process_count()


def host_get(tree: Any) -> Any:
    """`jax.device_get` that also works on arrays spanning other processes' devices.

    A replicated array is read from a local shard; a sharded one is gathered from all processes
    (a collective: every process must call `host_get` on the same arrays, in the same order).
    With one process it is `jax.device_get`.
    """
    if jax.process_count() == 1:
        return jax.device_get(tree)

    def get(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return jax.device_get(leaf)
        if leaf.is_fully_replicated:
            return np.asarray(leaf.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree.map(get, tree)


def agree(flags: Sequence[bool]) -> list[bool]:
    """Each flag OR-ed over all processes (one small allgather; a collective, as `host_get`).

    For decisions every process must take alike although each judges alone: a stop signal that
    reached one process, a checkpoint due by one process's clock.
    """
    if jax.process_count() == 1:
        return [bool(flag) for flag in flags]
    gathered = multihost_utils.process_allgather(np.asarray(flags, np.int32))
    return [bool(value) for value in np.asarray(gathered).reshape(-1, len(flags)).any(axis=0)]


def mean_over_processes(values: Sequence[float]) -> list[float]:
    """Each value averaged over all processes (one small allgather; a collective): a measurement
    every process must act on alike, e.g. timings that pick a program."""
    if jax.process_count() == 1:
        return [float(value) for value in values]
    gathered = multihost_utils.process_allgather(np.asarray(values, np.float64))
    return [float(value) for value in np.asarray(gathered).reshape(-1, len(values)).mean(axis=0)]


def sync(name: str) -> None:
    """Waits until every process reached the point called `name` (nothing to wait for with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
