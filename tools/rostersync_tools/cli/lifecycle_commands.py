"""rostersync disable, status, and runs approve | discard | undo: a district's lifecycle (issue 12).

``enable`` (run_commands) and ``disable`` send the product's own events through PutEvents, as the
product does; ``runs approve`` and ``runs undo`` start a recorded run (trigger ``approve``/``undo``)
through StartExecution after checking the run they act on (``lifecycle.holds.run_action_problem``): a
refusal is one line and exit code 2, with nothing started or written. ``runs discard`` records the
decision directly (it writes no directory record).
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rostersync.directory.schedules import ScheduleRepository
from rostersync.lifecycle.district import DistrictLifecycle
from rostersync.lifecycle.events import SYNC_DISABLED
from rostersync.lifecycle.holds import discard_hold, run_action_problem
from rostersync_tools.cli.connect import StackHandle, connect_from_args
from rostersync_tools.cli.inputs import UsageError

DISABLE_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.5


def who(args: argparse.Namespace) -> str:
    """Who the change is recorded as: ``--by``, else the local user name."""
    if getattr(args, "by", None):
        return str(args.by)
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _require_known(handle: StackHandle, district_id: str) -> DistrictLifecycle:
    lifecycle = DistrictLifecycle(handle.state(district_id))
    if not lifecycle.known():
        raise UsageError(
            f"--district {district_id}: no such district in this stack "
            "(import the product's directory first: rostersync import-product --file FILE)"
        )
    return lifecycle


def run_disable(
    args: argparse.Namespace, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic
) -> int:
    """``rostersync disable``: the product's "Sync Disabled" event; waits until the stack applied it."""
    handle = connect_from_args(args)
    lifecycle = _require_known(handle, args.district)
    if not lifecycle.is_enabled():
        raise UsageError(f"--district {args.district}: sync is not enabled, nothing to disable")
    detail = {"district_id": args.district, "changed_by": who(args)}
    if args.reason:
        detail["reason"] = args.reason
    answer = handle.client("events").put_events(
        Entries=[
            {
                "Source": handle.resources.product_event_source,
                "DetailType": SYNC_DISABLED,
                "Detail": json.dumps(detail),
            }
        ]
    )
    entry = answer["Entries"][0]
    if "EventId" not in entry:
        raise UsageError(f"the event was refused: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
    print(f'"Sync Disabled" sent for {args.district} (source {handle.resources.product_event_source}).')
    deadline = clock() + args.wait_timeout
    while lifecycle.is_enabled():
        if clock() >= deadline:
            print("The stack has not applied it yet: check the DistrictLifecycle function's rule and log.")
            return 1
        sleep(POLL_SECONDS)
    switch = lifecycle.switch() or {}
    print(
        f"Sync of {args.district} is disabled (by {switch.get('disabled_by', '?')}, {switch.get('disabled_at', '?')}): "
        "no scheduled runs, uploads are only checked; a run in progress finishes. "
        f"rostersync enable --district {args.district} resumes it."
    )
    return 0


def district_status(handle: StackHandle, district_id: str) -> dict[str, Any]:
    """What ``rostersync status`` shows: entitlement, switch, connection, next run, last run, held runs."""
    state = handle.state(district_id)
    lifecycle = DistrictLifecycle(state)
    entitlement = lifecycle.entitlement()
    plan = state.get_item("PLAN") or {}
    switch = lifecycle.switch() or {}
    connection = state.get_item("CONNECTION") or {}
    scheduled = ScheduleRepository(handle.client("dynamodb"), handle.resources.sync_state_table).get(district_id)
    runs = sorted(state.runs(), key=lambda r: str(r.get("started_at", "")), reverse=True)
    last = runs[0] if runs else None
    held = [
        {"run_id": r["run_id"], "held": (r.get("hold") or {}).get("counts", {}), "started_at": r.get("started_at")}
        for r in runs
        if (r.get("hold") or {}).get("state") == "held"
    ]
    return {
        "district_id": district_id,
        "entitlement": {
            "entitled": entitlement.entitled,
            "plan": entitlement.plan,
            "reason": entitlement.reason or None,
            "changed_by": plan.get("changed_by"),
            "changed_at": plan.get("changed_at"),
        },
        "enabled": {
            "enabled": lifecycle.is_enabled(),
            "enabled_by": switch.get("enabled_by"),
            "enabled_at": switch.get("enabled_at"),
            "disabled_by": switch.get("disabled_by"),
            "disabled_at": switch.get("disabled_at"),
            "disabled_reason": switch.get("disabled_reason"),
        },
        "connection": {"provider": connection.get("provider"), "base_url": connection.get("base_url")}
        if connection
        else None,
        "next_run": scheduled.next_run_at if scheduled else None,
        "last_run": {
            "run_id": last.get("run_id"),
            "trigger": last.get("trigger"),
            "status": last.get("status"),
            "started_at": last.get("started_at"),
            "reason": last.get("failure_reason"),
        }
        if last
        else None,
        "held_runs": held,
        "history": [{k: v for k, v in item.items() if k not in ("pk", "sk")} for item in lifecycle.history(limit=10)],
    }


def run_status(args: argparse.Namespace) -> int:
    """``rostersync status``: a district's entitlement, switch, connection, next and last run."""
    handle = connect_from_args(args)
    _require_known(handle, args.district)
    status = district_status(handle, args.district)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    e, s = status["entitlement"], status["enabled"]
    print(f"District {args.district}")
    plan = f"plan {e['plan']}" if e["plan"] else "no plan recorded"
    since = f" (set by {e['changed_by']}, {e['changed_at']})" if e["changed_by"] else ""
    print(f"  entitlement: {'entitled' if e['entitled'] else 'NOT entitled'}, {plan}{since}")
    if not e["entitled"] and e["reason"]:
        print(f"               {e['reason']}")
    if s["enabled"]:
        print(f"  sync:        enabled by {s['enabled_by']} at {s['enabled_at']}")
    elif s["disabled_at"]:
        print(f"  sync:        disabled by {s['disabled_by']} at {s['disabled_at']} ({s['disabled_reason']})")
    else:
        print("  sync:        not enabled yet (rostersync enable)")
    c = status["connection"]
    print(
        f"  connection:  {c['provider']}{' at ' + c['base_url'] if c.get('base_url') else ''}"
        if c
        else "  connection:  none (rostersync connect)"
    )
    print(f"  next run:    {status['next_run'] or 'none scheduled'}")
    last = status["last_run"]
    if last:
        reason = f": {last['reason']}" if last.get("reason") else ""
        print(f"  last run:    {last['run_id']} ({last['trigger']}) {last['status']} at {last['started_at']}{reason}")
    else:
        print("  last run:    none yet")
    for held in status["held_runs"]:
        what = ", ".join(f"{n} {k}" for k, n in held["held"].items())
        print(
            f"  held:        run {held['run_id']} holds archives ({what}): "
            f"rostersync runs approve|discard {held['run_id']}"
        )
    return 0


def start_action_run(handle: StackHandle, district_id: str, action: str, target: str, by: str, preview: bool) -> str:
    from rostersync_tools.local.stack import execution_name

    payload = json.dumps(
        {"district_id": district_id, "trigger": action, "dry_run": preview, "target_run_id": target, "requested_by": by}
    )
    answer = handle.client("stepfunctions").start_execution(
        stateMachineArn=handle.resources.state_machine_arn, input=payload, name=execution_name()
    )
    return str(answer["executionArn"])


def run_action(args: argparse.Namespace) -> int:
    """``rostersync runs approve|discard|undo RUN``."""
    from rostersync_tools.cli.run_commands import run_id_of, wait_and_show

    if not args.run:
        raise UsageError(f"runs {args.action}: name the run (rostersync runs {args.action} RUN --district D)")
    if args.preview and args.action != "undo":
        raise UsageError(f"--preview: only for runs undo, not runs {args.action}")
    handle = connect_from_args(args)
    _require_known(handle, args.district)
    state = handle.state(args.district)
    problem = run_action_problem(state, args.action, args.run)
    if problem:
        raise UsageError(f"runs {args.action} {args.run}: {problem}")
    if args.action == "discard":
        held = discard_hold(state, args.run, who(args), datetime.now(UTC))
        print(
            f"The {held:,} archives run {args.run} held are discarded: those records stay, and the next runs leave "
            "them alone while they are absent from the roster (their reports list them as kept)."
        )
        return 0
    arn = start_action_run(handle, args.district, args.action, args.run, who(args), args.preview)
    title = {"undo": "Undo preview" if args.preview else "Undo", "approve": "Approval"}[args.action]
    print(f"{title} of run {args.run} started for {args.district} (run {run_id_of(arn)}); waiting…", flush=True)
    return wait_and_show(handle, args, arn, title)


def register(commands: argparse._SubParsersAction) -> None:
    """Add disable and status (``runs approve|discard|undo`` extend run_commands' ``runs``)."""
    from rostersync_tools.cli.connect import add_stack_arguments

    disable = commands.add_parser("disable", help='send the product\'s "Sync Disabled" event (stops syncing)')
    disable.add_argument("--district", required=True, metavar="D", help="the district's id in the product")
    disable.add_argument("--by", metavar="WHO", help="who is disabling it (default: your user name)")
    disable.add_argument("--reason", metavar="TEXT", help="why (recorded with it)")
    disable.add_argument("--wait-timeout", type=float, default=DISABLE_WAIT_SECONDS, help=argparse.SUPPRESS)
    add_stack_arguments(disable)
    disable.set_defaults(handler=run_disable)

    status = commands.add_parser("status", help="a district's entitlement, sync switch, connection, next and last run")
    status.add_argument("--district", required=True, metavar="D", help="the district's id in the product")
    status.add_argument("--json", action="store_true", help="as JSON")
    add_stack_arguments(status)
    status.set_defaults(handler=run_status)
