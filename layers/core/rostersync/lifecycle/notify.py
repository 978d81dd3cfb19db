"""Who a district's settings say is told about a run's end, and the email they get (pure).

``notifications.when`` (``settings.NotificationSettings``): ``failures`` — "Sync Failed" only (failed runs
and runs refused as not entitled); ``needs_review`` (the default) — those and "Sync Needs Review";
``every_run`` — every run-end event. Self-checks (dry runs) email nobody: whoever ran one is waiting for
it. The NotifyAdmins function (``steps.notify``) sends what this returns with SES.
"""

from __future__ import annotations

from dataclasses import dataclass

from rostersync.lifecycle.events import (
    SYNC_COMPLETED,
    SYNC_COMPLETED_WITH_ERRORS,
    SYNC_FAILED,
    SYNC_NEEDS_REVIEW,
    RunEndedDetail,
)
from rostersync.settings import NotificationSettings

TOLD_ABOUT = {
    "failures": {SYNC_FAILED},
    "needs_review": {SYNC_FAILED, SYNC_NEEDS_REVIEW},
    "every_run": {SYNC_FAILED, SYNC_NEEDS_REVIEW, SYNC_COMPLETED, SYNC_COMPLETED_WITH_ERRORS},
}

_HEADLINE = {
    SYNC_COMPLETED: "the roster sync completed",
    SYNC_COMPLETED_WITH_ERRORS: "the roster sync completed, with records it could not sync",
    SYNC_NEEDS_REVIEW: "the roster sync needs your review",
    SYNC_FAILED: "the roster sync did not complete",
}


@dataclass(frozen=True)
class Email:
    to: tuple[str, ...]
    subject: str
    body: str


def notification_for(detail_type: str, detail: RunEndedDetail, settings: NotificationSettings) -> Email | None:
    """The email the settings ask for about this run end, or None (nobody to tell, or not about this)."""
    if not settings.emails or detail.dry_run or detail_type not in TOLD_ABOUT[settings.when]:
        return None
    district = detail.district_name or detail.district_id
    lines = [
        f"{district}: {_HEADLINE.get(detail_type, detail_type)}.",
        "",
        f"Run {detail.run_id} ({detail.trigger}), status {detail.status}, "
        f"started {detail.started_at or '?'}, ended {detail.finished_at or '?'}.",
    ]
    if detail.target_run_id:
        lines.append(f"It acted on run {detail.target_run_id}.")
    totals = detail.totals
    if any(totals.values()):
        lines.append(
            "Created {created:,}, updated {updated:,}, archived {archived:,}, restored {restored:,}; "
            "records with errors {errors:,}; held back from archiving {would_archive:,}.".format(
                **{
                    k: totals.get(k, 0)
                    for k in ("created", "updated", "archived", "restored", "errors", "would_archive")
                }
            )
        )
    if detail.reason:
        lines += ["", detail.reason]
    if detail.report:
        lines += ["", "The report:"]
        if detail.report.url:
            lines.append(f"{detail.report.url}")
            lines.append(f"(this link works for {max(1, (detail.report.expires_in_seconds or 0) // 60)} minutes)")
        lines.append(f"Later: {detail.report.command}")
    lines += [
        "",
        f"You get these emails about {settings.when.replace('_', ' ')}: rostersync settings set "
        f"--district {detail.district_id} notifications.when=… changes it.",
    ]
    return Email(to=tuple(settings.emails), subject=f"rostersync · {district}: {detail_type}", body="\n".join(lines))
