"""Feed-forward style transfer: Johnson et al. 2016's network with Dumoulin et al. 2017's
conditional instance norm (many styles in one net), its single-file model format, training
(`jaxstyle.feedforward.train.train`, not re-exported: the name would shadow its module) and
inference."""

from jaxstyle.feedforward.apply import (
    apply_model,
    builtin_models,
    make_stylizer,
    resolve_model,
    style_weights_for,
)
from jaxstyle.feedforward.config import FeedForwardConfig, TrainState, init_train_state
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
from jaxstyle.feedforward.step import make_train_step, stability_loss, style_grams
from jaxstyle.feedforward.train import StyleImage
from jaxstyle.training import TrainingInterrupted

__all__ = [
    "FeedForwardConfig", "ModelError", "StyleImage", "TrainState", "TrainingInterrupted",
    "TransformerNet", "apply_model", "builtin_models", "channel_counts", "count_params",
    "describe", "flops_per_pixel", "init_params", "init_train_state", "instance_norm",
    "load_model", "make_stylizer", "make_train_step", "param_shapes", "resolve_model",
    "save_model", "select_styles", "stability_loss", "style_grams", "style_index",
    "style_params_paths", "style_record", "style_weights_for",
]
