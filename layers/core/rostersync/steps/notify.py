"""Deliver a run-end event to the people the district's settings name (the NotifyAdmins function, from
the rule on the stack's bus), by SES email from the template's ``NotificationSender``.

What was sent is stamped on the run record (``notified``: the event, how many addresses, when: never the
addresses). On the embedded stack SES keeps every message it accepted, which ``EmbeddedStack.sent_emails``
reads back: that is what ``make demo`` and the tests show.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.repository import SyncStateRepository
from rostersync.lifecycle.events import RunEndedDetail
from rostersync.lifecycle.notify import notification_for
from rostersync.observability import logger
from rostersync.settings import NotificationSettings, SettingsError


class NotifyResult(BaseModel):
    run_id: str
    detail_type: str
    sent_to: int = 0
    reason: str = ""


def notify_admins(event: dict[str, Any]) -> NotifyResult:
    """Email the run end to whom the district's current settings name, if they asked about this kind."""
    detail_type = str(event.get("detail-type", ""))
    detail = RunEndedDetail.model_validate(event.get("detail") or {})
    config = runtime_config()
    state = SyncStateRepository(aws.client("dynamodb"), config.sync_state_table, detail.district_id)
    try:
        settings = state.current_settings()[0].notifications
    except SettingsError:
        settings = NotificationSettings()
    email = notification_for(detail_type, detail, settings)
    if email is None:
        return NotifyResult(run_id=detail.run_id, detail_type=detail_type, reason="not asked for by the settings")
    aws.client("ses").send_email(
        Source=config.notification_sender,
        Destination={"ToAddresses": list(email.to)},
        Message={
            "Subject": {"Data": email.subject, "Charset": "UTF-8"},
            "Body": {"Text": {"Data": email.body, "Charset": "UTF-8"}},
        },
    )
    at = datetime.now(UTC).isoformat(timespec="seconds")
    state.update_run(detail.run_id, notified={"detail_type": detail_type, "recipients": len(email.to), "at": at})
    logger.info(
        "run end notified", extra={"run_id": detail.run_id, "detail_type": detail_type, "recipients": len(email.to)}
    )
    return NotifyResult(run_id=detail.run_id, detail_type=detail_type, sent_to=len(email.to))
