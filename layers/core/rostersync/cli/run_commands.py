"""rostersync connect, import-product, self-check, sync: set a district up and run it."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands (none yet)."""
