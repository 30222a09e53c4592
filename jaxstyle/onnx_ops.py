"""ONNX forms of jaxstyle's own operations, for `jaxstyle.export.onnx_model` only.

A reflect pad with fixed widths (every conv's) traces, under symbolic H and W, to a gather
of computed mirrored indices: about 16 ONNX nodes per pad (Range, Abs, Where, shape
arithmetic) and, in onnxruntime, a gather kernel per axis. ONNX has the operation itself,
`Pad(mode="reflect")`. While `reflect_pads_as_onnx()` is active, `layers.reflect_pad` binds
the `jaxstyle_reflect_pad` primitive, which jax2onnx lowers to that one node (the plugin
below, against jax2onnx's plugin interface: the export extra pins its version). Pads that
depend on the size (padding to a multiple) keep the gather.

Imported only when an ONNX file is made: it needs jax2onnx.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import numpy as np
from jax.extend.core import Primitive
from jax2onnx.plugins._ir_shapes import _ensure_value_metadata, _stamp_type_and_shape
from jax2onnx.plugins.plugin_system import PrimitiveLeafPlugin, register_primitive

from jaxstyle import layers

reflect_pad_p = Primitive("jaxstyle_reflect_pad")


def _bind(x: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
    return reflect_pad_p.bind(x, rows=tuple(rows), cols=tuple(cols))


reflect_pad_p.def_impl(lambda x, rows, cols: layers.mirror_pad_gather(x, rows, cols))
reflect_pad_p.def_abstract_eval(lambda x, rows, cols: jax.core.ShapedArray(
    (x.shape[0], x.shape[1] + sum(rows), x.shape[2] + sum(cols), *x.shape[3:]), x.dtype))


@contextlib.contextmanager
def reflect_pads_as_onnx():
    """Within: fixed-width reflect pads trace to the primitive ONNX writes as one Pad."""
    with layers.fixed_reflect_pad(_bind):
        yield


@register_primitive(jaxpr_primitive=reflect_pad_p.name, context="primitives.jaxstyle",
                    component="reflect_pad", since="jaxstyle",
                    onnx=[{"component": "Pad", "doc": "https://onnx.ai/onnx/operators/onnx__Pad.html"}],
                    testcases=[])
class ReflectPadPlugin(PrimitiveLeafPlugin):
    """jaxstyle_reflect_pad -> Pad(mode="reflect") on an (N, H, W, C) value."""

    def lower(self, ctx: Any, eqn: Any) -> None:
        (x_var,), (out_var,) = eqn.invars, eqn.outvars
        rows, cols = eqn.params["rows"], eqn.params["cols"]
        x = ctx.get_value_for_var(x_var, name_hint=ctx.fresh_name("reflect_pad_in"))
        out_spec = ctx.get_value_for_var(out_var, name_hint=ctx.fresh_name("reflect_pad_out"))
        rank = len(x_var.aval.shape)
        begins, ends = [0] * rank, [0] * rank
        begins[1], ends[1], begins[2], ends[2] = rows[0], rows[1], cols[0], cols[1]
        pads = ctx.builder.add_initializer_from_array(
            name=ctx.fresh_name("reflect_pads"), array=np.asarray(begins + ends, np.int64))
        _stamp_type_and_shape(pads, (2 * rank,))
        _ensure_value_metadata(ctx, pads)
        name = getattr(out_spec, "name", None) or ctx.fresh_name("reflect_pad_out")
        producer = getattr(out_spec, "producer", None)
        if callable(producer) and producer() is not None:
            name = ctx.fresh_name("reflect_pad_out")
        result = ctx.builder.Pad(x, pads, mode="reflect", _outputs=[name])
        for attribute in ("type", "shape"):
            if getattr(out_spec, attribute, None) is not None:
                setattr(result, attribute, getattr(out_spec, attribute))
        _ensure_value_metadata(ctx, result)
        ctx.bind_value_for_var(out_var, result)
