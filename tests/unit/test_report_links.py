"""Report links: SigV4 presigned URLs that expire within the hour by default (issue 9, finding 7)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from rostersync.config import RuntimeConfig
from rostersync_tools.cli.connect import StackHandle, StackResources
from rostersync_tools.cli.run_commands import report_link

RUN = {"html_key": "runs/d-1/r-1/report/report.html"}


def _session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1"
    )


def _handle() -> StackHandle:
    resources = StackResources("dir", "state", "bucket", "arn:aws:states:us-east-1:123456789012:stateMachine:s")
    return StackHandle(_session(), resources, endpoint="http://127.0.0.1:9")


def test_a_report_link_is_sigv4_and_expires_within_the_hour_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPORT_LINK_SECONDS", raising=False)
    # Given the CLI's S3 client for a stack
    s3 = _handle().client("s3")

    # When it makes a report link
    link = report_link(s3, "bucket", RUN)

    # Then the link is signed with SigV4 and is valid for an hour at most
    query = parse_qs(urlsplit(link or "").query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "Signature" not in query and "AWSAccessKeyId" not in query  # no SigV2
    assert int(query["X-Amz-Expires"][0]) <= 3600


def test_the_link_lifetime_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORT_LINK_SECONDS", "900")
    link = report_link(_handle().client("s3"), "bucket", RUN)
    assert parse_qs(urlsplit(link or "").query)["X-Amz-Expires"] == ["900"]
    assert RuntimeConfig.model_fields["report_link_seconds"].default <= 3600


def test_a_client_that_would_sign_with_sigv2_is_refused() -> None:
    from botocore.config import Config

    sigv2 = _session().client("s3", endpoint_url="http://127.0.0.1:9", config=Config(signature_version="s3"))
    with pytest.raises(ValueError, match="SigV4"):
        report_link(sigv2, "bucket", RUN)
