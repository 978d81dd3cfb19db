"""Write report: report.json, CSVs and report.html to S3; the run's final status."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.report import write_report


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("write_report")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return the run's status and report keys (``ReportResult``)."""
    return write_report(SyncState.model_validate(event)).model_dump(mode="json")
