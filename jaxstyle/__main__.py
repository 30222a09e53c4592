"""`python -m jaxstyle` runs the command-line tool."""

from jaxstyle.cli import entry_point

entry_point()
