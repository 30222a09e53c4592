"""Exceptions that the CLI turns into one-line `error: ...` messages (exit 2)."""


class JaxstyleError(Exception):
    """Base class: a problem with the user's input, not a bug.

    Example:

    >>> try:
    ...     jaxstyle.StyleConfig(epochs=0)
    ... except jaxstyle.JaxstyleError as error:  # any of the errors below
    ...     print(type(error).__name__)
    ConfigError
    """


class WeightsError(JaxstyleError):
    """A weights file is missing, unreadable, of an unknown layout or has bad values.

    Example:

    >>> try:
    ...     jaxstyle.load_vgg19("no-such-file.h5")
    ... except jaxstyle.WeightsError as error:
    ...     print(error)
    no-such-file.h5: no such file
    """


class ImageError(JaxstyleError):
    """An image is missing, unreadable, too small or too large.

    Example:

    >>> try:
    ...     jaxstyle.save_image("picture.xyz", np.zeros((8, 8, 3)))
    ... except jaxstyle.ImageError as error:
    ...     print(error)
    output picture.xyz: unknown image type '.xyz'; use one of ...
    """


class ConfigError(JaxstyleError):
    """A setting is out of range or options do not fit together.

    Example:

    >>> try:
    ...     jaxstyle.StyleConfig(pooling="min")
    ... except jaxstyle.ConfigError as error:
    ...     print(error)
    pooling must be one of ...
    """
