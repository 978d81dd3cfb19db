"""Combine match: the people phase and the partitions summed into the run's plan."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.match import combine_match


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("combine_match")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the plan manifest key and summary key (``MatchResult``)."""
    return combine_match(SyncState.model_validate(event)).model_dump(mode="json")
