"""District lifecycle: the product's "Sync Disabled" and "District Plan Changed" events."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.product_events import handle_product_event


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("district_lifecycle")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return whether the event was applied, and why not (``ProductEventResult``)."""
    return handle_product_event(event).model_dump(mode="json")
