"""Match roster (people phase): plan schools, classrooms, people and guardians; route the rest to partitions."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.contracts import SyncState
from rostersync.observability import logger, step_metrics, tracer
from rostersync.steps.match import match_people


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@step_metrics("match_roster")
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    """Return where the people phase's result and the partitions' manifest are (``MatchPrepared``)."""
    return match_people(SyncState.model_validate(event)).model_dump(mode="json")
