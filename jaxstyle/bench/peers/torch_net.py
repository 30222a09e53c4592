"""The feed-forward TransformerNet in PyTorch (eager) and as an ONNX file, from jaxstyle params.

Same maths as `jaxstyle.feedforward.network`, layer for layer: reflection padding to a multiple
of 4 (split between the sides) and a crop back, reflection-padded VALID convs (HWIO kernels
transposed to OIHW), instance norm over H, W with float32 statistics and eps 1e-5 followed by
per-image gamma, beta mixed from the S style rows by the style weights, nearest x2 upsampling,
a biased 9x9 output conv and a sigmoid. Images are NCHW here (NHWC in jaxstyle); `to_nchw` and
`to_nhwc` convert.

torch and onnx are imported only inside the functions that need them; a missing one raises
`PeerUnavailable`. Threads: nothing is set (torch and ONNX Runtime both default to one thread
per physical core).
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle.bench.peers import PeerUnavailable, missing_framework
from jaxstyle.errors import ConfigError

ONNX_OPSET = 17  # InstanceNormalization, Resize and reflect Pad all exist; ORT 1.x runs it


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise missing_framework("torch", exc) from None
    return torch


def layer_table() -> list[tuple[str, int, bool, bool]]:
    """(jaxstyle layer path, stride, normalised, ReLU) for every conv, in network order."""
    from jaxstyle.feedforward.network import NUM_RESIDUAL_BLOCKS

    table = [("encode0", 1, True, True), ("encode1", 2, True, True), ("encode2", 2, True, True)]
    for i in range(NUM_RESIDUAL_BLOCKS):
        table += [(f"residual{i}/first", 1, True, True), (f"residual{i}/second", 1, True, False)]
    table += [("decode0", 1, True, True), ("decode1", 1, True, True), ("output", 1, False, False)]
    return table


def _leaf(params: dict, path: str) -> np.ndarray:
    node = params
    for key in path.split("/"):
        if not isinstance(node, dict) or key not in node:
            raise ConfigError(f"params have no {path!r}")
        node = node[key]
    return np.asarray(node, dtype=np.float32)


def converted_weights(params: dict, num_styles: int, width: float) -> dict[str, np.ndarray]:
    """{layer/kernel: OIHW, layer/scale and layer/shift: (S, C), output/bias}, shapes checked.

    Each leaf is checked against `param_shapes(num_styles, width)`; the error names the layer.
    """
    from flax import traverse_util

    from jaxstyle.feedforward.network import param_shapes

    shapes = traverse_util.flatten_dict(param_shapes(num_styles, width))
    expected = {"/".join(path): leaf.shape for path, leaf in shapes.items()}
    weights = {}
    for name, _, normalised, _ in layer_table():
        conv = name if name == "output" else f"{name}/conv"
        leaves = {f"{name}/kernel": f"{conv}/kernel"}
        if normalised:
            leaves |= {f"{name}/scale": f"{name}/norm/scale", f"{name}/shift": f"{name}/norm/shift"}
        else:
            leaves[f"{name}/bias"] = f"{name}/bias"
        for key, path in leaves.items():
            value = _leaf(params, path)
            if value.shape != tuple(expected[path]):
                raise ConfigError(f"layer {path}: expected shape {tuple(expected[path])} for "
                                  f"{num_styles} style(s) at width {width}, got {value.shape}")
            if key.endswith("/kernel"):
                value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            weights[key] = np.ascontiguousarray(value)
    return weights


@functools.cache
def _module_class():
    """TorchTransformerNet, defined on first use so that importing this module needs no torch."""
    from jaxstyle.feedforward.network import INSTANCE_NORM_EPS, SIZE_MULTIPLE, padding_to_multiple

    torch = _import_torch()
    F = torch.nn.functional
    # A base class mypy accepts from a variable: torch is imported here, on first use.
    module: Any = torch.nn.Module

    class TorchTransformerNet(module):
        """(N,3,H,W) in [0,1], (N,S) style weights -> (N,3,H,W) float32 in (0,1)."""

        def __init__(self, weights: dict[str, np.ndarray], table: Any, num_styles: int):
            super().__init__()
            self.num_styles = num_styles
            self.table = table
            # Buffers, not Parameters: nothing here is trained, and autograd stays out of it.
            self._names = {}
            for key, value in weights.items():
                attribute = key.replace("/", "__")
                self._names[key] = attribute
                self.register_buffer(attribute, torch.from_numpy(value.copy()))

        def weight(self, key: str) -> Any:
            return getattr(self, self._names[key])

        def conv(self, x: Any, name: str, stride: int) -> Any:
            kernel = self.weight(f"{name}/kernel")
            pad = kernel.shape[-1] // 2
            x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
            bias = self.weight(f"{name}/bias") if name == "output" else None
            return F.conv2d(x, kernel, bias, stride=stride)

        def norm(self, x: Any, name: str, style_weights: Any) -> Any:
            # F.instance_norm's variance is the biased one, as in jaxstyle's instance_norm.
            gamma = style_weights @ self.weight(f"{name}/scale")
            beta = style_weights @ self.weight(f"{name}/shift")
            x = F.instance_norm(x, eps=INSTANCE_NORM_EPS)
            return x * gamma[:, :, None, None] + beta[:, :, None, None]

        def forward(self, images, style_weights):
            height, width = images.shape[-2:]
            rows = padding_to_multiple(int(height), SIZE_MULTIPLE)
            cols = padding_to_multiple(int(width), SIZE_MULTIPLE)
            x = images
            if rows != (0, 0) or cols != (0, 0):
                x = F.pad(x, (*cols, *rows), mode="reflect")
            for name, stride, normalised, relu in self.table:
                if name.startswith("decode"):
                    x = F.interpolate(x, scale_factor=2, mode="nearest")
                if name.endswith("/first"):
                    skip = x
                x = self.conv(x, name, stride)
                if normalised:
                    x = self.norm(x, name, style_weights)
                if relu:
                    x = F.relu(x)
                if name.endswith("/second"):
                    x = skip + x  # no ReLU after the sum, as in jaxstyle's ResidualBlock
            x = torch.sigmoid(x)
            if rows == (0, 0) and cols == (0, 0):
                return x
            return x[:, :, rows[0]:rows[0] + height, cols[0]:cols[0] + width]

    return TorchTransformerNet


def build_torch_net(params: dict, num_styles: int, width: float,
                    channels_last: bool = False) -> Any:
    """jaxstyle TransformerNet(num_styles, width) params -> an eval-mode float32 torch module.

    Call it as `module(images_nchw, style_weights)` under `torch.inference_mode()`.
    `channels_last=True` stores the kernels in channels_last memory for NHWC-strided inputs
    (off by default: on the 2-core test CPU it made this net several times slower).
    Raises PeerUnavailable without torch, ConfigError for params of another shape.
    """
    torch = _import_torch()
    table = layer_table()
    module = _module_class()(converted_weights(params, num_styles, width), table, num_styles)
    module = module.eval()
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


def to_nchw(images: np.ndarray, channels_last: bool = False) -> Any:
    """(N,H,W,3) numpy -> (N,3,H,W) float32 torch tensor (channels_last strides if asked)."""
    torch = _import_torch()
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    return tensor.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def to_nhwc(tensor: Any) -> np.ndarray:
    """(N,3,H,W) torch tensor -> (N,H,W,3) numpy float32."""
    return tensor.detach().permute(0, 2, 3, 1).contiguous().numpy()


def export_onnx(torch_module: Any, path: str | os.PathLike, height: int, width: int,
                batch: int = 1, dynamic: bool = False) -> Path:
    """Write `torch_module` as an ONNX file with inputs `images` (N,3,H,W) and `style_weights`.

    Static shapes by default (ONNX Runtime plans the whole graph once). `dynamic=True` leaves
    the batch free; H and W stay fixed, since the pad to a multiple of 4 and the crop are
    computed from them at export time. Uses the TorchScript exporter (`dynamo=False`), which
    needs no onnxscript.
    """
    torch = _import_torch()
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as exc:
        raise missing_framework("onnx", exc) from None
    path = Path(path)
    images = torch.rand(batch, 3, height, width)
    style_weights = torch.full((batch, torch_module.num_styles), 1.0 / torch_module.num_styles)
    axes = {"images": {0: "batch"}, "style_weights": {0: "batch"}, "stylised": {0: "batch"}}
    with torch.inference_mode(), warnings.catch_warnings():
        # Expected notes of the TorchScript exporter: H, W traced as constants (intended, the
        # shapes are static), instance norm exported with input statistics (what it computes).
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(torch_module, (images, style_weights), str(path), dynamo=False,
                          input_names=["images", "style_weights"], output_names=["stylised"],
                          opset_version=ONNX_OPSET, dynamic_axes=axes if dynamic else None)
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for the file, all graph optimisations on."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise missing_framework("onnxruntime", exc) from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types for bad graphs / unsupported ops
        raise PeerUnavailable(f"onnxruntime cannot load {path}: {exc}") from exc
