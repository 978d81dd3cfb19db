"""Reach a rostersync stack, on AWS or the embedded one, by the same code path.

The stack publishes its resource names in one SSM parameter, ``/rostersync/<stack>/resources`` (see
``StackResources`` in template.yaml); the CLI reads it and builds its clients from one boto3 session.
On AWS the session comes from the usual profile and region; for the embedded stack ``--endpoint``
points every client at localhost. Nothing else differs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from rostersync.config import REPORT_LINK_CONFIG
from rostersync.directory.repository import DirectoryRepository, SyncStateRepository

DEFAULT_STACK = "rostersync"
LOCAL_REGION = "us-east-1"
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)


class StackError(Exception):
    """The stack cannot be reached or is not a rostersync stack; the message says what to do."""


def resources_parameter(stack: str) -> str:
    """The SSM parameter in which a stack lists its resources."""
    return f"/rostersync/{stack}/resources"


@dataclass(frozen=True)
class StackResources:
    """What the CLI needs to know of a stack: its tables, bucket and state machine."""

    directory_table: str
    sync_state_table: str
    sync_bucket: str
    state_machine_arn: str
    product_event_source: str = "product.directory"
    cleanup_state_machine_arn: str = ""  # stacks deployed before the clean-up have none

    @classmethod
    def from_parameter(cls, value: str) -> StackResources:
        data = json.loads(value)
        return cls(
            directory_table=data["DirectoryTable"],
            sync_state_table=data["SyncStateTable"],
            sync_bucket=data["SyncBucket"],
            state_machine_arn=data["SyncStateMachine"],
            product_event_source=data.get("ProductEventSource", "product.directory"),
            cleanup_state_machine_arn=data.get("CleanupStateMachine", ""),
        )


class StackHandle:
    """Clients and repositories bound to one stack."""

    def __init__(self, session: Any, resources: StackResources, endpoint: str | None = None, stack: str = "") -> None:
        self.session = session
        self.resources = resources
        self.endpoint = endpoint
        self.stack = stack
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            config = _CONFIG.merge(REPORT_LINK_CONFIG) if service == "s3" else _CONFIG
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint, config=config)
        return self._clients[service]

    def directory(self, district_id: str) -> DirectoryRepository:
        return DirectoryRepository(self.client("dynamodb"), self.resources.directory_table, district_id)

    def state(self, district_id: str) -> SyncStateRepository:
        return SyncStateRepository(self.client("dynamodb"), self.resources.sync_state_table, district_id)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """``--endpoint`` (the embedded stack) or ``--stack`` with ``--profile``/``--region`` (AWS)."""
    group = parser.add_argument_group("stack")
    group.add_argument(
        "--endpoint",
        metavar="URL",
        help="the embedded stack served by `rostersync local up` (e.g. http://127.0.0.1:4566)",
    )
    group.add_argument("--stack", default=DEFAULT_STACK, help=f"the stack's name (default {DEFAULT_STACK})")
    group.add_argument("--profile", help="AWS profile (on AWS; default: the usual AWS configuration)")
    group.add_argument("--region", help="AWS region (on AWS; default: the usual AWS configuration)")


def connect(
    endpoint: str | None = None, stack: str = DEFAULT_STACK, profile: str | None = None, region: str | None = None
) -> StackHandle:
    """Find the stack's resources and return a handle on them; ``StackError`` if it cannot."""
    if endpoint:
        # The embedded stack accepts any credentials; never use a real profile's keys against it.
        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the embedded stack accepts any key
            region_name=region or LOCAL_REGION,
        )
    else:
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
        except BotoCoreError as exc:
            raise StackError(f"AWS profile {profile!r}: {exc}") from exc
    where = endpoint or f"AWS ({session.region_name or 'no region configured'})"
    name = resources_parameter(stack)
    try:
        value = session.client("ssm", endpoint_url=endpoint, config=_CONFIG).get_parameter(Name=name)["Parameter"][
            "Value"
        ]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            raise StackError(
                f"no rostersync stack named {stack!r} at {where} (no SSM parameter {name}): "
                "check --stack, or start the embedded one with `rostersync local up`"
            ) from exc
        raise StackError(f"cannot read the stack {stack!r} at {where}: {exc}") from exc
    except BotoCoreError as exc:
        raise StackError(f"cannot reach {where}: {exc}") from exc
    try:
        resources = StackResources.from_parameter(value)
    except (ValueError, KeyError) as exc:
        raise StackError(f"{name} at {where} does not describe a rostersync stack ({exc})") from exc
    return StackHandle(session, resources, endpoint, stack)


def connect_from_args(args: argparse.Namespace) -> StackHandle:
    return connect(args.endpoint, args.stack, args.profile, args.region)
