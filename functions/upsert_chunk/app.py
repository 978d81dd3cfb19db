"""Upsert chunk: write one plan chunk to the directory (one Map iteration)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import UpsertChunkRequest
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.upsert import upsert_chunk


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("upsert_chunk")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return how many records the chunk wrote (``UpsertChunkResult``)."""
    return upsert_chunk(UpsertChunkRequest.model_validate(event)).model_dump(mode="json")
