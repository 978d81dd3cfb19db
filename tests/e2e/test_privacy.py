"""Logs carry ids and counts, never names, emails, phones or birth dates (DESIGN §5)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


class _Capture(logging.Handler):
    """Keeps every record: its message and all its attributes (Powertools puts ``extra`` keys there)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__!r}")


@pytest.fixture
def info_logs() -> Iterator[_Capture]:
    """Every log record of the process at INFO and above while the test runs (the Lambdas run in-process)."""
    from rostersync.observability import logger as powertools

    capture = _Capture()
    root = logging.getLogger()
    loggers = [root, logging.getLogger(powertools.name)]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.INFO)
        each.addHandler(capture)
    try:
        yield capture
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.removeHandler(capture)
            each.setLevel(level)


def test_a_run_logs_no_personal_data(
    district: Any, synthetic: Any, info_logs: _Capture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given people with distinctive names, emails, phones and birth dates, some of them in bad records,
    # and a provider that needs a retry
    def disguise(user: dict[str, Any]) -> None:
        tag = user["id"][-6:]
        user["name"]["last"] = f"Famname{tag}"
        user["email"] = f"pii.{tag}@example.org"
        for role in user["roles"].values():
            if "dob" in role:
                role["dob"] = f"{int(tag, 16) % 12 + 1}/{int(tag, 16) % 28 + 1}/1987"
            if "email" in role:
                role["email"] = user["email"]
            if role.get("phone"):
                role["phone"] = f"(999) 555-{tag[-4:]}"

    synthetic.edit_users(disguise)
    student = synthetic.users("student")[0]
    # The repeated student is an error line that names it by its SIS id: a report may show that, a log not.
    sis_id = "SIS-PRIVATE-7731"
    synthetic.append_users(
        {"data": {**student, "roles": {"custodian": {}, "staff": None}, "id": "66ab0000aaaaaaaaaa000001"}},
        {"data": {**student, "roles": {"student": {**student["roles"]["student"], "sis_id": sis_id}}}},
    )
    personal = set()
    for user in synthetic.users():
        if {"student", "contact"} & set(user["roles"]):
            personal |= {user["name"]["last"], user["email"]}
            personal |= {role[f] for role in user["roles"].values() for f in ("dob", "phone") if role.get(f)}
    assert len(personal) > 200
    d = district(synthetic)
    d.simulator.inject("/v3.0/users", 500, times=1)

    # When it syncs with logging at INFO
    run = d.sync(export=False)

    # Then the logs said what happened (so they were captured) and nobody's personal data is in them
    assert run.status == "succeeded_with_errors", run.execution.get("cause")
    printed = capfd.readouterr()
    logged = "\n".join([*info_logs.lines, printed.out, printed.err])
    assert run.run_id in logged and "retrying" in logged
    leaked = sorted(value for value in personal if value in logged)
    assert leaked == []
    assert sis_id in {e["sis_id"] for e in run.csv_rows("errors.csv")} and sis_id not in logged
