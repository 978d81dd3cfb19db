"""OneRosterRestClient and OneRosterRestProvider against the local OneRoster simulator.

The simulator serves reference OneRoster CSV bundles over OneRoster 1.1 REST, so what the REST client
reads can be compared with what the CSV provider reads from the same files.
"""

from __future__ import annotations

import csv
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests

from rostersync.domain.records import EnrollmentRecord, PersonRecord, RecordError
from rostersync.errors import (
    ConnectionNotConfiguredError,
    ProviderAuthError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from rostersync.providers.base import FetchOutcome, RetryPolicy
from rostersync.providers.oneroster_csv import OneRosterCsvProvider
from rostersync.providers.oneroster_mapping import COLLECTIONS
from rostersync.providers.oneroster_rest import (
    BearerToken,
    OAuth1Signature,
    OAuth2ClientCredentials,
    OneRosterRestClient,
    OneRosterRestProvider,
    build_oneroster_rest_provider,
    signature_base_string,
)
from rostersync_tools.local.simulator import DEFAULT_ONEROSTER_KEY, DEFAULT_ONEROSTER_SECRET, ProviderSimulator

ONEROSTER = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "oneroster"
# 2 schools, 3 classes, 11 users, 19 enrollments, demographics; OneRoster 1.0 column names in places.
SNAPWIZ = (
    ONEROSTER / "v1p1-csv__snapwiz-OneRoster" / "oneroster-import-js" / "data" / "samples" / "OneRosterv1p1BaseCSV"
)
# Users modified on 2023-05-01 and 2023-06-15 (and one never), guardians linked by agentSourcedIds.
CATALYST = (
    ONEROSTER
    / "v1p1-v1p2-csv__catalyst-moodle-enrol_oneroster"
    / "tests"
    / "fixtures"
    / "csv_data"
    / "extracted"
    / "Test_full_data_set"
)
ONEROSTER_NET = ONEROSTER / "v1p1-csv__rjeike-OneRoster.Net" / "OneRosterSync.Net" / "CSVSample"

USERS = "/ims/oneroster/v1p1/users"
TOKEN = "classlink-proxy-token"
KEY, SECRET = DEFAULT_ONEROSTER_KEY, DEFAULT_ONEROSTER_SECRET


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retry(sleeps) -> RetryPolicy:
    """Four attempts, waits recorded instead of slept."""
    return RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=60.0, sleep=sleeps.append)


@pytest.fixture
def simulator():
    with ProviderSimulator(SNAPWIZ, token=TOKEN) as running:
        yield running


def bearer_client(simulator: ProviderSimulator, retry: RetryPolicy, page_limit: int = 1000) -> OneRosterRestClient:
    return OneRosterRestClient(simulator.base_url, BearerToken(TOKEN), page_limit=page_limit, retry=retry)


def auth_for(mode: str, simulator: ProviderSimulator, secret: str = SECRET):
    if mode == "bearer":
        return BearerToken(TOKEN if secret == SECRET else secret)
    if mode == "oauth1":
        return OAuth1Signature(KEY, secret)
    return OAuth2ClientCredentials(f"{simulator.base_url}/oauth/token", KEY, secret)


def csv_ids(bundle: Path, name: str) -> list[str]:
    with (bundle / f"{name}.csv").open(encoding="utf-8-sig", newline="") as text:
        return [row["sourcedId"] for row in csv.DictReader(text)]


def sourced_ids(records) -> list[str]:
    return [record["sourcedId"] for record in records]


def requests_to(simulator: ProviderSimulator, path: str) -> list[str]:
    return [query for seen, query in simulator.requests_seen if seen == path]


def canonical(items) -> list[str]:
    """Records and deletions (not per-record errors) as sorted JSON, to compare in any order."""
    return sorted(item.model_dump_json() for item in items if not isinstance(item, RecordError))


# -- paging --------------------------------------------------------------------------------------------


def test_paging_asks_for_each_page_by_offset(simulator, retry):
    # Given a client asking for 4 users a page (the bundle has 11)
    client = bearer_client(simulator, retry, page_limit=4)

    # When it streams the users
    users = list(client.iter_collection("users"))

    # Then it read all of them in order over four pages, each after the first asked from the last user read
    # (it must start with that user: nothing moved across the boundary), and stopped at X-Total-Count
    assert sourced_ids(users) == csv_ids(SNAPWIZ, "users")
    assert requests_to(simulator, USERS) == [
        "limit=4&offset=0",
        "limit=4&offset=3",
        "limit=4&offset=6",
        "limit=4&offset=9",
    ]


