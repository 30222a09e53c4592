"""Feed-forward style transfer: Johnson et al. 2016's network with Dumoulin et al. 2017's
conditional instance norm (many styles in one net), and its single-file model format."""

from jaxstyle.feedforward.modelfile import (
                                            ModelError,
                                            describe,
                                            load_model,
                                            save_model,
                                            style_index,
                                            style_record,
)
from jaxstyle.feedforward.network import (
                                          TransformerNet,
                                          channel_counts,
                                          count_params,
                                          flops_per_pixel,
                                          init_params,
                                          instance_norm,
                                          param_shapes,
                                          select_styles,
                                          style_params_paths,
)

__all__ = [
    "ModelError", "TransformerNet", "channel_counts", "count_params", "describe",
    "flops_per_pixel", "init_params", "instance_norm", "load_model", "param_shapes",
    "save_model", "select_styles", "style_index", "style_params_paths", "style_record",
]
