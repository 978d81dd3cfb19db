"""The embedded local stack (DESIGN §6): AWS on this machine, built from ``template.yaml``.

- moto's server runs in a thread on 127.0.0.1 with Step Functions execution switched on, so the real
  ``statemachine/sync.asl.json`` runs, Map, Retry and Catch included.
- Lambda functions are created in moto from the template, and their invocations are dispatched
  in-process to ``functions/<step>/app.py`` (moto's own Lambda runtime needs Docker). That hook leans
  on moto internals, hence moto's exact pin in pyproject.toml.
- Tables, the bucket, the state machine and its substitutions, the functions' environment: all read
  from the template, the single source of truth.
- moto does not deliver EventBridge events to state machines: a hook on moto's ``PutEvents`` (and on
  the bucket's EventBridge notifications, so an object written under ``uploads/`` announces itself as
  on AWS) applies the template's rule patterns and input transformers and starts the executions. It
  sits in the server, so an event put by another process (the CLI against ``rostersync local up``)
  starts a sync exactly like one put by a test.
- ``save_state`` / ``load_state`` keep a district's tables, objects and secrets across restarts
  (``rostersync local up --state DIR``; the format is described at ``save_state``).
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import contextvars
import fnmatch
import functools
import gc
import importlib.util
import json
import os
import re
import shutil
import socket
import threading
import time
import traceback
import tracemalloc
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from rostersync.dynamodb_answers import attribute_value_shape, plain_attribute, plain_map
from rostersync_tools import REPO_ROOT
from rostersync_tools.local import in_process, s3_on_disk
from rostersync_tools.local.iam import StackIam, checked_app, install_access_control, sam_roles
from rostersync_tools.local.template import Resolver, load_template

REGION = "us-east-1"
ACCOUNT = "123456789012"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LambdaContext:
    """The parts of the Lambda context object that Powertools reads."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    deadline: float = field(default_factory=lambda: time.time() + 900)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


@dataclass
class LocalFunction:
    name: str
    arn: str
    app_path: Path
    handler: str
    memory: int
    # The invocation's credentials: a boto3 session of the function's role (None: the process's own).
    session: Callable[[], Any] | None = None
    _module: ModuleType | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handler_callable(self) -> Callable[[Any, Any], Any]:
        with self._lock:
            if self._module is None:
                spec = importlib.util.spec_from_file_location(f"rostersync_fn_{self.name}", self.app_path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {self.app_path}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._module = module
        module_attr = self.handler.rsplit(".", 1)[1]
        return getattr(self._module, module_attr)

    def invoke(self, event: Any) -> tuple[str, bool]:
        """Run the handler like Lambda does: JSON in, JSON out, an exception becomes a function error."""
        recorder = _INVOCATION_RECORDERS[-1] if _INVOCATION_RECORDERS else None
        if recorder is not None and recorder.traces(self.name):
            with _TRACED:  # tracemalloc is process-wide: one traced invocation at a time
                return recorder.traced(self, event)
        return self._invoke(event, recorder)

    def _invoke(self, event: Any, recorder: InvocationRecorder | None) -> tuple[str, bool]:
        from rostersync.aws import invocation_session

        context = LambdaContext(self.name, self.arn, self.memory)
        started = time.perf_counter()
        token = invocation_session.set(self.session() if self.session else None)
        crash = _CrashCounter(self.name, event)
        crash_token = _INVOCATION_CRASH.set(crash)
        try:
            crash.check_before()
            result = self.handler_callable()(event, context)
            crash.check_after()
            if os.environ.get("ROSTERSYNC_TIMINGS"):
                print(f"[timing] {self.name} {time.perf_counter() - started:.2f}s")  # noqa: T201
            return json.dumps(result), False
        except Exception as exc:  # noqa: BLE001 - Lambda turns any exception into a function error
            error = {
                "errorType": getattr(exc, "error_type", None) or type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-3:],
            }
            return json.dumps(error), True
        finally:
            _INVOCATION_CRASH.reset(crash_token)
            invocation_session.reset(token)
            if recorder is not None:
                recorder.add(self.name, time.perf_counter() - started)


@dataclass
class Invocation:
    """One Lambda invocation the stack ran: its function, seconds, and (when traced) memory in bytes."""

    function: str
    seconds: float
    peak_bytes: int = 0  # the highest of what the invocation allocated and had not yet freed
    retained_bytes: int = 0  # still allocated when it ended (mostly moto's copy of what it wrote)
    ended: float = 0.0  # ``time.perf_counter()`` when it ended: it began ``seconds`` before

    @property
    def began(self) -> float:
        return self.ended - self.seconds


class InvocationRecorder:
    """Records every Lambda invocation the stack runs while active (the benchmark's per-step figures).

    With ``memory=True`` each invocation runs under ``tracemalloc``, one at a time (the tracer is
    process-wide, so concurrent Map children would mix): the tracer starts when the invocation starts and
    stops when it ends, so it sees only what is allocated meanwhile, and records the peak of that (blocks
    the invocation frees that were allocated before it started do not lower it). The embedded AWS runs in
    the same process: what moto allocates while serving the invocation (the items and objects it stores)
    is traced too; ``retained_bytes`` says how much of that was still held at the end. Stopping the tracer
    after each invocation forgets its traces: tracemalloc's own table holds one invocation's blocks, not
    every block the embedded AWS has stored (which a 100,000-student district's sync could not afford).
    Tracing slows Python down several times: times from a traced run are not the step's times.
    """

    def __init__(self, memory: bool = False, traces: Callable[[str], bool] | None = None) -> None:
        self.memory = memory
        # which functions' invocations are traced (by function name); None: every one
        self._traces = traces
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()

    def __enter__(self) -> InvocationRecorder:
        if self.memory:
            # The collector's thresholds from before the stack started meanwhile (``STACK_GC_THRESHOLD``),
            # as a Lambda's process has them.
            self._gc_threshold = gc.get_threshold()
            gc.set_threshold(*(_GC_THRESHOLD_BEFORE[0] if _GC_THRESHOLD_BEFORE else self._gc_threshold))
        _INVOCATION_RECORDERS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _INVOCATION_RECORDERS.remove(self)
        if self.memory:
            gc.set_threshold(*self._gc_threshold)

    def traces(self, function: str) -> bool:
        """Whether an invocation of ``function`` runs traced (untraced ones are timed only, and run at once)."""
        return self.memory and (self._traces is None or self._traces(function))

    def add(self, function: str, seconds: float, peak: int = 0, retained: int = 0) -> None:
        ended = time.perf_counter()
        with self._lock:
            self.invocations.append(Invocation(function, seconds, peak, retained, ended))

    def traced(self, function: LocalFunction, event: Any) -> tuple[str, bool]:
        tracemalloc.start()
        try:
            begun = time.perf_counter()
            answer = function._invoke(event, None)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.add(function.name, time.perf_counter() - begun, peak, current)
        return answer


_INVOCATION_RECORDERS: list[InvocationRecorder] = []
_TRACED = threading.Lock()


_FUNCTIONS: dict[str, LocalFunction] = {}


# -- crash injection (a test-only fault switch: EmbeddedStack.inject_crash) ----------------------------


class InjectedCrashError(Exception):
    """What an invocation armed by ``EmbeddedStack.inject_crash`` raises: the Lambda died there.

    ``error_type`` is the error the state machine sees (``InjectedCrashError`` unless the injection names
    another, e.g. ``Sandbox.Timedout``: a Lambda that ran out of time, which a Retry may match)."""

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type or type(self).__name__


@dataclass
class CrashInjection:
    """Crash the next ``times`` invocations of one function at one point.

    ``after_writes``: ``0`` dies before the handler runs; ``k`` dies right after the invocation's k-th
    write request to the directory table was answered (the writes before it stand, nothing after it is
    written); ``None`` dies after the handler returned, its work done and its answer lost.
    """

    function: str
    after_writes: int | None
    times: int = 1
    directory_table: str = ""
    fired: int = 0
    # The error the state machine sees (default: InjectedCrashError), and which invocations may crash (by
    # their event; default: any).
    error_type: str | None = None
    when: Callable[[Any], bool] | None = None
    # Only invocations for this district (its id anywhere in the event): another test's run still in
    # flight in the same process (a sync an upload or an event started) never takes the crash.
    district: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def applies_to(self, function: str, event: Any) -> bool:
        if self.function != function or not self.pending:
            return False
        if self.district is not None and self.district not in json.dumps(event, default=str):
            return False
        return self.when is None or self.when(event)

    @property
    def pending(self) -> bool:
        return self.fired < self.times

    def take(self) -> bool:
        """Fire once if any crash is left; True when this caller must crash."""
        with self._lock:
            if self.fired >= self.times:
                return False
            self.fired += 1
            return True


_CRASHES: list[CrashInjection] = []
_CRASHES_LOCK = threading.Lock()


class _CrashCounter:
    """One invocation's view of the armed crash injections: counts its directory write requests."""

    def __init__(self, function: str, event: Any = None) -> None:
        with _CRASHES_LOCK:
            self.armed = [c for c in _CRASHES if c.applies_to(function, event)]
        self.writes = 0
        self._lock = threading.Lock()

    def _fire(self, point: str, when: Callable[[CrashInjection], bool]) -> None:
        for crash in self.armed:
            if when(crash) and crash.take():
                raise InjectedCrashError(f"injected crash in {crash.function} {point}", crash.error_type)

    def check_before(self) -> None:
        self._fire("before its handler ran", lambda c: c.after_writes == 0)

    def check_after(self) -> None:
        self._fire("after its handler returned", lambda c: c.after_writes is None)

    def wrote(self, table: str) -> None:
        if not self.armed:
            return
        with self._lock:
            self.writes += 1
            count = self.writes
        self._fire(
            f"after directory write request {count}",
            lambda c: c.after_writes == count and table == c.directory_table,
        )


_INVOCATION_CRASH: contextvars.ContextVar[_CrashCounter | None] = contextvars.ContextVar(
    "invocation_crash", default=None
)
_DIRECTORY_WRITES = ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")


def _install_crash_points() -> None:
    """Count each invocation's directory write requests where its clients make them (botocore), so an
    armed ``CrashInjection`` can end the invocation right after its k-th. Inert unless one is armed."""
    from botocore.client import BaseClient

    if getattr(BaseClient, "_rostersync_crash_points", False):
        return
    generic = BaseClient._make_api_call

    def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        answer = generic(self, operation_name, api_params)
        counter = _INVOCATION_CRASH.get()
        if counter is not None and counter.armed and operation_name in _DIRECTORY_WRITES:
            tables = list(api_params.get("RequestItems") or {}) or [str(api_params.get("TableName", ""))]
            counter.wrote(tables[0])
        return answer

    BaseClient._make_api_call = _make_api_call
    BaseClient._rostersync_crash_points = True


_PATCHED = False


def _install_lambda_dispatch() -> None:
    """Route moto's Lambda invocations to the in-process handlers registered in ``_FUNCTIONS``."""
    global _PATCHED
    if _PATCHED:
        return
    from moto.awslambda import models as lambda_models

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        function = _FUNCTIONS.get(self.function_name)
        if function is None:
            return json.dumps({"errorType": "ResourceNotFound", "errorMessage": self.function_name}), True, ""
        body, errored = function.invoke(event if isinstance(event, dict | list) else json.loads(event or "{}"))
        return body, errored, ""

    lambda_models.LambdaFunction._invoke_lambda = _invoke_lambda
    _PATCHED = True