def test_paging_stops_at_the_total_without_asking_for_an_empty_page(simulator, retry):
    # Given a page size that fits the 11 users exactly
    client = bearer_client(simulator, retry, page_limit=11)

    # When it streams the users
    users = list(client.iter_collection("users"))

    # Then one request was enough: X-Total-Count said there were no more
    assert len(users) == 11
    assert requests_to(simulator, USERS) == ["limit=11&offset=0"]


def test_without_a_total_a_short_page_or_an_empty_page_ends_the_collection(retry):
    # Given a server that sends no X-Total-Count
    with ProviderSimulator(SNAPWIZ, token=TOKEN, send_total_count=False) as simulator:
        # When users are read 4 a page (last page short), then 11 a page (last page full)
        by_four = list(bearer_client(simulator, retry, page_limit=4).iter_collection("users"))
        four_requests = requests_to(simulator, USERS)
        by_eleven = list(bearer_client(simulator, retry, page_limit=11).iter_collection("users"))

    # Then the short last page ended the first read; the second needed a page with only the last user read
    # again to know it was done
    assert sourced_ids(by_four) == sourced_ids(by_eleven) == csv_ids(SNAPWIZ, "users")
    assert four_requests == ["limit=4&offset=0", "limit=4&offset=3", "limit=4&offset=6", "limit=4&offset=9"]
    assert requests_to(simulator, USERS)[4:] == ["limit=11&offset=0", "limit=11&offset=10"]


def test_each_page_carries_the_servers_count_and_a_removal_mid_read_moves_the_next_page(simulator, retry):
    # Given a server that removes the second user once it has answered the first page of 4
    client = bearer_client(simulator, retry, page_limit=4)
    ids = csv_ids(SNAPWIZ, "users")
    simulator.remove_while_read("users", ids[1], after_offset=0)

    # When the users are read page by page
    pages = list(client.iter_pages("users"))

    # Then each page says how many the server counted as it answered (11, then 10); the second page, asked
    # from the last user read, did not start with them: it moved (what Fetch's check is for), and was kept
    # whole, so the user who moved back across its start was read (paging by offset alone passed them over)
    assert [page.total for page in pages] == [11, 10, 10]
    assert [page.moved for page in pages] == [False, True, False]
    read = [user["sourcedId"] for page in pages for user in page.items]
    assert read == ids


def test_a_page_after_records_were_added_before_it_drops_the_ones_read_again(simulator, retry):
    # Given a read that has taken 3 users, the last of them now the fourth (a user was added before it
    # since: the page's start moved one forward)
    client = bearer_client(simulator, retry, page_limit=4)
    ids = csv_ids(SNAPWIZ, "users")

    # When the next page is asked for, from one record before the next to read
    page = next(iter(client.iter_pages("users", start={"offset": 3, "page": 1, "last_id": ids[3]})))

    # Then it holds the users after the last one read, those read again dropped, and it did not move
    assert requests_to(simulator, USERS) == ["limit=4&offset=2"]
    assert [u["sourcedId"] for u in page.items] == ids[4:6] and not page.moved
    assert page.next == {"offset": 6, "page": 2, "previous_ids": page.next["previous_ids"], "last_id": ids[5]}


def test_the_server_counts_a_collection_in_a_page_of_one(simulator, retry):
    # Given a server that sends X-Total-Count, and one that does not
    client = bearer_client(simulator, retry)
    with ProviderSimulator(SNAPWIZ, token=TOKEN, send_total_count=False) as silent:
        uncounted = bearer_client(silent, retry).count("users")

    # Then the count is the total of a one-record page, and None where the server does not say
    assert client.count("users") == 11 and uncounted is None
    assert requests_to(simulator, USERS) == ["limit=1&offset=0"]


