"""What each step invocation costs, counted as it happens: AWS requests, S3 bytes, DynamoDB capacity units,
provider requests, duration and the function's memory.

``step_metrics`` opens a ``Meter`` around every handler (``metered``); the boto3 clients of ``rostersync.aws``
report every call into the meter of the invocation they run in (``count_call``, a ``ContextVar``, so the
repositories' threads, which run in a copy of the handler's context, count into it too), and every HTTP request
to a provider is counted where ``requests`` sends it (``_count_provider_request``: every attempt, retries
included, as the provider's rate limit counts them). At the end the meter is written to the run's files as
``meter/<step>[-<chunk>].json`` (overwritten by a retried invocation, never added to: a run's figures do not
double-count a retry). Write report sums them and prices them (``reports.cost``).

DynamoDB's figures are the ``ConsumedCapacity`` DynamoDB returns (every directory and state call asks for it,
``ReturnConsumedCapacity=TOTAL``). moto returns fixed figures; the embedded stack replaces them with units
computed from the items' sizes the way AWS computes them (``rostersync_tools.local.stack``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from rostersync.contracts import plan_chunk_name

# DynamoDB operations that take ReturnConsumedCapacity, and whether they read or write.
_DYNAMODB_READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
_DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class Meter:
    """One invocation's counts (thread-safe: the repositories write from a pool)."""

    step: str
    requests: Counter[str] = field(default_factory=Counter)  # "s3:PutObject", "dynamodb:Query", …
    s3_bytes_up: int = 0
    s3_bytes_down: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    provider_requests: int = 0
    seconds: float = 0.0
    memory_mb: int = 0
    started: float = field(default_factory=time.perf_counter)
    part: str = ""  # set by the step when one event may run several times (a fetch slice: its list and number)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def so_far(self) -> dict[str, Any]:
        """The figures up to now (Write report prices the run before its own invocation ends)."""
        with self._lock:
            self.seconds = time.perf_counter() - self.started
            return self.as_json()

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "invocations": 1,
            "requests": dict(sorted(self.requests.items())),
            "s3_bytes_up": self.s3_bytes_up,
            "s3_bytes_down": self.s3_bytes_down,
            "dynamodb_read_units": round(self.read_units, 3),
            "dynamodb_write_units": round(self.write_units, 3),
            "provider_requests": self.provider_requests,
            "seconds": round(self.seconds, 3),
            "memory_mb": self.memory_mb,
            "gb_seconds": round(self.seconds * self.memory_mb / 1024, 4),
        }


current: ContextVar[Meter | None] = ContextVar("rostersync_meter", default=None)


def _capacity(consumed: Any) -> float:
    entries = consumed if isinstance(consumed, list) else [consumed]
    return sum(float(entry.get("CapacityUnits", 0)) for entry in entries if isinstance(entry, dict))


def ask_consumed_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
    """botocore ``provide-client-params``: a metered DynamoDB call asks for its consumed capacity."""
    if current.get() is None:
        return
    if model.name in _DYNAMODB_READS or model.name in _DYNAMODB_WRITES:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")


def count_call(http_response: Any, parsed: dict[str, Any], model: Any, context: Any, **_: Any) -> None:
    """botocore ``after-call``: count the request, its S3 bytes and DynamoDB units into the current meter."""
    meter = current.get()
    if meter is None:
        return
    service = model.service_model.endpoint_prefix
    with meter._lock:
        meter.requests[f"{service}:{model.name}"] += 1
        if service == "s3":
            if model.name == "GetObject":
                meter.s3_bytes_down += int(parsed.get("ContentLength") or 0)
            meter.s3_bytes_up += int(context.get("rostersync_body_bytes", 0)) if isinstance(context, dict) else 0
        elif service == "dynamodb" and "ConsumedCapacity" in parsed:
            units = _capacity(parsed["ConsumedCapacity"])
            if model.name in _DYNAMODB_WRITES:
                meter.write_units += units
            else:
                meter.read_units += units


def note_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """botocore ``before-call.s3``: remember the bytes an upload sends (PutObject, UploadPart)."""
    body = params.get("body")
    if isinstance(body, bytes | bytearray):
        context["rostersync_body_bytes"] = len(body)


def register(client: Any) -> None:
    """Count every call of a boto3 client into the meter of the invocation that makes it."""
    events = client.meta.events
    events.register("provide-client-params.dynamodb.*", ask_consumed_capacity)
    events.register("before-call.s3.*", note_body)
    events.register("after-call.*.*", count_call)


_PROVIDER_COUNTING = threading.Lock()
_provider_counting_on = False


def _count_provider_requests() -> None:
    """Count each HTTP request ``requests`` sends (only the provider clients use ``requests``; boto3 does not)."""
    global _provider_counting_on
    with _PROVIDER_COUNTING:
        if _provider_counting_on:
            return
        import requests

        send = requests.Session.send

        def counted(self: Any, request: Any, **kwargs: Any) -> Any:
            meter = current.get()
            if meter is not None:
                with meter._lock:
                    meter.provider_requests += 1
            return send(self, request, **kwargs)

        requests.Session.send = counted  # type: ignore[method-assign]
        _provider_counting_on = True


