"""Notify admins: email a run-end event to whom the district's settings name (SES)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.notify import notify_admins


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("notify_admins")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return how many addresses were emailed (``NotifyResult``)."""
    return notify_admins(event).model_dump(mode="json")