@pytest.mark.parametrize("max_page_size", [None, 2])
def test_a_part_of_a_collection_is_read_from_its_offset_to_its_end(retry, max_page_size):
    # Given a part of the users from offset 4 to 9, read 3 a page, from a server that sends any page
    # size asked for, and from one that sends at most 2 a page
    with ProviderSimulator(SNAPWIZ, token=TOKEN, max_page_size=max_page_size) as simulator:
        client = bearer_client(simulator, retry, page_limit=3)

        # When the part is read
        pages = list(client.iter_pages("users", start={"offset": 4, "page": 1}, end=9))
        asked = requests_to(simulator, USERS)

    # Then it holds exactly the 5th to the 9th user, and never asked past its end
    assert sourced_ids([u for page in pages for u in page.items]) == csv_ids(SNAPWIZ, "users")[4:9]
    assert pages[-1].next is None
    if max_page_size is None:
        assert asked == ["limit=3&offset=4", "limit=3&offset=6"]
    else:
        assert asked == ["limit=3&offset=4", "limit=3&offset=5", "limit=3&offset=6", "limit=2&offset=7"]


def test_a_part_after_the_first_reads_the_record_before_its_offset_and_leaves_it_to_the_part_before(simulator, retry):
    # Given the part of the users from offset 4 to 9, read 3 a page, as a part after the first starts
    client = bearer_client(simulator, retry, page_limit=3)

    # When the part is read
    pages = list(client.iter_pages("users", start={"offset": 4, "page": 1, "boundary": True}, end=9))

    # Then its first page was asked from the record before its offset, which it names (the part before must
    # have ended with it) and does not hold; the part holds exactly the 5th to the 9th user
    ids = csv_ids(SNAPWIZ, "users")
    assert requests_to(simulator, USERS) == ["limit=3&offset=3", "limit=3&offset=5", "limit=2&offset=7"]
    assert [page.before for page in pages] == [ids[3], None, None]
    assert sourced_ids([u for page in pages for u in page.items]) == ids[4:9]
    assert not any(page.moved for page in pages)


def test_a_server_that_caps_the_page_size_is_read_to_the_total(retry):
    # Given a server that sends at most 5 records a page, whatever the client asks for
    with ProviderSimulator(SNAPWIZ, token=TOKEN, max_page_size=5) as simulator:
        client = bearer_client(simulator, retry, page_limit=1000)

        # When users are read
        users = list(client.iter_collection("users"))

    # Then the short pages did not end the read early: X-Total-Count said more were coming
    assert sourced_ids(users) == csv_ids(SNAPWIZ, "users")
    assert requests_to(simulator, USERS) == ["limit=1000&offset=0", "limit=1000&offset=4", "limit=1000&offset=8"]


def test_a_server_that_ignores_offset_makes_the_fetch_incomplete_not_endless(retry):
    # Given a broken server that always answers with the first page
    with ProviderSimulator(SNAPWIZ, token=TOKEN, ignore_offset=True) as simulator:
        client = bearer_client(simulator, retry, page_limit=4)
        outcome = FetchOutcome()

        # When users are read
        users = list(client.iter_collection("users", outcome=outcome))

        # Then the repeated page was noticed on the second request, and the read stopped there
        assert sourced_ids(users) == csv_ids(SNAPWIZ, "users")[:4]
        assert requests_to(simulator, USERS) == ["limit=4&offset=0", "limit=4&offset=3"]
        assert not outcome.complete
        assert "repeats the page before it: the server seems to ignore offset" in outcome.problems[0]

        # And without an outcome to record it in, the same read fails instead of losing users silently
        with pytest.raises(ProviderUnavailableError, match="ignore offset"):
            list(client.iter_collection("users"))


def test_a_whole_fetch_from_a_server_that_ignores_offset_archives_nothing(retry):
    # Given a broken server and a provider paging 4 at a time (demographics, users and enrollments have more)
    with ProviderSimulator(SNAPWIZ, token=TOKEN, ignore_offset=True) as simulator:
        provider = OneRosterRestProvider(bearer_client(simulator, retry, page_limit=4))
        outcome = FetchOutcome()

        # When the roster is fetched
        list(provider.fetch(outcome))

    # Then it finished, incomplete (so the run will not archive), with no cursor to move on to
    assert not outcome.complete
    assert {problem.split(" (offset")[0] for problem in outcome.problems} == {
        f"OneRoster page 2 of /ims/oneroster/v1p1/{name}" for name in ("demographics", "users", "enrollments")
    }
    assert outcome.cursor is None


