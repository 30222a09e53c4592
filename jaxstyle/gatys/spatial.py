"""One very large image split over devices: its height (and width) sharded over a mesh.

XLA's SPMD partitioner does the halo exchange of every 3x3 convolution (collective-permutes of
one row/column), and the Grams contract over the sharded axes into a replicated (C, C) with one
all-reduce, so no activation is ever gathered on one device. VGG pools four times before
block5, so the image is resized to a multiple of 16 x the shards per axis: every pooling
window then lies inside one shard and every shard keeps a whole number of rows at each layer.
The output is resized back to the content's size.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxstyle.gatys.state import StyleState
from jaxstyle.mesh import COLS, ROWS, replicated
from jaxstyle.objective import Targets

POOLING_FACTOR = 16  # four 2x2 poolings before block5


def spatial_multiple(mesh: Mesh) -> tuple[int, int]:
    """Height and width must be multiples of these on `mesh`."""
    return POOLING_FACTOR * mesh.shape[ROWS], POOLING_FACTOR * mesh.shape[COLS]


def round_up_size(size: tuple[int, int], mesh: Mesh) -> tuple[int, int]:
    """`size` rounded up to the mesh's multiples (at most 16 x shards - 1 px more per axis)."""
    (height, width), (rows, cols) = size, spatial_multiple(mesh)
    return math.ceil(height / rows) * rows, math.ceil(width / cols) * cols


def _spatial_spec(mesh: Mesh, ndim: int, channels_last: bool) -> NamedSharding:
    """(..., H, W, C) or (..., H, W) split over rows and cols."""
    spatial = (ROWS, COLS, None) if channels_last else (ROWS, COLS)
    return NamedSharding(mesh, P(*([None] * (ndim - len(spatial))), *spatial))


def spatial_shardings(mesh: Mesh, targets: Targets,
                      state: StyleState) -> tuple[NamedSharding, Targets, StyleState]:
    """(params, targets, state) shardings: images, features and masks split spatially;
    Grams, weights and scalars replicated."""
    rep = replicated(mesh)

    def image_like(leaf: Any) -> NamedSharding:
        rank = len(getattr(leaf, "shape", ()))  # arrays or abstract ShapeDtypeStructs
        return _spatial_spec(mesh, rank, True) if rank >= 4 else rep

    # Targets' pytree structure with a sharding for each leaf (`_make` takes any leaves).
    target_shardings = Targets._make((
        {k: _spatial_spec(mesh, len(v.shape), True) for k, v in targets.content.items()},
        {k: rep for k in targets.style},
        None if targets.masks is None else
        {k: _spatial_spec(mesh, len(v.shape), False) for k, v in targets.masks.items()},
        None if targets.weights is None else {k: rep for k in targets.weights}))
    return rep, target_shardings, jax.tree.map(image_like, state)


__all__ = ["POOLING_FACTOR", "round_up_size", "spatial_multiple", "spatial_shardings"]
