"""The duplicate check's ids (``providers.seen_ids.SeenIds``): exact as a set, compact when Clever's list
is in its order, and carried from slice to slice."""

from __future__ import annotations

import gzip
import random
import tracemalloc

import pytest

from rostersync.providers.seen_ids import SeenIds, id_key


def _object_ids(count: int, rng: random.Random) -> list[str]:
    """Clever-like ids (time, machine, counter), ascending, as Clever sends a list."""
    return sorted(f"{0x5E000000 + rng.randrange(1 << 20):08x}{rng.getrandbits(64):016x}" for _ in range(count))


def _first_times(ids: list[str], seen: SeenIds | set[int | str]) -> list[bool]:
    """What the duplicate check says of each id in turn: True the first time it is seen."""
    out = []
    for record_id in ids:
        key = id_key(record_id)
        first = key not in seen
        if first:
            seen.add(key)
        out.append(first)
    return out


def _through_slices(stream: list[str], cuts: list[int]) -> tuple[list[bool], list[bytes]]:
    """The duplicate check's answers for ``stream`` read in slices cut at ``cuts``, each slice loading what the
    ones before it wrote (as Fetch's slices do), and what each wrote."""
    answers: list[bool] = []
    bodies: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        seen = SeenIds()
        for body in bodies:
            seen.load(body)
        answers += _first_times(stream[start:end], seen)
        bodies.append(seen.slice_bytes())
    return answers, bodies


def test_it_answers_as_a_set_for_ids_in_order_out_of_order_repeated_and_not_object_ids():
    rng = random.Random(3)
    ids = _object_ids(3_000, rng)
    mixed = list(ids)
    # repeats of earlier ids, ids out of order, ids that share the high 64 bits, ids that are not ObjectIds
    mixed[500:500] = [ids[10], ids[499], "not-an-object-id", ids[0][:16] + "00000000", "ABCDEF0123456789ABCDEF01"]
    mixed += [ids[1_234], "not-an-object-id", ids[0][:16] + "00000000", ids[-1], ids[-1][:16] + "ffffffff"]
    mixed.insert(2_000, f"{0x5E000000:08x}{0:016x}")  # below everything: out of order, new
    mixed.insert(2_100, f"{0x5E000000:08x}{0:016x}")  # and again: a duplicate of an out-of-order id
    assert _first_times(mixed, SeenIds()) == _first_times(mixed, set())
    assert _first_times(mixed, SeenIds()).count(False) == 7


def _loaded(bodies: list[bytes]) -> SeenIds:
    """The ids every slice wrote, loaded together."""
    together = SeenIds()
    for body in bodies:
        together.load(body)
    return together


def test_slices_carry_the_check_as_one_list_does():
    rng = random.Random(5)
    ids = _object_ids(2_000, rng)
    stream = ids[:700] + [ids[3], "x-1"] + ids[700:1_400] + [ids[1_000], "x-1", ids[5][:16] + "00000001"] + ids[1_400:]
    expected = _first_times(stream, set())
    answers, bodies = _through_slices(stream, [650, 1_500])
    assert answers == expected
    # Each slice wrote only what it added: together, every distinct id once.
    assert len(_loaded(bodies)) == len(set(stream))


def test_a_slice_that_starts_below_the_last_one_is_still_exact():
    rng = random.Random(9)
    ids = _object_ids(1_000, rng)
    earlier, later = SeenIds(), SeenIds()
    _first_times(ids[500:], earlier)  # an earlier slice read the upper half
    later.load(earlier.slice_bytes())
    assert _first_times(ids[:500] + ids[600:610], later) == [True] * 500 + [False] * 10


def test_ids_written_one_per_line_by_an_older_slice_are_read():
    seen = SeenIds()
    seen.load_lines(gzip.compress(b"5e0000000000000000000001\nnot-hex\n5e0000000000000000000002\n"))
    assert id_key("5e0000000000000000000002") in seen
    assert "not-hex" in seen
    assert id_key("5e0000000000000000000003") not in seen


def test_a_cut_short_list_of_ids_is_refused():
    seen = SeenIds()
    _first_times(_object_ids(100, random.Random(1)), seen)
    body = gzip.decompress(seen.slice_bytes())
    with pytest.raises(ValueError, match="cut short"):
        SeenIds().load(gzip.compress(body[: len(body) // 2]))


def test_ids_in_clevers_order_take_a_few_bytes_each():
    """Clever sends a list in ascending ids: held as two columns, about 12 bytes an id. A set of the same
    ids as ints holds about 80 (this test fails with one)."""
    ids = [id_key(i) for i in _object_ids(200_000, random.Random(7))]
    held = _bytes_an_id(ids)
    assert held < 16, f"{held:.1f} bytes an id"


def _bytes_an_id(keys: list[int | str]) -> float:
    """What a ``SeenIds`` given ``keys`` in turn holds, in bytes an id (tracemalloc); checks it holds them all."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        seen = SeenIds()
        for key in keys:
            if key not in seen:
                seen.add(key)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(seen) == len(set(keys))
    return held / len(keys)


def _runs(sizes: list[int], rng: random.Random) -> list[str]:
    """Ids as a users mirror written by role holds them: a run of ascending ids per role, one after another."""
    return [i for size in sizes for i in _object_ids(size, rng)]


def test_ascending_runs_one_after_another_are_exact_and_compact():
    """An events night reads the users mirror by role: each role's ids ascending, the roles one after
    another. Each run is kept as columns: about 12 bytes an id, where the set took about 80 (this test
    fails with every id after the first run in the set)."""
    rng = random.Random(11)
    ids = _runs([5_000, 60_000, 90_000, 50_000], rng)
    stream = ids[:70_000] + [ids[10], ids[4_999], ids[65_000]] + ids[70_000:] + [ids[0], ids[-1], "x-1", "x-1"]
    assert _first_times(stream, SeenIds()) == _first_times(stream, set())
    held = _bytes_an_id([id_key(i) for i in ids])
    assert held < 16, f"{held:.1f} bytes an id"


def test_slices_carry_runs_as_one_list_does():
    # Given ids in four ascending runs, and a stream of them with repeats cut into slices mid-run and at a
    # run's end
    rng = random.Random(13)
    ids = _runs([6_000, 9_000, 5_000, 7_000], rng)
    stream = ids + [ids[100], ids[6_100], ids[-1]]
    expected = _first_times(stream, set())
    answers, bodies = _through_slices(stream, [4_000, 15_000, 22_500])
    # Then the slices answered as one set, and together they wrote every distinct id once
    assert answers == expected
    assert len(_loaded(bodies)) == len(set(stream))


def test_many_short_runs_stay_exact():
    # Given ids that fall back below the last every few ids (no run is long enough to close)
    rng = random.Random(17)
    ids = _object_ids(20_000, rng)
    shuffled = [ids[i + j] for i in range(0, 20_000, 10) for j in (5, 6, 7, 8, 9, 0, 1, 2, 3, 4)]
    stream = shuffled + shuffled[::97]
    assert _first_times(stream, SeenIds()) == _first_times(stream, set())
