"""Engine 1, optimisation (Gatys et al. 2015): the explicit state and compiled step (`state`),
the host loop and checkpoints (`loop`), and `stylize`/`stylize_many` around them (`pipeline`)."""

from jaxstyle.gatys.loop import (
    History,
    NonFiniteLossError,
    StylizeInterrupted,
    load_state,
    run_steps,
    save_state,
    stop_reason,
)
from jaxstyle.gatys.pipeline import stylize
from jaxstyle.gatys.state import (
    CompiledStep,
    StyleState,
    image_of_latent,
    init_state,
    latent_of_image,
    make_step,
    make_step_fn,
    output_image,
)

__all__ = ["CompiledStep", "History", "NonFiniteLossError", "StyleState", "StylizeInterrupted",
           "image_of_latent", "init_state", "latent_of_image", "load_state", "make_step",
           "make_step_fn", "output_image", "run_steps", "save_state", "stop_reason", "stylize"]