def _install_fast_dynamodb_responses() -> None:
    """Skip moto's shape-by-shape serialisation of DynamoDB attribute values.

    moto keeps items in wire format already; walking every nested attribute through its generic
    response serialiser made a 600-item query take 0.3 s (0.05 s with this). Binary attributes, which
    rostersync never stores, would need base64 and are not special-cased.
    """
    from moto.core import serialize

    if getattr(serialize.BaseJSONSerializer, "_rostersync_fast", False):
        return
    generic = serialize.BaseJSONSerializer._serialize

    def _serialize(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeValue" and isinstance(value, dict) and key:
            serialized[self.get_serialized_name(shape, key)] = value
            return
        generic(self, serialized, value, shape, key)

    serialize.BaseJSONSerializer._serialize = _serialize
    serialize.BaseJSONSerializer._rostersync_fast = True
    _install_fast_dynamodb_results()
    _install_fast_dynamodb_requests()


def _install_fast_dynamodb_requests() -> None:
    """Take a DynamoDB request's attribute values as they came off the wire.

    moto's JSON request parser walks every attribute value through its shape: each of the ten members of
    ``AttributeValue`` looked up, each present one parsed by its own handler, maps and lists recursed. For
    values of strings, numbers, booleans, sets of them, and maps and lists of those (all rostersync
    writes), what it hands back equals the value as sent: those are passed through (``plain_attribute``
    checks), a value with anything else (a binary, which it decodes; a null) still goes through moto's own
    parsing. A BatchWriteItem of 25 directory records spent a sixth of its time there.
    """
    from moto.core import parse

    if getattr(parse.BaseJSONParser, "_rostersync_fast", False):
        return
    generic = parse.BaseJSONParser._parse_structure

    def _parse_structure(self: Any, shape: Any, value: Any) -> Any:
        if attribute_value_shape(shape) and plain_attribute(value):
            return value
        return generic(self, shape, value)

    parse.BaseJSONParser._parse_structure = _parse_structure
    parse.BaseJSONParser._rostersync_generic_parse_structure = generic  # the embedded-DynamoDB test's reference
    parse.BaseJSONParser._rostersync_fast = True


def _install_fast_attribute_value_answers() -> None:
    """Parse DynamoDB's answers in this process as the runtime's clients do (``rostersync.dynamodb_answers``):
    plain attribute values and items taken as they came, the rest by botocore's own parser.

    The runtime's clients (``rostersync.aws``) carry that parser themselves; the sessions the stack makes
    for each invocation's role, the tests' and the CLI's are botocore's own, so the same rule is applied to
    botocore's parser class here. tests/integration/test_embedded_dynamodb.py holds both to botocore's own
    parsing.
    """
    from botocore import parsers

    if getattr(parsers.BaseJSONParser, "_rostersync_fast", False):
        return
    generic_structure, generic_map = parsers.BaseJSONParser._handle_structure, parsers.BaseJSONParser._handle_map

    def _handle_structure(self: Any, shape: Any, value: Any) -> Any:
        if attribute_value_shape(shape) and plain_attribute(value):
            return value
        return generic_structure(self, shape, value)

    def _handle_map(self: Any, shape: Any, value: Any) -> Any:
        if plain_map(shape, value):
            return value
        return generic_map(self, shape, value)

    parsers.BaseJSONParser._handle_structure = _handle_structure
    parsers.BaseJSONParser._handle_map = _handle_map
    parsers.BaseJSONParser._rostersync_generic_handle_structure = generic_structure  # the test's reference
    parsers.BaseJSONParser._rostersync_generic_handle_map = generic_map  # likewise
    parsers.BaseJSONParser._rostersync_fast = True


def _install_fast_dynamodb_results() -> None:
    """Turn a DynamoDB answer's stored values into plain dicts and lists by their type alone.

    moto's ``dynamo_to_dict`` asks every value, down to each string of each map, whether it is a date, a
    ``DynamoType``, has ``to_json`` (a failed attribute lookup each time), is a dict or a list: a third of
    the CPU of reading a whole district's directory went there. ``plain`` answers the same for what a
    stored item is made of (``DynamoType`` trees of strings, numbers, booleans, dicts and lists) and hands
    anything else, binary values included, to moto's own function, which
    tests/integration/test_embedded_dynamodb.py compares it with.
    """
    from moto.dynamodb import responses
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

    if getattr(responses, "_rostersync_fast_results", False):
        return
    generic = responses.dynamo_to_dict
    leaves = (str, int, float, bool, type(None))
    mappings = (dict, LimitedSizeDict)

    def plain(value: Any) -> Any:
        kind = type(value)
        if kind in leaves:
            return value
        if kind is DynamoType and value.type not in ("B", "BS"):
            return {value.type: plain(value.value)}
        if kind in mappings:
            return {key: plain(each) for key, each in value.items()}
        if kind is list:
            return [plain(each) for each in value]
        return generic(value)

    responses.dynamo_to_dict = plain
    responses._rostersync_generic_dynamo_to_dict = generic  # type: ignore[attr-defined]
    responses._rostersync_fast_results = True  # type: ignore[attr-defined]


def _install_shared_state_machine_clients() -> None:
    """Let moto's interpreter reuse one boto3 client per service instead of building one per task.

    It built a client (service model, endpoint, a new connection) for every Lambda task it ran: for a
    Map of 2,000 chunks that was 2,000 clients and connections, a good share of the Map's time. Clients
    are thread-safe; moto 5.2.5 gives every one the same fixed credentials, so the key is the service
    and region (and the state's credentials, should a later moto use them).
    """
    import sys

    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client

    if getattr(boto_client, "_rostersync_shared", False):
        return
    generic = boto_client.boto_client_for
    clients: dict[tuple[str, str, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, repr(state_credentials))
        with lock:
            if key not in clients:
                clients[key] = generic(region=region, service=service, state_credentials=state_credentials)
            return clients[key]

    # The interpreter's modules imported the function by name: rebind it wherever it was imported (the
    # two this project's state machine uses are imported above, so they are among them).
    assert lambda_eval_utils and resource_eval_s3
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is generic:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]
    boto_client._rostersync_shared = True  # type: ignore[attr-defined]


STATE_PAYLOAD_LIMIT_BYTES = 262_144  # Step Functions' 256 KB quota on a state's input, result and output
# The largest result each Map or Parallel state (by name) gathered, in bytes, as the limit check measured
# it: what a test of a scaled-down run reads to show the full-size run stays under the limit.
GATHERED_BYTES: dict[str, int] = {}


def _install_state_payload_limit() -> None:
    """Refuse what AWS refuses: a Map's or Parallel's gathered result over 256 KB fails the execution.

    moto checks a Lambda task's result and each state's output after ResultPath, but not what a Map or
    Parallel gathers from its iterations before ``ResultSelector``/``ResultPath`` apply, where AWS does
    (a Distributed Map without ``ResultWriter`` keeps every child's output). And on AWS
    ``States.DataLimitExceeded`` is terminal: ``States.ALL`` in a Retry or Catch does not match it, only
    the error named explicitly; moto's ``States.ALL`` matched it, so a Catch would have hidden it.
    """
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel import StateParallel
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    if getattr(ErrorEqualsDecl, "_rostersync_limit", False):
        return
    limit_error = StatesErrorNameType.StatesStatesDataLimitExceeded

    def checked(generic: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        def _eval_execution(self: Any, env: Any) -> None:
            generic(self, env)
            size = len(json.dumps(env.stack[-1], separators=(",", ":")).encode("utf-8"))
            GATHERED_BYTES[self.name] = max(size, GATHERED_BYTES.get(self.name, 0))
            if size <= STATE_PAYLOAD_LIMIT_BYTES:
                return
            cause = (
                f"The state '{self.name}' returned a result of {size} bytes, over the "
                f"{STATE_PAYLOAD_LIMIT_BYTES}-byte state payload limit."
            )
            raise FailureEventException(
                failure_event=FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=limit_error),
                    event_type=HistoryEventType.TaskFailed,  # as moto's own size checks report it
                    event_details=EventDetails(
                        executionFailedEventDetails=ExecutionFailedEventDetails(
                            error=limit_error.to_name(), cause=cause
                        )
                    ),
                )
            )

        return _eval_execution

    for state_class in (StateMap, StateParallel):
        state_class._eval_execution = checked(state_class._eval_execution)

    generic_matches = ErrorEqualsDecl._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        generic_matches(self, env)
        terminal = isinstance(error_name, StatesErrorName) and error_name.typ == limit_error
        if terminal and error_name not in self.error_names:
            env.stack[-1] = False  # only an explicit "States.DataLimitExceeded" matches it

    ErrorEqualsDecl._eval_body = _eval_body
    ErrorEqualsDecl._rostersync_limit = True


def _take_states_error_names(module: Any) -> None:
    """Let ``module``'s ``CustomErrorName`` take Step Functions' own error names (``States.…``).

    moto 5.2.5's ``CustomErrorName`` raises ValueError on a name beginning "States."; where an error it
    did not make itself passes through (a Map item's, a Fail state's), that ValueError turned the error
    into ``States.Runtime``. A "States." name Step Functions has becomes its ``StatesErrorName`` (so
    ``States.ALL`` and the terminal-error check see it as moto's own); any other name goes to moto.
    """
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    generic = module.CustomErrorName
    if getattr(generic, "_rostersync_states_errors", False):
        return

    def error_name_of(error_name: str | None) -> Any:
        if error_name is not None and error_name.startswith("States."):
            try:
                return StatesErrorName.from_name(error_name)
            except ValueError:  # a "States." name Step Functions does not have: moto's refusal stands
                pass
        return generic(error_name=error_name)

    error_name_of._rostersync_states_errors = True  # type: ignore[attr-defined]
    module.CustomErrorName = error_name_of