def test_a_truncated_page_makes_the_fetch_incomplete(simulator, retry):
    # Given page 2 of users is cut off mid-way
    simulator.inject_malformed(USERS, page=2)
    client = bearer_client(simulator, retry, page_limit=4)
    outcome = FetchOutcome()

    # When users are read
    users = list(client.iter_collection("users", outcome=outcome))

    # Then page 1 arrived, the rest was not read, and the outcome says why
    assert len(users) == 4
    assert not outcome.complete
    assert "page 2 of /ims/oneroster/v1p1/users was not valid JSON" in outcome.problems[0]


# -- authentication ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bearer", "oauth1", "oauth2"])
def test_each_auth_mode_reads_the_whole_roster(mode, retry, sleeps):
    # Given a server that authorises requests one way, and a client set up the same way
    with ProviderSimulator(SNAPWIZ, token=TOKEN, oneroster_auth=mode) as simulator:
        client = OneRosterRestClient(simulator.base_url, auth_for(mode, simulator), page_limit=4, retry=retry)
        outcome = FetchOutcome()

        # When the roster is fetched over several pages
        records = list(OneRosterRestProvider(client).fetch(outcome))

    # Then everyone arrives, without a refusal or a retry
    people = [record for record in records if isinstance(record, PersonRecord)]
    assert sorted(person.provider_id for person in people) == sorted(csv_ids(SNAPWIZ, "users"))
    assert outcome.complete
    assert sleeps == []


@pytest.mark.parametrize("mode", ["bearer", "oauth1", "oauth2"])
def test_wrong_credentials_raise_an_auth_error_the_admin_can_act_on(mode, retry, sleeps):
    # Given a client whose secret (or token) the server does not know
    with ProviderSimulator(SNAPWIZ, token=TOKEN, oneroster_auth=mode) as simulator:
        wrong = "not-the-secret-42"
        client = OneRosterRestClient(simulator.base_url, auth_for(mode, simulator, secret=wrong), retry=retry)

        # When users are read
        with pytest.raises(ProviderAuthError) as raised:
            list(client.iter_collection("users"))
        seen = simulator.requests_seen

    # Then one request was refused without waiting, and the message says what to check, not the secret
    assert len(seen) == 1
    assert sleeps == []
    message = str(raised.value)
    assert "HTTP 401" in message
    assert "stored for this" in message
    assert wrong not in message


def test_oauth1_signatures_are_verified_for_real(retry):
    # Given an OAuth 1 server and a correctly signed request for page 1
    with ProviderSimulator(SNAPWIZ, oneroster_auth="oauth1") as simulator:
        signer = OAuth1Signature(KEY, SECRET)
        page_one = f"{simulator.base_url}{USERS}?limit=4&offset=0"
        header = signer.authorization("GET", page_one)

        # When that request is sent, then replayed, then its signature is reused for another page
        first = requests.get(page_one, headers={"Authorization": header})
        replayed = requests.get(page_one, headers={"Authorization": header})
        tampered = requests.get(
            f"{simulator.base_url}{USERS}?limit=4&offset=4",
            headers={"Authorization": signer.authorization("GET", page_one)},
        )

    # Then only the first is answered
    assert first.status_code == 200
    assert replayed.status_code == 401
    assert tampered.status_code == 401


def test_oauth1_signature_base_string_matches_rfc_5849():
    # Given the worked example of RFC 5849 §3.4.1.1 (its form-body parameters passed with the oauth ones)
    url = "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b"
    params = {
        "c2": "",
        "a3": "2 q",
        "oauth_consumer_key": "9djdj82h48djs9d2",
        "oauth_token": "kkk9d7dh3k39sjv7",
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "137131201",
        "oauth_nonce": "7d8f3e4a",
    }

    # When the signature base string is built
    base_string = signature_base_string("POST", url, params)

    # Then it is the RFC's, byte for byte
    assert base_string == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26"
        "c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26"
        "oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    )


def test_oauth2_token_is_fetched_once_for_many_pages(retry):
    # Given an OAuth 2 server
    with ProviderSimulator(SNAPWIZ, oneroster_auth="oauth2") as simulator:
        client = OneRosterRestClient(simulator.base_url, auth_for("oauth2", simulator), page_limit=2, retry=retry)

        # When every collection is read, two records a page
        for name in COLLECTIONS:
            list(client.iter_collection(name))
        seen = simulator.requests_seen

    # Then one token served every page
    assert len([path for path, _ in seen if path == "/oauth/token"]) == 1
    assert len(seen) > 20


