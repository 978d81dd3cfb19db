"""CleverClient and CleverProvider against the local Clever simulator."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from rostersync.domain.records import ClassroomRecord, Kind, PersonRecord, RecordError
from rostersync.errors import ProviderAuthError, ProviderRequestError, ProviderUnavailableError
from rostersync.providers.base import FetchOutcome, RetryPolicy
from rostersync.providers.clever import CleverClient, CleverProvider
from rostersync_tools.local.simulator import ProviderSimulator

DEMO_DISTRICT = (
    Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "clever" / "clever-go" / "tests" / "mocks"
)
TOKEN = "demo-district-token"


@pytest.fixture
def simulator():
    with ProviderSimulator(DEMO_DISTRICT, token=TOKEN) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retry(sleeps) -> RetryPolicy:
    """Four attempts, waits recorded instead of slept."""
    return RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=60.0, sleep=sleeps.append)


def demo_ids(endpoint: str) -> list[str]:
    body = json.loads((DEMO_DISTRICT / f"{endpoint}.json").read_text(encoding="utf-8"))
    return [entry["data"]["id"] for entry in body["data"]]


class FakeClock:
    """Epoch seconds that move only when the client 'sleeps'."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_paging_follows_next_links_with_starting_after(simulator, retry):
    # Given a client asking for 100 sections a page (the district has 378)
    client = CleverClient(simulator.base_url, TOKEN, page_limit=100, retry=retry)

    # When it streams the sections
    ids = [entry["data"]["id"] for entry in client.iter_records("/v3.0/sections")]

    # Then it read all of them, in order, over four pages chained by starting_after
    expected = demo_ids("sections")
    assert ids == expected
    assert simulator.requests_seen == [
        ("/v3.0/sections", "limit=100"),
        ("/v3.0/sections", f"limit=100&starting_after={expected[99]}"),
        ("/v3.0/sections", f"limit=100&starting_after={expected[199]}"),
        ("/v3.0/sections", f"limit=100&starting_after={expected[299]}"),
    ]


def test_a_list_read_ahead_asks_for_the_limit_it_is_given_never_above_the_clients(simulator, retry):
    # Given a client of 500 records a page, reading the sections (378) ahead in pages of 150, as Fetch asks
    # for a heavier list's pages (``CLEVER_PAGE_LIMITS``)
    client = CleverClient(simulator.base_url, TOKEN, page_limit=500, retry=retry)
    pages = list(client.iter_pages("/v3.0/sections", limit=150, ahead=lambda page: True))

    # Then every page asked for 150, the next links keeping it, and the list came through in order
    expected = demo_ids("sections")
    assert [len(page.items) for page in pages] == [150, 150, 78]
    assert [entry["data"]["id"] for page in pages for entry in page.items] == expected
    assert simulator.requests_seen == [
        ("/v3.0/sections", "limit=150"),
        ("/v3.0/sections", f"limit=150&starting_after={expected[149]}"),
        ("/v3.0/sections", f"limit=150&starting_after={expected[299]}"),
    ]
    # and a list's limit above the client's is the client's (the connection's page limit holds)
    small = CleverClient(simulator.base_url, TOKEN, page_limit=200, retry=retry)
    assert [len(page.items) for page in small.iter_pages("/v3.0/sections", limit=5_000)] == [200, 178]
    assert simulator.requests_seen[3] == ("/v3.0/sections", "limit=200")


def test_whole_demo_district_comes_through_with_limit_500(simulator, retry):
    # Given the recorded demo district and a provider paging 500 at a time
    provider = CleverProvider(CleverClient(simulator.base_url, TOKEN, page_limit=500, retry=retry))
    outcome = FetchOutcome()

    # When it fetches the roster
    records = list(provider.fetch(outcome))

    # Then all 2,098 users and 378 sections arrive, nothing is reported, and the fetch is complete
    people = [record for record in records if isinstance(record, PersonRecord)]
    assert len(people) == 2098
    assert {person.provider_id for person in people} == set(demo_ids("users"))
    assert Counter(person.kind for person in people) == {
        Kind.STUDENTS: 1004,
        Kind.GUARDIANS: 1002,
        Kind.TEACHERS: 89,
        Kind.STAFF: 3,
    }
    assert len([record for record in records if isinstance(record, ClassroomRecord)]) == 378
    assert [record for record in records if isinstance(record, RecordError)] == []
    assert outcome.complete
    assert sum(path == "/v3.0/users" for path, _ in simulator.requests_seen) == 5


