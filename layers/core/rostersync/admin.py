"""What a district admin (or the product on their behalf) does outside a run: connect a provider."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from rostersync.directory.repository import SyncStateRepository


def secret_name(district_id: str, provider: str) -> str:
    """Provider tokens live in Secrets Manager under ``rostersync/<district>/<provider>``."""
    return f"rostersync/{district_id}/{provider}"


def connect_provider(
    state: SyncStateRepository, secrets: Any, provider: str, base_url: str, token: str, page_limit: int = 10_000
) -> None:
    """Store the district's provider connection; the token goes to Secrets Manager, never to DynamoDB."""
    name = secret_name(state.district_id, provider)
    try:
        secrets.create_secret(Name=name, SecretString=token)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceExistsException":
            raise
        secrets.put_secret_value(SecretId=name, SecretString=token)
    state.put_item(
        "CONNECTION", {"provider": provider, "base_url": base_url, "secret_id": name, "page_limit": page_limit}
    )
