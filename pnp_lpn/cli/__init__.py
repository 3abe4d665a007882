"""Command line: ``pnp-lpn demo | solve | train | bench | inspect`` (each with --help).

A mistake in the arguments or the input files ends with one line on stderr and exit code 2,
before torch is imported or a prior is loaded; ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> module of this package with ``add_parser(sub)``, ``add_arguments(p)`` and ``run(args)``
COMMANDS = {"demo": "demo", "solve": "solve", "train": "train", "bench": "bench", "inspect": "inspect"}
#: errors that describe a bad input or setting (anything else is a bug: its type is named too)
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def _module(command: str):
    return importlib.import_module(f"{__name__}.{COMMANDS[command]}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command``, only that subcommand gets its options (the others
    are listed by name), so that parsing one subcommand imports nothing the others need."""
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")
    parser = argparse.ArgumentParser(prog="pnp-lpn", description=__doc__, parents=[debug],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = _module(name)
        p = module.add_parser(sub, parents=[debug])
        if command in (None, name):
            module.add_arguments(p)
    return parser


def _requested(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Run ``pnp-lpn``; returns the exit code (0 success, 2 bad arguments or input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _requested(argv)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return _module(args.command).run(args)
    except KeyboardInterrupt:
        print(f"pnp-lpn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if getattr(args, "debug", False):
            raise
        kind = "error" if isinstance(e, USER_ERRORS) else f"error ({type(e).__name__})"
        text = " ".join(str(e).split()) or type(e).__name__
        print(f"pnp-lpn {args.command}: {kind}: {text} (--debug shows the traceback)", file=sys.stderr)
        return 2
