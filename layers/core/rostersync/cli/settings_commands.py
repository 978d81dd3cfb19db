"""rostersync settings show|set|schema: a district's sync settings."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands (none yet)."""
