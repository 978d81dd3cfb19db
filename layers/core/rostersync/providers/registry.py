"""Build the provider client a district's connection names."""

from __future__ import annotations

from typing import Any

from rostersync.errors import ConnectionNotConfiguredError
from rostersync.providers.base import RetryPolicy, RosterProvider


def build_provider(
    connection: dict[str, Any], token: str, retry: RetryPolicy, cursor: str | None = None
) -> RosterProvider:
    """Return the provider for a stored connection (``{"provider": "clever", "base_url": …}``).

    ``cursor`` is the high-water mark the last successful run stored, for providers that fetch deltas.
    """
    kind = connection.get("provider")
    if kind == "clever":
        from rostersync.providers.clever import CleverClient, CleverProvider

        page_limit = int(connection.get("page_limit") or 10_000)
        return CleverProvider(CleverClient(connection["base_url"], token, page_limit=page_limit, retry=retry))
    raise ConnectionNotConfiguredError(
        f"the district's connection names provider {kind!r}, which rostersync does not support"
    )
