"""Render the district's index page (``runs/<district>/index.html``), rewritten by every run's report step.

What an admin looks at between nights: the latest run's outcome, the next scheduled run, a trend of the
last runs (one bar chart, every run on the same scale), the last runs with their counts and a link to
each report, and one row per school (students, teachers, classrooms synced; what changed and what left
last run). Same look and rules as report.html (``reports.html``): inline CSS, no script, captions, tables
in their own scrolling boxes, AA contrast, the district's time zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rostersync.reports.html import _CSS, _e, _table, district_zone, when

RUNS_SHOWN = 30
TREND_RUNS = 14
_STATUS = {
    "succeeded": "Synced",
    "succeeded_with_errors": "Synced, with errors",
    "threshold_exceeded": "Held: approve or discard",
    "needs_review": "Held for review",
    "failed": "Failed",
    "not_entitled": "Not entitled",
    "running": "Running",
}
_BAR, _BAR_ERR = "#0072B2", "#b3261e"  # Okabe–Ito blue; errors in red, marked by a label too


@dataclass(frozen=True)
class RunRow:
    """One run as the index lists it (from its run record)."""

    run_id: str
    started_at: str
    status: str
    trigger: str
    dry_run: bool
    counts: Mapping[str, Mapping[str, int]]
    link: str = ""
    # an SFTP district's run: the upload it read, and when that came (report.json's ``upload``)
    upload_name: str = ""
    uploaded_at: str = ""

    def total(self, column: str) -> int:
        return sum(int(counts.get(column, 0)) for counts in self.counts.values())

    @property
    def changed(self) -> int:
        return sum(self.total(c) for c in ("created", "updated", "linked", "restored", "archived"))

    @classmethod
    def from_record(cls, record: Mapping[str, Any], link: str = "") -> RunRow:
        return cls(
            run_id=str(record.get("run_id") or str(record.get("sk", "")).removeprefix("RUN#")),
            started_at=str(record.get("started_at", "")),
            status=str(record.get("status", "")),
            trigger=str(record.get("trigger", "")),
            dry_run=bool(record.get("dry_run")),
            counts=record.get("counts") or {},
            link=link,
            upload_name=str((record.get("upload") or {}).get("name", "")),
            uploaded_at=str((record.get("upload") or {}).get("uploaded_at", "")),
        )


@dataclass(frozen=True)
class SchoolRow:
    """One school: what the sync keeps of it, and what the last run changed."""

    name: str
    students: int = 0
    teachers: int = 0
    classrooms: int = 0
    changed: int = 0
    leaving: int = 0


def _trend(runs: Sequence[RunRow]) -> str:
    """Changed records per run, oldest first, all bars on one scale (the largest run of those shown)."""
    shown = [run for run in runs if not run.dry_run][:TREND_RUNS][::-1]
    if not shown:
        return ""
    largest = max((run.changed for run in shown), default=0) or 1
    bar_w, gap, height, top = 36, 10, 120, 18
    width = len(shown) * (bar_w + gap) + gap
    bars = []
    for i, run in enumerate(shown):
        x = gap + i * (bar_w + gap)
        h = round(run.changed / largest * height) if run.changed else 0
        colour = _BAR_ERR if run.status in ("failed", "threshold_exceeded", "needs_review") else _BAR
        label = f"{run.started_at[:10]}: {run.changed:,} records changed ({_STATUS.get(run.status, run.status)})"
        bars.append(
            f'<rect x="{x}" y="{top + height - max(h, 1)}" width="{bar_w}" height="{max(h, 1)}" fill="{colour}">'
            f"<title>{_e(label)}</title></rect>"
            f'<text x="{x + bar_w / 2}" y="{top + height - max(h, 1) - 4}" text-anchor="middle">{run.changed:,}</text>'
        )
    return (
        '<h2 id="trend">Records changed per run</h2>'
        f'<div class="box"><svg viewBox="0 0 {width} {top + height + 4}" width="{width}" height="{top + height + 4}" '
        'role="img" font-size="11" fill="#1d2330" aria-label="Records changed per run, oldest first, on one '
        f'scale">{"".join(bars)}</svg></div>'
        f'<p class="small">The last {len(shown)} runs, oldest first, on one scale (the tallest bar is '
        f"{largest:,} records); red: a run that failed or was held.</p>"
    )


def render_index(
    district_id: str,
    district_name: str,
    timezone: str,
    runs: Sequence[RunRow],
    schools: Sequence[SchoolRow],
    next_run_at: str | None,
    enabled: bool,
) -> bytes:
    """Render the district's ``index.html``.

    Parameters
    ----------
    runs : Sequence[RunRow]
        The district's runs, newest first, each with a link to its report.html (presigned) or none.
    schools : Sequence[SchoolRow]
        The synced schools as the latest real run saw them.
    next_run_at : str or None
        The next scheduled start (ISO 8601), or None when none is coming.
    enabled : bool
        Whether sync is enabled (the first sync has been started).
    """
    zone = district_zone(timezone)
    latest = runs[0] if runs else None
    if latest is None:
        headline = "No run yet"
    else:
        kind = "Self-check" if latest.dry_run else "Last sync"
        status = _STATUS.get(latest.status, latest.status)
        headline = f"{kind}: {status}, {when(latest.started_at, zone)}"
    if not enabled:
        upcoming = "Sync is not enabled yet: run a self-check, then enable it (rostersync enable)."
    elif next_run_at:
        upcoming = f"Next scheduled sync: {when(next_run_at, zone)}."
    else:
        upcoming = "No scheduled sync is coming (the schedule is off or paused all year: settings schedule.*)."
    rows = []
    # an SFTP district's runs say which upload each read and when it came: the same old upload night after
    # night is an SIS export that stopped (a district that sends the same file name each night too)
    uploads = any(run.upload_name for run in runs[:RUNS_SHOWN])
    for run in runs[:RUNS_SHOWN]:
        label = _STATUS.get(run.status, run.status)
        if run.dry_run:  # nothing was written: the self-check ran, or it failed
            label = "Self-check" if run.status.startswith("succeeded") else f"Self-check: {label.lower()}"
        report = f'<a href="{_e(run.link)}">report</a>' if run.link else "—"
        cells = [when(run.started_at, zone), label]
        numbers = [f"{run.total(c):,}" for c in ("created", "updated", "archived", "errors")]
        upload = ""
        if uploads:
            came = (
                f'<br><span class="small">uploaded {_e(when(run.uploaded_at, zone))}</span>' if run.uploaded_at else ""
            )
            upload = f"<td><code>{_e(run.upload_name)}</code>{came}</td>" if run.upload_name else "<td>—</td>"
        rows.append(
            "<tr>"
            + "".join(f"<td>{_e(c)}</td>" for c in cells)
            + upload
            + "".join(f'<td class="n">{n}</td>' for n in numbers)
            + f"<td>{report}</td></tr>"
        )
    runs_table = _table(
        f"The last {min(len(runs), RUNS_SHOWN)} runs, newest first",
        (
            "Started",
            "Outcome",
            *(("Upload read",) if uploads else ()),
            "Created",
            "Updated",
            "Archived",
            "Errors",
            "Report",
        ),
        "".join(rows),
        "",
        (3, 4, 5, 6) if uploads else (2, 3, 4, 5),
    )
    school_rows = "".join(
        f"<tr><td>{_e(s.name)}</td>"
        + "".join(f'<td class="n">{n:,}</td>' for n in (s.students, s.teachers, s.classrooms, s.changed, s.leaving))
        + "</tr>"
        for s in sorted(schools, key=lambda s: s.name.casefold())
    )
    schools_table = (
        _table(
            "Schools, as the last sync saw them",
            ("School", "Students", "Teachers", "Classrooms", "Changed last run", "Left last run"),
            school_rows,
            "",
            (1, 2, 3, 4, 5),
        )
        if schools
        else "<p>No school is synced yet.</p>"
    )
    body = (
        '<header class="top">'
        f'<p class="district">{_e(district_name or district_id)} · Roster sync overview</p>'
        f'<h1 id="verdict">{_e(headline)}</h1><p class="sentence">{_e(upcoming)}</p>'
        f'<p class="small">Times in the district\'s time zone ({_e(timezone)}). This page is rewritten after '
        "every run; report links work as long as the link to this page.</p></header>"
        f"{_trend(runs)}<h2>Runs</h2>{runs_table}<h2>Schools</h2>{schools_table}"
        f"<footer>District {_e(district_id)} · produced by rostersync</footer>"
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(district_name or district_id)} · roster sync</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return page.encode("utf-8")
