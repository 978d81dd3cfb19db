"""The garbage collector runs less often while the embedded stack holds the embedded AWS in this process.

The stack's tables, objects and executions live in the same heap as the Lambdas' code; with CPython's
default thresholds the collector walked them again and again as they grew (``STACK_GC_THRESHOLD``). A
traced invocation, whose peak memory the benchmark reports, runs with the thresholds the process had
before the stack started, as a Lambda's own process has them.
"""

from __future__ import annotations

import gc

import pytest

from rostersync_tools.local import stack as stack_module
from rostersync_tools.local.stack import STACK_GC_THRESHOLD, EmbeddedStack, InvocationRecorder

pytestmark = pytest.mark.e2e


def test_the_collector_runs_less_often_while_the_stack_runs_and_as_before_in_a_traced_run(
    stack: EmbeddedStack,
) -> None:
    # Given the session's stack running, started in a process whose thresholds were something else
    (before,) = stack_module._GC_THRESHOLD_BEFORE
    assert before != STACK_GC_THRESHOLD

    # Then the collector's thresholds are the stack's
    assert gc.get_threshold() == STACK_GC_THRESHOLD

    # And while invocations are traced for their memory they are the process's own, and the stack's after
    with InvocationRecorder(memory=True):
        assert gc.get_threshold() == before
    assert gc.get_threshold() == STACK_GC_THRESHOLD
