"""The benchmark's memory figure per invocation (``InvocationRecorder(memory=True)``).

Each traced invocation runs with tracemalloc started for it and stopped after it: the figure is what that
invocation allocated, and the tracer's own table never holds more than one invocation's blocks (at 100,000
students the embedded AWS stores millions of objects, which a tracer left running would shadow).
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from rostersync_tools.local.stack import InvocationRecorder

MiB = 2**20


class _Allocating:
    """Stands in for a stack function: allocates 4 MiB of scratch, keeps 1 MiB, frees a block it was given."""

    name = "rostersync-UpsertChunk-abc"

    def __init__(self, older: list[bytearray]) -> None:
        self.older = older
        self.kept: list[bytearray] = []
        self.tracing_inside = False

    def _invoke(self, event: Any, recorder: Any) -> tuple[str, bool]:
        self.tracing_inside = tracemalloc.is_tracing()
        scratch = bytearray(4 * MiB)
        self.kept.append(bytearray(MiB))
        self.older.clear()  # 8 MiB allocated before the invocation, freed during it
        del scratch
        return "{}", False


def test_a_traced_invocation_counts_what_it_allocated_and_the_tracer_stops_after_it() -> None:
    # Given memory held before the invocation, which the invocation frees
    older = [bytearray(8 * MiB)]
    function = _Allocating(older)

    # When one invocation is traced
    with InvocationRecorder(memory=True) as recorder:
        assert not tracemalloc.is_tracing()
        recorder.traced(function, {})
        # Then the tracer ran for the invocation only
        assert function.tracing_inside
        assert not tracemalloc.is_tracing()

    # And its peak is the scratch and the kept block together, not lowered by the older block it freed
    (invocation,) = recorder.invocations
    assert 5 * MiB <= invocation.peak_bytes < 5.5 * MiB
    # And what it still held at the end is the kept block
    assert MiB <= invocation.retained_bytes < 1.5 * MiB
    assert invocation.function == function.name


def test_a_second_invocation_is_measured_from_nothing_whatever_the_first_kept() -> None:
    first, second = _Allocating([]), _Allocating([])
    with InvocationRecorder(memory=True) as recorder:
        recorder.traced(first, {})
        recorder.traced(second, {})
    # the first's kept megabyte is not in the second's figures
    assert [round(i.peak_bytes / MiB) for i in recorder.invocations] == [5, 5]
    assert [round(i.retained_bytes / MiB) for i in recorder.invocations] == [1, 1]


def test_a_recorder_told_which_functions_to_trace_traces_only_those() -> None:
    # bench_sync --trace-steps: the other steps run untraced, at full speed
    fetch_only = InvocationRecorder(memory=True, traces=lambda name: "FetchRoster" in name)
    assert fetch_only.traces("rostersync-FetchRoster-abc")
    assert not fetch_only.traces("rostersync-UpsertChunk-abc")
    assert InvocationRecorder(memory=True).traces("rostersync-UpsertChunk-abc")
    assert not InvocationRecorder(memory=False, traces=lambda name: True).traces("rostersync-FetchRoster-abc")


def test_an_invocation_is_placed_in_time_so_a_steps_wall_time_can_be_told_from_its_summed_time() -> None:
    # Given an invocation recorded between two instants
    before = time.perf_counter()
    with InvocationRecorder() as recorder:
        recorder.add("rostersync-UpsertChunk-abc", 0.0)
    after = time.perf_counter()

    # Then it says when it ended, and it began its seconds before that
    (invocation,) = recorder.invocations
    assert before <= invocation.ended <= after
    assert invocation.began == invocation.ended - invocation.seconds
