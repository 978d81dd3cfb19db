"""Finish a run: release the district's lock."""

from __future__ import annotations

from rostersync.contracts import FinishResult
from rostersync.observability import logger
from rostersync.steps.context import DistrictContext


def finish_run(district_id: str, run_id: str, status: str) -> FinishResult:
    """Release the lock this run holds (a no-op if it does not hold it) and stamp the run record."""
    ctx = DistrictContext.for_run(district_id, run_id)
    released = ctx.state.release_lock(run_id)
    ctx.state.update_run(run_id, lock_released=released)
    logger.info("run finished", extra={"district_id": district_id, "run_id": run_id, "status": status})
    return FinishResult(status=status, lock_released=released)
