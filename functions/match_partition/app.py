"""Match partition: plan one partition's enrollments and guardian links (one Map iteration)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import MatchPartitionRequest
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.match import match_partition


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("match_partition")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Plan the partition; its result is in S3 (``plan/pNNNN/result.json``), so the Map keeps nothing."""
    match_partition(MatchPartitionRequest.model_validate(event))
    return {}
