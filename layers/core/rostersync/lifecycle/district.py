"""A district's plan and its sync switch, each change recorded with who and when.

Sync-state items (``pk = <district>``):

- ``PLAN``: ``plan``, ``changed_at``, ``changed_by``, ``source`` (``event`` or ``import-product``);
- ``ENABLED``: ``enabled`` (absent on items written before disable existed: enabled), ``enabled_at``,
  ``enabled_by``, ``run_id`` (the "Sync Enabled" run), and once disabled ``disabled_at``, ``disabled_by``,
  ``disabled_reason``. Disabling updates the item, never deletes it (no role but Finish's deletes);
- ``LIFECYCLE#<at>#<n>``: one item per change or refused event (``action``, ``by``, ``at``, ``detail``).

Disabling takes the district off the schedule (``ScheduleRepository.unschedule``), which makes its uploads
checked-only again (Start reads ``enabled``), lets a run in progress finish, and archives nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from rostersync.directory.repository import SyncStateRepository
from rostersync.directory.schedules import ScheduleRepository
from rostersync.lifecycle.entitlement import Entitlement, entitlement_of


def _at(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="seconds")


class DistrictLifecycle:
    """Plan, enabled switch and their history for one district."""

    def __init__(self, state: SyncStateRepository, schedules: ScheduleRepository | None = None) -> None:
        self.state = state
        # The SCHEDULES items live in the same table (directory.schedules).
        self.schedules = schedules or ScheduleRepository(state._client, state._table)  # noqa: SLF001
        self.district_id = state.district_id

    # -- reading ------------------------------------------------------------------------------------

    def known(self) -> bool:
        """Whether the product imported the district or sent its plan."""
        return self.state.get_item("DISTRICT") is not None or self.state.get_item("PLAN") is not None

    def entitlement(self) -> Entitlement:
        return entitlement_of(self.district_id, self.state.get_item("DISTRICT"), self.state.get_item("PLAN"))

    def switch(self) -> dict[str, Any] | None:
        """The ``ENABLED`` item as stored (None: never enabled)."""
        return self.state.get_item("ENABLED")

    def is_enabled(self) -> bool:
        return self.state.enabled() is not None

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest changes and refused events, newest first."""
        return self.state.items_with_prefix("LIFECYCLE#", newest_first=True, limit=limit)

    # -- writing ------------------------------------------------------------------------------------

    def record(self, action: str, by: str, now: datetime | None = None, **detail: Any) -> None:
        """One history item: what happened, who did it and when."""
        at = _at(now)
        # Microseconds in the key: changes made together (a plan lost, then the sync disabled) keep their order.
        moment = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
        self.state.put_item(
            f"LIFECYCLE#{moment}#{uuid.uuid4().hex[:6]}",
            {"action": action, "by": by or "unknown", "at": at, **{k: v for k, v in detail.items() if v is not None}},
        )

    def set_plan(self, plan: str, by: str, source: str, now: datetime | None = None) -> Entitlement:
        """Record the district's plan; losing the entitlement disables its sync. Returns the entitlement."""
        at = _at(now)
        before = self.entitlement()
        plan = plan.strip().lower()
        self.state.put_item("PLAN", {"plan": plan, "changed_at": at, "changed_by": by or "unknown", "source": source})
        after = self.entitlement()
        self.record("plan_changed", by, now, plan=plan, previous=before.plan, source=source, entitled=after.entitled)
        if before.entitled and not after.entitled and self.is_enabled():
            self.disable(
                by, f"the {plan} plan does not include sync", (now or datetime.now(UTC)) + timedelta(microseconds=1)
            )
        return after

    def mark_enabled(self, run_id: str, by: str | None, now: datetime | None = None) -> None:
        """Sync is enabled (Start of the "Sync Enabled" run that passed the entitlement check)."""
        at = _at(now)
        self.state.put_item(
            "ENABLED", {"enabled": True, "enabled_at": at, "enabled_by": by or "unknown", "run_id": run_id}
        )
        self.record("enabled", by or "unknown", now, run_id=run_id)

    def disable(self, by: str, reason: str = "", now: datetime | None = None) -> bool:
        """Turn the district's sync off: off the schedule, uploads checked only. False (nothing written)
        when it was not enabled."""
        current = self.switch()
        if current is None or not current.get("enabled", True):
            return False
        at = _at(now)
        # Off the schedule first, then the switch: whoever reads the switch off (the CLI waits for it) finds
        # no next run either. A retried event finds the switch still on and does both again.
        self.schedules.unschedule(self.district_id, now or datetime.now(UTC))
        self.state.put_item(
            "ENABLED",
            {
                **current,
                "enabled": False,
                "disabled_at": at,
                "disabled_by": by or "unknown",
                "disabled_reason": reason or "disabled by the product",
            },
        )
        self.record("disabled", by, now, reason=reason or None)
        return True
