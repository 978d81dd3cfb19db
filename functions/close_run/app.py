"""Close run: an execution that ended past every Catch gets its failed report, and its lock goes."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.close import close_ended_execution, execution_ended_from_event


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("close_run")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return whether the run was closed and its lock released (``CloseRunResult``)."""
    return close_ended_execution(execution_ended_from_event(event)).model_dump(mode="json")
