"""VGG19 weights: Keras h5 layouts -> params (`keras`), the torch-free legacy reader
(`torch_legacy`) and fetching/caching (`fetch`, imported on its own: it pulls in pip and tqdm)."""

from jaxstyle.weights.keras import (
    Params,
    expected_shapes,
    load_params,
    load_vgg19,
    read_keras_weights,
    save_params,
    validate_params,
    write_keras_h5,
)

__all__ = ["Params", "expected_shapes", "load_params", "load_vgg19", "read_keras_weights",
           "save_params", "validate_params", "write_keras_h5"]
