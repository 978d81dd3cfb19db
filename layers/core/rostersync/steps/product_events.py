"""The product's lifecycle events ("Sync Disabled", "District Plan Changed"), from the DistrictLifecycle
function's EventBridge rule. ("Sync Enabled" starts a run directly: Start checks the entitlement.)

A bad event — no district, an unknown one, a malformed detail, a plan that is not one — writes nothing:
the result (and the function's log, ids only) says why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.repository import SyncStateRepository
from rostersync.directory.schedules import ScheduleRepository
from rostersync.domain.ids import district_id_problem
from rostersync.lifecycle.district import DistrictLifecycle
from rostersync.lifecycle.events import PLAN_CHANGED, SYNC_DISABLED, PlanChangedDetail, SyncDisabledDetail
from rostersync.observability import logger


class ProductEventResult(BaseModel):
    detail_type: str
    district_id: str | None = None
    applied: bool
    reason: str = ""
    entitled: bool | None = None


def validation_reason(exc: ValidationError) -> str:
    """One line naming each bad field and what is wrong, without echoing the values."""
    return "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'detail'}: {error['msg']}" for error in exc.errors())


def handle_product_event(event: dict[str, Any], now: datetime | None = None) -> ProductEventResult:
    """Apply one product event to its district; refuse a bad one with the reason, writing nothing."""
    detail_type = str(event.get("detail-type", ""))
    detail = event.get("detail")
    raw_district = detail.get("district_id") if isinstance(detail, dict) else None
    district_id = raw_district if isinstance(raw_district, str) and not district_id_problem(raw_district) else None

    def refused(reason: str) -> ProductEventResult:
        logger.warning(
            "product event refused", extra={"detail_type": detail_type, "district_id": district_id, "reason": reason}
        )
        return ProductEventResult(detail_type=detail_type, district_id=district_id, applied=False, reason=reason)

    model = {SYNC_DISABLED: SyncDisabledDetail, PLAN_CHANGED: PlanChangedDetail}.get(detail_type)
    if model is None:
        return refused(f"{detail_type!r} is not an event this function applies ({SYNC_DISABLED}, {PLAN_CHANGED})")
    if not isinstance(detail, dict):
        return refused("the event has no detail object")
    try:
        parsed = model.model_validate(detail)
    except ValidationError as exc:
        return refused(validation_reason(exc))
    config = runtime_config()
    dynamodb = aws.client("dynamodb")
    state = SyncStateRepository(dynamodb, config.sync_state_table, parsed.district_id)
    lifecycle = DistrictLifecycle(state, ScheduleRepository(dynamodb, config.sync_state_table))
    by = parsed.changed_by or "product"
    now = now or datetime.now(UTC)
    if isinstance(parsed, PlanChangedDetail):
        if state.get_item("DISTRICT") is None and state.get_item("PLAN") is None and not state.get_item("CONNECTION"):
            return refused(f"district {parsed.district_id} is not known to rostersync (import it first)")
        entitlement = lifecycle.set_plan(parsed.plan, by, "event", now)
        logger.info("plan changed", extra={"district_id": parsed.district_id, "plan": parsed.plan})
        return ProductEventResult(
            detail_type=detail_type,
            district_id=parsed.district_id,
            applied=True,
            entitled=entitlement.entitled,
            reason=entitlement.reason,
        )
    if not lifecycle.known():
        return refused(f"district {parsed.district_id} is not known to rostersync (import it first)")
    if not lifecycle.disable(by, parsed.reason or "", now):
        return refused(f"sync of district {parsed.district_id} is not enabled: nothing to disable")
    logger.info("sync disabled", extra={"district_id": parsed.district_id})
    return ProductEventResult(detail_type=detail_type, district_id=parsed.district_id, applied=True)
