"""Every run ends with a report and no lock, even when its execution ends past every Catch (issue 9, 5).

Step Functions ends some executions where the state machine's own ``Report failure`` cannot run: a state
over 256 KB (``States.DataLimitExceeded``), a time-out, an execution stopped by hand. EventBridge announces
each (``Step Functions Execution Status Change``); the CloseRun function, on the template's rule, writes
the failed report and lets the district's lock go. Here an execution is stopped while Fetch waits on a
provider that hangs.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rostersync import aws

pytestmark = pytest.mark.e2e

CLOSE_SECONDS = 300  # a bound: the close runs as soon as the execution ends


def _wait_for(condition: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_a_stopped_run_gets_its_failed_report_and_frees_its_district(district: Any, synthetic: Any, stack: Any):
    # Given a district whose provider hangs on users, and a sync of it waiting there in Fetch
    d = district(synthetic)
    arrived, release = d.simulator.hold("/v3.0/users")
    sfn = stack.client("stepfunctions")
    arn = stack.start_sync(d.id)
    try:
        assert arrived.wait(CLOSE_SECONDS), "Fetch never asked for users"
        run_id = arn.rsplit(":", 1)[1]
        assert (d.state.get_run(run_id) or {}).get("status") == "running"
        assert (d.state.lock_holder() or {}).get("run_id") == run_id

        # When the execution is stopped (the state machine's Catch never runs)
        sfn.stop_execution(executionArn=arn, error="Stopped", cause="stopped by the operator")
    finally:
        release.set()
    assert stack.wait(arn)["status"] == "ABORTED"

    # Then the run is recorded failed, with a report that says why, and the district is free again
    # (the close records the run failed, then expires the lock, then notes that on the run: wait for the last)
    run = _wait_for(
        lambda: (r := d.state.get_run(run_id)) and r.get("status") == "failed" and "lock_released" in r and r,
        CLOSE_SECONDS,
    )
    assert run, f"the run record stayed {d.state.get_run(run_id)}"
    assert "stopped before it finished" in run["failure_reason"]
    report = json.loads(
        aws.client("s3").get_object(Bucket=stack.outputs["SyncBucketName"], Key=run["report_key"])["Body"].read()
    )
    assert report["status"] == "failed" and report["run_id"] == run_id
    assert "stopped before it finished" in report["failure_reason"]
    lock = d.state.lock_holder() or {}
    assert lock.get("run_id") != run_id or lock["expires_at"] < time.time()

    # and the next sync of the district runs (its lock was let go, not left for hours)
    assert d.sync(export=False).status == "succeeded"


def test_an_execution_the_state_machine_reported_is_left_as_it_is(district: Any, synthetic: Any, stack: Any):
    # Given a run that ended through the state machine's own failure path (a refused token)
    d = district(synthetic)
    d.connect("not-the-districts-token")
    failed = d.sync(export=False)
    assert failed.status == "failed"
    before = d.state.get_run(failed.run_id)

    # When CloseRun hears of that execution's end (it does: a failed execution is announced)
    from rostersync.steps.close import close_ended_execution, execution_ended_from_event

    ended = execution_ended_from_event(
        {
            "detail": {
                "executionArn": failed.execution["executionArn"],
                "status": "FAILED",
                "input": json.dumps(failed.input),
            }
        }
    )
    result = close_ended_execution(ended)

    # Then it changes nothing: the run's own report stands
    assert not result.closed
    assert d.state.get_run(failed.run_id)["report_key"] == before["report_key"]
    assert d.state.get_run(failed.run_id)["failure_reason"] == before["failure_reason"]


def test_an_sftp_districts_run_closed_past_every_catch_names_the_upload_it_read(sftp_district: Any, stack: Any):
    from rostersync_tools.cli.inputs import bundle_bytes

    # Given an SFTP district's upload, whose run dies in Write report (its report never written: the
    # execution fails past every Catch, and CloseRun writes the failed report)
    district, s3 = sftp_district, aws.client("s3")
    district.state.mark_enabled("enabled-by-test")
    key = f"uploads/{district.id}/night-7/export.zip"
    s3.put_object(Bucket=district.bucket, Key=key, Body=bundle_bytes(district.bundle))
    stack.inject_crash("WriteReportFunction", after_writes=0, times=2, district=district.id)
    try:
        (arn,) = stack.publish_upload(key)
        assert stack.wait(arn)["status"] == "FAILED"
    finally:
        stack.clear_crashes()
    run_id = arn.rsplit(":", 1)[1]

    # Then CloseRun's report names the upload and when it came, as Write report's would, and so does the
    # run record the district's overview lists
    run = _wait_for(lambda: (r := district.state.get_run(run_id)) and r.get("status") == "failed" and r, CLOSE_SECONDS)
    assert run, f"the run record stayed {district.state.get_run(run_id)}"
    report = json.loads(s3.get_object(Bucket=district.bucket, Key=run["report_key"])["Body"].read())
    assert "failed outside its steps" in report["failure_reason"]
    came = s3.head_object(Bucket=district.bucket, Key=key)["LastModified"].isoformat(timespec="seconds")
    assert report["upload"] == {"name": "night-7/export.zip", "uploaded_at": came}
    assert run["upload"] == report["upload"]
