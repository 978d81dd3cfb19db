"""Plan reversal: the plan of an undo or an approval (in place of Fetch and Match for those runs)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.reverse import plan_reversal


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("plan_reversal")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the plan manifest key and summary key (``MatchResult``)."""
    return plan_reversal(SyncState.model_validate(event)).model_dump(mode="json")
