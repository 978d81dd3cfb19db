"""Archive unmanaged: archive sync-managed records that left the roster, within the deletion threshold."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.archive import archive_unmanaged


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("archive_unmanaged")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return what was archived and which kinds hit the threshold (``ArchiveResult``)."""
    return archive_unmanaged(SyncState.model_validate(event)).model_dump(mode="json")
