"""``rostersync``: the parser, and the one place errors become a line on stderr and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from rostersync_tools.cli import cleanup as cleanup_commands
from rostersync_tools.cli import demo as demo_command
from rostersync_tools.cli import lifecycle_commands, local_commands, matching_commands, run_commands, settings_commands
from rostersync_tools.cli.connect import StackError
from rostersync_tools.cli.inputs import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rostersync", description="Keep a product's district directory in step with the district's roster."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo_command.register(commands)
    local_commands.register(commands)
    settings_commands.register(commands)
    matching_commands.register(commands)
    run_commands.register(commands)
    lifecycle_commands.register(commands)
    cleanup_commands.register(commands)
    describe(parser)
    return parser


def version() -> str:
    """The installed rostersync tools' version (``pyproject.toml``)."""
    try:
        return metadata.version("rostersync-tools")
    except metadata.PackageNotFoundError:
        return "unknown"


def describe(parser: argparse.ArgumentParser) -> None:
    """Give every command's ``--help`` a description: its one-line help, as a sentence, where it has none."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, command in action.choices.items():
                if not command.description and helps.get(name):
                    text = str(helps[name])
                    command.description = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
                describe(command)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        page_limit = getattr(args, "page_limit", None)
        if page_limit is not None and not 1 <= page_limit <= 10_000:
            raise UsageError(f"--page-limit {page_limit}: must be between 1 and 10,000")
        return int(args.handler(args))
    except (UsageError, StackError) as exc:
        print(f"rostersync: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush stays quiet
        return 1


if __name__ == "__main__":
    sys.exit(main())