def meter_name(step: str, event: Any, part: str = "") -> str:
    """The meter's file name: one per step, one per chunk for Upsert, one per Match partition, one per phase
    of Fetch and one per slice of a list (``part``, named by the step once it knows the slice): a retry
    overwrites its own."""
    if part:
        return f"meter/{step}-{part}.json"
    chunk = event.get("chunk_key") if isinstance(event, dict) else None
    if isinstance(chunk, str) and chunk:
        return f"meter/{step}-{plan_chunk_name(chunk)}.json"
    partition = event.get("partition") if isinstance(event, dict) else None
    if isinstance(partition, int) and not isinstance(partition, bool):
        return f"meter/{step}-p{partition:04d}.json"
    phase = event.get("phase") if isinstance(event, dict) else None
    if isinstance(phase, str) and phase:
        return f"meter/{step}-{phase}.json"
    return f"meter/{step}.json"


# The steps' meters as Write report reads them back (``steps.report``): named here, beside ``meter_name``,
# from the events their handlers get. ``step`` is the name the handler gives ``step_metrics``.


def fetch_slice_part(resource: str, number: int | None) -> str:
    """A Fetch slice's ``part`` (``name_part``): its list and number (``users-s00003``), so a retry overwrites
    its meter; ``None``, a slice asked for after its list was read to its end (``users-done``)."""
    return f"{resource}-done" if number is None else f"{resource}-s{number:05d}"


def fetch_meter_names(slices: dict[str, int]) -> list[str]:
    """The meters a run's Fetch may write: its plan, each slice of each list (``slices``: list → slices read),
    each list's slice asked for after its end (a retry of the last slice whose answer was lost: ``-done``,
    usually absent) and the assembly."""
    slice_names = (
        meter_name("fetch_roster", None, fetch_slice_part(resource, n))
        for resource, count in slices.items()
        for n in [*range(count), None]
    )
    return [
        meter_name("fetch_roster", {"phase": "plan"}),
        *slice_names,
        meter_name("fetch_roster", {"phase": "assemble"}),
    ]


def match_meter_names(partitions: int) -> list[str]:
    """The meters a run's Match writes: the people phase, each of its ``partitions``, and Combine."""
    return [
        meter_name("match_roster", None),
        *(meter_name("match_partition", {"partition": n}) for n in range(partitions)),
        meter_name("combine_match", None),
    ]


def name_part(part: str) -> None:
    """Name this invocation's meter file after ``part`` (what the event alone cannot tell apart)."""
    meter = current.get()
    if meter is not None:
        meter.part = part


def run_of(event: Any) -> tuple[str, str] | None:
    """The (district, run) an event belongs to, if it names one."""
    if not isinstance(event, dict):
        return None
    run = event.get("run") if isinstance(event.get("run"), dict) else None
    # Start gets {"input": <the execution's input>, "run_id"}; the other steps the state document
    request = next((event[k] for k in ("request", "input") if isinstance(event.get(k), dict)), None) or {}
    upload = str(request.get("bundle_key") or "").split("/")  # uploads/<district>/…: the district is the folder
    district = (
        (run or {}).get("district_id")
        or event.get("district_id")
        or request.get("district_id")
        or (upload[1] if len(upload) > 2 and upload[0] == "uploads" else None)
    )
    run_id = (run or {}).get("run_id") or event.get("run_id")
    if isinstance(district, str) and isinstance(run_id, str) and district and run_id:
        return district, run_id
    return None


class metered:  # noqa: N801 - used as a context manager, like a function
    """Open a meter for one invocation; on exit, write it to the run's files (``meter/…``)."""

    def __init__(self, step: str, event: Any, context: Any) -> None:
        self.meter = Meter(step=step, memory_mb=int(getattr(context, "memory_limit_in_mb", 0) or 0))
        self._event = event
        self._token: Any = None

    def __enter__(self) -> Meter:
        _count_provider_requests()
        self.meter.started = time.perf_counter()
        self._token = current.set(self.meter)
        return self.meter

    def __exit__(self, *exc: object) -> None:
        self.meter.seconds = time.perf_counter() - self.meter.started
        try:
            self._write()
        finally:
            current.reset(self._token)

    def _write(self) -> None:
        run = run_of(self._event)
        if run is None:
            return
        from rostersync import aws
        from rostersync.config import runtime_config
        from rostersync.storage import RunStore

        try:
            store = RunStore(aws.client("s3"), runtime_config().sync_bucket, *run)
            with self.meter._lock:  # the meter's own write is one of its requests
                self.meter.requests["s3:PutObject"] += 1
            body = json.dumps(self.meter.as_json(), separators=(",", ":")).encode("utf-8")
            store.put_bytes(meter_name(self.meter.step, self._event, self.meter.part), body, "application/json")
        except Exception:  # noqa: BLE001 - the figures are a help; the step's answer must still go back
            from rostersync.observability import logger

            logger.warning("the step's meter could not be kept", extra={"step": self.meter.step})
