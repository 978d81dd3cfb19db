"""The benchmark's 1 %-change nights (issue 13): one read from Clever's events, one read in full.

``bench_sync.py`` calls ``one_percent_nights`` after its full sync and unchanged re-sync of a Clever
district. Two nights, each changing about 1 % of the users (renamed, left, arrived, with the sections
that list them), are synced: the first from Clever's events (the default), the second as a full read
(settings ``incremental.mode = full``), so the two carry the same amount of change. For each it prints
the requests the provider answered, the directory write requests and the changes the report counted,
and the time.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path
from typing import Any

CHANGE_SHARE = 0.01


def one_percent_change(source: Path, target: Path, seed: int) -> dict[str, int]:
    """Write ``target``: ``source``'s Clever dataset with 1 % of its users changed (0.6 % renamed, 0.2 %
    students gone, as many new ones, each in the seats of one who left; the leavers' contacts no longer
    list them). Returns the counts."""
    rng = random.Random(seed)  # noqa: S311 -- a benchmark's changes, not a secret
    target.mkdir(parents=True, exist_ok=True)
    for name in ("districts", "schools", "terms", "courses"):
        if (source / f"{name}.json").is_file():
            shutil.copy(source / f"{name}.json", target / f"{name}.json")
    users_body = json.loads((source / "users.json").read_text())
    sections_body = json.loads((source / "sections.json").read_text())
    users = users_body["data"]
    n_changes = max(5, int(len(users) * CHANGE_SHARE))
    students = [i for i, u in enumerate(users) if "student" in u["data"].get("roles", {})]
    leaving = rng.sample(students, max(1, n_changes // 5))
    others = [i for i in range(len(users)) if i not in set(leaving)]
    renamed = rng.sample(others, n_changes - 2 * len(leaving))
    for i in renamed:
        name = users[i]["data"].get("name") or {}
        users[i]["data"]["name"] = {**name, "last": f"{name.get('last', '')}-{seed}"}
    gone = {users[i]["data"]["id"] for i in leaving}
    arrivals: list[dict[str, Any]] = []
    for number, i in enumerate(leaving):
        clone = copy.deepcopy(users[i])
        clone["data"]["id"] = f"{seed:02x}{number:022x}"
        clone["data"]["roles"]["student"]["sis_id"] = f"new-{seed}-{number}"
        arrivals.append(clone)
    # each arrival takes a leaver's seats; the leaver's contacts no longer list them
    by_gone = dict(zip([users[i]["data"]["id"] for i in leaving], [a["data"]["id"] for a in arrivals], strict=True))
    for section in sections_body["data"]:
        listed = section["data"].get("students") or []
        if any(s in gone for s in listed):
            section["data"]["students"] = [by_gone.get(s, s) for s in listed]
    for user in users:
        contact = (user["data"].get("roles") or {}).get("contact")
        relationships = (contact or {}).get("student_relationships") or []
        if any(r.get("student") in gone for r in relationships):
            contact["student_relationships"] = [r for r in relationships if r.get("student") not in gone]
    users_body["data"] = [u for u in users if u["data"]["id"] not in gone] + arrivals
    (target / "users.json").write_text(json.dumps(users_body))
    (target / "sections.json").write_text(json.dumps(sections_body))
    return {"renamed": len(renamed), "left": len(gone), "arrived": len(arrivals)}


def fetch_seconds(stack: Any, run_id: str) -> float | None:
    """How long the run's fetch took, from "Plan the fetch" entered to "Fetch roster" (the snapshot's
    assembly) exited, the lists' slices between (from the execution's history)."""
    arn = stack.outputs["SyncStateMachineArn"].replace(":stateMachine:", ":execution:") + f":{run_id}"
    events = stack.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["timestamp"] for e in events if e.get("stateEnteredEventDetails", {}).get("name") == "Plan the fetch"]
    exited = [e["timestamp"] for e in events if e.get("stateExitedEventDetails", {}).get("name") == "Fetch roster"]
    if not entered or not exited:
        return None
    return (exited[0] - entered[0]).total_seconds()


def one_percent_nights(
    workdir: Path,
    simulator: Any,
    state: Any,
    sync: Any,
    stack: Any = None,
) -> None:
    """Sync two 1 %-change nights, by events then in full, and print their figures.

    ``sync(label)`` runs one sync and returns (seconds, directory write requests, report).
    """
    from rostersync.settings import SyncSettings

    figures = []
    previous = workdir
    for night, mode in ((2, "auto"), (3, "full")):
        folder = workdir / f"night-{night}"
        changes = one_percent_change(previous, folder, seed=night)
        previous = folder
        settings, version = state.current_settings()
        wanted = SyncSettings.model_validate(
            {**settings.model_dump(mode="json"), "incremental": {**settings.incremental.model_dump(), "mode": mode}}
        )
        state.put_settings(wanted, version, "bench")
        simulator.set_dataset(folder)
        before = len(simulator.requests_seen)
        seconds, writes, report = sync(f"1 % night {night}")
        requests = len(simulator.requests_seen) - before
        written = sum(c["created"] + c["updated"] + c["restored"] + c["archived"] for c in report["counts"].values())
        kind = (report.get("sync") or {}).get("kind", "?")
        fetch = fetch_seconds(stack, report["run_id"]) if stack is not None else None
        figures.append((kind, seconds, requests, writes, written, fetch))
        print(
            f"\n1 % night {night} ({changes['renamed']:,} renamed, {changes['left']:,} left, {changes['arrived']:,} "
            f"arrived), read as {kind}: {report['status']} in {seconds:.1f}s"
        )
        print(f"  requests to the provider:  {requests:,}")
        print(f"  directory write requests:  {writes:,} ({written:,} records written: the changes)")
        if fetch is not None:
            print(f"  Fetch (plan, lists, snapshot): {fetch:.1f}s")
    (_, events_s, events_r, events_w, _, events_f), (_, full_s, full_r, full_w, _, full_f) = figures
    print(
        f"\n1 % night by events vs in full: {events_r:,} vs {full_r:,} provider requests, {events_w:,} vs {full_w:,} "
        f"directory write requests, {events_s:.1f}s vs {full_s:.1f}s end to end ({events_s / max(full_s, 1e-9):.2f}x)"
        + (f", Fetch {events_f:.1f}s vs {full_f:.1f}s" if events_f is not None and full_f is not None else "")
    )
