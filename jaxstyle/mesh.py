"""Devices and hosts, shared by every engine: the multi-controller runtime, meshes, shardings,
and global batches built from each process's share.

JAX's own runtime is the scheduler: `jax.distributed` joins the processes, a `Mesh` over all
devices names the axes, `NamedSharding` says where each array lives, and XLA's partitioner
inserts the collectives. Nothing here starts processes or moves work between hosts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxstyle.errors import ConfigError

DATA = "data"  # the batch axis of a data-parallel mesh
ROWS, COLS = "rows", "cols"  # the image axes of a spatial mesh
# Auto axes: XLA's partitioner propagates shardings through reshapes and convolutions (the
# default, explicit axes, would make every reshape of a sharded activation spell out its
# output sharding).
AUTO = AxisType.Auto

# Environment variables by which a launcher names a coordinator (jax.distributed detects them).
_CLUSTER_HINTS = ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES",
                  "MEGASCALE_COORDINATOR_ADDRESS")


def cluster_in_environment() -> bool:
    """True when the environment names a coordinator: set by hand, a TPU pod, or SLURM."""
    if any(os.environ.get(name) for name in _CLUSTER_HINTS):
        return True
    return int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in os.environ


def initialize_distributed(enable: bool = False, coordinator: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None) -> bool:
    """Join the multi-process runtime when asked (`enable`, or any argument) or when the
    environment names a coordinator; returns whether it did. Must run before any computation.

    On CPU the processes exchange data over gloo. Arguments left None are detected by JAX
    (TPU pod metadata, SLURM variables, JAX_COORDINATOR_ADDRESS).
    """
    explicit = coordinator is not None or num_processes is not None or process_id is not None
    if not (enable or explicit or cluster_in_environment()):
        return False
    if (num_processes is None) != (process_id is None) or \
            (explicit and coordinator is None and "JAX_COORDINATOR_ADDRESS" not in os.environ):
        raise ConfigError("give --coordinator HOST:PORT, --num-processes and --process-id "
                          "together (or none, to detect them)")
    if coordinator is None:
        coordinator = os.environ.get("JAX_COORDINATOR_ADDRESS")
    platforms = jax.config.jax_platforms  # type: ignore[attr-defined]  # set dynamically, unstubbed
    if platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"could not join the distributed runtime: {exc}") from None
    return True


def data_mesh(devices: Sequence | None = None) -> Mesh:
    """A 1-D mesh over all devices of all processes (or `devices`), axis 'data'."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (DATA,), axis_types=(AUTO,), devices=devices)


def spatial_mesh(rows: int, cols: int = 1) -> Mesh:
    """A rows x cols mesh over the devices, for splitting one image's height and width."""
    if rows * cols != jax.device_count():
        raise ConfigError(f"--mesh {rows}x{cols} needs {rows * cols} devices, "
                          f"found {jax.device_count()}")
    return jax.make_mesh((rows, cols), (ROWS, COLS), axis_types=(AUTO, AUTO))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over 'data', every other axis whole."""
    return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (VGG params, network weights)."""
    return NamedSharding(mesh, P())


def padded_size(count: int, multiple: int) -> int:
    """`count` rounded up to a multiple (a batch must split evenly over the devices)."""
    return max(multiple, math.ceil(count / multiple) * multiple)


def process_slice(global_size: int) -> slice:
    """This process's contiguous share of a global batch of `global_size` (a multiple of the
    process count), in the order `make_array_from_process_local_data` expects."""
    count, index = jax.process_count(), jax.process_index()
    if global_size % count:
        raise ValueError(f"global batch {global_size} does not split over {count} processes")
    share = global_size // count
    return slice(index * share, (index + 1) * share)


def global_batch(tree: Any, sharding: NamedSharding, global_size: int) -> Any:
    """Each leaf's local rows (this process's share) -> one global array sharded by `sharding`."""
    def build(local: Any) -> jax.Array:
        local = np.asarray(local)
        return jax.make_array_from_process_local_data(sharding, local,
                                                      (global_size,) + local.shape[1:])
    return jax.tree.map(build, tree)


def local_rows(array: jax.Array) -> np.ndarray:
    """The rows of a batch-sharded global array that live on this process, in order."""
    if array.is_fully_addressable:
        return np.asarray(array)
    shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start or 0)
    seen, rows = set(), []
    for shard in shards:
        start = shard.index[0].start or 0
        if start not in seen:  # replicated axes give several copies of the same rows
            seen.add(start)
            rows.append(np.asarray(shard.data))
    return np.concatenate(rows)


__all__ = ["DATA", "COLS", "ROWS", "batch_sharding", "cluster_in_environment", "data_mesh",
           "global_batch", "initialize_distributed", "local_rows", "padded_size",
           "process_slice", "replicated", "spatial_mesh"]
