"""Exceptions that the CLI turns into one-line `error: ...` messages (exit 2)."""


class JaxstyleError(Exception):
    """Base class: a problem with the user's input, not a bug."""


class WeightsError(JaxstyleError):
    """A weights file is missing, unreadable, of an unknown layout or has bad values."""


class ImageError(JaxstyleError):
    """An image is missing, unreadable, too small or too large."""


class ConfigError(JaxstyleError):
    """A setting is out of range or options do not fit together."""
