"""Type aliases shared by jaxstyle's annotations.

`ArrayLike` (jax.typing's): anything JAX turns into an array: a JAX or NumPy array, a NumPy
scalar, a Python number. `AnyArray`: a JAX or NumPy array (it has `.shape`, `.ndim`, `.dtype`
and can be indexed), what functions that read an argument's shape before converting it take.
`ParamTree`: a network's weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

import jax
import numpy as np
from jax.typing import ArrayLike

AnyArray = Union[jax.Array, np.ndarray]
# Network weights as flax keeps them: nested {layer: {"kernel": ..., "bias": ...}} mappings of
# JAX or NumPy arrays (VGG19's `{'block1_conv1': {'kernel', 'bias'}, ...}` and the models').
ParamTree = Mapping[str, Any]

__all__ = ["AnyArray", "ArrayLike", "ParamTree"]
