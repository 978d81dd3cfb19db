"""Start run: take the district's lock and create the run record."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import StartRequest
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.start import start_run


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("start_run")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the run (``RunRef``); raises ``LockHeldError`` while another run holds the district."""
    return start_run(StartRequest.model_validate(event)).model_dump(mode="json")
