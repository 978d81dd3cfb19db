"""Finish run: release the district's lock."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.finish import finish_run


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("finish_run")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Release the lock this run holds (``FinishResult``)."""
    state = SyncState.model_validate(event)
    run = state.run_ref()
    status = (event.get("report") or {}).get("status", "failed")
    return finish_run(run.district_id, run.run_id, status).model_dump(mode="json")
