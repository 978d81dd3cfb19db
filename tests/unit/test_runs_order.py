"""``rostersync runs`` lists runs by when they started: on AWS, executions started by EventBridge are named
with UUIDs, so run ids sort in no useful order."""

from __future__ import annotations

import uuid

from rostersync_tools.cli.run_commands import newest_first


def run(started_at: str, run_id: str | None = None) -> dict[str, str]:
    run_id = run_id or str(uuid.uuid4())
    return {"sk": f"RUN#{run_id}", "run_id": run_id, "started_at": started_at}


def test_runs_named_with_uuids_are_listed_by_start_time_newest_first():
    # Given runs whose UUID names sort opposite to when they started
    first = run("2026-11-28T02:00:04+00:00", "ffffffff-0000-4000-8000-000000000000")
    second = run("2026-11-29T02:00:03+00:00", "88888888-0000-4000-8000-000000000000")
    third = run("2026-11-30T02:00:05+00:00", "00000000-0000-4000-8000-000000000000")

    # When they are ordered for the listing
    ordered = newest_first([second, first, third])

    # Then the latest start comes first, whatever the names
    assert [r["started_at"][:10] for r in ordered] == ["2026-11-30", "2026-11-29", "2026-11-28"]
    assert sorted([first, second, third], key=lambda r: r["sk"], reverse=True)[0] is first  # the old order


def test_runs_started_in_the_same_second_keep_a_stable_order_and_runs_without_a_start_come_last():
    a = run("2026-11-30T02:00:00+00:00", "aaaa")
    b = run("2026-11-30T02:00:00+00:00", "bbbb")
    unknown = {"sk": "RUN#zzzz", "run_id": "zzzz"}

    assert [r["run_id"] for r in newest_first([unknown, a, b])] == ["bbbb", "aaaa", "zzzz"]
