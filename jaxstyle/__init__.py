"""jaxstyle: neural style transfer (Gatys et al. 2015, as the TensorFlow tutorial does it) in JAX.

    import jaxstyle
    params = jaxstyle.load_vgg19("weights/vgg19.npz")
    cfg = jaxstyle.StyleConfig(epochs=2)
    image, history = jaxstyle.stylize(params, content, style, cfg)

    decoder, header = jaxstyle.load_builtin_decoder()             # any painting, one pass
    out = jaxstyle.apply_any(params, decoder, header, photo, [painting], alpha=0.8)

Every public function and class has a short example in its docstring. They assume
`import jax, jax.numpy as jnp, numpy as np, jaxstyle` and `params`, VGG19's weights
(`jaxstyle.load_vgg19`); tests/test_docs.py runs them all as doctests, with random weights of
VGG19's shapes, tiny images and shallow layers so that they take seconds on a CPU.
"""

from jaxstyle.arbitrary.apply import apply_any, load_builtin_decoder
from jaxstyle.arbitrary.decoderfile import load_decoder
from jaxstyle.arbitrary.transfer import ArbitraryStylizer, style_statistics, stylize_arrays
from jaxstyle.config import StyleConfig, sized_budget
from jaxstyle.errors import ConfigError, ImageError, JaxstyleError, WeightsError
from jaxstyle.feedforward import (
    FeedForwardConfig,
    ModelError,
    TrainingInterrupted,
    apply_model,
    load_model,
    make_stylizer,
    resolve_model,
    save_model,
)
from jaxstyle.gatys import (
    NonFiniteLossError,
    StyleState,
    StylizeInterrupted,
    init_state,
    load_state,
    make_step,
    output_image,
    save_state,
    stylize,
)
from jaxstyle.gatys.batch import stylize_many
from jaxstyle.images import load_image, save_image
from jaxstyle.losses import (
    content_loss,
    gram_matrix,
    masked_gram_matrix,
    mean_squared_error,
    per_image_mse,
    style_loss,
    total_variation,
)
from jaxstyle.objective import (
    Targets,
    loss_fn,
    make_targets,
    per_image_loss,
    stack_targets,
    with_loss_weights,
)
from jaxstyle.optim import keras_adam, make_optimizer, scale_by_keras_adam
from jaxstyle.vgg import VGG19, prepare_params, preprocess, vgg19_features
from jaxstyle.weights import load_vgg19, read_keras_weights, save_params

__version__ = "0.1.0"

__all__ = [
    "ArbitraryStylizer", "apply_any", "load_builtin_decoder", "load_decoder",
    "style_statistics", "stylize_arrays",
    "ConfigError", "FeedForwardConfig", "ImageError", "JaxstyleError", "ModelError",
    "NonFiniteLossError", "StyleConfig", "StyleState", "StylizeInterrupted", "Targets",
    "TrainingInterrupted", "VGG19", "WeightsError", "__version__", "apply_model",
    "content_loss", "gram_matrix", "init_state", "keras_adam", "load_image", "load_model",
    "load_state", "load_vgg19", "loss_fn", "make_optimizer", "make_step", "make_stylizer",
    "make_targets", "masked_gram_matrix", "mean_squared_error", "output_image",
    "per_image_loss", "per_image_mse", "prepare_params", "preprocess", "read_keras_weights",
    "resolve_model", "save_image", "save_model", "save_params", "save_state",
    "scale_by_keras_adam", "sized_budget", "stack_targets", "style_loss", "stylize",
    "stylize_many",
    "total_variation", "vgg19_features", "with_loss_weights",
]