def test_oauth2_token_is_refreshed_once_when_the_server_stops_accepting_it(retry, sleeps):
    # Given an OAuth 2 server that forgets its tokens after the client has read the first page
    with ProviderSimulator(SNAPWIZ, oneroster_auth="oauth2") as simulator:
        client = OneRosterRestClient(simulator.base_url, auth_for("oauth2", simulator), page_limit=4, retry=retry)
        users = client.iter_collection("users")
        first_page = [next(users) for _ in range(4)]
        simulator.expire_tokens()

        # When the rest of the users are read
        rest = list(users)
        seen = simulator.requests_seen

    # Then the refused page was asked again with a new token, and everyone arrived without waiting
    assert sourced_ids(first_page + rest) == csv_ids(SNAPWIZ, "users")
    assert [path for path, _ in seen] == ["/oauth/token", USERS, USERS, "/oauth/token", USERS, USERS, USERS]
    assert sleeps == []


def test_oauth2_still_refused_after_a_new_token_raises_an_auth_error(retry):
    # Given an OAuth 2 server that refuses users twice in a row, whatever the token
    with ProviderSimulator(SNAPWIZ, oneroster_auth="oauth2") as simulator:
        simulator.inject(USERS, 401, times=2)
        client = OneRosterRestClient(simulator.base_url, auth_for("oauth2", simulator), retry=retry)

        # When users are read
        with pytest.raises(ProviderAuthError, match="even after a new one was issued") as raised:
            list(client.iter_collection("users"))
        seen = simulator.requests_seen

    # Then it got one new token, asked once more, and gave up
    assert [path for path, _ in seen] == ["/oauth/token", USERS, "/oauth/token", USERS]
    assert "client id and secret" in str(raised.value)


# -- retries ---------------------------------------------------------------------------------------


def test_two_server_errors_then_success_are_retried(simulator, retry, sleeps):
    # Given the server answers 500 twice before answering
    simulator.inject(USERS, 500, times=2)
    client = bearer_client(simulator, retry)

    # When users are read
    users = list(client.iter_collection("users"))

    # Then every user arrives after two waits
    assert len(users) == 11
    assert len(sleeps) == 2
    assert all(0 <= delay <= 2.0 for delay in sleeps)
    assert len(simulator.requests_seen) == 3


def test_429_waits_as_long_as_retry_after_says(simulator, retry, sleeps):
    # Given the server rate-limits the first request and asks for 7 seconds
    simulator.inject(USERS, 429, headers={"Retry-After": "7"})
    client = bearer_client(simulator, retry)

    # When users are read
    users = list(client.iter_collection("users"))

    # Then the client waited exactly 7 seconds once and then got everyone
    assert sleeps == [7.0]
    assert len(users) == 11


def test_oauth2_token_url_errors_are_retried_too(retry, sleeps):
    # Given the token URL answers 503 once
    with ProviderSimulator(SNAPWIZ, oneroster_auth="oauth2") as simulator:
        simulator.inject("/oauth/token", 503)
        client = OneRosterRestClient(simulator.base_url, auth_for("oauth2", simulator), retry=retry)

        # When users are read
        users = list(client.iter_collection("users"))

    # Then the token was asked for again after one wait
    assert len(users) == 11
    assert len(sleeps) == 1


def test_server_down_raises_unavailable_after_max_attempts(simulator, retry, sleeps):
    # Given the server answers 503 to everything
    simulator.inject(USERS, 503, times=100)
    client = bearer_client(simulator, retry)

    # When users are read
    with pytest.raises(ProviderUnavailableError) as raised:
        list(client.iter_collection("users"))

    # Then it tried max_attempts times, waiting between tries, and says what failed where
    assert len(simulator.requests_seen) == 4
    assert len(sleeps) == 3
    assert "after 4 attempts (HTTP 503 on page 1 of /ims/oneroster/v1p1/users)" in str(raised.value)


