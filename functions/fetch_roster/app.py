"""Fetch roster: plan the reads, read one slice of one list, or assemble the snapshot chunks in S3."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import FetchRequest, SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.fetch import assemble_snapshot, plan_fetch, read_fetch_slice


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("fetch_roster")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the lists to read (``plan``), whether a list is done (``slice``), or the snapshot manifest
    key and counts (``assemble``, ``FetchResult``), as ``event["phase"]`` asks."""
    request = FetchRequest.model_validate(event)
    if request.phase == "slice":
        result = read_fetch_slice(
            request.district_id, request.run_id, request.resource, context.get_remaining_time_in_millis
        )
        return result.model_dump(mode="json")
    run = request.run or SyncState.model_validate(event).run_ref()
    if request.phase == "plan":
        return plan_fetch(run).model_dump(mode="json")
    return assemble_snapshot(run).model_dump(mode="json")
