"""IAM on the embedded stack: each Lambda runs under its own function's role, as on AWS.

A stack built from a copy of the template with one statement taken out of one function's policy must
fail the run at that step, saying AccessDenied; the same run passes on the real template (the session's
stack). The copy's stack runs in this process beside the session's, under another stack name (moto's
backends are global), and puts the environment back when it stops.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from rostersync.config import runtime_config
from rostersync_tools.local.stack import EmbeddedStack
from rostersync_tools.local.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
FirstSync = Callable[[EmbeddedStack, Path], Any]

pytestmark = pytest.mark.e2e


def _without_statement(template: dict[str, Any], function: str, action: str) -> dict[str, Any]:
    """The template with every ``Statement`` granting ``action`` removed from ``function``'s policies."""
    policies = template["Resources"][function]["Properties"]["Policies"]
    kept, removed = [], 0
    for policy in policies:
        if isinstance(policy, dict) and "Statement" in policy:
            statements = [s for s in policy["Statement"] if action not in json.dumps(s.get("Action"))]
            removed += len(policy["Statement"]) - len(statements)
            if statements:
                kept.append({"Statement": statements})
        else:
            kept.append(policy)
    assert removed, f"{function} has no statement granting {action}: the test would prove nothing"
    template["Resources"][function]["Properties"]["Policies"] = kept
    return template


