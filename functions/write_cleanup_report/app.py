"""Write a clean-up batch's report (JSON, CSV, HTML in S3) and its final status."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync import aws
from rostersync.cleanup.batches import CleanupReportRequest, write_cleanup_report
from rostersync.config import runtime_config
from rostersync.observability import logger, step_metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("write_cleanup_report")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the batch's status, report key and counts (``CleanupReportResult``)."""
    request = CleanupReportRequest.model_validate(event)
    config = runtime_config()
    result = write_cleanup_report(
        request, aws.client("dynamodb"), config.sync_state_table, aws.client("s3"), config.sync_bucket
    )
    return result.model_dump(mode="json")
