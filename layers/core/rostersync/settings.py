"""A district's sync settings, stored versioned in the sync-state table."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SyncSettings(BaseModel):
    """What a district admin chooses about their sync. Each run records the version it used."""

    model_config = ConfigDict(extra="forbid")

    deletion_threshold_percent: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description="A run that would archive more than this share of a kind's sync-managed records archives "
        "nothing of that kind and ends threshold_exceeded.",
    )


def settings_from_item(item: dict[str, Any] | None) -> tuple[SyncSettings, int]:
    """Parse the stored settings item; a district that never saved settings gets the defaults (version 0)."""
    if not item:
        return SyncSettings(), 0
    return SyncSettings.model_validate(item.get("settings") or {}), int(item.get("version", 0))
