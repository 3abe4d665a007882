"""What every subcommand shares: the user-error type, argument types, notes on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UsageError(ValueError):
    """A mistake in the command line or its files: reported as one line, exit code 2."""


def note(command: str, message: str) -> None:
    """One informational line on stderr (what was done with an input, a value chosen)."""
    print(f"pnp-lpn {command}: {message}", file=sys.stderr)


def check_file(path: str | None, option: str) -> None:
    """Refuse a path given for ``option`` that names no file (None: the option was not given)."""
    if path is not None and not Path(path).is_file():
        raise UsageError(f"{option} {path}: {'a folder, not a file' if Path(path).is_dir() else 'no such file'}")


def check_prior(name: str, option: str = "--prior") -> None:
    """A .safetensors prior must exist (shipped names are checked when loaded)."""
    if name.endswith(".safetensors"):
        check_file(name, option)


def bounded_int(text: str, low: int = 1) -> int:
    """argparse type: an integer >= ``low``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return bounded_int(text, 1)


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value