def _template_copy(folder: Path, template: dict[str, Any]) -> Path:
    """``template.yaml`` in ``folder``, with the code it names reachable at the same relative paths."""
    for name in ("functions", "statemachine", "layers"):
        (folder / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    path = folder / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def stack_from(template_path: Path) -> Iterator[EmbeddedStack]:
    embedded = EmbeddedStack(
        template_path, stack_name="iamcheck", parameters={"LogLevel": "WARNING"}, retry_wait_scale=0
    ).start()
    runtime_config.cache_clear()  # the tables and bucket of this stack
    try:
        yield embedded
    finally:
        embedded.stop()
        runtime_config.cache_clear()  # back to the session stack's, which the environment names again


@pytest.fixture(scope="module")
def roster(demo_cut: Callable[..., Any]) -> Path:
    """The demo district cut to three sections a school: every step of a run (Fetch's lists, Match, the Upsert
    Map, Archive, Report) under its own role, in seconds; the whole district's first sync runs the same steps."""
    return demo_cut("snapshot-1", sections_per_school=3).path


def test_a_run_fails_at_the_step_whose_role_lacks_a_permission(
    tmp_path: Path, first_sync_on: FirstSync, roster: Path
) -> None:
    # Given the template with Fetch's secretsmanager:GetSecretValue taken out
    template = _without_statement(
        load_template(REPO_ROOT / "template.yaml"), "FetchRosterFunction", "secretsmanager:GetSecretValue"
    )
    with stack_from(_template_copy(tmp_path, template)) as stack:
        # When a district's first sync runs
        outcome = first_sync_on(stack, roster)

    # Then it fails at Fetch: refused by AWS, the report says which role was refused what
    assert outcome.status == "failed"
    assert outcome.report is not None
    reason = outcome.report["failure_reason"]
    assert "AccessDenied" in reason
    assert "FetchRosterFunctionRole" in reason and "secretsmanager:GetSecretValue" in reason
    assert outcome.run is not None and outcome.run.get("failure_reason", reason) == reason
    assert not any(outcome.directory.get(c) for c in ("people", "classrooms", "enrollments"))


def test_the_same_run_passes_with_the_real_template(
    stack: EmbeddedStack, first_sync_on: FirstSync, roster: Path
) -> None:
    # Given the session's stack, built from template.yaml as it is (and checking IAM)
    assert stack.check_iam
    # When the same first sync runs
    outcome = first_sync_on(stack, roster)
    # Then it succeeds and writes the roster
    assert outcome.execution_status == "SUCCEEDED", (outcome.execution.get("error"), outcome.execution.get("cause"))
    assert outcome.status == "succeeded"
    assert outcome.counts("students")["created"] > 0


def test_the_stack_refuses_a_key_it_does_not_know(stack: EmbeddedStack) -> None:
    import boto3
    from botocore.exceptions import ClientError

    # Given a client signing with made-up credentials (what moto's interpreter uses by default)
    stranger = boto3.session.Session(aws_access_key_id="ak", aws_secret_access_key="sk").client(
        "dynamodb", region_name="us-east-1", endpoint_url=stack.endpoint
    )
    # When it reads a table, then the stack refuses it
    with pytest.raises(ClientError) as refused:
        stranger.describe_table(TableName=stack.outputs["DirectoryTableName"])
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_request_without_a_body_is_signed_and_checked_as_any_other(stack: EmbeddedStack) -> None:
    import boto3
    from botocore.exceptions import ClientError

    # Given the stack's own Lambda client, and one signing with the right key id and a wrong secret
    lambda_client = stack.client("lambda")
    credentials = boto3.session.Session().get_credentials()
    forger = boto3.session.Session(
        aws_access_key_id=credentials.access_key, aws_secret_access_key="not-the-secret"
    ).client("lambda", region_name="us-east-1", endpoint_url=stack.endpoint)

    # When each sends Lambda GETs, which carry no body (ListFunctions, GetFunction)
    names = [f["FunctionName"] for f in lambda_client.list_functions()["Functions"]]

    # Then the right signature is accepted, and the wrong one refused as AWS refuses it
    assert any("UpsertChunk" in name for name in names), names
    assert lambda_client.get_function(FunctionName=names[0])["Configuration"]["FunctionName"] == names[0]
    with pytest.raises(ClientError) as refused:
        forger.list_functions()
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "SignatureDoesNotMatch" in str(refused.value)  # moto answers IAM errors in XML, whatever the protocol


def test_a_role_session_is_refused_outside_its_role(stack: EmbeddedStack) -> None:
    from botocore.exceptions import ClientError

    # Given the credentials an Upsert invocation gets
    session = stack.iam.session(stack.iam.role_arns["UpsertChunkFunctionRole"])
    secrets = session.client("secretsmanager", region_name="us-east-1", endpoint_url=stack.endpoint)
    # When it asks for a provider secret, then AccessDenied: only Fetch may read secrets
    with pytest.raises(ClientError) as refused:
        secrets.get_secret_value(SecretId=f"rostersync/{stack.stack_name}/any/clever")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_key_s3_does_not_hold_is_access_denied_to_a_role_that_may_not_list_the_bucket(stack: EmbeddedStack) -> None:
    from botocore.exceptions import ClientError

    # S3 answers a read of a missing key with 404 only to a caller who may list the bucket; to any other it
    # answers 403, so that it cannot tell missing from forbidden. A step that reads an artefact a failed run
    # never wrote (Write report, the fetch plan) takes the 404 for "not written": it needs s3:ListBucket.
    bucket, key = stack.outputs["SyncBucketName"], "runs/d-iam/run-iam/fetch/plan.json"

    def s3_of(role: str) -> Any:
        return stack.iam.session(stack.iam.role_arns[role]).client(
            "s3", region_name="us-east-1", endpoint_url=stack.endpoint
        )

    answers = {}
    for role in (
        "UpsertChunkFunctionRole",
        "FetchRosterFunctionRole",
        "WriteReportFunctionRole",
        "CloseRunFunctionRole",
    ):
        with pytest.raises(ClientError) as refused:
            s3_of(role).get_object(Bucket=bucket, Key=key)
        answers[role] = refused.value.response["Error"]["Code"]
    assert answers == {
        "UpsertChunkFunctionRole": "AccessDenied",  # may read runs/*, may not list
        "FetchRosterFunctionRole": "NoSuchKey",
        "WriteReportFunctionRole": "NoSuchKey",
        "CloseRunFunctionRole": "NoSuchKey",  # a run that died before Fetch's plan: its report names the upload
    }
    with pytest.raises(ClientError) as refused:
        s3_of("UpsertChunkFunctionRole").head_object(Bucket=bucket, Key=key)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # Once the key is there, the role that may not list reads it
    stack.client("s3").put_object(Bucket=bucket, Key=key, Body=b"{}")
    assert s3_of("UpsertChunkFunctionRole").get_object(Bucket=bucket, Key=key)["Body"].read() == b"{}"
    stack.client("s3").delete_object(Bucket=bucket, Key=key)