def _install_map_items_keep_states_errors() -> None:
    """A Map item that fails with one of Step Functions' own errors (``States.Timeout``, ``States.TaskFailed``,
    a nested Map's ``States.ExceedToleratedFailureThreshold``) fails the Map with that error, as on AWS.

    moto 5.2.5 wraps an item's error name in ``CustomErrorName``, which refuses names beginning "States.":
    the ValueError became ``States.Runtime``, which a Catch then saw instead of the error (on AWS
    ``States.ALL`` does not even match ``States.Runtime``). Here such a name is Step Functions' own error.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker

    _take_states_error_names(iteration_worker)


def _install_fail_keeps_states_errors() -> None:
    """A ``Fail`` state whose ``ErrorPath`` names one of Step Functions' own errors ends the execution with
    that error, as on AWS.

    The sync's "Sync failed" passes on the error its Catch caught (``ErrorPath: $.error.Error``). On AWS an
    execution whose Match partitions or Upsert Map exceeded its tolerated failures therefore ends
    ``States.ExceedToleratedFailureThreshold`` (a task out of time past its retries, ``States.Timeout``).
    moto 5.2.5's ``StateFail`` wraps the name in ``CustomErrorName``, whose ValueError ended such an
    execution ``States.Runtime`` with the ValueError as its cause, after its Catch, report and lock release
    had run: it read as if the Catch had been skipped.
    """
    from moto.stepfunctions.parser.asl.component.state.fail import state_fail

    _take_states_error_names(state_fail)


def _install_stopped_stays_stopped() -> None:
    """An execution stopped by hand ends ``ABORTED``, whatever state it was in, as on AWS.

    moto 5.2.5 lets an INLINE Map item that sees its execution stopped fail with ``MapIterationAborted``;
    the Map then records that error on the execution (``Environment.set_error``), over the stop, and the
    execution ends ``FAILED``. On AWS a stopped execution is over: nothing after the stop changes how it
    ended. Here an error recorded after a stop is ignored.
    """
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    if getattr(Environment, "_rostersync_stop_wins", False):
        return
    generic = Environment.set_error

    def set_error(self: Any, error: Any) -> None:
        if isinstance(self._program_state, ProgramStopped):
            return
        generic(self, error)

    Environment.set_error = set_error  # type: ignore[method-assign]
    Environment._rostersync_stop_wins = True  # type: ignore[attr-defined]


def _install_cached_json_paths() -> None:
    """Parse each JSONPath of the state machines once per process, not once per state and item.

    moto's interpreter calls ``jsonpath_ng``'s ``parse`` for every ``InputPath``, ``Parameters`` path,
    ``ResultPath`` and ``ItemsPath`` it evaluates, and each call builds a new parser (reading its yacc
    tables) before parsing: most of the interpreter's own work per Map item. A parsed expression is only
    read (``find``, ``update_or_create`` change the data, not the expression), so one per path is shared.
    """
    import functools

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    if getattr(json_path, "_rostersync_cached", False):
        return
    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)  # type: ignore[attr-defined]
    result_path.parse = functools.lru_cache(maxsize=4096)(result_path.parse)  # type: ignore[attr-defined]
    json_path._rostersync_cached = True  # type: ignore[attr-defined]


def _install_cached_asl_trees() -> None:
    """Lex and parse each state machine definition once per process, not once per execution.

    moto's interpreter parses the whole ASL document with its ANTLR grammar (pure Python) at every
    execution's start: about 4 % of an end-to-end test's CPU, for the same few definitions. The parse
    tree is only read; the evaluation components are still built anew from it for every execution
    (``Preprocessor``), so no execution shares state with another. A definition with a syntax error
    raises as before (an exception is not cached).
    """
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    if getattr(asl_parser, "_rostersync_cached", False):
        return
    from antlr4 import CommonTokenStream, InputStream

    lock = threading.Lock()  # an ANTLR parser is not thread-safe: one parse at a time

    @functools.lru_cache(maxsize=64)
    def tree_of(definition: str) -> Any:
        with lock:
            listener = asl_parser.SyntaxErrorListener()
            parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
            parser.removeErrorListeners()
            parser.addErrorListener(listener)
            tree = parser.state_machine()
        if listener.errors:
            raise asl_parser.ASLParserException(errors=listener.errors)
        return tree

    def parse(definition: str) -> tuple[Any, Any]:
        tree = tree_of(definition)
        return Preprocessor().visit(tree), tree

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]
    asl_parser._rostersync_cached = True  # type: ignore[attr-defined]


def _install_retry_waits() -> None:
    """Record every Retry wait the stack's state machines ask for, and wait each as the running stack says.

    moto sleeps the interval a Retrier computes (``IntervalSeconds`` grown by ``BackoffRate``, capped by
    ``MaxDelaySeconds``, with the jitter) on the execution's thread, as AWS waits it. A stack made with
    ``retry_wait_scale=0`` (the tests') still retries the same states the same number of times, in the same
    order; only the wait is skipped. Each wait asked for is appended to ``RETRY_WAITS`` (seconds).
    """
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    if getattr(retrier_decl, "_rostersync_waits", False):
        return

    def sleep(seconds: float) -> None:
        RETRY_WAITS.append(seconds)
        scale = _STACKS[-1].retry_wait_scale if _STACKS else 1.0
        if seconds * scale > 0:
            time.sleep(seconds * scale)

    # The module's only use of ``time`` is this sleep.
    retrier_decl.time = SimpleNamespace(sleep=sleep)  # type: ignore[attr-defined]
    retrier_decl._rostersync_waits = True  # type: ignore[attr-defined]


RETRY_WAITS: list[float] = []
"""Every Retry wait (seconds) the embedded state machines asked for in this process, whether waited or not."""


def _install_tolerated_failures() -> None:
    """Fail a Distributed Map whose failed children exceed its tolerated failures, as AWS does.

    moto 5.2.5 counts a child execution that failed (a chunk whose Lambda died past its retries) and then
    lets the Map succeed anyway, whatever ``ToleratedFailureCount`` says: locally a failed Upsert chunk
    left its records unwritten under a run reported ``succeeded`` (found by the fault campaign). On AWS
    the Map run fails with ``States.ExceedToleratedFailureThreshold``, which a ``States.ALL`` Catch
    matches. Here: failures (failed and timed-out children) are tolerated while they are at most
    ``ToleratedFailureCount``, or at most ``ToleratedFailurePercentage`` of the items when that is set.
    """
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (  # noqa: E501
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    if getattr(DistributedIterationComponent, "_rostersync_tolerated", False):
        return
    generic = DistributedIterationComponent._map_run
    threshold = StatesErrorNameType.StatesExceedToleratedFailureThreshold

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        generic(self, env, eval_input)
        counts = eval_input.map_run_record.item_counter
        failures = counts.failed.get() + counts.timed_out.get()
        if failures == 0:
            return
        total = max(counts.total.get(), 1)
        percentage = float(eval_input.tolerated_failure_percentage or 0)
        if failures <= int(eval_input.tolerated_failure_count or 0):
            return
        if percentage > 0 and 100.0 * failures / total <= percentage:
            return
        env.stack.pop()  # the gathered outputs: the Map has no result
        cause = (
            f"The Map '{eval_input.state_name}' had {failures} failed of {counts.total.get()} item(s), over its "
            f"tolerated failures (count {eval_input.tolerated_failure_count}, percentage {percentage:g})."
        )
        raise FailureEventException(
            failure_event=FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=threshold),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    executionFailedEventDetails=ExecutionFailedEventDetails(error=threshold.to_name(), cause=cause)
                ),
            )
        )

    DistributedIterationComponent._map_run = _map_run
    DistributedIterationComponent._rostersync_tolerated = True


_WRITE_COUNTERS: list[WriteRequestCounter] = []
_WRITE_ACTIONS = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")


class WriteRequestCounter:
    """Counts the DynamoDB write requests the embedded stack receives, per table, while active.

    Measured at the server, so it sees every client's requests (the in-process Lambdas included).
    """

    def __init__(self) -> None:
        from collections import Counter

        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __enter__(self) -> WriteRequestCounter:
        _install_write_counting()
        _WRITE_COUNTERS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _WRITE_COUNTERS.remove(self)

    def add(self, tables: list[str]) -> None:
        with self._lock:
            for table in tables:
                self.requests[table] += 1


def _install_write_counting() -> None:
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler, "_rostersync_counting", False):
        return
    for action in _WRITE_ACTIONS:
        generic = getattr(DynamoHandler, action)

        def counted(self: Any, _generic: Any = generic) -> Any:
            body = self.body if isinstance(self.body, dict) else {}
            if "RequestItems" in body:
                tables = list(body["RequestItems"])
            elif "TransactItems" in body:
                tables = [next(iter(i.values())).get("TableName", "") for i in body["TransactItems"]]
            else:
                tables = [body.get("TableName", "")]
            for counter in list(_WRITE_COUNTERS):
                counter.add(tables)
            return _generic(self)

        setattr(DynamoHandler, action, counted)
    DynamoHandler._rostersync_counting = True


def dynamodb_item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it for capacity (wire format in): each attribute's name in UTF-8
    bytes plus its value: strings and binaries by length, numbers about one byte per two digits plus one,
    booleans and nulls one byte, lists and maps three bytes plus one per element plus their elements."""

    def value_bytes(value: dict[str, Any]) -> int:
        (kind, inner), *_ = value.items()
        if kind == "S":
            text = str(inner)
            return len(text) if text.isascii() else len(text.encode("utf-8"))
        if kind == "B":
            return len(inner)
        if kind == "N":
            return len(str(inner).lstrip("-").replace(".", "")) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "SS":
            return sum(len(str(v).encode("utf-8")) for v in inner)
        if kind == "NS":
            return sum(len(str(v)) // 2 + 1 for v in inner)
        if kind == "L":
            return 3 + sum(1 + value_bytes(v) for v in inner)
        if kind == "M":
            return 3 + sum(1 + len(k.encode("utf-8")) + value_bytes(v) for k, v in inner.items())
        return 0

    return sum(
        (len(name) if name.isascii() else len(name.encode("utf-8"))) + value_bytes(value)
        for name, value in item.items()
    )


def _write_units(before: dict[str, Any] | None, after: dict[str, Any] | None, table: Any) -> float:
    """Write units of one item write, as DynamoDB bills them: the larger of the item before and after, per
    started KB (at least 1); plus each global secondary index the write touches: any index when the item
    enters, leaves or moves in it; in place, an ALL index whenever the item changes, an INCLUDE index when
    a projected attribute changes, a keys-only index never (an index entry is its projected attributes
    plus 100 bytes). Each whole item is sized once."""
    before_bytes, after_bytes = dynamodb_item_bytes(before or {}), dynamodb_item_bytes(after or {})
    units = float(max(1, -(-max(before_bytes, after_bytes) // 1024)))
    table_keys = [key for key in (table.hash_key_attr, table.range_key_attr) if key]
    for index in table.global_indexes:
        keys = [element["AttributeName"] for element in index.schema]
        old = tuple(str((before or {}).get(k)) for k in keys) if before and all(k in before for k in keys) else None
        new = tuple(str((after or {}).get(k)) for k in keys) if after and all(k in after for k in keys) else None
        if old is None and new is None:
            continue
        kind = (index.projection or {}).get("ProjectionType", "ALL")
        shown = None if kind == "ALL" else {*keys, *table_keys}
        if kind == "INCLUDE":
            shown |= set(index.projection.get("NonKeyAttributes") or ())

        def entry_of(item: dict[str, Any] | None, shown: set[str] | None = shown) -> dict[str, Any]:
            return {k: v for k, v in (item or {}).items() if k in shown} if shown is not None else (item or {})

        if shown is None:  # the whole item: sized already
            entry_bytes = after_bytes if new is not None else before_bytes
        else:
            entry_bytes = dynamodb_item_bytes(entry_of(after if new is not None else before))
        entry = float(max(1, -(-(entry_bytes + 100) // 1024)))
        if old is not None and new is not None and old != new:
            units += 2 * entry  # moved: the old entry deleted, the new one put
        elif old is None or new is None:
            units += entry
        elif kind != "KEYS_ONLY" and entry_of(before) != entry_of(after):
            units += entry
    return units


def _read_units(items: Iterable[dict[str, Any]], consistent: bool, per_item: bool) -> float:
    """Read units as DynamoDB bills them: per started 4 KB, half for an eventually consistent read; a
    Query or Scan rounds the total of its items, GetItem and BatchGetItem each item."""
    factor = 1.0 if consistent else 0.5
    if per_item:
        return sum(factor * max(1, -(-dynamodb_item_bytes(item) // 4096)) for item in items)
    return factor * max(1, -(-sum(dynamodb_item_bytes(item) for item in items) // 4096))


def _batch_write_request(request: Any) -> tuple[dict[str, Any] | None, Any]:
    """A BatchWriteItem request's put item (None for a delete), and what holds its key (the item, or the
    delete's ``Key``; None when the request is neither)."""
    put = (request.get("PutRequest") or {}).get("Item")
    return put, put or (request.get("DeleteRequest") or {}).get("Key")


def _install_batch_write_key_check() -> None:
    """Refuse what AWS refuses: a BatchWriteItem naming one item's key twice in a table.

    DynamoDB answers ``ValidationException: Provided list of item keys contains duplicates`` for two
    requests on the same key of a table, two puts or a put and a delete alike. moto compared whole items,
    puts with puts and deletes with deletes, whatever their table: two different puts of one key, or a put
    and a delete of it, were applied one after the other, and the same item put in two tables was refused.
    This check replaces moto's in a BatchWriteItem (its BatchGetItem's, per table already, stays).
    """
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler, "_rostersync_batch_keys", False):
        return
    generic = DynamoHandler.batch_write_item

    def batch_write_item(self: Any) -> Any:
        body = self.body if isinstance(self.body, dict) else {}
        for name, requests in (body.get("RequestItems") or {}).items():
            table = self.dynamodb_backend.get_table(name)
            names = [key for key in (table.hash_key_attr, table.range_key_attr) if key]
            seen = set()
            for request in requests if isinstance(requests, list) else ():
                _, item = _batch_write_request(request)
                if not isinstance(item, dict):
                    continue  # moto's own checks answer a malformed request
                key = json.dumps([item.get(n) for n in names], sort_keys=True)
                if key in seen:
                    raise MockValidationException("Provided list of item keys contains duplicates")
                seen.add(key)
        self._rostersync_keys_checked = True  # a handler serves one request
        return generic(self)

    generic_contains = DynamoHandler._contains_duplicates

    def contains_duplicates(self: Any, keys: list[str]) -> bool:
        return False if getattr(self, "_rostersync_keys_checked", False) else generic_contains(self, keys)

    DynamoHandler.batch_write_item = batch_write_item
    DynamoHandler._contains_duplicates = contains_duplicates
    DynamoHandler._rostersync_batch_keys = True


def _install_consumed_capacity() -> None:
    """Answer ``ReturnConsumedCapacity`` with the units AWS would bill, computed from the items' sizes.

    moto returns fixed figures (1 for any write, 0.5 for any read, one per table for a whole batch), which
    would make a run's counted cost meaningless. This computes them from each item before and after the
    write (``_write_units``, global secondary indexes included) and from the items a read returns
    (``_read_units``); a base-table Query from the whole items it read, as AWS bills it, with those its
    FilterExpression dropped and the names its ProjectionExpression left out (Match's index reads project
    a third of a person's bytes). What it cannot see: a Scan's items a filter dropped (rostersync scans
    nothing of a district), an index Query's items a filter dropped (rostersync filters none) and
    transactional reads.
    """
    from moto.dynamodb import responses
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler, "_rostersync_capacity", False):
        return

    def table_of(handler: Any, name: str) -> Any:
        return handler.dynamodb_backend.get_table(name)

    def stored(table: Any, item_or_key: dict[str, Any]) -> dict[str, Any] | None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        hash_value = item_or_key.get(table.hash_key_attr)
        range_value = item_or_key.get(table.range_key_attr) if table.range_key_attr else None
        if hash_value is None:
            return None
        try:
            found = table.get_item(DynamoType(hash_value), DynamoType(range_value) if range_value else None)
        except Exception:  # noqa: BLE001 - no such item (or table): nothing before
            return None
        return found.to_json()["Attributes"] if found is not None else None

    def single_write(action: str) -> None:
        generic = getattr(DynamoHandler, action)

        def measured(self: Any, _generic: Any = generic) -> Any:
            body = self.body if isinstance(self.body, dict) else {}
            if body.get("ReturnConsumedCapacity", "NONE") == "NONE":
                return _generic(self)
            table = table_of(self, body.get("TableName", ""))
            key = body.get("Item") or body.get("Key") or {}
            before = stored(table, key)
            result = _generic(self)
            after = stored(table, key)
            result.result["ConsumedCapacity"] = {
                "TableName": body["TableName"],
                "CapacityUnits": _write_units(before, after, table),
            }
            return result

        setattr(DynamoHandler, action, measured)

    for action in ("put_item", "update_item", "delete_item"):
        single_write(action)

    def single_read(action: str, per_item: bool) -> None:
        generic = getattr(DynamoHandler, action)

        def measured(self: Any, _generic: Any = generic) -> Any:
            body = self.body if isinstance(self.body, dict) else {}
            _PARTITION_HINT.read = None
            try:
                result = _generic(self)
                read = _PARTITION_HINT.read
            finally:
                _PARTITION_HINT.read = None
            if body.get("ReturnConsumedCapacity", "NONE") == "NONE":
                return result
            answer = result.result
            items: Iterable[dict[str, Any]]
            if read is not None:  # a base-table Query: every whole item it read (``_install_fast_dynamodb_queries``)
                # measured one at a time: the page's whole items as dicts at once were a quarter of what a
                # traced people phase's 16 shard readers had in flight (charged to the invocation's peak)
                items = (responses.dynamo_to_dict(item.attrs) for item in read)
            else:
                items = [answer["Item"]] if "Item" in answer else list(answer.get("Items") or [])
            answer["ConsumedCapacity"] = {
                "TableName": body.get("TableName", ""),
                "CapacityUnits": _read_units(items, bool(body.get("ConsistentRead")), per_item),
            }
            return result

        setattr(DynamoHandler, action, measured)

    single_read("get_item", per_item=True)
    single_read("query", per_item=False)
    single_read("scan", per_item=False)

    generic_batch_write = DynamoHandler.batch_write_item

    def batch_write(self: Any) -> Any:
        body = self.body if isinstance(self.body, dict) else {}
        if body.get("ReturnConsumedCapacity", "NONE") == "NONE":
            return generic_batch_write(self)
        befores = []
        for name, requests in body.get("RequestItems", {}).items():
            table = table_of(self, name)
            for request in requests:
                put, key = _batch_write_request(request)
                befores.append((name, table, put, stored(table, key or {})))
        result = generic_batch_write(self)
        # moto applies a whole batch or refuses it (it never leaves items unprocessed): each item after the
        # write is the put's item as sent, or nothing after a delete (``UnprocessedItems`` is checked all
        # the same). Read back instead, each stored item was turned into JSON again: a seventh of the CPU
        # of a 25-item BatchWriteItem asking for its capacity.
        if result.result.get("UnprocessedItems"):
            raise AssertionError("moto left items of a BatchWriteItem unprocessed: its units would be wrong")
        units: dict[str, float] = {}
        for name, table, put, before in befores:
            units[name] = units.get(name, 0.0) + _write_units(before, put, table)
        result.result["ConsumedCapacity"] = [{"TableName": n, "CapacityUnits": u} for n, u in units.items()]
        return result

    DynamoHandler.batch_write_item = batch_write

    generic_batch_get = DynamoHandler.batch_get_item

    def batch_get(self: Any) -> Any:
        body = self.body if isinstance(self.body, dict) else {}
        result = generic_batch_get(self)
        if body.get("ReturnConsumedCapacity", "NONE") == "NONE":
            return result
        responses = result.result.get("Responses") or {}
        result.result["ConsumedCapacity"] = [
            {
                "TableName": name,
                "CapacityUnits": _read_units(
                    items, bool((body.get("RequestItems", {}).get(name) or {}).get("ConsistentRead")), True
                ),
            }
            for name, items in responses.items()
        ]
        return result

    DynamoHandler.batch_get_item = batch_get

    generic_transact = DynamoHandler.transact_write_items

    def transact(self: Any) -> Any:
        body = self.body if isinstance(self.body, dict) else {}
        if body.get("ReturnConsumedCapacity", "NONE") == "NONE":
            return generic_transact(self)
        befores = []
        for entry in body.get("TransactItems", []):
            (op, request), *_ = entry.items()
            if op == "ConditionCheck":
                continue
            table = table_of(self, request.get("TableName", ""))
            key = request.get("Item") or request.get("Key") or {}
            befores.append((request.get("TableName", ""), table, key, stored(table, key)))
        result = generic_transact(self)
        units: dict[str, float] = {}
        for name, table, key, before in befores:  # a transactional write costs twice a standard one
            units[name] = units.get(name, 0.0) + 2 * _write_units(before, stored(table, key), table)
        result.result["ConsumedCapacity"] = [{"TableName": n, "CapacityUnits": u} for n, u in units.items()]
        return result

    DynamoHandler.transact_write_items = transact
    DynamoHandler._rostersync_capacity = True


_PARTITION_HINT = threading.local()


def _install_fast_dynamodb_queries() -> None:
    """Make moto answer a base-table Query from the one partition it names, and a Scan page in the page's
    time (see ``scan``).

    moto's Query sorts every item of the table (all districts) before filtering by partition key, so
    each query cost grew with the whole table: reading a district's index took minutes at benchmark
    size. Results are unchanged: the partition's items, sorted by sort key.

    Two more costs of moto's Query grew with the items a page holds and are none of AWS's: it deep-copied
    every matching item before filtering and projecting, and it measured each item's size twice, walking
    every nested value (see ``query``). Reading the demo district's whole directory (every shard of every
    collection, ``export_directory``) took 4.5 s of CPU with both.
    """
    from moto.dynamodb.models import table as table_module
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.models.utilities import bytesize

    if getattr(Table, "_rostersync_fast", False):
        return
    generic_query, generic_all_items = Table.query, Table.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        # moto only reads the items a Query matches until the response turns its page into new plain dicts
        # and lists (``DynamoResult``): a projection (the request's, or a KEYS_ONLY or INCLUDE index's) makes
        # new items (``project``), a filter only reads, an ALL index and a base-table page return the items
        # as they are. So moto's deep copy of every matching item is skipped (``_ProjectedPageCopy``), as
        # moto's GetItem never copies the stored item either, and each item is measured once (``size``).
        _PARTITION_HINT.read_only = True
        _PARTITION_HINT.sizes = {}
        _PARTITION_HINT.page = None
        try:
            if index_name is not None:
                # moto compares every item of the table (all districts) with the index key, as DynamoTypes,
                # once per Query: a Match partition's 32 bucket Queries grew with the whole table and timed
                # out at 10,000 students. Only the items whose key attributes are those strings are handed
                # to it; moto's own comparison then keeps the same ones.
                conditions = kwargs.get("hash_key_conditions") or []
                if conditions and all(getattr(value, "type", None) == "S" for _, value in conditions):
                    _PARTITION_HINT.index_keys = [(name, value.value) for name, value in conditions]
            elif hash_key is not None and self.range_key_attr:
                _PARTITION_HINT.key = hash_key
                # moto sorts the partition again for every page, walks it up to the page's start key and
                # compares every item it passes as DynamoDB values: paging through a partition grew with
                # its square (a 39,000-item shard of a 100,000-student district's enrollments, ≈ 20 pages).
                # A forward Query of string sort keys starts after the start key in a sorted copy kept
                # until the table is next written (``_partition_in_order``), and, with no sort-key
                # condition, is handed only the items its page can hold and the one that ends it.
                # moto's own walk, checks and limits then make the same page.
                forward = len(args) > 4 and args[4] is not False
                if forward and self.range_key_type == "S" and not _has_query_filter(kwargs):
                    start = args[3]
                    _PARTITION_HINT.after = start[self.range_key_attr]["S"] if start else None
                    _PARTITION_HINT.page_limit = None if args[0] else (args[2],)
                    args = (*args[:3], None, *args[4:])
            answer = generic_query(self, hash_key, *args, **kwargs)
            # A base-table Query is billed for the whole items it read, those its filter dropped and the
            # names its projection left out included: the page, kept for the handler's read units.
            _PARTITION_HINT.read = _PARTITION_HINT.page if index_name is None else None
            return answer
        finally:
            _PARTITION_HINT.index_keys = None
            _PARTITION_HINT.key = None
            _PARTITION_HINT.after = None
            _PARTITION_HINT.page_limit = None
            _PARTITION_HINT.read_only = False
            _PARTITION_HINT.sizes = None
            _PARTITION_HINT.page = None

    generic_size = Item.size
    sets = ("SS", "NS", "BS")

    def value_size(value: Any) -> int:
        # moto's ``DynamoType.size``, by the value's type: moto's own builds a new DynamoType of every
        # value under a map, and of everything under it again at each level, to measure it.
        kind, inner = value.type, value.value
        if kind == "N":
            return len(str(inner))
        if kind in sets:
            return sum(len(str(each)) if kind == "NS" else bytesize(each) for each in inner)
        if kind == "L":
            return sum(value_size(each) for each in inner)
        if kind == "M":
            return sum(
                bytesize(key) + value_size(each if type(each) is DynamoType else DynamoType(each))
                for key, each in inner.items()
            )
        if isinstance(inner, bool):
            return 1
        return bytesize(inner)

    def measure(item: Any) -> int:
        """moto's ``Item.size``: what its Query adds up against the 1 MB a page holds."""
        return sum(bytesize(key) + value_size(value) for key, value in item.attrs.items())

    def size(self: Any) -> int:
        # Within one Query, each item is measured once (moto measures it to see whether it fits the 1 MB
        # page, then again to add it): the items stay in the Query's list meanwhile (their ids stay theirs)
        # and nothing the Query calls writes.
        sizes = getattr(_PARTITION_HINT, "sizes", None)
        if sizes is None:
            return Item._rostersync_measure(self)
        known = sizes.get(id(self))
        if known is None:
            known = sizes[id(self)] = Item._rostersync_measure(self)
        return known

    def all_items(self: Any) -> Any:
        following = getattr(_PARTITION_HINT, "scan_items", None)
        if following is not None:
            return following
        index_keys = getattr(_PARTITION_HINT, "index_keys", None)
        if index_keys:
            return _items_under_index_key(self, index_keys)
        key = getattr(_PARTITION_HINT, "key", None)
        if key is None:
            return generic_all_items(self)
        if (
            getattr(_PARTITION_HINT, "page_limit", None) is not None
            or getattr(_PARTITION_HINT, "after", None) is not None
        ):
            return _partition_page(self, key, _PARTITION_HINT.after, _PARTITION_HINT.page_limit)
        partition = self.items[key] if key in self.items else {}
        return sorted(partition.values(), key=lambda item: item.range_key)

    generic_scan = Table.scan

    def scan(
        self: Any,
        filters: Any,
        limit: Any,
        exclusive_start_key: Any,
        filter_expression: Any = None,
        index_name: Any = None,
        consistent_read: Any = False,
        projection_expression: Any = None,
        segments: Any = (None, None),
    ) -> Any:
        # moto sorts every item by its keys as DynamoDB values, then walks them up to the page's start key,
        # on every page: a scan of the whole table grew with the square of it. Here a base-table scan of
        # string keys sorts by plain strings (code-point order is UTF-8 byte order, DynamoDB's order for
        # strings), once until the table is next written (``_install_write_generation``), and starts right
        # after the start key: the same pages, the same order. As in a Query, moto's copy of each item the
        # page returns is skipped and each item is measured once (see ``query``).
        rest = (filter_expression, index_name, consistent_read, projection_expression)
        strings = self.hash_key_type == "S" and self.range_key_type == "S"
        if index_name is not None or tuple(segments) != (None, None) or not self.range_key_attr or not strings:
            return generic_scan(self, filters, limit, exclusive_start_key, *rest, segments=segments)
        written = self.__dict__.get("_rostersync_writes", 0)  # before the walk: a write during it is seen
        cached = self.__dict__.get("_rostersync_scan_order")
        if cached is None or cached[0] != written:
            ordered = sorted(
                (item for partition in list(self.items.values()) for item in list(partition.values())),
                key=lambda item: (item.hash_key.value, item.range_key.value),
            )
            cached = (written, ordered, [(item.hash_key.value, item.range_key.value) for item in ordered])
            self.__dict__["_rostersync_scan_order"] = cached
        _, ordered, keys = cached
        if exclusive_start_key is not None:
            start = (
                exclusive_start_key[self.hash_key_attr]["S"],
                exclusive_start_key[self.range_key_attr]["S"],
            )
            ordered = ordered[bisect.bisect_right(keys, start) :]
        _PARTITION_HINT.scan_items = ordered
        _PARTITION_HINT.read_only = True
        _PARTITION_HINT.sizes = {}
        try:
            return generic_scan(self, filters, limit, None, *rest, segments=segments)
        finally:
            _PARTITION_HINT.scan_items = None
            _PARTITION_HINT.read_only = False
            _PARTITION_HINT.sizes = None

    generic_project = Item.project

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        # moto turns the whole item into plain JSON once per projected attribute, then back into wire
        # format. Top-level names (all rostersync asks for) are picked from the item's attributes: the same
        # attributes, the same values, in the expression's order. The values are the item's own, not
        # copies: a projected item (Query, Scan, GetItem, BatchGetItem) is only read until the response
        # turns it into plain dicts and lists (``DynamoResult``), as moto's GetItem does with the stored
        # item itself; the stored item keeps every attribute.
        # moto projects each item of a page with the same list of paths: whether they are all top-level
        # names is asked once per list (a tenth of an unchanged night's CPU went to asking it per item).
        known = getattr(_PARTITION_HINT, "projection", None)
        if known is not None and known[0] is projection_expressions:
            top_level = known[1]
        else:
            top_level = _top_level(projection_expressions)
            _PARTITION_HINT.projection = (projection_expressions, top_level)
        if not top_level:
            return generic_project(self, projection_expressions)
        attrs = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.__init__(attrs)
        for [name] in projection_expressions:
            if name in self.attrs and name not in attrs:
                dict.__setitem__(attrs, name, self.attrs[name])
        projected = Item.__new__(Item)
        projected.hash_key, projected.range_key, projected.attrs = self.hash_key, self.range_key, attrs
        return projected

    generic_sorted_items = Table.sorted_items

    def sorted_items(self: Any, hash_key_attrs: list[str], range_key_attrs: list[Any], items: list[Any]) -> Any:
        # moto sorts an index Query's items by tuples of DynamoTypes: every comparison is a call of their
        # ``__eq__`` and ``__lt__``, each reading both values' ``cast_value``. Those compare the cast values
        # (and, for equality, the types: an index key attribute has one), so the tuples of cast values give
        # the same order without the calls.
        by = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        items.sort(key=lambda item: tuple([item.attrs[name].cast_value for name in by]))
        return items

    _install_write_generation()
    Table.sorted_items = sorted_items
    Table._rostersync_generic_sorted_items = generic_sorted_items  # the embedded-DynamoDB test compares with it
    Table.query = query
    Table.all_items = all_items
    Item.project = project
    Item.size = size
    Item._rostersync_measure = measure
    Item._rostersync_generic_size = generic_size  # the reference the embedded-DynamoDB test compares with
    Item._rostersync_generic_project = generic_project  # the reference the embedded-DynamoDB test compares with
    table_module.copy = _ProjectedPageCopy  # type: ignore[attr-defined]
    Table.scan = scan
    Table._rostersync_generic_scan = generic_scan  # the reference the embedded-DynamoDB test compares with
    Table._rostersync_generic_query = generic_query  # likewise
    Table._rostersync_fast = True


def _has_query_filter(kwargs: dict[str, Any]) -> bool:
    """Whether a moto Query's keyword arguments hold a legacy ``QueryFilter`` (its ``filter_kwargs``)."""
    known = {"index_name", "consistent_read", "filter_expression", "hash_key_conditions", "range_key_conditions"}
    return any(name not in known for name in kwargs)


def _partition_in_order(table: Any, key: Any) -> tuple[list[Any], list[str]]:
    """A partition's items in sort-key order (string sort keys) and their sort keys, kept until the table is
    next written (``_install_write_generation``): a write drops every partition's order, so none keeps an
    item the table no longer holds."""
    written = table.__dict__.get("_rostersync_writes", 0)  # before the sort: a write during it is seen
    generation, orders = table.__dict__.get("_rostersync_partition_order", (None, {}))
    if generation != written:
        orders = {}
        table.__dict__["_rostersync_partition_order"] = (written, orders)
    cached = orders.get(key)
    if cached is None:
        partition = table.items[key] if key in table.items else {}
        ordered = sorted(partition.values(), key=lambda item: item.range_key.value)
        cached = orders[key] = (ordered, [item.range_key.value for item in ordered])
    return cached


def _partition_page(table: Any, key: Any, after: str | None, page_limit: tuple[int | None] | None) -> list[Any]:
    """The items of a forward Query's page: those after the start key, and, when ``page_limit`` is given
    (no sort-key condition: every item read is returned), only as many as moto will walk before it stops
    (the item that passes the 1 MB a page holds, or the one past the Query's Limit, ends it)."""
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT

    ordered, keys = _partition_in_order(table, key)
    first = bisect.bisect_right(keys, after) if after is not None else 0
    if page_limit is None:
        return ordered[first:]
    (limit,) = page_limit
    size = 0
    for n in range(first, len(ordered)):
        if limit is not None and n - first == limit:
            return ordered[first : n + 1]
        size += ordered[n].size()
        if size > RESULT_SIZE_LIMIT:
            return ordered[first : n + 1]
    return ordered[first:]


def _install_write_generation() -> None:
    """Count each table's item writes: every moto call that adds, replaces, changes in place or removes a
    stored item bumps its table's generation once it is done (or failed part way)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_rostersync_generation", False):
        return
    Table.put_item = _bumping(Table.put_item, _the_table_itself)
    Table.delete_item = _bumping(Table.delete_item, _the_table_itself)
    # UpdateItem changes a stored item's attributes in place; the backend's method names its table.
    DynamoDBBackend.update_item = _bumping(DynamoDBBackend.update_item, _the_named_table)
    # A transaction's or PartiQL statement's tables are in its parameters: every table counts it.
    for name in ("transact_write_items", "execute_statement", "execute_transaction", "batch_execute_statement"):
        setattr(DynamoDBBackend, name, _bumping(getattr(DynamoDBBackend, name), _every_table))
    Table._rostersync_generation = True


_WRITE_GENERATION_LOCK = threading.Lock()


def _bump_write_generation(table: Any) -> None:
    """Count one write to a moto table: what it keeps grouped or in order is made again before it is used."""
    with _WRITE_GENERATION_LOCK:
        table.__dict__["_rostersync_writes"] = table.__dict__.get("_rostersync_writes", 0) + 1


def _the_table_itself(table: Any, *args: Any, **kwargs: Any) -> list[Any]:
    return [table]


def _the_named_table(backend: Any, *args: Any, **kwargs: Any) -> list[Any]:
    return [backend.tables.get(args[0] if args else kwargs.get("table_name"))]


def _every_table(backend: Any, *args: Any, **kwargs: Any) -> list[Any]:
    return list(backend.tables.values())


def _bumping(method: Any, tables_written: Callable[..., list[Any]]) -> Any:
    """``method`` of a moto Table or backend, bumping the write generation of the tables
    ``tables_written(self, *args, **kwargs)`` names once it is done. A method already bumping is returned
    as is."""
    if getattr(method, "_rostersync_bumps", False):
        return method

    @functools.wraps(method)
    def written(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            for table in tables_written(self, *args, **kwargs):
                if table is not None:
                    _bump_write_generation(table)

    written._rostersync_bumps = True  # type: ignore[attr-defined]
    return written


_GROUPING_LOCK = threading.Lock()


def _items_under_index_key(table: Any, index_keys: list[tuple[str, str]]) -> list[Any]:
    """The table's items whose attributes ``index_keys`` names are those strings.

    moto compared every item of the table (every district's) with the key on every index Query, so each
    of a Match partition's bucket Queries grew with the whole table: 64 bucket Queries over a 100,000-item
    table took 14 s. The items are grouped by their values of the key's names once, and grouped again
    after any write to the table (``_install_write_generation``); moto's own comparison then keeps the
    same items, and moto's own sort puts them in the index's order (its sort key ends with the table's
    key, which no two items share, so the order they are handed in does not matter).

    One thread groups at a time: a Match's partitions send their first bucket Queries together, and each
    of them used to walk the whole table for the same groups (20 walks of a 61,000-item table for 128
    Queries at 3,000 students). A thread that waited finds the groups made and uses them. Each walk is
    counted on the table (``_rostersync_groupings``).
    """
    names = tuple(name for name, _ in index_keys)
    wanted = tuple(value for _, value in index_keys)
    cache = table.__dict__.setdefault("_rostersync_index_groups", {})
    generation, groups = cache.get(names, (None, None))
    if generation != table.__dict__.get("_rostersync_writes", 0) or groups is None:
        with _GROUPING_LOCK:
            generation, groups = cache.get(names, (None, None))
            written = table.__dict__.get("_rostersync_writes", 0)  # before the walk: a write during it is seen
            if generation != written or groups is None:
                generation, groups = written, {}
                for partition in list(table.items.values()):
                    for item in list(partition.values()) if table.range_key_attr else (partition,):
                        values = tuple(item.attrs.get(name) for name in names)
                        if all(value is not None and value.type == "S" for value in values):
                            groups.setdefault(tuple(value.value for value in values), []).append(item)
                cache[names] = (generation, groups)
                table.__dict__["_rostersync_groupings"] = table.__dict__.get("_rostersync_groupings", 0) + 1
    return groups.get(wanted, [])


def _top_level(projection_expressions: list[list[str]]) -> bool:
    """Whether every projected path is one top-level attribute name (no nesting, no list index)."""
    return all(len(path) == 1 and not path[0].endswith("]") for path in projection_expressions)


class _ProjectedPageCopy:
    """moto's table module sees this as ``copy``: while a Query runs on this thread (see ``query``), its copy
    of the matching items is the list itself, and while a base-table Scan does, its copy of an item is the
    item; otherwise a copy."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        import copy

        from moto.dynamodb.models.dynamo_type import Item

        if getattr(_PARTITION_HINT, "read_only", False):
            if isinstance(value, list):
                # A Query copies its page once, after the 1 MB and Limit cuts and before the filter and the
                # projection: the items AWS bills a Query for (``_install_consumed_capacity``).
                _PARTITION_HINT.page = value
                return list(value)
            if type(value) is Item:  # a base-table Scan copies each item it returns, one by one
                return value
        return copy.deepcopy(value, memo)

    @staticmethod
    def copy(value: Any) -> Any:
        import copy

        return copy.copy(value)


class _TablesKept:
    """moto's DynamoDB backend module sees this as ``copy``: a table "backup" is the table itself (see
    ``_install_fast_transactions``); anything else is copied as before."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        import copy

        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _install_fast_transactions() -> None:
    """Make a TransactWriteItems back up only the items it writes, not whole tables.

    moto deep-copied every table a transaction names, once per item of the transaction, so that it could
    put the table back if one item failed: a merge of 20 items on a table holding a few districts took
    minutes and timed out. Here the items the transaction names are copied (or noted absent) first, and
    on any failure exactly those are put back; moto's own "restore" then puts the same table object back.
    The result is the same: all of the transaction or none of it (moto's 100-item limit is untouched;
    tests/integration/test_embedded_dynamodb.py compares both outcomes with moto's own).
    """
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType

    if getattr(DynamoDBBackend, "_rostersync_fast_transactions", False):
        return
    installed = DynamoDBBackend.transact_write_items
    # moto's own method, under the write generation's wrapper when that is installed already
    generic = installed.__wrapped__ if getattr(installed, "_rostersync_bumps", False) else installed

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        import copy

        backups: list[tuple[Any, Any, Any, Any]] = []  # (table, hash, range, item or None)
        for entry in transact_items[:100]:
            op = next(iter(entry.values())) if entry else {}
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
            backups.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
        try:
            generic(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(backups):
                if item is not None:
                    if range_value is not None:
                        table.items[hash_value][range_value] = item
                    else:
                        table.items[hash_value] = item
                elif table.get_item(hash_value, range_value) is not None:
                    table.delete_item(hash_value, range_value)
            raise

    models.copy = _TablesKept  # type: ignore[attr-defined]
    # A failed transaction's items are put back here, after moto's own call: that is a write too.
    DynamoDBBackend.transact_write_items = _bumping(transact_write_items, _every_table)
    DynamoDBBackend._rostersync_generic_transact_write_items = generic  # the embedded-DynamoDB test's reference
    DynamoDBBackend._rostersync_fast_transactions = True


def _install_fast_dispatch() -> None:
    """Remember which moto backend answers each host.

    moto's server decides it for every request, under one lock, by listing its own package folder and
    then trying the URL patterns of every service in turn: a few milliseconds per request, every
    request serialised behind it. The answer depends on the host alone, so it is kept.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    if getattr(DomainDispatcherApplication, "_rostersync_fast", False):
        return
    generic = DomainDispatcherApplication.get_backend_for_host
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in known:
            known[host] = generic(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host
    DomainDispatcherApplication._rostersync_fast = True


def _install_cached_action_names() -> None:
    """Keep the names of each moto response class's methods instead of listing them per request.

    moto's ``call_action`` asked ``inspect.getmembers`` for every function of the service's response class
    (a few hundred attributes walked and sorted) on every request, only to see whether the action's
    method is among them. The names are kept per class; an action not among them is looked up afresh,
    so a method a patch adds later is found as before, and an unknown action is refused as before.
    """
    from moto.core import responses, utils

    if getattr(responses, "_rostersync_action_names", False):
        return
    known: dict[object, _ActionNames] = {}

    def method_names_from_class(clazz: object) -> list[str]:
        names = known.get(clazz)
        if names is None:
            names = known[clazz] = _ActionNames(clazz, utils.method_names_from_class)
        return names

    responses.method_names_from_class = method_names_from_class  # type: ignore[attr-defined]
    responses._rostersync_action_names = True  # type: ignore[attr-defined]


class _ActionNames(list):  # type: ignore[type-arg]
    """The method names of one class, as moto lists them; a name not among them is looked up afresh."""

    def __init__(self, clazz: object, listed: Callable[[object], list[str]]) -> None:
        super().__init__(listed(clazz))
        self._clazz, self._listed = clazz, listed

    def __contains__(self, name: object) -> bool:
        if list.__contains__(self, name):
            return True
        self[:] = self._listed(self._clazz)
        return list.__contains__(self, name)


def _install_fast_item_size_check() -> None:
    """Keep moto's 400 KB item-size check, at a running total instead of a full sum per attribute.

    moto re-adds the size of every attribute of an item each time one attribute is set, so building an
    item (every put, every projected query result) cost the square of its attribute count. The limit
    and the error are moto's own; any change other than setting an attribute recomputes the total.
    """
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.utilities import bytesize

    limited = dynamo_type.LimitedSizeDict
    if getattr(limited, "_rostersync_fast", False):
        return

    def size_of(value: Any) -> int:
        return int(value.size()) if type(value) is dynamo_type.DynamoType else bytesize(str(value))

    def total(self: Any) -> int:
        # The total kept with the number of keys it counted: a copy (which brings the total along, then
        # sets its keys one by one) or any other change shows up as a different count.
        known = self.__dict__.get("_size")
        if known is None or known[1] != len(self):
            return sum(bytesize(key) + size_of(value) for key, value in self.items())
        return int(known[0])

    def setitem(self: Any, key: str, value: Any) -> None:
        size = total(self)
        if key in self:
            size -= bytesize(key) + size_of(self[key])
        size += bytesize(key) + size_of(value)
        if size > 405_000:  # moto's limit (AWS's 400 KB, measured by moto between 409 and 410 KB)
            raise dynamo_type.ItemSizeTooLarge
        dict.__setitem__(self, key, value)
        self.__dict__["_size"] = (size, len(self))

    def forgetting(method: Any) -> Any:
        def changed(self: Any, *args: Any, **kwargs: Any) -> Any:
            self.__dict__["_size"] = None
            return method(self, *args, **kwargs)

        return changed

    limited.__setitem__ = setitem
    for name in ("__delitem__", "pop", "popitem", "clear", "update", "setdefault"):
        setattr(limited, name, forgetting(getattr(dict, name)))
    limited._rostersync_fast = True


def _install_shared_service_models() -> None:
    """Give every botocore session of this process one loader of AWS's service models and endpoints.

    Each new session (the CLI's per command, a role's per renewal, moto's per state machine task) would
    otherwise read and parse the JSON models of every service it makes a client for, and the endpoint
    rules, from disk again: about a quarter of the CPU of an end-to-end test. The loader caches what it
    has parsed; the parsed models are only read, never changed, by the clients built from them.
    """
    import botocore.loaders
    import botocore.session

    if getattr(botocore.session, "_rostersync_shared_loader", False):
        return
    create = botocore.loaders.create_loader
    loaders: dict[str | None, Any] = {}
    lock = threading.Lock()

    def shared_loader(search_path_string: str | None = None) -> Any:
        with lock:
            if search_path_string not in loaders:
                loaders[search_path_string] = create(search_path_string)
            return loaders[search_path_string]

    botocore.session.create_loader = shared_loader
    botocore.session._rostersync_shared_loader = True


def install_speed_only_patches() -> None:
    """The patches that change how fast moto answers (and botocore reads its DynamoDB answers) and nothing
    else, for any process that runs moto.

    One parse of AWS's service models per process instead of one per client; a Query handed only the items
    of the partition (or index key) it names instead of every item of the table; attribute values, already
    in wire format, sent as they are instead of through moto's shape-by-shape serialiser, and turned into
    plain dicts by their type alone (``_install_fast_dynamodb_results``); a Query's matching items neither
    deep-copied nor measured twice; plain attribute values taken as decoded by botocore's parser
    (``_install_fast_attribute_value_answers``); the 400 KB item-size check kept as a running total; a
    transaction's backup made of the items it writes, not of every table it names once per item.
    ``EmbeddedStack.start`` installs them with the rest, the integration tier's ``mock_aws`` tests alone
    (tests/integration/test_embedded_dynamodb.py compares the fast Query and Scan pages, the parsed
    answers, and the transactions, with moto's and botocore's own). Each is installed once per process.
    """
    _install_shared_service_models()
    _install_fast_dynamodb_queries()
    _install_fast_dynamodb_responses()
    _install_fast_attribute_value_answers()
    _install_fast_item_size_check()
    _install_fast_transactions()


def _install_fast_backend_lookup() -> None:
    """Answer moto's per-request backend look-up from the dict when the account's backend exists.

    moto makes sure the account's backend exists on every request, under one process-wide lock, and
    scans its list of every service's backends: with a Map's iterations in flight, requests queued
    behind that lock. Once the backend exists the answer is the dict's own.
    """
    from moto.core.base_backend import BackendDict

    if getattr(BackendDict, "_rostersync_fast", False):
        return
    generic = BackendDict.__getitem__

    def getitem(self: Any, account_id: str) -> Any:
        if dict.__contains__(self, account_id):
            return dict.__getitem__(self, account_id)
        return generic(self, account_id)

    BackendDict.__getitem__ = getitem
    BackendDict._rostersync_fast = True


_EXECUTION_ENDED = threading.Condition()
# How long an invocation is waited for: the longest function Timeout the template allows (900 s), and a margin.
INVOKE_READ_TIMEOUT_SECONDS = 960
# Notified when an event rule's Lambda target returns (CloseRun, NotifyAdmins, DistrictLifecycle…).
_TARGET_DONE = threading.Condition()


def _install_execution_end_notice() -> None:
    """Wake ``EmbeddedStack.wait`` when an execution ends, instead of having it poll."""
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    if getattr(BaseExecutionWorkerCommunication, "_rostersync_notice", False):
        return
    generic = BaseExecutionWorkerCommunication.terminated

    def terminated(self: Any) -> None:
        try:
            generic(self)
        finally:
            with _EXECUTION_ENDED:
                _EXECUTION_ENDED.notify_all()
            _announce_execution_status(self.execution)

    BaseExecutionWorkerCommunication.terminated = terminated
    BaseExecutionWorkerCommunication._rostersync_notice = True


def _announce_execution_status(execution: Any) -> None:
    """What Step Functions sends EventBridge when an execution ends ("Step Functions Execution Status
    Change"), routed through the template's rules (the CloseRun function's, for one)."""
    router = _ROUTER  # read once: a stack stopping in another thread sets it back meanwhile
    if router is None:
        return
    try:
        status = getattr(execution.exec_status, "value", str(execution.exec_status))
        state_machine_arn = execution.state_machine.arn
        detail = {
            "executionArn": execution.exec_arn,
            "stateMachineArn": state_machine_arn,
            "name": execution.name,
            "status": status,
            "input": json.dumps(execution.input_data) if execution.input_data is not None else None,
            "error": execution.error,
            "cause": execution.cause,
        }
    except AttributeError:  # a moto that keeps these elsewhere: nothing to announce
        return
    event = aws_event("aws.states", "Step Functions Execution Status Change", detail)
    event["resources"] = [detail["executionArn"]]
    router.route(event, f"execution:{detail['executionArn']}")


_STACKS: list[EmbeddedStack] = []

# The collector's thresholds while a stack runs in the process. The embedded AWS keeps every table, object
# and execution in this process's heap (a benchmark district's directory is hundreds of thousands of
# objects), and the default thresholds (700, 10, 10) had the collector walk it again and again as it grew:
# 5.7 s of a 26.0 s full sync of 3,000 students, 2.1 s of its 9.2 s unchanged re-sync, 1.9 s of the 12.4 s
# write floor. On AWS each Lambda's heap is its own, and small. Collected less often, the same garbage is
# collected; a traced invocation (``InvocationRecorder(memory=True)``) runs with the process's own
# thresholds, so cycles waiting for the collector do not swell the peak it records.
STACK_GC_THRESHOLD = (50_000, 20, 100)
_GC_THRESHOLD_BEFORE: list[tuple[int, ...]] = []  # what the first stack to start found, put back by the last


def _install_interpreter_credentials() -> None:
    """Sign the Step Functions interpreter's own calls (Lambda tasks, the Map's ItemReader) with the state
    machine's role. moto signs them with a made-up key, which the IAM check refuses. With several stacks
    in one process (tests), the one started last runs the executions' calls: they run one at a time."""
    import sys

    from moto.stepfunctions.parser.asl.utils import boto_client

    if getattr(boto_client, "_rostersync_role", False):
        return
    generic = boto_client.boto_client_for
    made: dict[tuple[int, str, str, str], Any] = {}  # one client per session, service, region and endpoint
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        stack = _STACKS[-1] if _STACKS else None
        if stack is None or not stack.check_iam or not stack.state_machine_role:
            return generic(region, service, state_credentials)
        from botocore.config import Config

        # Each state machine's calls under its own role: the interpreter hands every task the execution's
        # role ARN (StateCredentials); the sync's role is the fallback for a call that names none.
        role = getattr(state_credentials, "role_arn", None)
        session = stack.iam.session(role if role in stack.state_machine_roles else stack.state_machine_role)
        key = (id(session), service, region, stack.endpoint)
        with lock:  # a boto3 session makes clients one at a time; a client, once made, is thread-safe
            if key not in made:
                # A Lambda task waits for its function as long as the function may run (Timeout ≤ 900 s), as
                # Step Functions does: botocore's 60 s read timeout failed chunks on a loaded machine.
                config = Config(
                    parameter_validation=False,
                    retries={"max_attempts": 0, "total_max_attempts": 1},
                    read_timeout=INVOKE_READ_TIMEOUT_SECONDS,
                )
                made[key] = session.client(service, region_name=region, endpoint_url=stack.endpoint, config=config)
            return made[key]

    # Modules imported later take the patched function from boto_client; those imported already hold
    # the original under their own name.
    boto_client.boto_client_for = boto_client_for
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is generic:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]
    boto_client._rostersync_role = True


class S3RequestCounter:
    """The S3 requests the embedded server receives while active: (method, path with query unquoted, the
    signer's access key id).

    Seen at the server, apart from the clients' own counting (``rostersync.metering``): a test compares
    the two.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> S3RequestCounter:
        _S3_COUNTERS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _S3_COUNTERS.remove(self)

    def add(self, method: str, target: str, access_key: str) -> None:
        with self._lock:
            self.requests.append((method, target, access_key))


_S3_COUNTERS: list[S3RequestCounter] = []


def _observed(app: Callable[..., Any]) -> Callable[..., Any]:
    """Hand each S3 request to the active ``S3RequestCounter``s (by its SigV4 credential scope)."""
    from urllib.parse import unquote

    def observed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if _S3_COUNTERS and "/s3/aws4_request" in authorization:
            target = unquote(environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", ""))
            access_key = authorization.split("Credential=", 1)[-1].split("/", 1)[0]
            for counter in list(_S3_COUNTERS):
                counter.add(environ.get("REQUEST_METHOD", ""), target, access_key)
        return app(environ, start_response)

    return observed


def _keep_alive_handler_class() -> type:
    """moto's request handler, keeping a client's connection open for its next request.

    werkzeug's development server answers every request with ``Connection: close`` (Python's
    ``http.server`` does not drain an unread request body before reading the next request line, and
    werkzeug's own drain after a response would read into that next request), so every request of every
    boto3 client opened a new TCP connection and a new server thread: about one connection per request,
    a good share of a sync's CPU. Here the request's body (its ``Content-Length``) is read off the socket
    before moto sees it, moto reads it from memory, and the connection stays open, as a real endpoint's
    does; requests, responses and their order are unchanged. A request with a chunked body keeps
    werkzeug's ``Connection: close``.
    """
    import io

    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveRequestHandler(MotoRequestHandler):
        _keep_alive = False
        # werkzeug writes a response's headers and its body apart: on a connection kept open, Nagle's
        # algorithm held the body back until the client's delayed acknowledgement (about 40 ms a request).
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with self.server.rostersync_lock:  # type: ignore[attr-defined]
                self.server.rostersync_connections.add(self.connection)  # type: ignore[attr-defined]
                self.server.rostersync_accepted += 1  # type: ignore[attr-defined]

        def finish(self) -> None:
            with self.server.rostersync_lock:  # type: ignore[attr-defined]
                self.server.rostersync_connections.discard(self.connection)  # type: ignore[attr-defined]
            super().finish()

        def run_wsgi(self) -> None:
            length = self.headers.get("Content-Length") or "0"
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            self._keep_alive = not chunked and length.isdigit()
            if not self._keep_alive:
                super().run_wsgi()
                return
            # werkzeug hands moto ``self.rfile`` and drains it after the response: both now read the body
            # in memory, and the socket is left at the next request's first line.
            connection_file = self.rfile
            self.rfile = io.BytesIO(connection_file.read(int(length)))
            try:
                super().run_wsgi()
            finally:
                self.rfile = connection_file

        def send_header(self, keyword: str, value: str) -> None:
            keep = self._keep_alive and not self.close_connection
            if keep and keyword.lower() == "connection" and value.lower() == "close":
                return
            super().send_header(keyword, value)

    return KeepAliveRequestHandler


def _without_debug(create_backend_app: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """moto's app factory, its Flask apps out of debug mode (exceptions still propagate, as they did).

    In debug mode Flask gives each request without form files a ``files`` class of its own whose method
    closes over the request: a class sits in reference cycles, so the request, its body and the environ's
    copy of it waited for the cyclic collector, which a process as large as the benchmark's runs seldom. A
    Report invocation held every 8 MiB part of its largest CSV twice until it ended (230 MiB at 100,000
    students), where on AWS the parts are gone once sent."""

    def create(service: Any) -> Any:
        app = create_backend_app(service)
        app.debug = False
        app.config["PROPAGATE_EXCEPTIONS"] = True
        return app

    return create


def _checked_server_class() -> type:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    class CheckedMotoServer(ThreadedMotoServer):
        """moto's threaded server whose requests go through the stack's IAM check (``iam.checked_app``)."""

        def __init__(self, iam: StackIam, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._iam = iam

        def _server_entry(self) -> None:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
            from werkzeug.serving import make_server

            app = _observed(checked_app(DomainDispatcherApplication(_without_debug(create_backend_app)), self._iam))
            handler = _keep_alive_handler_class()
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=handler)
            self._server.rostersync_connections = set()  # type: ignore[attr-defined]
            self._server.rostersync_accepted = 0  # type: ignore[attr-defined]
            self._server.rostersync_lock = threading.Lock()  # type: ignore[attr-defined]
            self._server_ready_event.set()
            self._server.serve_forever()

        def stop(self) -> None:
            # The connections kept open end with the server, as each did after its one request before: a
            # client's pool sees them closed and connects anew, as it did for every request.
            super().stop()
            server = self._server
            if server is None:
                return
            with server.rostersync_lock:
                open_connections = list(server.rostersync_connections)
            for connection in open_connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    return CheckedMotoServer


def _CheckedMotoServer(iam: StackIam, **kwargs: Any) -> Any:  # noqa: N802 - stands for the class
    return _checked_server_class()(iam, **kwargs)


class EventRouter:
    """The template's EventBridge rules, applied by the embedded stack to every event it receives.

    Executions started per event are remembered (by event id, and by object key for S3 events) so
    ``publish_event`` and ``publish_upload`` can return them; the CLI finds them with ListExecutions
    instead, as it does on AWS.
    """

    def __init__(
        self,
        rules: list[dict[str, Any]],
        start_execution: Callable[[str, str], str],
        invoke_function: Callable[[str, str], None] | None = None,
    ) -> None:
        self.rules = rules
        self.enabled = True
        self._start_execution = start_execution
        self._invoke_function = invoke_function or (lambda arn, payload: None)
        self._started: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        # Events put on a bus other than the default one (the stack's own: run ends), newest last.
        self.bus_events: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)

    def route(self, event: dict[str, Any], remember_as: str, bus: str = "default") -> list[str]:
        """Start the executions (and invoke the functions) whose rule on ``bus`` matches ``event``; return
        the executions' ARNs."""
        if not self.enabled:
            return []
        if bus != "default":
            self.bus_events.append({**event, "bus": bus})
        matched = [
            rule
            for rule in self.rules
            if _bus_name(rule.get("EventBusName")) == _bus_name(bus) and matches_pattern(rule["Pattern"], event)
        ]
        for rule in matched:
            if ":function:" in rule["target"]:  # a Lambda target: invoked asynchronously, as EventBridge does
                self._invoke_function(rule["target"], transform_input(rule, event))
        started = [
            self._start_execution(rule["target"], transform_input(rule, event))
            for rule in matched
            if ":function:" not in rule["target"]
        ]
        if started:  # only what started anything is remembered: runs write many objects
            with self._lock:
                self._started.setdefault(remember_as, []).extend(started)
        return started

    def started_by(self, remembered_as: str) -> list[str] | None:
        """The executions one event started (None if it started none); forgets them."""
        with self._lock:
            return self._started.pop(remembered_as, None)


_ROUTER: EventRouter | None = None


def _bus_name(bus: Any) -> str:
    """A bus as a rule or PutEvents names it (name or ARN; absent: the default bus)."""
    name = str(bus or "default")
    return name.rsplit("/", 1)[-1] if name.startswith("arn:") else name


def _install_event_routing() -> None:
    """Hook moto's ``PutEvents`` and the bucket's EventBridge notifications into ``_ROUTER``."""
    from moto.events.models import EventsBackend
    from moto.s3 import notifications

    if getattr(EventsBackend, "_rostersync_routing", False):
        return
    generic_put_events = EventsBackend.put_events

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entries = generic_put_events(self, events)
        router = _ROUTER  # read once (see _announce_execution_status)
        for entry, sent in zip(entries, events, strict=True):
            if router is not None and "EventId" in entry:
                event = aws_event(sent["Source"], sent["DetailType"], json.loads(sent["Detail"]), entry["EventId"])
                event["resources"] = sent.get("Resources", [])
                router.route(event, entry["EventId"], _bus_name(sent.get("EventBusName")))
        return entries

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        # What S3 sends EventBridge on AWS (the fields the template's rules can match on).
        router = _ROUTER  # read once (see _announce_execution_status)
        if router is None:
            return
        detail = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": {"key": key.name, "size": key.size, "etag": key.etag.replace('"', "")},
            "reason": event_name.split(":")[1] if ":" in event_name else event_name,
        }
        event = aws_event("aws.s3", notifications._detail_type(event_name), detail)
        event["resources"] = [f"arn:aws:s3:::{bucket.name}"]
        router.route(event, f"s3://{bucket.name}/{key.name}")

    EventsBackend.put_events = put_events
    notifications._send_event_bridge_message = send_event_bridge_message
    EventsBackend._rostersync_routing = True


def rate_seconds(expression: str) -> int:
    """The period of a ``rate(N minutes|hours|days)`` schedule, in seconds (cron expressions: daily)."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        return 24 * 3600
    unit = {"minute": 60, "hour": 3600, "day": 86_400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


def aws_event(source: str, detail_type: str, detail: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An EventBridge event as a rule sees it."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "detail-type": detail_type,
        "account": ACCOUNT,
        "region": REGION,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "resources": [],
        "detail": detail,
    }


class EmbeddedStack:
    """AWS on localhost, built from the template.

    Use as a context manager, or ``start()`` / ``stop()``. While it runs, ``AWS_ENDPOINT_URL`` points every
    boto3 client of this process at it.
    """

    def __init__(
        self,
        template_path: Path | None = None,
        stack_name: str = "rostersync",
        port: int | None = None,
        parameters: dict[str, str] | None = None,
        check_iam: bool = True,
        retry_wait_scale: float = 1.0,
        s3_bodies_on_disk: bool = False,
    ):
        self.template_path = template_path or REPO_ROOT / "template.yaml"
        self.root = self.template_path.parent
        self.stack_name = stack_name
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.outputs: dict[str, str] = {}
        self.rules: list[dict[str, Any]] = []
        self.environment: dict[str, str] = {}
        self.parameters = parameters or {}
        # The state machines' Retry waits are waited this many times over: 1.0 as on AWS (the demo, the
        # benchmarks); tests pass 0, so a retried state is retried at once (``RETRY_WAITS`` records each).
        self.retry_wait_scale = retry_wait_scale
        # S3 objects' bodies in files, not in this process's memory (the benchmarks: ``local.s3_on_disk``)
        self.s3_bodies_on_disk = s3_bodies_on_disk
        self.tables: dict[str, str] = {}  # logical id → table name
        self.buckets: dict[str, str] = {}  # logical id → bucket name
        self.router = EventRouter(self.rules, self._start_execution, self._invoke_function)
        # Each invocation runs under its function's role, checked by moto's IAM (see local/iam.py).
        self.check_iam = check_iam
        self.iam = StackIam(stack_name, self.endpoint)
        self.state_machine_role = ""  # the sync's: signs interpreter calls that name no role
        self.state_machine_roles: set[str] = set()  # every state machine's role (sync, clean-up)
        self._saved_environment: dict[str, str | None] = {}
        # The template's Schedule events (function, expression, period): moto never fires them, so
        # ``play_schedules`` does (the local timer of ``rostersync local up``, or a test).
        self.schedules: list[dict[str, Any]] = []
        self._server: Any = None
        self._stopping = False  # set first thing in stop(): an event target failing after it is not an error
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> EmbeddedStack:
        self._stopping = False
        exported = {
            "MOTO_PORT": str(self.port),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",  # noqa: S105 - the embedded stack accepts any key
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "rostersync",
            # The steps' metrics are EMF lines on stdout, which CloudWatch reads from the Lambda log on
            # AWS; locally nothing reads them and they would bury the CLI's output.
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        self._saved_environment = {key: os.environ.get(key) for key in [*exported, "AWS_PROFILE"]}
        os.environ.update(exported)
        os.environ.pop("AWS_PROFILE", None)
        from moto.core.config import default_user_config

        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        install_speed_only_patches()
        if self.s3_bodies_on_disk:
            s3_on_disk.install()
        _install_lambda_dispatch()
        _install_state_payload_limit()
        _install_shared_state_machine_clients()
        _install_event_routing()
        _install_fast_dispatch()
        _install_tolerated_failures()
        _install_retry_waits()
        _install_cached_json_paths()
        _install_cached_asl_trees()
        _install_stopped_stays_stopped()
        _install_map_items_keep_states_errors()
        _install_fail_keeps_states_errors()
        _install_fast_backend_lookup()
        _install_cached_action_names()
        _install_execution_end_notice()
        _install_interpreter_credentials()
        _install_crash_points()
        _install_batch_write_key_check()
        _install_consumed_capacity()
        install_access_control()
        self._server = _CheckedMotoServer(self.iam, ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        if not os.environ.get("ROSTERSYNC_STACK_OVER_HTTP"):
            in_process.register(self.endpoint, self._server._server)
        self.iam.create_admin(self.client("iam"), os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        self._create_resources()
        global _ROUTER
        self._previous_router = _ROUTER
        _ROUTER = self.router = EventRouter(self.rules, self._start_execution, self._invoke_function)
        if not _STACKS:
            _GC_THRESHOLD_BEFORE[:] = [gc.get_threshold()]
            gc.set_threshold(*STACK_GC_THRESHOLD)
        _STACKS.append(self)
        self.iam.checked = self.check_iam
        return self

    def _invoke_function(self, function_arn: str, payload: str) -> None:
        """An event rule's Lambda target: invoked in the background, as EventBridge invokes it."""
        name = function_arn.rsplit(":", 1)[-1]

        def invoke() -> None:
            try:
                self.target_client().invoke(FunctionName=name, InvocationType="RequestResponse", Payload=payload)
            except Exception:
                if not self._stopping:
                    raise
                # the stack is stopping under an event still in flight (a test's own stack ending): nothing to
                # deliver to
            finally:
                with _TARGET_DONE:
                    _TARGET_DONE.notify_all()

        threading.Thread(target=invoke, name=f"event-target-{name}", daemon=True).start()

    def target_client(self) -> Any:
        """The Lambda client rule targets are invoked with: it waits as long as a function may run."""
        import boto3
        from botocore.config import Config

        with self._clients_lock:
            if "lambda-targets" not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                config = Config(read_timeout=INVOKE_READ_TIMEOUT_SECONDS, retries={"max_attempts": 1})
                self._clients["lambda-targets"] = self._session.client(
                    "lambda", region_name=REGION, endpoint_url=self.endpoint, config=config
                )
            return self._clients["lambda-targets"]

    def _start_execution(self, state_machine_arn: str, payload: str) -> str:
        sfn = self.client("stepfunctions")
        return str(
            sfn.start_execution(stateMachineArn=state_machine_arn, input=payload, name=execution_name())["executionArn"]
        )

    def connections_accepted(self) -> int:
        """How many TCP connections the stack's server has accepted: clients in other processes (the CLI,
        a browser), and this process's only under ``in_process.over_http`` or ``ROSTERSYNC_STACK_OVER_HTTP``."""
        server = self._server._server if self._server is not None else None
        if server is None:
            return 0
        with server.rostersync_lock:
            return int(server.rostersync_accepted)

    def intact(self) -> bool:
        """Whether moto still holds this stack's tables: moto's ``mock_aws`` (the integration tier's
        fixture) resets every backend of the process when it starts and stops, this stack's included."""
        from moto.dynamodb.models import dynamodb_backends

        held = dynamodb_backends[ACCOUNT][REGION].tables
        return all(name in held for name in self.tables.values())

    def forget_partitions(self, logical_id: str, partition_keys: Iterable[str]) -> int:
        """Drop every item under these partition keys from one of the stack's tables, at once and with no
        request; how many went. Benchmark housekeeping, not an AWS operation (AWS would take a
        DeleteRequest an item): a write floor's copy of a district is only timed, and at 100,000 students
        each copy is a million items of this process's heap that the rest of the run needs back."""
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[ACCOUNT][REGION].tables[self.tables[logical_id]]
        wanted = set(partition_keys)
        dropped = 0
        for hash_value in [key for key in table.items if key.value in wanted]:
            held = table.items.pop(hash_value)
            dropped += len(held) if table.range_key_attr else 1
        _bump_write_generation(table)  # the index groups and partition orders are made again
        return dropped

    def stop(self) -> None:
        global _ROUTER
        self._stopping = True
        if _ROUTER is self.router:
            _ROUTER = self._previous_router
        if self in _STACKS:
            _STACKS.remove(self)
            if not _STACKS and _GC_THRESHOLD_BEFORE:
                gc.set_threshold(*_GC_THRESHOLD_BEFORE.pop())
        in_process.unregister(self.endpoint)
        if self._server is not None:
            self._server.stop()
            self._server = None
        # Leave the environment as found: another stack in this process (the session's) goes on.
        for key, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environment = {}

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _role_session(self, role_arn: str) -> Callable[[], Any] | None:
        """What gives an invocation its role's credentials (None while IAM is not checked)."""
        if not self.check_iam:
            return None
        return lambda: self.iam.session(role_arn)

    def client(self, service: str) -> Any:
        """A client of this stack for ``service``, made once (a boto3 session loads its models from disk)."""
        import boto3

        with self._clients_lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[service] = self._session.client(service, region_name=REGION, endpoint_url=self.endpoint)
            return self._clients[service]

    # -- resources from the template --------------------------------------------------------------

    def _create_resources(self) -> None:
        template = load_template(self.template_path)
        resources: dict[str, dict[str, Any]] = template["Resources"]
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        params = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
        params.update(self.parameters)
        refs: dict[str, str] = dict(params)
        attributes: dict[tuple[str, str], str] = {}
        resolver = Resolver(pseudo, refs, attributes)
        conditions = {
            name: _evaluate_condition(resolver.resolve(rule)) for name, rule in template.get("Conditions", {}).items()
        }
        resources = {
            logical: resource
            for logical, resource in resources.items()
            if conditions.get(resource.get("Condition", ""), True)
        }

        # Names first: functions, tables and buckets are referenced by everything else.
        for logical, resource in resources.items():
            kind = resource["Type"]
            if kind == "AWS::DynamoDB::Table":
                name = f"{self.stack_name}-{logical}"
                refs[logical] = self.tables[logical] = name
                attributes[(logical, "Arn")] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
            elif kind == "AWS::S3::Bucket":
                name = f"{self.stack_name}-{logical}".lower()
                refs[logical] = self.buckets[logical] = name
                attributes[(logical, "Arn")] = f"arn:aws:s3:::{name}"
            elif kind == "AWS::Serverless::Function":
                name = f"{self.stack_name}-{logical}"
                refs[logical] = name
                attributes[(logical, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            elif kind == "AWS::Serverless::LayerVersion":
                refs[logical] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{logical}:1"
            elif kind == "AWS::SNS::Topic":
                refs[logical] = f"arn:aws:sns:{REGION}:{ACCOUNT}:{self.stack_name}-{logical}"
            elif kind == "AWS::SQS::Queue":
                name = f"{self.stack_name}-{logical}"
                refs[logical] = f"{self.endpoint}/{ACCOUNT}/{name}"
                attributes[(logical, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
                attributes[(logical, "QueueName")] = name
            elif kind == "AWS::CloudWatch::Alarm":
                refs[logical] = f"{self.stack_name}-{logical}"
            elif kind == "AWS::Events::EventBus":
                name = str(resolver.resolve(resource["Properties"]["Name"]))
                refs[logical] = attributes[(logical, "Name")] = name
                attributes[(logical, "Arn")] = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"

        dynamodb, s3, lam, iam = (self.client(s) for s in ("dynamodb", "s3", "lambda", "iam"))
        # The roles as the SAM transform writes them; those of the functions and the state machine are
        # created (the EventBridge rules' roles are not: the local router starts executions itself).
        roles, role_of = sam_roles(template)
        role_arns = {
            logical: self.iam.create_role(iam, role_of[logical], resolver.resolve(roles[role_of[logical]]))
            for logical, resource in resources.items()
            if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine") and logical in role_of
        }

        storage = ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::S3::BucketPolicy")
        for logical, resource in resources.items():
            kind = resource["Type"]
            if kind not in storage:  # the others may name what is not created yet
                continue
            props = resolver.resolve(resource.get("Properties", {}))
            if kind == "AWS::DynamoDB::Table":
                self._create_table(dynamodb, refs[logical], props)
            elif kind == "AWS::S3::Bucket":
                self._create_bucket(s3, refs[logical], props)
            elif kind == "AWS::S3::BucketPolicy":
                policy = local_bucket_policy(props["PolicyDocument"])
                if policy["Statement"]:
                    s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(policy))

        self._create_operations(resources, resolver, refs, attributes, before_functions=True)

        globals_fn = resolver.resolve(template.get("Globals", {}).get("Function", {}))
        for logical, resource in resources.items():
            if resource["Type"] == "AWS::Serverless::Function":
                props = resolver.resolve(resource["Properties"])
                self._create_function(lam, role_arns[logical], refs[logical], {**globals_fn, **props}, globals_fn)

        for key in self.environment:
            self._saved_environment.setdefault(key, os.environ.get(key))
        os.environ.update(self.environment)
        # The handlers run in this process: a logger created before the template's LOG_LEVEL was in the
        # environment (any CLI module importing the core package) takes the level now, as a fresh Lambda would.
        from rostersync.observability import logger

        logger.setLevel(self.environment.get("LOG_LEVEL", "INFO"))
        sfn = self.client("stepfunctions")
        for logical, resource in resources.items():
            if resource["Type"] == "AWS::Serverless::StateMachine":
                props = resolver.resolve(resource["Properties"])
                arn = self._create_state_machine(sfn, role_arns[logical], props)
                self.outputs[f"{logical}Arn"] = arn
                self.state_machine_roles.add(role_arns[logical])
                if logical == "SyncStateMachine" or not self.state_machine_role:
                    self.state_machine_role = role_arns[logical]
                refs[logical] = arn
                for event in props.get("Events", {}).values():
                    if event["Type"] == "EventBridgeRule":
                        self.rules.append({"target": arn, **event["Properties"]})

        self._create_operations(resources, resolver, refs, attributes, before_functions=False)

        ssm = self.client("ssm")
        for resource in resources.values():
            if resource["Type"] == "AWS::SSM::Parameter":
                props = resolver.resolve(resource["Properties"])
                ssm.put_parameter(Name=props["Name"], Value=props["Value"], Type=props["Type"], Overwrite=True)

        for name, output in template.get("Outputs", {}).items():
            if conditions.get(output.get("Condition", ""), True):
                self.outputs[name] = str(resolver.resolve(output["Value"]))

    def _create_operations(
        self,
        resources: dict[str, dict[str, Any]],
        resolver: Resolver,
        refs: dict[str, str],
        attributes: dict[tuple[str, str], str],
        before_functions: bool,
    ) -> None:
        """The template's operations resources, in moto: log groups with their retention, the alarm topic
        (and its email subscription when given), the tick's dead-letter queue (before the functions, which
        name them), and the alarms (after the state machine they watch). moto delivers none of it (no alarm
        fires, no log is written by the in-process handlers): it checks they can be created as written.

        Knowingly not created: a function's ``EventInvokeConfig`` (the stack invokes the tick itself, through
        ``play_schedules``, synchronously) and the state machine's ``Logging`` (moto's interpreter writes no
        logs).
        """
        if before_functions:
            logs, sns, sqs = (self.client(s) for s in ("logs", "sns", "sqs"))
            for logical, resource in resources.items():
                kind = resource["Type"]
                if kind == "AWS::Events::EventBus":
                    self.client("events").create_event_bus(Name=refs[logical])
                elif kind == "AWS::SES::EmailIdentity":
                    # SES verifies an identity by email on AWS; here it is verified at once, so SendEmail
                    # from it is accepted (and kept: ``sent_emails``).
                    props = resolver.resolve(resource["Properties"])
                    self.client("ses").verify_email_identity(EmailAddress=props["EmailIdentity"])
                elif kind == "AWS::SNS::Topic":
                    arn = sns.create_topic(Name=refs[logical].rsplit(":", 1)[1])["TopicArn"]
                    assert arn == refs[logical], (arn, refs[logical])
                elif kind == "AWS::SQS::Queue":
                    props = resolver.resolve(resource.get("Properties", {}))
                    queue_attributes = {k: str(v) for k, v in props.items() if k in ("MessageRetentionPeriod",)}
                    url = sqs.create_queue(QueueName=attributes[(logical, "QueueName")], Attributes=queue_attributes)
                    refs[logical] = url["QueueUrl"]
            for logical, resource in resources.items():
                kind = resource["Type"]
                if kind == "AWS::Logs::LogGroup":
                    props = resolver.resolve(resource["Properties"])
                    logs.create_log_group(logGroupName=props["LogGroupName"])
                    logs.put_retention_policy(
                        logGroupName=props["LogGroupName"], retentionInDays=int(props["RetentionInDays"])
                    )
                    refs[logical] = props["LogGroupName"]
                    attributes[(logical, "Arn")] = (
                        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{props['LogGroupName']}:*"
                    )
                elif kind == "AWS::SNS::Subscription":
                    props = resolver.resolve(resource["Properties"])
                    sns.subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"])
            return
        cloudwatch = self.client("cloudwatch")
        for logical, resource in resources.items():
            if resource["Type"] == "AWS::CloudWatch::Alarm":
                props = resolver.resolve(resource["Properties"])
                cloudwatch.put_metric_alarm(AlarmName=refs[logical], **props)

    @staticmethod
    def _create_table(dynamodb: Any, name: str, props: dict[str, Any]) -> None:
        allowed = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes", "WarmThroughput")
        kwargs = {k: props[k] for k in allowed if k in props}
        if "SSESpecification" in props:  # CloudFormation and the API spell this flag differently
            kwargs["SSESpecification"] = {"Enabled": bool(props["SSESpecification"].get("SSEEnabled"))}
        dynamodb.create_table(TableName=name, **kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)

    @staticmethod
    def _create_bucket(s3: Any, name: str, props: dict[str, Any]) -> None:
        s3.create_bucket(Bucket=name)
        if "BucketEncryption" in props:
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                    ]
                },
            )
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if props.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        if "VersioningConfiguration" in props:  # a run reads an upload at the version its plan read
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
            )

    def _create_function(
        self, lam: Any, role_arn: str, name: str, props: dict[str, Any], globals_fn: dict[str, Any]
    ) -> None:
        import io
        import zipfile

        code_dir = self.root / props["CodeUri"]
        module_name, _ = props["Handler"].rsplit(".", 1)
        app_path = code_dir / f"{module_name}.py"
        if not app_path.is_file():
            raise FileNotFoundError(
                f"template names handler {props['Handler']} in {props['CodeUri']}, which has no {app_path.name}"
            )
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(app_path, app_path.name)
        variables = {
            **globals_fn.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        for key, value in variables.items():
            if self.environment.get(key, value) != value:
                # Handlers share this process's environment: per-function values must not disagree.
                raise ValueError(f"environment variable {key} differs between functions")
            self.environment[key] = str(value)
        arn = lam.create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.12"),
            Role=role_arn,
            Handler=props["Handler"],
            Code={"ZipFile": archive.getvalue()},
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Environment={"Variables": {k: str(v) for k, v in variables.items()}},
        )["FunctionArn"]
        _FUNCTIONS[name] = LocalFunction(
            name, arn, app_path, props["Handler"], int(props.get("MemorySize", 128)), self._role_session(role_arn)
        )
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "EventBridgeRule":
                self.rules.append({"target": arn, **event["Properties"]})
            if event.get("Type") == "Schedule":
                expression = str(event["Properties"]["Schedule"])
                self.schedules.append({"function": name, "expression": expression, "seconds": rate_seconds(expression)})

    def _create_state_machine(self, sfn: Any, role_arn: str, props: dict[str, Any]) -> str:
        definition = (self.root / props["DefinitionUri"]).read_text(encoding="utf-8")
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        return str(
            sfn.create_state_machine(name=props["Name"], definition=definition, roleArn=role_arn)["stateMachineArn"]
        )

    # -- schedules ------------------------------------------------------------------------------------

    def play_schedules(self) -> list[dict[str, Any]]:
        """Fire every Schedule event of the template once, as EventBridge Scheduler does on AWS: invoke
        its function (through the stack's Lambda API) with a scheduled event; return the answers."""
        answers = []
        lam = self.client("lambda")
        for schedule in self.schedules:
            event = aws_event("aws.events", "Scheduled Event", {})
            answer = lam.invoke(FunctionName=schedule["function"], Payload=json.dumps(event).encode("utf-8"))
            body = answer["Payload"].read()
            answers.append({"function": schedule["function"], "error": answer.get("FunctionError"), "body": body})
        return answers

    # -- state across restarts (rostersync local up --state DIR) ----------------------------------------

    def save_state(self, folder: Path) -> dict[str, int]:
        """Write what the stack holds to ``folder``; return how many items, objects and secrets.

        The format, plain files any tool can read::

            stack-state.json                  {"format": STATE_FORMAT, "stack": name, "saved_at": …}
            dynamodb/<LogicalId>.jsonl        one item per line, in DynamoDB JSON ({"pk": {"S": "…"}, …})
            s3/<LogicalId>.jsonl              one object per line: {"key", "content_type", "file"}
            s3/<LogicalId>/<n>                that object's bytes
            secretsmanager.jsonl              one secret per line: {"name", "secret_string"}

        Tables and buckets are named by the template's logical ids, so a state loads into a stack of
        another name. Executions do not survive a restart, so neither do the district locks they held
        (``LOCK`` items); a run cut short stays ``running`` in its record. Secrets are written as they
        are: the folder holds the (local) provider tokens.
        """
        folder = folder.resolve()
        staging = folder.with_name(folder.name + ".saving")
        if staging.exists():
            shutil.rmtree(staging)
        # The folder holds provider tokens: readable by its owner only, from the first byte written.
        staging.mkdir(mode=0o700, parents=True)
        (staging / "dynamodb").mkdir(mode=0o700)
        (staging / "s3").mkdir(mode=0o700)
        counts = {"items": 0, "objects": 0, "secrets": 0}
        dynamodb = self.client("dynamodb")
        for logical, table in self.tables.items():
            with (staging / "dynamodb" / f"{logical}.jsonl").open("w", encoding="utf-8") as out:
                for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
                    for item in page["Items"]:
                        if item.get("sk", {}).get("S") == "LOCK":
                            continue
                        out.write(json.dumps(item, ensure_ascii=False) + "\n")
                        counts["items"] += 1
        s3 = self.client("s3")
        for logical, bucket in self.buckets.items():
            (staging / "s3" / logical).mkdir()
            with (staging / "s3" / f"{logical}.jsonl").open("w", encoding="utf-8") as out:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    for entry in page.get("Contents", []):
                        got = s3.get_object(Bucket=bucket, Key=entry["Key"])
                        file = f"{logical}/{counts['objects']}"
                        (staging / "s3" / file).write_bytes(got["Body"].read())
                        line = {"key": entry["Key"], "content_type": got.get("ContentType", ""), "file": file}
                        out.write(json.dumps(line, ensure_ascii=False) + "\n")
                        counts["objects"] += 1
        secrets = self.client("secretsmanager")
        with (staging / "secretsmanager.jsonl").open("w", encoding="utf-8") as out:
            for page in secrets.get_paginator("list_secrets").paginate():
                for entry in page["SecretList"]:
                    value = secrets.get_secret_value(SecretId=entry["ARN"])
                    line = {"name": entry["Name"], "secret_string": value.get("SecretString", "")}
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    counts["secrets"] += 1
        header = {"format": STATE_FORMAT, "stack": self.stack_name, "saved_at": time.time(), **counts}
        (staging / STATE_FILE).write_text(json.dumps(header, indent=1), encoding="utf-8")
        for path in staging.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
        if folder.exists():
            shutil.rmtree(folder)  # holds only a saved state: check_state_folder refused anything else
        staging.rename(folder)
        return counts

    def load_state(self, folder: Path) -> dict[str, int]:
        """Put a state written by ``save_state`` back into this (freshly started) stack.

        Routing is off meanwhile: an upload restored to ``uploads/`` does not start a sync again.
        """
        header = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        if header.get("format") != STATE_FORMAT:
            raise ValueError(f"{folder / STATE_FILE}: format {header.get('format')!r}, expected {STATE_FORMAT!r}")
        counts = {"items": 0, "objects": 0, "secrets": 0}
        self.router.enabled = False
        try:
            dynamodb = self.client("dynamodb")
            for logical, table in self.tables.items():
                path = folder / "dynamodb" / f"{logical}.jsonl"
                items = [json.loads(line) for line in _lines(path)]
                for start in range(0, len(items), 25):
                    requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
                    pending: dict[str, Any] = {table: requests}
                    while pending:
                        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                counts["items"] += len(items)
            s3 = self.client("s3")
            root = (folder / "s3").resolve()
            for logical, bucket in self.buckets.items():
                for line in _lines(folder / "s3" / f"{logical}.jsonl"):
                    entry = json.loads(line)
                    body = (root / entry["file"]).resolve()
                    if not body.is_relative_to(root):
                        raise ValueError(f"{folder}: object file {entry['file']!r} is outside the state folder")
                    extra = {"ContentType": entry["content_type"]} if entry.get("content_type") else {}
                    s3.put_object(Bucket=bucket, Key=entry["key"], Body=body.read_bytes(), **extra)
                    counts["objects"] += 1
            secrets = self.client("secretsmanager")
            for line in _lines(folder / "secretsmanager.jsonl"):
                entry = json.loads(line)
                secrets.create_secret(Name=entry["name"], SecretString=entry["secret_string"])
                counts["secrets"] += 1
        finally:
            self.router.enabled = True
        return counts

    # -- faults (tests and bench/chaos.py) ----------------------------------------------------------

    def inject_crash(
        self,
        function: str,
        after_writes: int | None = None,
        times: int = 1,
        *,
        error_type: str | None = None,
        when: Callable[[Any], bool] | None = None,
        district: str | None = None,
    ) -> CrashInjection:
        """Make the next ``times`` invocations of a function die (``InjectedCrashError``, a function error).

        ``function`` is the template's logical id (``UpsertChunkFunction``) or the function's name.
        ``after_writes``: ``0`` before its handler runs, ``k`` right after its k-th directory write request,
        ``None`` after its handler returned. ``error_type``: the error the state machine sees (default
        ``InjectedCrashError``, which no Retry matches; ``Sandbox.Timedout`` is what AWS reports for a Lambda
        out of time). ``when``: only invocations whose event it accepts crash; ``district``: only those whose
        event names that district (a test's own; other runs in the process go on). Returns the injection
        (``fired`` counts the crashes so far); ``clear_crashes`` disarms whatever did not fire.
        """
        name = function if function.startswith(f"{self.stack_name}-") else f"{self.stack_name}-{function}"
        if name not in _FUNCTIONS:
            raise ValueError(f"no function {function} on this stack")
        crash = CrashInjection(
            name,
            after_writes,
            times,
            directory_table=self.outputs["DirectoryTableName"],
            error_type=error_type,
            when=when,
            district=district,
        )
        with _CRASHES_LOCK:
            _CRASHES.append(crash)
        return crash

    def clear_crashes(self) -> None:
        """Disarm every crash injection of this stack's functions."""
        with _CRASHES_LOCK:
            _CRASHES[:] = [c for c in _CRASHES if not c.function.startswith(f"{self.stack_name}-")]

    # -- running syncs ----------------------------------------------------------------------------

    def publish_event(self, source: str, detail_type: str, detail: dict[str, Any]) -> list[str]:
        """Put an EventBridge event to the stack; return the ARNs of the executions its rules started."""
        answer = self.client("events").put_events(
            Entries=[{"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}]
        )
        entry = answer["Entries"][0]
        if "EventId" not in entry:
            raise ValueError(f"event refused: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
        return self.router.started_by(entry["EventId"]) or []

    def wait_until(self, check: Callable[[], Any], timeout: float = 120) -> Any:
        """Wait for what an event rule's Lambda target does in the background (EventBridge invokes targets
        asynchronously): ``check()`` is asked again each time a target returns (and at least every second)
        until it answers something truthy, which is returned; ``TimeoutError`` past ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            answer = check()
            if answer:
                return answer
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"still not so after {timeout:.0f}s")
            with _TARGET_DONE:
                _TARGET_DONE.wait(timeout=min(1.0, left))

    def sent_emails(self) -> list[dict[str, Any]]:
        """Every email SES accepted from this process's embedded AWS (what the NotifyAdmins function sent,
        which on AWS would be delivered), oldest first: ``{"source", "to", "subject", "body"}``."""
        from moto.ses.models import ses_backends

        backend = ses_backends[ACCOUNT][REGION]
        return [
            {
                "source": message.source,
                "to": list(message.destinations.get("ToAddresses", [])),
                "subject": message.subject,
                "body": message.body,
            }
            for message in list(backend.sent_messages)
            if hasattr(message, "subject")
        ]

    def run_end_events(self, district_id: str | None = None) -> list[dict[str, Any]]:
        """The run-end events put on the stack's bus (``lifecycle.announce``), oldest first."""
        return [
            event
            for event in list(self.router.bus_events)
            if event.get("source") == "rostersync"
            and (district_id is None or event.get("detail", {}).get("district_id") == district_id)
        ]

    def publish_upload(self, key: str) -> list[str]:
        """The executions an object written to the sync bucket started.

        Writing it already announced it (the bucket's EventBridge notifications, as on AWS); if that
        started nothing (the object was written while routing was off) it is announced again here.
        """
        bucket = self.outputs["SyncBucketName"]
        started = self.router.started_by(f"s3://{bucket}/{key}")
        if started is not None:
            return started
        size = self.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"]
        event = aws_event(
            "aws.s3", "Object Created", {"bucket": {"name": bucket}, "object": {"key": key, "size": size}}
        )
        return self.router.route(event, key)

    def start_sync(self, district_id: str, trigger: str = "manual", dry_run: bool = False) -> str:
        """Start a sync run directly (as the schedule or the CLI does); return the execution ARN."""
        sfn = self.client("stepfunctions")
        payload = json.dumps({"district_id": district_id, "trigger": trigger, "dry_run": dry_run})
        arn = self.outputs["SyncStateMachineArn"]
        return sfn.start_execution(stateMachineArn=arn, input=payload, name=execution_name())["executionArn"]

    def start_cleanup(self, district_id: str, batch_id: str, manifest_key: str) -> str:
        """Start a clean-up batch on the clean-up state machine (as the CLI does); return the execution ARN."""
        payload = json.dumps({"district_id": district_id, "batch_id": batch_id, "manifest_key": manifest_key})
        arn = self.outputs["CleanupStateMachineArn"]
        return str(
            self.client("stepfunctions").start_execution(stateMachineArn=arn, input=payload, name=batch_id)[
                "executionArn"
            ]
        )

    def wait(self, execution_arn: str, timeout: float = 600) -> dict[str, Any]:
        """Wait for an execution to end and return its description.

        Woken when any execution of this process's embedded AWS ends; the description is read again then,
        and at least every second (an execution ended before the wait began, or by another process).
        """
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            with _EXECUTION_ENDED:
                description = sfn.describe_execution(executionArn=execution_arn)
                if description["status"] != "RUNNING":
                    return description
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"execution {execution_arn} still running after {timeout:.0f}s")
                _EXECUTION_ENDED.wait(timeout=min(1.0, left))


STATE_FORMAT = "rostersync-local-state/1"
STATE_FILE = "stack-state.json"


def has_saved_state(folder: Path) -> bool:
    return (folder / STATE_FILE).is_file()


def check_state_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot hold a saved state (None when it can): saving replaces the folder, so it
    must be new, empty, or a saved state already."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        return "not a folder"
    if has_saved_state(folder) or not any(folder.iterdir()):
        return None
    return f"holds other files and no {STATE_FILE}; give a new or empty folder"


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def local_bucket_policy(document: dict[str, Any]) -> dict[str, Any]:
    """The bucket policy minus its TLS-only statement: the embedded stack serves plain HTTP on
    loopback, and moto enforces ``aws:SecureTransport`` (on AWS the statement stands)."""
    statements = [
        s for s in document.get("Statement", []) if "aws:SecureTransport" not in json.dumps(s.get("Condition", {}))
    ]
    return {**document, "Statement": statements}


def execution_name() -> str:
    """A sortable execution name; it becomes the run id. (AWS names executions itself when EventBridge
    starts them; moto does not, so the local router names them.)"""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def _evaluate_condition(rule: Any) -> bool:
    """The template's conditions: ``Fn::Equals`` over resolved values, and ``Fn::Not`` (what the template uses)."""
    if isinstance(rule, dict) and "Fn::Equals" in rule:
        left, right = rule["Fn::Equals"]
        return str(left) == str(right)
    if isinstance(rule, dict) and "Fn::Not" in rule:
        (inner,) = rule["Fn::Not"]
        return not _evaluate_condition(inner)
    raise ValueError(f"the embedded stack cannot evaluate condition {rule!r}")


def _matches_value(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        if not isinstance(actual, str):
            return False
        if "prefix" in expected:
            return actual.startswith(expected["prefix"])
        if "suffix" in expected:
            return actual.endswith(expected["suffix"])
        if "wildcard" in expected:
            return fnmatch.fnmatchcase(actual, expected["wildcard"])
        raise ValueError(f"the embedded stack does not support the event filter {expected!r}")
    return bool(expected == actual)


def matches_pattern(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge pattern matching: exact values, prefix/suffix/wildcard filters, nested objects."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not matches_pattern(expected, actual):
                return False
        elif isinstance(expected, list):
            values = actual if isinstance(actual, list) else [actual]
            if not any(_matches_value(e, v) for e in expected for v in values):
                return False
    return True


def transform_input(rule: dict[str, Any], event: dict[str, Any]) -> str:
    """Apply a rule's InputTransformer / InputPath / Input the way EventBridge does."""
    if "Input" in rule:
        return str(rule["Input"])
    transformer = rule.get("InputTransformer")
    if transformer:
        text = transformer["InputTemplate"]
        for name, path in transformer.get("InputPathsMap", {}).items():
            value: Any = event
            for part in path.removeprefix("$.").split("."):
                value = value.get(part) if isinstance(value, dict) else None
            text = text.replace(f"<{name}>", json.dumps(value))
        return text
    path = rule.get("InputPath")
    if path:
        value = event
        for part in path.removeprefix("$.").split("."):
            value = value[part]
        return json.dumps(value)
    return json.dumps(event)
