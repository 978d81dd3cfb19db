"""Build the provider client a district's connection names."""

from __future__ import annotations

from typing import Any

from rostersync.errors import ConnectionNotConfiguredError
from rostersync.providers.base import RetryPolicy, RosterProvider

# Connection type → the provider name records carry (``provider_ids`` keys in the directory).
# OneRoster over REST and as CSV bundles are one provider: the same sourcedIds either way.
PROVIDER_OF_CONNECTION = {"clever": "clever", "oneroster-rest": "oneroster", "oneroster-csv": "oneroster"}


def provider_name(connection: dict[str, Any]) -> str:
    """The provider name of a stored connection; raises if rostersync does not support it."""
    kind = str(connection.get("provider", ""))
    if kind not in PROVIDER_OF_CONNECTION:
        raise ConnectionNotConfiguredError(
            f"the district's connection names provider {kind!r}; rostersync supports "
            + ", ".join(sorted(PROVIDER_OF_CONNECTION))
        )
    return PROVIDER_OF_CONNECTION[kind]


def build_provider(
    connection: dict[str, Any],
    secret: str,
    retry: RetryPolicy,
    cursor: str | None = None,
    bundle: Any = None,
    limits: Any = None,
    clever_user_roles: tuple[str, ...] | None = None,
    clever_user_ids: tuple[str, ...] = (),
) -> RosterProvider:
    """Return the provider for a stored connection (``{"provider": "clever", "base_url": …}``).

    ``secret`` is the connection's Secrets Manager value; ``cursor`` the high-water mark the last
    successful run stored (delta-capable providers); ``bundle`` an uploaded OneRoster CSV bundle
    (a folder path or zip bytes); ``limits`` the district's ``LimitSettings`` (a bundle's sizes);
    ``clever_user_roles``, ``clever_user_ids``: a Clever read takes only these roles' users, and these users
    by id (``CleverProvider``'s ``user_roles`` and ``user_ids``).
    """
    kind = connection.get("provider")
    provider_name(connection)
    if kind == "clever":
        from rostersync.providers.clever import CleverClient, CleverProvider

        page_limit = int(connection.get("page_limit") or 10_000)
        client = CleverClient(connection["base_url"], secret, page_limit=page_limit, retry=retry)
        return CleverProvider(client, user_roles=clever_user_roles, user_ids=clever_user_ids)
    if kind == "oneroster-rest":
        from rostersync.providers.oneroster_rest import build_oneroster_rest_provider

        return build_oneroster_rest_provider(connection, secret, retry, cursor)
    from rostersync.providers.oneroster_csv import OneRosterCsvProvider

    if bundle is None:
        raise ConnectionNotConfiguredError("no OneRoster bundle was uploaded for this run")
    return OneRosterCsvProvider(bundle, limits)
