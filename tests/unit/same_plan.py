"""Hold the partitioned Match (``matching.partition``) to the single pass: the same planned writes, report
lines, errors, archive candidates and summary, order aside. The planner tests call it from their helpers,
so every planner test is also a test of the partitioned flow."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from rostersync.matching.partition import plan_partitioned

PARTITIONS = (1, 3, 7)


def _bag(items: Iterable[Any], dump: Callable[[Any], Any]) -> Counter[str]:
    return Counter(json.dumps(dump(i), sort_keys=True, default=str) for i in items)


def options_copy(options: dict[str, Any]) -> dict[str, Any]:
    """The planner's options before a run (person matching claims candidates as it goes)."""
    return copy.deepcopy(options)


def assert_same_plan(
    district_id: str,
    provider: str,
    index: dict[str, Any],
    records: Callable[[str], Iterable[Any]],
    options: dict[str, Any],
    single: Any,
    errors: Iterable[Any] = (),
    deleted: Iterable[Any] = (),
) -> None:
    """``single``: the single pass's result (``writes``, ``lines``, ``errors``, ``candidates``, ``planner``);
    ``options``: a copy taken before it ran."""
    rekey = bool(options.get("rekey_people") is not None or options.get("rekey_classrooms") is not None)
    for partitions in PARTITIONS:
        got = plan_partitioned(
            district_id,
            provider,
            index,
            records,
            partitions,
            errors=errors,
            deleted=deleted,
            rekey=rekey,
            **options_copy(options),
        )
        where = f"{partitions} partitions"
        assert _bag(got.writes, lambda w: w.to_json()) == _bag(single.writes, lambda w: w.to_json()), where
        assert _bag(got.lines, lambda line: line.to_json()) == _bag(single.lines, lambda line: line.to_json()), where
        assert _bag(got.errors, lambda e: e.model_dump(mode="json")) == _bag(
            single.errors, lambda e: e.model_dump(mode="json")
        ), where
        assert _bag(got.candidates, lambda c: c.to_json()) == _bag(single.candidates, lambda c: c.to_json()), where
        expected = json.loads(json.dumps(single.planner.summary.to_json(), sort_keys=True))
        assert json.loads(json.dumps(got.summary, sort_keys=True)) == expected, where
