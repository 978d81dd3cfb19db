"""rostersync local up: serve the embedded stack and the provider simulator until stopped."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's commands (none yet)."""
