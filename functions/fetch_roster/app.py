"""Fetch roster: stream the provider's roster into snapshot chunks in S3."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.fetch import fetch_roster


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("fetch_roster")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the snapshot manifest key and counts (``FetchResult``)."""
    return fetch_roster(SyncState.model_validate(event).run_ref()).model_dump(mode="json")
