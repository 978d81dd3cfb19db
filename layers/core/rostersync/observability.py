"""Logger, Tracer and Metrics, created once. Service name, log level and the metrics namespace come from
the template's Globals (``POWERTOOLS_SERVICE_NAME``, ``LOG_LEVEL``, ``POWERTOOLS_METRICS_NAMESPACE``).

Logs carry ids and counts only: never names, emails, phones or birth dates. So do metrics: their
dimensions are the step, the record kind and the action, never a district or a person.

Metrics are CloudWatch embedded-metric-format lines written to the function's log (CloudWatch turns
them into metrics). Each is flushed on its own (``emit``), so handlers running side by side in one
process (the embedded stack) never mix their dimensions.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from rostersync.errors import bounded_error
from rostersync.metering import metered

logger = Logger()
tracer = Tracer()
metrics = Metrics()  # the namespace from POWERTOOLS_METRICS_NAMESPACE
# Where a step runs without the template's environment (a test, the CLI), its metrics still have a home.
DEFAULT_NAMESPACE = "rostersync"

Handler = TypeVar("Handler", bound=Callable[..., Any])


def emit(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """Write one metric with its own dimensions now (a no-op when POWERTOOLS_METRICS_DISABLED)."""
    if is_metrics_disabled():
        return
    # Powertools' own variable, read as Powertools reads it; only its absence is decided here.
    namespace = None if os.environ.get("POWERTOOLS_METRICS_NAMESPACE") else DEFAULT_NAMESPACE
    with single_metric(name=name, unit=unit, value=value, namespace=namespace, default_dimensions=dimensions):
        pass


def step_metrics(step: str) -> Callable[[Handler], Handler]:
    """A handler's ``StepDuration`` (ms) and, when it raises, ``StepErrors`` (by error name), per step; and its
    meter (``rostersync.metering``): requests, bytes, capacity units and GB-seconds, kept in the run's files.

    An error it raises has a bounded message (``rostersync.errors.bounded_error``): the state machine
    keeps it in the run's state, and an over-long one would end the run with no report.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def measured(event: Any, context: Any) -> Any:
            with metered(step, event, context):
                return _measured(event, context)

        def _measured(event: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                return handler(event, context)
            except Exception as exc:
                emit("StepErrors", 1, step=step, error=type(exc).__name__)
                if bounded_error(exc) is exc:
                    raise
                kept_at = keep_full_error_text(event, step, str(exc))
                logger.warning(
                    "step error message cut before it reaches the state",
                    extra={
                        "step": step,
                        "error": type(exc).__name__,
                        "characters": len(str(exc)),
                        "kept": bool(kept_at),
                    },
                )
                raise bounded_error(exc, full_text_at=kept_at) from None
            finally:
                emit("StepDuration", (time.perf_counter() - started) * 1000, MetricUnit.Milliseconds, step=step)

        return measured  # type: ignore[return-value]

    return decorate


def keep_full_error_text(event: Any, step: str, message: str) -> str:
    """Write an over-long error message whole to the run's files (``errors/<step>-<id>.txt``) and return
    its key; "" when the event names no run or the write fails (the cut message still goes on).

    The text may quote the district's data (a bundle's rows), so it goes to the run's files in S3, which
    hold the district's data anyway, never to the log.
    """
    run = event.get("run") if isinstance(event, dict) and isinstance(event.get("run"), dict) else event
    district_id = run.get("district_id") if isinstance(run, dict) else None
    run_id = run.get("run_id") if isinstance(run, dict) else None
    if not isinstance(district_id, str) or not isinstance(run_id, str) or not district_id or not run_id:
        return ""
    try:
        import uuid

        from rostersync import aws
        from rostersync.config import runtime_config
        from rostersync.storage import RunStore

        store = RunStore(aws.client("s3"), runtime_config().sync_bucket, district_id, run_id)
        return store.put_bytes(f"errors/{step}-{uuid.uuid4().hex[:8]}.txt", message.encode("utf-8"), "text/plain")
    except Exception:  # noqa: BLE001 - keeping the text is a help; the error itself must still be raised
        logger.warning("the full text of a cut error message could not be kept", extra={"step": step})
        return ""


def emit_record_counts(step: str, counts: dict[str, dict[str, int]]) -> None:
    """``Records`` per kind and action (created, updated, archived…), the non-zero ones."""
    for kind, actions in counts.items():
        for action, value in actions.items():
            if value:
                emit("Records", value, step=step, kind=kind, action=action)
