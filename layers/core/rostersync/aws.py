"""boto3 clients, created once per endpoint and credentials.

On AWS the endpoint is the default and the credentials are the function's role, from the environment;
on the embedded stack ``AWS_ENDPOINT_URL`` points every client at it, and the stack runs each invocation
under its own function's role by setting ``invocation_session`` around the handler call (DESIGN §6).
On AWS nothing sets it, and clients use the environment's credentials.
"""

from __future__ import annotations

import os
import threading
from contextvars import ContextVar
from typing import Any
from weakref import WeakKeyDictionary

import boto3
from botocore.config import Config

from rostersync import metering
from rostersync.dynamodb_answers import answer_session

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)

invocation_session: ContextVar[boto3.session.Session | None] = ContextVar("invocation_session", default=None)
"""The boto3 session of the invocation running in this context, when the caller gives one.

Threads started inside a handler see it only if they run in a copy of the handler's context
(``contextvars.copy_context().run``); the repositories' thread pools do so.
"""


_CLIENTS: dict[tuple[str, str | None, str | None], Any] = {}
_CLIENTS_LOCK = threading.Lock()


# Presigned links (reports) are signed with SigV4 (SigV2 is refused by buckets created since June 2020).
_LINK_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))
_LINKS = "s3-links"  # the cache key of the S3 client that signs links


def _make(session: boto3.session.Session, service: str, region: str | None) -> Any:
    if service == _LINKS:
        made = session.client("s3", config=_LINK_CONFIG, region_name=region)
    else:
        made = session.client(service, config=_CONFIG, region_name=region)
    metering.register(made)  # every call counts into the invocation's meter (the run's cost)
    return made


def link_signer() -> Any:
    """The S3 client that signs report links (SigV4), with this invocation's credentials."""
    return client(_LINKS)


def _client(service: str, endpoint: str | None, region: str | None) -> Any:
    # Made once under a lock: concurrent first calls (a Map's iterations starting together) would each
    # build a client, and building one reads the service's model from disk.
    key = (service, endpoint, region)
    if key not in _CLIENTS:
        with _CLIENTS_LOCK:
            if key not in _CLIENTS:
                _CLIENTS[key] = _make(answer_session(), service, region)
    return _CLIENTS[key]


_SESSION_CLIENTS: WeakKeyDictionary[boto3.session.Session, dict[tuple[str, str | None, str | None], Any]]
_SESSION_CLIENTS = WeakKeyDictionary()
_SESSION_LOCK = threading.Lock()


def _session_client(session: boto3.session.Session, service: str, endpoint: str | None, region: str | None) -> Any:
    with _SESSION_LOCK:  # boto3 sessions are not thread-safe: create each client under the lock
        clients = _SESSION_CLIENTS.setdefault(session, {})
        key = (service, endpoint, region)
        if key not in clients:
            clients[key] = _make(session, service, region)
        return clients[key]


def client(service: str) -> Any:
    """Return a shared client for ``service`` (thread-safe, reused across warm invocations).

    ``"s3-links"`` is an S3 client that signs presigned links with SigV4, for the report's file links.
    """
    endpoint, region = os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_REGION")
    session = invocation_session.get()
    if session is not None:
        return _session_client(session, service, endpoint, region)
    return _client(service, endpoint, region)


def forget_clients() -> None:
    """Forget the clients made so far (tests that move between endpoints or in-process mocks)."""
    with _CLIENTS_LOCK:
        _CLIENTS.clear()
