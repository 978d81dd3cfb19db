"""Fetch's branches share the district's rate limit: each paces its own requests (``RequestPacer``) at
its share (``branch_interval``), carrying the last request's time from one slice to the next."""

from __future__ import annotations

from collections import Counter

from rostersync.providers.http import RequestPacer
from rostersync.steps.fetch import branch_interval


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_branches_at_their_share_never_exceed_the_limit_in_any_minute() -> None:
    # Given 5 branches sharing 1,200 requests a minute, each sending as fast as its pacer lets it
    interval = branch_interval(1_200, 5)
    sent: list[float] = []
    for branch in range(5):
        clock = FakeClock()
        clock.now += branch * 0.013  # branches start out of step
        pacer = RequestPacer(interval=interval, clock=clock, sleep=clock.sleep)
        for _ in range(2_000):
            pacer.wait()
            sent.append(clock.now)

    # Then no 60 s window, wherever it starts, holds more than 1,200 of their requests
    sent.sort()
    start, most = 0, 0
    for end, at in enumerate(sent):
        while sent[start] <= at - 60:
            start += 1
        most = max(most, end - start + 1)
    assert most <= 1_200
    assert most >= 1_150  # and the share is not wasted
    assert max(Counter(int(at // 60) for at in sent).values()) <= 1_200


def test_a_new_slice_keeps_the_spacing_from_the_last_request_of_the_one_before() -> None:
    clock = FakeClock()
    first = RequestPacer(interval=2.0, clock=clock, sleep=clock.sleep)
    first.wait()
    clock.now += 0.5  # the next invocation starts half a second later

    second = RequestPacer(interval=2.0, last=first.last, clock=clock, sleep=clock.sleep)
    second.wait()

    assert clock.now == first.last + 2.0 == second.last


def test_no_known_limit_paces_nothing() -> None:
    clock = FakeClock()
    pacer = RequestPacer(interval=branch_interval(None, 5), clock=clock, sleep=clock.sleep)
    for _ in range(100):
        pacer.wait()
    assert clock.now == 1_000.0
    assert branch_interval(10, 50) == 60.0  # a share is never below one request a minute
