"""The `loom` command: one sub-command per module under engine/commands/."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from engine import __version__
from engine.auth.config import ConfigError
from engine.errors import LoomError, MetadataError

COMMANDS = ("check", "schema", "metadata", "migrate", "serve", "demo", "user", "records", "recompute", "io", "bundle", "explain", "customize")


def parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    top = argparse.ArgumentParser(prog="loom", description="Loom: metadata in, a running business application out.")
    top.add_argument("--version", action="version", version=f"loom {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--metadata", default=os.environ.get("LOOM_METADATA", "metadata"), help="bundle folder (default ./metadata)")
    common.add_argument("--db", default=os.environ.get("LOOM_DATABASE_URL", "sqlite:///loom.db"), help="database URL")
    subs = top.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"engine.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"engine.commands.{name}":
                raise
            continue
        module.add(subs, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors print `what: why` and exit non-zero, never a traceback."""
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except MetadataError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 2
    except LoomError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for name, message in exc.fields.items():
            print(f"  {name}: {message}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
