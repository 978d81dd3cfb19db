"""Shared fixtures of the integration tier: AWS in-process with moto, tables built from template.yaml.

The table schemas are read from the template, so they are defined once (STYLE.md, "Tests"). Clients
are created only after ``mock_aws`` has started.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rostersync_tools.local.stack import install_speed_only_patches
from rostersync_tools.local.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
REGION = "us-east-1"

# The CreateTable parameters a CloudFormation table's properties map to one-to-one (moto validates the
# indexes' warm throughput against the on-demand initial figures, as DynamoDB does).
_CREATE_TABLE_PROPERTIES = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "WarmThroughput",
)


# The embedded stack's speed-only patches (see ``install_speed_only_patches``): moto answers as it would,
# faster. tests/integration/test_embedded_dynamodb.py compares the fast pages and transactions with moto's own.
install_speed_only_patches()


@functools.cache
def _template_resources() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)["Resources"]


def table_properties(logical_id: str) -> dict[str, Any]:
    """The ``Properties`` of one ``AWS::DynamoDB::Table`` of the template (a copy: the parse is kept)."""
    resource = _template_resources()[logical_id]
    assert resource["Type"] == "AWS::DynamoDB::Table", f"{logical_id} is not a DynamoDB table"
    return copy.deepcopy(resource["Properties"])


def create_table_from_template(client: Any, logical_id: str, table_name: str | None = None) -> str:
    """Create the template's table ``logical_id`` in (mocked) DynamoDB; return its name."""
    props = table_properties(logical_id)
    name = table_name or logical_id
    client.create_table(TableName=name, **{k: props[k] for k in _CREATE_TABLE_PROPERTIES if k in props})
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return name


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and a fixed region, so nothing can reach a real account."""
    _use_dummy_credentials(monkeypatch)


def _use_dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    # The embedded stack points every client at its own endpoint; moto's in-process mock must win here.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mocked_aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def module_dynamodb() -> Iterator[Any]:
    """A DynamoDB client on a mock that lasts for the whole module, for a module whose tests only read what
    one module-scoped fixture wrote. No test of such a module may use ``mocked_aws`` (or ``dynamodb``):
    starting a mock resets every moto backend, this one's too."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _use_dummy_credentials(monkeypatch)
        with mock_aws():
            yield boto3.client("dynamodb", region_name=REGION)


@pytest.fixture(scope="module")
def module_directory_table(module_dynamodb: Any) -> str:
    """The directory table, as template.yaml defines it, in the module's mock."""
    return create_table_from_template(module_dynamodb, "DirectoryTable")


@pytest.fixture
def dynamodb(mocked_aws: None) -> Any:
    """A DynamoDB client, created after the mock started."""
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def directory_table(dynamodb: Any) -> str:
    """The directory table, as template.yaml defines it."""
    return create_table_from_template(dynamodb, "DirectoryTable")


@pytest.fixture
def sync_state_table(dynamodb: Any) -> str:
    """The sync-state table, as template.yaml defines it."""
    return create_table_from_template(dynamodb, "SyncStateTable")
