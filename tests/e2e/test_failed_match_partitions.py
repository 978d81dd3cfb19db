"""A run whose Match partitions all fail ends through the Map's Catch, with its report, as on AWS.

"Match partitions" is a distributed Map that tolerates no failed partition. When its children fail (their
Lambda crashing, or out of time) the Map fails with ``States.ExceedToleratedFailureThreshold``; its
``States.ALL`` Catch leads to ``Report failure`` and the lock's release, and "Sync failed" passes the
caught error on (``ErrorPath``), so the execution ends with it, as it does on AWS. Nothing is archived.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rostersync import aws

pytestmark = pytest.mark.e2e

THRESHOLD = "States.ExceedToleratedFailureThreshold"


def entered_states(execution_arn: str) -> list[str]:
    """The names of the states the execution entered, in order (its children's are not in its history)."""
    sfn, names, token = aws.client("stepfunctions"), [], None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        names += [e["stateEnteredEventDetails"]["name"] for e in page["events"] if e["type"].endswith("StateEntered")]
        token = page.get("nextToken")
        if not token:
            return names


@pytest.mark.parametrize(
    "error_type",
    [None, "Sandbox.Timedout"],
    ids=["partitions-crash", "partitions-out-of-time"],
)
def test_a_run_whose_partitions_all_fail_ends_with_its_failure_report(
    district: Any, synthetic: Any, stack: Any, error_type: str | None
) -> None:
    # Given a district whose every match_partition invocation dies (a function error no Retry of the
    # partition matches, or Lambda's own "out of time")
    d = district(synthetic)
    crash = stack.inject_crash(
        "MatchPartitionFunction", after_writes=0, times=10_000, error_type=error_type, district=d.id
    )

    # When it syncs
    try:
        run = d.sync(export=False)
    finally:
        stack.clear_crashes()

    # Then the Map failed past its tolerance and its Catch ran: the failure report, then the lock's release
    assert crash.fired >= 1
    states = entered_states(run.execution["executionArn"])
    after_map = states[states.index("Match partitions") + 1 :]
    assert after_map == ["Report failure", "Release lock after failure", "Sync failed"], states
    assert "Archive unmanaged" not in states and "Upsert directory" not in states  # nothing written, nothing archived

    # and the execution ends with the Map's error, as on AWS (moto's Fail state turned that "States." name
    # into States.Runtime, with a ValueError as the cause)
    assert run.execution["status"] == "FAILED"
    assert run.execution["error"] == THRESHOLD, run.execution.get("cause")
    assert "Match partitions" in run.execution["cause"]

    # and the run's own report (not CloseRun's) says it failed on that error, in S3 under the run
    assert run.status == "failed"
    assert run.report is not None and run.report["status"] == "failed" and run.report["run_id"] == run.run_id
    assert run.run["report_key"].endswith("report.json")
    assert f"internal error ({THRESHOLD})" in run.report["failure_reason"]
    stored = json.loads(aws.client("s3").get_object(Bucket=run.bucket, Key=run.run["report_key"])["Body"].read())
    assert stored["failure_reason"] == run.report["failure_reason"]

    # and the district is free again
    assert d.state.lock_holder() is None