def test_fetch_logs_counts_and_ids_but_no_personal_data_or_token(simulator, retry, caplog):
    # Given a fetch that also hits a retry, logged at DEBUG
    simulator.inject("/v3.0/users", 503)
    provider = CleverProvider(CleverClient(simulator.base_url, TOKEN, page_limit=500, retry=retry))

    # When the whole district is fetched
    with caplog.at_level(logging.DEBUG):
        list(provider.fetch(FetchOutcome()))

    # Then the logs say what was read, without names, emails, birth dates or the token
    assert "Read /v3.0/users from Clever: 3102 records" in caplog.text
    for secret in (TOKEN, "Ziemann", "z.steve@example.net", "2/11/2007", "Aaron Berge"):
        assert secret not in caplog.text


def test_bad_token_raises_auth_error_without_retrying(simulator, retry, sleeps):
    # Given a client holding a token Clever does not know
    client = CleverClient(simulator.base_url, "revoked-token-123", retry=retry)

    # When it reads users
    with pytest.raises(ProviderAuthError) as raised:
        list(client.iter_records("/v3.0/users"))

    # Then it asked once, waited never, and tells the admin to reconnect without echoing the token
    assert len(simulator.requests_seen) == 1
    assert sleeps == []
    assert "reconnect the rostersync app in Clever" in str(raised.value)
    assert "revoked-token-123" not in str(raised.value)


def test_two_server_errors_then_success_are_retried(simulator, retry, sleeps):
    # Given Clever answers 500 twice before answering
    simulator.inject("/v3.0/users", 500, times=2)
    client = CleverClient(simulator.base_url, TOKEN, retry=retry)

    # When users are read
    users = list(client.iter_records("/v3.0/users"))

    # Then every user arrives after two waits
    assert len(users) == 2098
    assert len(sleeps) == 2
    assert len(simulator.requests_seen) == 3


def test_server_down_raises_unavailable_after_max_attempts(simulator, retry, sleeps):
    # Given Clever answers 503 to everything
    simulator.inject("/v3.0/users", 503, times=100)
    client = CleverClient(simulator.base_url, TOKEN, retry=retry)

    # When users are read
    with pytest.raises(ProviderUnavailableError) as raised:
        list(client.iter_records("/v3.0/users"))

    # Then it tried max_attempts times, waiting between tries, and says what failed where
    assert len(simulator.requests_seen) == 4
    assert len(sleeps) == 3
    assert "after 4 attempts (HTTP 503 on /v3.0/users" in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_unreachable_host_raises_unavailable_after_max_attempts(retry, sleeps):
    # Given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = CleverClient(f"http://127.0.0.1:{port}", TOKEN, retry=retry, timeout=2)

    # When users are read
    with pytest.raises(ProviderUnavailableError) as raised:
        list(client.iter_records("/v3.0/users"))

    # Then the connection errors were retried with waits before giving up
    assert len(sleeps) == 3
    assert "ConnectionError on /v3.0/users" in str(raised.value)


def test_429_waits_as_long_as_retry_after_says(simulator, retry, sleeps):
    # Given Clever rate-limits the first request and asks for 7 seconds
    simulator.inject("/v3.0/users", 429, headers={"Retry-After": "7"})
    client = CleverClient(simulator.base_url, TOKEN, retry=retry)

    # When users are read
    users = list(client.iter_records("/v3.0/users"))

    # Then the client waited exactly 7 seconds once and then got everyone
    assert sleeps == [7.0]
    assert len(users) == 2098


def test_429_without_retry_after_waits_until_the_rate_limit_reset(simulator, retry, sleeps):
    # Given a 429 that only says when the window resets (30 s from now), then one resetting in an hour
    simulator.inject("/v3.0/users", 429, headers={"X-RateLimit-Reset": str(int(time.time()) + 30)})
    simulator.inject("/v3.0/users", 429, headers={"X-RateLimit-Reset": str(int(time.time()) + 3600)})
    client = CleverClient(simulator.base_url, TOKEN, retry=retry)

    # When users are read
    list(client.iter_records("/v3.0/users"))

    # Then it waited until the reset, and never longer than max_delay
    assert len(sleeps) == 2
    assert 27 <= sleeps[0] <= 30
    assert sleeps[1] == 60.0


def test_simulated_rate_limit_is_waited_out():
    # Given a simulator allowing 3 requests a minute, on a clock that moves only when the client waits
    clock = FakeClock()
    waiting = RetryPolicy(max_attempts=3, sleep=clock.sleep)
    with ProviderSimulator(DEMO_DISTRICT, token=TOKEN, rate_limit_per_minute=3, clock=clock) as simulator:
        client = CleverClient(simulator.base_url, TOKEN, page_limit=50, retry=waiting)

        # When eight pages of sections are read
        ids = [entry["data"]["id"] for entry in client.iter_records("/v3.0/sections")]

    # Then every section arrived, the client having waited for the next minute twice (3 + 3 + 2 pages):
    # 40 s to the end of the first minute (the clock starts 20 s in), then a full 60 s
    assert ids == demo_ids("sections")
    assert clock.now == 1_700_000_000.0 + 40 + 60


