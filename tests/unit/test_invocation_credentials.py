"""``rostersync.aws.client()`` and the invocation's session: what the embedded stack relies on to run each
invocation under its own role. No network: clients are only created, never called."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from rostersync import aws


def _session(key: str) -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key="secret", region_name="us-east-1")


def _key_of(client: object) -> str:
    return client._request_signer._credentials.access_key  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "environment")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment")
    # Clients made from the environment are cached per service and endpoint: one an earlier test of this
    # process made (an embedded stack's, under its own keys) would answer instead of this environment's.
    aws.forget_clients()
    yield
    aws.forget_clients()


def test_without_an_invocation_session_clients_use_the_environment() -> None:
    assert aws.invocation_session.get() is None
    assert _key_of(aws.client("s3")) == "environment"


def test_an_invocation_session_gives_its_own_credentials_and_reuses_its_clients() -> None:
    token = aws.invocation_session.set(_session("role-a"))
    try:
        first = aws.client("dynamodb")
        assert _key_of(first) == "role-a"
        assert aws.client("dynamodb") is first
    finally:
        aws.invocation_session.reset(token)
    assert _key_of(aws.client("dynamodb")) == "environment"


def test_concurrent_invocations_never_see_each_others_credentials() -> None:
    barrier = threading.Barrier(8)

    def invocation(key: str) -> set[str]:
        aws.invocation_session.set(_session(key))  # each thread has a context of its own
        barrier.wait()  # all eight hold their sessions at once
        return {_key_of(aws.client(service)) for service in ("s3", "dynamodb", "s3")}

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(invocation, [f"role-{n}" for n in range(8)]))
    assert seen == [{f"role-{n}"} for n in range(8)]


def test_threads_a_handler_starts_see_its_session_only_in_a_copy_of_its_context() -> None:
    token = aws.invocation_session.set(_session("role-h"))
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            bare = pool.submit(lambda: _key_of(aws.client("s3"))).result()
            copied = pool.submit(contextvars.copy_context().run, lambda: _key_of(aws.client("s3"))).result()
    finally:
        aws.invocation_session.reset(token)
    assert bare == "environment"
    assert copied == "role-h"
