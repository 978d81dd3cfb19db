"""What a district admin (or the product on their behalf) does outside a run: connect a provider."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from rostersync.directory.repository import SyncStateRepository
from rostersync.domain.ids import district_id_problem
from rostersync.providers.registry import provider_name


def secret_name(stack: str, district_id: str, provider: str) -> str:
    """Provider credentials live in Secrets Manager under ``rostersync/<stack>/<district>/<connection type>``.

    The stack's name comes first so that each stack's Fetch may read its own secrets only (template.yaml
    grants ``secret:rostersync/${AWS::StackName}/*``).
    """
    return f"rostersync/{stack}/{district_id}/{provider}"


def connect_provider(
    state: SyncStateRepository,
    secrets: Any,
    provider: str,
    base_url: str = "",
    secret: str | None = None,
    page_limit: int = 10_000,
    *,
    stack: str | None = None,
    **options: Any,
) -> None:
    """Store the district's provider connection; credentials go to Secrets Manager, never to DynamoDB.

    ``provider`` is the connection type: ``clever`` (``secret`` = district bearer token),
    ``oneroster-rest`` (``options``: ``auth`` = ``bearer`` | ``oauth1`` | ``oauth2``, ``token_url``;
    ``secret`` = the bearer token or JSON ``{"key", "secret"}``), or ``oneroster-csv`` (bundles uploaded
    to ``uploads/<district>/``; no secret). A connection with a secret needs the ``stack``'s name: the
    secret is stored under it (``secret_name``).
    """
    problem = district_id_problem(state.district_id)
    if problem:
        raise ValueError(problem)  # every run of it would be refused: say so before anything is stored
    connection: dict[str, Any] = {"provider": provider, "base_url": base_url, "page_limit": page_limit, **options}
    provider_name(connection)  # refuse what rostersync cannot sync
    if secret is not None:
        if not stack:
            raise ValueError("connecting a provider with credentials needs the stack's name (secret_name)")
        name = secret_name(stack, state.district_id, provider)
        try:
            secrets.create_secret(Name=name, SecretString=secret)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            secrets.put_secret_value(SecretId=name, SecretString=secret)
        connection["secret_id"] = name
    state.put_item("CONNECTION", connection)
