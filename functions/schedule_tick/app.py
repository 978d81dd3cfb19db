"""Schedule tick: every 15 minutes, start the scheduled sync of each district whose time has come."""

from datetime import UTC, datetime

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.schedule import tick


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("schedule_tick")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the districts started and moved on (``TickResult``); the event (EventBridge's) carries nothing."""
    return tick(datetime.now(UTC)).model_dump(mode="json")
