"""rostersync schools match, classrooms match, people link: link product records to provider ids."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands (none yet)."""