@pytest.mark.parametrize("status", [400, 404])
def test_client_errors_are_not_retried(simulator, retry, sleeps, status):
    # Given the server rejects the request
    simulator.inject(USERS, status)
    client = bearer_client(simulator, retry)

    # When users are read
    with pytest.raises(ProviderRequestError) as raised:
        list(client.iter_collection("users"))

    # Then one request, no wait, the status and the server's own description in the message
    assert len(simulator.requests_seen) == 1
    assert sleeps == []
    assert f"HTTP {status}: injected HTTP {status}" in str(raised.value)


# -- deltas ----------------------------------------------------------------------------------------


def test_delta_asks_every_collection_for_changes_since_the_cursor(retry):
    # Given the last run's high-water mark, between the bundle's two modification dates
    since = "2023-06-01T00:00:00.000Z"
    with ProviderSimulator(CATALYST, token=TOKEN) as simulator:
        provider = OneRosterRestProvider(bearer_client(simulator, retry), since=since)
        outcome = FetchOutcome()
        before = datetime.now(UTC)

        # When the roster is fetched
        records = list(provider.fetch(outcome))
        seen = simulator.requests_seen

    # Then every collection but demographics was asked with the filter, URL-encoded (demographics are read
    # whole: a changed user's birth date may sit in an unchanged record), and only the changed user came back
    assert sorted(path.rsplit("/", 1)[1] for path, _ in seen) == sorted(COLLECTIONS)
    for path, query in seen:
        if path.endswith("/demographics"):
            assert "filter" not in parse_qs(query)
            continue
        assert "filter=dateLastModified%3E%272023-06-01T00%3A00%3A00.000Z%27" in query
        assert parse_qs(query)["filter"] == [f"dateLastModified>'{since}'"]
    assert [record.provider_id for record in records if isinstance(record, PersonRecord)] == ["usr-222-567891"]
    # And the fetch is a delta whose cursor is this run's start
    assert outcome.delta
    assert outcome.complete
    cursor = datetime.fromisoformat(outcome.cursor)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= cursor <= datetime.now(UTC)
    assert outcome.cursor.endswith("Z")


def test_full_fetch_sends_no_filter_and_sets_the_first_cursor(simulator, retry):
    # Given no stored cursor
    provider = OneRosterRestProvider(bearer_client(simulator, retry))
    outcome = FetchOutcome()

    # When the roster is fetched
    list(provider.fetch(outcome))

    # Then no request was filtered, the fetch is full, and the next run has a cursor to start from
    assert all("filter" not in query for _, query in simulator.requests_seen)
    assert not outcome.delta
    assert outcome.cursor is not None


def test_an_incomplete_delta_keeps_the_old_cursor(retry):
    # Given a delta whose enrollments stop half-way
    since = "2023-01-01T00:00:00.000Z"
    with ProviderSimulator(CATALYST, token=TOKEN) as simulator:
        simulator.inject_malformed("/ims/oneroster/v1p1/enrollments", page=2)
        provider = OneRosterRestProvider(bearer_client(simulator, retry, page_limit=2), since=since)
        outcome = FetchOutcome()

        # When the roster is fetched
        list(provider.fetch(outcome))

    # Then the next delta starts where this one started, so it asks again for what was missed
    assert not outcome.complete
    assert outcome.cursor == since


def test_after_the_next_nights_bundle_a_delta_sees_its_changes_and_deletions(simulator, retry, tmp_path):
    # Given a full fetch of the first night, then a second night in which user1 was renamed and user11 left
    first = FetchOutcome()
    list(OneRosterRestProvider(bearer_client(simulator, retry)).fetch(first))
    for source in SNAPWIZ.glob("*.csv"):
        text = source.read_text(encoding="utf-8")
        if source.name == "users.csv":
            lines = [line for line in text.splitlines() if not line.startswith("user11,")]
            text = "\n".join(lines).replace("abc1,ionut,padurariu", "abc1,Ionut,Padurariu") + "\n"
        (tmp_path / source.name).write_text(text, encoding="utf-8")
    simulator.set_dataset(tmp_path)

    # When the second night is fetched as a delta from the first night's cursor
    second = FetchOutcome()
    items = list(OneRosterRestProvider(bearer_client(simulator, retry), since=first.cursor).fetch(second))

    # Then only the renamed user and the departed one come back, the latter to be archived
    assert second.delta
    assert [(type(item).__name__, item.provider_id) for item in items] == [
        ("PersonRecord", "user1"),
        ("DeletedRecord", "user11"),
    ]
    assert items[0].given_name == "Ionut"


