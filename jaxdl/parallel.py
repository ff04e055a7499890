"""One code path for 1 to N devices: a mesh with a `data` axis, and where arrays live on it.

Batches are sharded along `data`; parameters, optimizer state and the (small) datasets are
replicated. XLA's SPMD partitioner turns the batch sharding into data parallelism, with the
gradient all-reduce and global batch-norm statistics included, and no `pmap`. A stack of runs
(a sweep) is split along `data` by member instead, when the member count allows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
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
