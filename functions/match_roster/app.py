"""Match roster: plan the run's writes and archive candidates."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.match import match_roster


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("match_roster")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the plan manifest key and summary key (``MatchResult``)."""
    return match_roster(SyncState.model_validate(event)).model_dump(mode="json")