# -- the same roster as over CSV -----------------------------------------------------------------------


@pytest.mark.parametrize("bundle", [SNAPWIZ, CATALYST, ONEROSTER_NET], ids=["snapwiz", "catalyst", "oneroster-net"])
def test_rest_gives_the_same_records_as_the_csv_bundle(bundle, retry):
    # Given a bundle served over REST (OAuth 1, three records a page) and read as CSV
    with ProviderSimulator(bundle, oneroster_auth="oauth1") as simulator:
        client = OneRosterRestClient(simulator.base_url, OAuth1Signature(KEY, SECRET), page_limit=3, retry=retry)
        over_rest = list(OneRosterRestProvider(client).fetch(FetchOutcome()))
    from_csv = list(OneRosterCsvProvider(bundle).fetch(FetchOutcome()))

    # Then both give the same canonical records (any order)
    assert canonical(over_rest) == canonical(from_csv)
    assert any(isinstance(item, EnrollmentRecord) for item in over_rest)


# -- the registry's factory ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bearer", "oauth1", "oauth2"])
def test_factory_builds_a_working_provider_from_a_stored_connection(mode, retry):
    # Given a stored connection and its secret, as the Fetch step reads them
    with ProviderSimulator(SNAPWIZ, token=TOKEN, oneroster_auth=mode) as simulator:
        connection = {
            "provider": "oneroster-rest",
            "base_url": f"{simulator.base_url}/ims/oneroster/v1p1/",
            "auth": mode,
            "token_url": f"{simulator.base_url}/oauth/token",
            "page_limit": 5,
        }
        secret = TOKEN if mode == "bearer" else f'{{"key": "{KEY}", "secret": "{SECRET}"}}'

        # When the provider is built and fetches
        provider = build_oneroster_rest_provider(connection, secret, retry, cursor=None)
        outcome = FetchOutcome()
        records = list(provider.fetch(outcome))
        user_queries = requests_to(simulator, USERS)

    # Then it read the roster with the connection's page size
    assert provider.name == "oneroster"
    assert outcome.complete
    assert len([record for record in records if isinstance(record, PersonRecord)]) == 11
    assert user_queries == ["limit=5&offset=0", "limit=5&offset=4", "limit=5&offset=8"]


@pytest.mark.parametrize(
    ("connection", "secret", "problem"),
    [
        ({"auth": "oauth1"}, '{"key": "k", "secret": "s"}', "no base_url"),
        ({"base_url": "https://or.example", "auth": "saml"}, "x", "auth 'saml'"),
        ({"base_url": "https://or.example", "auth": "oauth1"}, "hunter2-not-json", "is not JSON"),
        ({"base_url": "https://or.example", "auth": "oauth2"}, '{"key": "k", "secret": "s"}', "no token_url"),
        ({"base_url": "https://or.example", "auth": "oauth1"}, '{"key": "k"}', "needs both a key and a secret"),
        ({"base_url": "https://or.example", "auth": "bearer"}, "  ", "no access token"),
    ],
)
def test_factory_rejects_an_incomplete_connection_without_quoting_the_secret(connection, secret, problem, retry):
    # When a provider is built from a connection that lacks something
    with pytest.raises(ConnectionNotConfiguredError) as raised:
        build_oneroster_rest_provider(connection, secret, retry, cursor=None)

    # Then the error names what is missing, never the secret
    assert problem in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_logs_carry_no_credentials(retry, caplog):
    # Given an OAuth 2 fetch that also hits a retry and a token refresh, logged at DEBUG
    with ProviderSimulator(SNAPWIZ, oneroster_auth="oauth2") as simulator:
        simulator.inject(USERS, 503)
        client = OneRosterRestClient(simulator.base_url, auth_for("oauth2", simulator), page_limit=4, retry=retry)
        with caplog.at_level(logging.DEBUG):
            users = client.iter_collection("users")
            next(users)
            simulator.expire_tokens()
            list(users)
            tokens = list(simulator._issued_tokens)

    # Then neither the client secret nor any access token was logged
    assert "requesting a new one" in caplog.text
    for secret in (SECRET, *tokens):
        assert secret not in caplog.text
        assert secret not in repr(client.auth)
