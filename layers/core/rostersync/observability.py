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
    """A handler's ``StepDuration`` (ms) and, when it raises, ``StepErrors`` (by error name), per step.

    An error it raises has a bounded message (``rostersync.errors.bounded_error``): the state machine
    keeps it in the run's state, and an over-long one would end the run with no report.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def measured(event: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                return handler(event, context)
            except Exception as exc:
                emit("StepErrors", 1, step=step, error=type(exc).__name__)
                bounded = bounded_error(exc)
                if bounded is exc:
                    raise
                logger.warning(
                    "step error message cut before it reaches the state",
                    extra={"step": step, "error": type(exc).__name__, "characters": len(str(exc))},
                )
                raise bounded from None
            finally:
                emit("StepDuration", (time.perf_counter() - started) * 1000, MetricUnit.Milliseconds, step=step)

        return measured  # type: ignore[return-value]

    return decorate


def emit_record_counts(step: str, counts: dict[str, dict[str, int]]) -> None:
    """``Records`` per kind and action (created, updated, archived…), the non-zero ones."""
    for kind, actions in counts.items():
        for action, value in actions.items():
            if value:
                emit("Records", value, step=step, kind=kind, action=action)