@pytest.mark.parametrize("status", [400, 404])
def test_client_errors_are_not_retried(simulator, retry, sleeps, status):
    # Given Clever rejects the request
    simulator.inject("/v3.0/users", status)
    client = CleverClient(simulator.base_url, TOKEN, retry=retry)

    # When users are read
    with pytest.raises(ProviderRequestError) as raised:
        list(client.iter_records("/v3.0/users"))

    # Then one request, no wait, and the status in the message
    assert len(simulator.requests_seen) == 1
    assert sleeps == []
    assert f"HTTP {status}" in str(raised.value)


def test_malformed_page_marks_the_fetch_incomplete_and_is_reported(simulator, retry):
    # Given page 2 of users is cut off mid-way
    simulator.inject_malformed("/v3.0/users", page=2)
    provider = CleverProvider(CleverClient(simulator.base_url, TOKEN, page_limit=500, retry=retry))
    outcome = FetchOutcome()

    # When the district is fetched
    records = list(provider.fetch(outcome))

    # Then page 1's users arrive, the users endpoint stops there, and both outcome and report say why
    assert len([record for record in records if isinstance(record, PersonRecord)]) == 500
    assert not outcome.complete
    assert len(outcome.problems) == 1
    assert "page 2 of /v3.0/users was not valid JSON" in outcome.problems[0]
    errors = [record for record in records if isinstance(record, RecordError)]
    assert [(error.provider_id, error.reason) for error in errors] == [("", outcome.problems[0])]
    assert sum(path == "/v3.0/users" for path, _ in simulator.requests_seen) == 2


def test_a_page_nested_100000_deep_is_an_unreadable_page_not_a_crash(simulator, retry):
    # Given page 1 of users is JSON nested 100,000 levels deep (a hostile or broken proxy)
    nested = b'{"data": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    simulator.inject_malformed("/v3.0/users", page=1, body=nested)
    provider = CleverProvider(CleverClient(simulator.base_url, TOKEN, page_limit=500, retry=retry))
    outcome = FetchOutcome()

    # When the district is fetched
    records = list(provider.fetch(outcome))

    # Then the users endpoint is incomplete with a reason, and the fetch carried on without crashing
    assert not outcome.complete
    assert any("page 1 of /v3.0/users is nested too deep to read" in problem for problem in outcome.problems)
    assert not [record for record in records if isinstance(record, PersonRecord)]


def test_limit_above_ten_thousand_is_rejected(simulator):
    # Given a page size over Clever's maximum
    # When a client is built with it, or the API is asked for it directly
    with pytest.raises(ValueError, match="10,000"):
        CleverClient(simulator.base_url, TOKEN, page_limit=10_001)
    response = requests.get(
        f"{simulator.base_url}/v3.0/users", params={"limit": 10_001}, headers={"Authorization": f"Bearer {TOKEN}"}
    )

    # Then both refuse
    assert response.status_code == 400


def test_switching_dataset_serves_the_new_snapshot(simulator, retry, tmp_path):
    # Given a second snapshot with a single user
    user = {"data": {"id": "u1", "roles": {"student": {"school": "s1"}}}, "uri": "/v3.0/users/u1"}
    (tmp_path / "users.json").write_text(json.dumps({"data": [user], "links": []}), encoding="utf-8")
    client = CleverClient(simulator.base_url, TOKEN, retry=retry)
    assert len(list(client.iter_records("/v3.0/users"))) == 2098

    # When the simulator switches to it
    simulator.set_dataset(tmp_path)

    # Then only that user is served, and absent files are empty lists
    assert list(client.iter_records("/v3.0/users")) == [user]
    assert list(client.iter_records("/v3.0/schools")) == []


def test_the_simulator_serves_a_list_in_ascending_ids_as_clever_does(tmp_path: Path) -> None:
    """Clever: "Elements are returned sorted with ascending IDs" (its paging documentation). The duplicate
    check's compact ids (``SeenIds``) rely on it for their size, not their answers."""
    ids = ["5e0000000000000000000003", "5e0000000000000000000001", "5e0000000000000000000002"]
    (tmp_path / "users.json").write_text(
        json.dumps({"data": [{"data": {"id": i, "roles": {"student": {}}}} for i in ids]}), encoding="utf-8"
    )
    with ProviderSimulator(tmp_path, token=TOKEN) as simulator:
        client = CleverClient(simulator.base_url, TOKEN, page_limit=2)
        pages = list(client.iter_pages("/v3.0/users"))
    assert [item["data"]["id"] for page in pages for item in page.items] == sorted(ids)
    assert len(pages) == 2
