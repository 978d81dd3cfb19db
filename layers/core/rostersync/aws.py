"""boto3 clients, created once per endpoint.

On AWS the endpoint is the default; on the embedded stack ``AWS_ENDPOINT_URL`` points every client at
it. That variable is the only difference between the two (DESIGN §6).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)


@lru_cache(maxsize=32)
def _client(service: str, endpoint: str | None, region: str | None) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG, region_name=region)


def client(service: str) -> Any:
    """Return a shared client for ``service`` (thread-safe, reused across warm invocations)."""
    return _client(service, os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_REGION"))
