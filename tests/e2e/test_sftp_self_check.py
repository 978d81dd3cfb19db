"""An SFTP (OneRoster CSV) district can run the self-check, a manual sync or its first sync too: the run
reads the district's latest upload. With no upload yet, the run fails with what to do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.product import export_directory
from rostersync_tools.cli.inputs import bundle_bytes

pytestmark = pytest.mark.e2e

FOLDER = "2026-11-28_nightly-export-from-the-student-information-system"


def test_with_no_upload_yet_the_self_check_says_to_upload_first(sftp_district: Any, run_sync: Any) -> None:
    run = run_sync(sftp_district.id, trigger="self_check", dry_run=True, export=False)

    assert run.status == "failed"
    assert "none has been uploaded yet" in run.report["failure_reason"]
    assert f"uploads/{sftp_district.id}/" in run.report["failure_reason"]


def test_the_self_check_of_an_sftp_district_reads_its_latest_upload_and_writes_nothing(
    stack: Any, sftp_district: Any, run_sync: Any, synthetic: Any, report_in_browser: Any
) -> None:
    district_id, s3 = sftp_district.id, aws.client("s3")
    before = json.dumps(export_directory(sftp_district.directory, sftp_district.state), sort_keys=True)
    # An upload that is not a bundle, and the bundle itself, written without starting a sync (as if it
    # arrived before the district's rule existed): the self-check must pick the bundle
    stack.router.enabled = False
    uploading = datetime.now(UTC)
    try:
        # named as SIS exports name their folders: long, no spaces (the phone's width must hold it)
        key = f"uploads/{district_id}/{FOLDER}/bundle.zip"
        s3.put_object(Bucket=sftp_district.bucket, Key=key, Body=bundle_bytes(sftp_district.bundle))
        s3.put_object(Bucket=sftp_district.bucket, Key=f"uploads/{district_id}/notes.txt", Body=b"hello")
    finally:
        stack.router.enabled = True

    run = run_sync(district_id, trigger="self_check", dry_run=True, export=False)

    assert run.status == "succeeded" and run.report["dry_run"] is True
    assert run.run["bundle_key"] == key
    # The report names the upload it read, as the district named it, and when it came (Fetch's plan, under
    # Fetch's role: a HeadObject of the version read)
    assert run.report["upload"]["name"] == f"{FOLDER}/bundle.zip"
    came = datetime.fromisoformat(run.report["upload"]["uploaded_at"])
    assert uploading - timedelta(seconds=1) <= came <= datetime.fromisoformat(run.report["started_at"])
    page = s3.get_object(Bucket=sftp_district.bucket, Key=run.run["html_key"])["Body"].read().decode()
    assert f"From the upload <code>{FOLDER}/bundle.zip</code>, uploaded " in page
    # and so it reads in a browser, at a desk and on a phone
    report_in_browser(run).assert_reads_well([f"From the upload {FOLDER}/bundle.zip"])
    assert run.counts("students")["created"] == len(synthetic.users("student"))
    after = json.dumps(export_directory(sftp_district.directory, sftp_district.state), sort_keys=True)
    assert after == before and run.directory_writes == 0


def test_enabling_an_sftp_district_syncs_its_latest_upload_and_puts_it_on_no_schedule(
    stack: Any, sftp_district: Any, run_sync: Any
) -> None:
    from rostersync.directory.schedules import ScheduleRepository

    district_id, s3 = sftp_district.id, aws.client("s3")
    stack.router.enabled = False
    try:
        key = f"uploads/{district_id}/first/bundle.zip"
        s3.put_object(Bucket=sftp_district.bucket, Key=key, Body=bundle_bytes(sftp_district.bundle))
    finally:
        stack.router.enabled = True

    run = run_sync(district_id, trigger="enabled", export=False)

    assert run.status == "succeeded" and run.run["bundle_key"] == key and run.counts("students")["created"] > 0
    schedules = ScheduleRepository(aws.client("dynamodb"), runtime_config().sync_state_table)
    assert schedules.get(district_id) is None  # its uploads start its syncs


def test_an_upload_before_sync_is_enabled_is_only_checked_then_enabling_syncs_it(
    stack: Any, sftp_district: Any, synthetic: Any
) -> None:
    district_id, s3, state = sftp_district.id, aws.client("s3"), sftp_district.state
    before = json.dumps(export_directory(sftp_district.directory, state), sort_keys=True)

    # The district's SIS drops its export before the admin has enabled sync
    key = f"uploads/{district_id}/early/bundle.zip"
    s3.put_object(Bucket=sftp_district.bucket, Key=key, Body=bundle_bytes(sftp_district.bundle))
    (arn,) = stack.publish_upload(key)
    assert stack.wait(arn)["status"] == "SUCCEEDED"

    # Then that run was a self-check: its report says why, and nothing was written
    run = state.get_run(arn.rsplit(":", 1)[1])
    assert run is not None and run["dry_run"] is True and run["trigger"] == "upload"
    report = json.loads(s3.get_object(Bucket=sftp_district.bucket, Key=run["report_key"])["Body"].read())
    assert report["dry_run"] is True
    assert any("Sync is not enabled" in note for note in report["notes"])
    assert report["counts"]["students"]["created"] == len(synthetic.users("student"))
    assert json.dumps(export_directory(sftp_district.directory, state), sort_keys=True) == before

    # When the admin enables sync, the first sync applies the latest upload
    (enabled,) = stack.publish_event("product.directory", "Sync Enabled", {"district_id": district_id})
    assert stack.wait(enabled)["status"] == "SUCCEEDED"
    first = state.get_run(enabled.rsplit(":", 1)[1])
    assert first is not None and first["status"] == "succeeded" and first["bundle_key"] == key
    assert state.enabled() is not None
    students = [p for p in export_directory(sftp_district.directory, state)["people"] if "student" in p["roles"]]
    assert len(students) == len(synthetic.users("student"))
