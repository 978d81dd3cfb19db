"""Archive one school's students of a clean-up batch (a child of the clean-up state machine's Map)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync import aws
from rostersync.cleanup.batches import CleanupMapItem, archive_school_students
from rostersync.config import runtime_config
from rostersync.observability import logger, step_metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("archive_school_students")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return how many students were archived and skipped (the Map keeps nothing: OutputPath null)."""
    item = CleanupMapItem.model_validate(event)
    config = runtime_config()
    counts = archive_school_students(
        item, aws.client("dynamodb"), config.directory_table, aws.client("s3"), config.sync_bucket
    )
    logger.info("clean-up school done", extra={"batch_id": item.batch_id, **counts})
    return counts
