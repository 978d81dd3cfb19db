"""rostersync local up: serve the embedded stack and the provider simulator until stopped.

The other commands then reach the stack with ``--endpoint``, from any terminal, exactly as they reach
AWS with ``--stack``. ``--state DIR`` keeps what the stack holds across restarts (saved on exit,
loaded on start; the format is described at ``EmbeddedStack.save_state``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from rostersync_tools.cli.connect import DEFAULT_STACK
from rostersync_tools.cli.inputs import DEFAULT_DATASETS, DEMO_TOKEN, UsageError, check_dataset

DEFAULT_PORT = 4566
DEFAULT_SIMULATOR_PORT = 4567


def _check_port(port: int, flag: str) -> None:
    if not 1 <= port <= 65_535:
        raise UsageError(f"{flag} {port}: not a port number")
    with socket.socket() as sock:
        # As the servers bind: connections of a previous run in TIME_WAIT do not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(f"{flag} {port}: already in use on 127.0.0.1 ({exc.strerror})") from exc


def serve(args: argparse.Namespace, stop: threading.Event) -> int:
    """Bring the stack and the simulator up, wait for ``stop``, then save the state (``--state``) and stop.

    The state is saved only if the stack came up with it: a state that failed to load is left as it was.
    """
    from rostersync_tools.cli.inputs import quiet_logs
    from rostersync_tools.local.simulator import ProviderSimulator
    from rostersync_tools.local.stack import EmbeddedStack, check_state_folder, has_saved_state

    state_dir = Path(args.state) if args.state else None
    if state_dir is not None and (problem := check_state_folder(state_dir)):
        raise UsageError(f"--state {state_dir}: {problem}")
    dataset = check_dataset(Path(args.dataset) if args.dataset else DEFAULT_DATASETS[0])
    if args.port == args.simulator_port:
        raise UsageError("--port and --simulator-port must differ")
    _check_port(args.port, "--port")
    _check_port(args.simulator_port, "--simulator-port")

    quiet_logs()
    code = 0
    print(f"Starting the embedded stack {args.stack!r} on 127.0.0.1:{args.port}…", flush=True)
    stack = EmbeddedStack(stack_name=args.stack, port=args.port, parameters={"LogLevel": "WARNING"}).start()
    simulator = None
    serving = False
    try:
        if state_dir is not None and has_saved_state(state_dir):
            try:
                loaded = stack.load_state(state_dir)
            except (ValueError, KeyError, OSError) as exc:
                raise UsageError(f"--state {state_dir}: cannot be loaded ({exc})") from exc
            print(
                f"Loaded the saved state from {state_dir}: {loaded['items']} items, {loaded['objects']} objects, "
                f"{loaded['secrets']} secrets."
            )
        simulator = ProviderSimulator(dataset, token=DEMO_TOKEN, port=args.simulator_port).start()
        endpoint = stack.endpoint
        flags = f"--endpoint {endpoint}" + (f" --stack {args.stack}" if args.stack != DEFAULT_STACK else "")
        print(f"Stack:     --endpoint {endpoint}")
        print(f"Simulator: {simulator.base_url} (Clever and OneRoster REST) serving {dataset}")
        print(f"           demo token: {DEMO_TOKEN} (not a secret)")
        print("\nIn another terminal, for example:")
        print(f"  echo {DEMO_TOKEN} > token.txt")
        print(
            f"  rostersync connect --district dist-demo --provider clever --base-url {simulator.base_url} "
            f"--token-file token.txt {flags}"
        )
        print(f"  rostersync import-product --file samples/clever-demo/product.json {flags}")
        print(f"  rostersync self-check --district dist-demo {flags}")
        period = args.schedule_every or min((sch["seconds"] for sch in stack.schedules), default=0)
        if stack.schedules and period:
            names = ", ".join(sch["function"].removeprefix(f"{args.stack}-") for sch in stack.schedules)
            print(f"\nSchedules: {names} every {period:g} s (the local timer plays the template's Schedule events)")
            threading.Thread(target=_play_schedules, args=(stack, stop, period), daemon=True).start()
        print("\nCtrl-C (or SIGTERM) stops it" + (f" and saves the state to {state_dir}." if state_dir else "."))
        print("", flush=True)
        serving = True
        stop.wait()
    finally:
        if simulator is not None:
            simulator.stop()
        try:
            if state_dir is not None and serving:
                saved = stack.save_state(state_dir)
                print(
                    f"Saved the state to {state_dir}: {saved['items']} items, {saved['objects']} objects, "
                    f"{saved['secrets']} secrets.",
                    flush=True,
                )
        except OSError as exc:
            print(f"rostersync: could not save the state to {state_dir}: {exc}", file=sys.stderr, flush=True)
            code = 1
        finally:
            stack.stop()
            print("Stopped.", flush=True)
    return code


def _play_schedules(stack: Any, stop: threading.Event, period: float) -> None:
    """The local timer: fire the template's schedules every ``period`` seconds until ``stop``."""
    while not stop.wait(period):
        try:
            for answer in stack.play_schedules():
                if answer["error"]:
                    failure = answer["body"][:300]
                    print(f"rostersync: scheduled {answer['function']} failed: {failure!r}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - the timer must outlive one failed tick
            print(f"rostersync: the schedule tick failed: {exc}", file=sys.stderr, flush=True)


def run_local_up(args: argparse.Namespace) -> int:
    """``rostersync local up``: serve until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # Both end the wait the same way, so the state is saved whichever stops it.
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        code = serve(args, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if previous:
        # Everything is saved and stopped; tearing down moto's in-memory state at interpreter exit takes
        # tens of seconds for a district of a few thousand people, with nothing left to do: end here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``rostersync local up``."""
    local = commands.add_parser("local", help="the embedded stack on this machine")
    actions = local.add_subparsers(dest="local_command", required=True)
    up = actions.add_parser("up", help="serve the embedded stack and the provider simulator until Ctrl-C")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the stack's port (default {DEFAULT_PORT})")
    up.add_argument(
        "--simulator-port",
        type=int,
        default=DEFAULT_SIMULATOR_PORT,
        help=f"the provider simulator's port (default {DEFAULT_SIMULATOR_PORT})",
    )
    up.add_argument("--dataset", metavar="DIR", help="what the simulator serves (default: the demo's snapshot-1)")
    up.add_argument("--state", metavar="DIR", help="save the stack's state here on exit; load it on start")
    up.add_argument("--stack", default=DEFAULT_STACK, help=f"the stack's name (default {DEFAULT_STACK})")
    up.add_argument(
        "--schedule-every",
        type=float,
        metavar="SECONDS",
        help="how often the local timer fires the template's schedules (default: their own rate, 15 minutes)",
    )
    up.set_defaults(handler=run_local_up)
