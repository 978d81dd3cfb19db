"""Every step reports Powertools metrics (CloudWatch EMF lines on stdout): records per kind and action,
directory write requests, duration and errors, under the template's namespace."""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.repository import DirectoryRecord
from rostersync.domain.records import Kind
from rostersync.matching.plan import PlannedWrite

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "sync-bucket"
NAMESPACE = "rostersync-test"


def emitted(text: str) -> list[dict[str, Any]]:
    """The EMF documents printed: one metric each, with its value, unit and dimensions."""
    found = []
    for line in text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        (metric,) = directive["Metrics"]
        dimensions = {name: document[name] for name in directive["Dimensions"][0]}
        found.append(
            {
                "namespace": directive["Namespace"],
                "name": metric["Name"],
                "unit": metric["Unit"],
                "value": sum(v) if isinstance(v := document[metric["Name"]], list) else v,
                "dimensions": dimensions,
            }
        )
    return found


@pytest.fixture
def upsert_handler(
    dynamodb: Any, directory_table: str, sync_state_table: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The UpsertChunk function's handler, configured as the template configures it."""
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    for name, value in {
        "DIRECTORY_TABLE": directory_table,
        "SYNC_STATE_TABLE": sync_state_table,
        "SYNC_BUCKET": BUCKET,
        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        "POWERTOOLS_SERVICE_NAME": "rostersync",  # the template's Globals: Powertools adds it as a dimension
        "POWERTOOLS_METRICS_DISABLED": "false",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    runtime_config.cache_clear()
    aws.forget_clients()
    spec = importlib.util.spec_from_file_location("upsert_chunk_app", ROOT / "functions/upsert_chunk/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.lambda_handler
    runtime_config.cache_clear()
    aws.forget_clients()


class Context:
    function_name = "rostersync-UpsertChunkFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:rostersync-UpsertChunkFunction"
    aws_request_id = "req-1"


def student_write(n: int) -> bytes:
    record = DirectoryRecord(
        id=f"per_{n}",
        kind=Kind.STUDENTS,
        status="active",
        managed_by_sync=True,
        provider_ids={"clever": f"s{n}"},
        fields={},
        content_hash=f"h{n}",
    )
    return json.dumps(PlannedWrite("create", record).to_json()).encode("utf-8")


def test_the_upsert_step_reports_records_write_requests_and_duration(upsert_handler: Any, capsys: Any) -> None:
    # Given a chunk of three planned student creates
    key = "runs/d-1/run-1/plan/writes-00000.ndjson.gz"
    body = gzip.compress(b"\n".join(student_write(n) for n in range(3)) + b"\n")
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key=key, Body=body)
    capsys.readouterr()

    # When the Upsert function writes it
    upsert_handler({"district_id": "d-1", "run_id": "run-1", "chunk_key": key}, Context())

    # Then it reported, in the template's namespace, the records per kind and action, its write requests
    # and its duration, and no error
    metrics = emitted(capsys.readouterr().out)
    assert {m["namespace"] for m in metrics} == {NAMESPACE}
    by_name = {m["name"]: m for m in metrics}
    assert by_name["Records"]["value"] == 3
    assert by_name["Records"]["dimensions"] == {
        "service": "rostersync",
        "step": "upsert_chunk",
        "kind": "students",
        "action": "create",
    }
    assert by_name["DirectoryWriteRequests"]["value"] == 1  # three puts, one BatchWriteItem
    assert by_name["StepDuration"]["unit"] == "Milliseconds" and by_name["StepDuration"]["value"] > 0
    assert "StepErrors" not in by_name


def test_a_failing_step_reports_an_error_by_name(upsert_handler: Any, capsys: Any) -> None:
    # When the Upsert function is handed a chunk of another run, it refuses it
    with pytest.raises(Exception, match="does not belong to this run"):
        upsert_handler({"district_id": "d-1", "run_id": "run-1", "chunk_key": "runs/d-2/x/plan/w.gz"}, Context())

    # Then StepErrors counts it with the error's name, and the duration is still reported
    metrics = {m["name"]: m for m in emitted(capsys.readouterr().out)}
    assert metrics["StepErrors"]["value"] == 1
    assert metrics["StepErrors"]["dimensions"] == {
        "service": "rostersync",
        "step": "upsert_chunk",
        "error": "BadInputError",
    }
    assert "StepDuration" in metrics


def test_metrics_are_silent_when_disabled(upsert_handler: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from rostersync.observability import emit

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    emit("Records", 1, step="x")

    assert emitted(capsys.readouterr().out) == []


def test_an_over_long_step_error_keeps_its_full_text_in_the_runs_files(upsert_handler: Any, capsys: Any) -> None:
    # Given a step of a run whose error message is far over what the state may hold (and quotes the
    # district's data, as a bundle's rows would)
    from rostersync.errors import ERROR_MESSAGE_LIMIT, BadInputError
    from rostersync.observability import step_metrics

    message = "users.csv: duplicated columns " + "givenName," * 50_000

    @step_metrics("fetch_roster")
    def handler(event: dict[str, Any], context: Any) -> None:
        raise BadInputError(message)

    # When it fails
    with pytest.raises(Exception) as raised:
        handler({"run": {"district_id": "d-1", "run_id": "run-1"}}, Context())

    # Then the state gets the error by its name with a bounded message naming where the full text is,
    # the run's files hold the full text, and the log holds neither
    assert type(raised.value).__name__ == "BadInputError"
    cut = str(raised.value)
    assert len(cut) < ERROR_MESSAGE_LIMIT + 300
    key = cut.rsplit("the full text is in the run's files: ", 1)[1].rstrip(")")
    assert key.startswith("runs/d-1/run-1/errors/fetch_roster-") and key.endswith(".txt")
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body.decode("utf-8") == message
    assert "givenName,givenName" not in capsys.readouterr().out


def test_an_over_long_error_without_a_run_is_still_cut(upsert_handler: Any) -> None:
    from rostersync.errors import ERROR_MESSAGE_LIMIT
    from rostersync.observability import step_metrics

    @step_metrics("schedule_tick")
    def handler(event: dict[str, Any], context: Any) -> None:
        raise ValueError("x" * 100_000)

    with pytest.raises(Exception) as raised:
        handler({"source": "aws.events"}, Context())

    assert type(raised.value).__name__ == "ValueError"
    assert len(str(raised.value)) < ERROR_MESSAGE_LIMIT + 100 and "full text" not in str(raised.value)
