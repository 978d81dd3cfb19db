"""OneRoster 1.1 REST (ClassLink Roster Server and any 1.1 server): the HTTP client and the provider.

The API sits under ``{base_url}/ims/oneroster/v1p1/``. Each list answer wraps its records under the
collection's key (``{"users": [...]}``; ``/schools`` answers under ``orgs``) and says how many there are
in ``X-Total-Count``; the client pages with ``limit``/``offset`` and hands the raw dicts to the shared
OneRoster mapping (``rostersync.providers.oneroster_mapping``), so REST and CSV bundles give the same
canonical records.

Stored connection (``build_oneroster_rest_provider``)::

    {
        "provider": "oneroster-rest",
        "base_url": "https://district.example.com",  # with or without /ims/oneroster/v1p1
        "auth": "oauth1" | "oauth2" | "bearer",
        "token_url": "https://district.example.com/oauth/token",  # oauth2 only
        "scope": "...",  # oauth2, optional: sent only when set
        "page_limit": 1000,  # optional
        "secret_id": "...",  # the Secrets Manager secret, read by the Fetch step
    }

Secret (the Secrets Manager string):

- ``oauth1``: JSON ``{"key": "<consumer key>", "secret": "<consumer secret>"}`` (OAuth 1.0a, HMAC-SHA256
  request signing, as ClassLink issues for OneRoster apps);
- ``oauth2``: JSON ``{"key": "<client id>", "secret": "<client secret>"}`` (client credentials grant,
  sent to ``token_url`` with HTTP Basic);
- ``bearer``: the access token itself, as plain text (ClassLink's OneRoster proxy).

No key, secret or token ever appears in a log line or an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit

import requests

from rostersync.domain.records import SnapshotItem
from rostersync.errors import (
    ConnectionNotConfiguredError,
    ProviderAuthError,
    ProviderRequestError,
)
from rostersync.providers.base import FetchOutcome, ListPage, RetryPolicy
from rostersync.providers.http import (
    RequestPacer,
    finite_number,
    paged,
    retry_after_seconds,
    send_with_retries,
    unreadable_page,
)
from rostersync.providers.oneroster_mapping import PROVIDER, map_roster

logger = logging.getLogger(__name__)

API_PATH = "/ims/oneroster/v1p1"
DEFAULT_PAGE_LIMIT = 1000

# How a district's server lets an app in (the connection's ``auth``).
AuthMode = Literal["bearer", "oauth1", "oauth2"]
AUTH_MODES: tuple[AuthMode, ...] = ("bearer", "oauth1", "oauth2")

# Collection → the key its list answer wraps the records in. ``schools`` answers with orgs.
COLLECTION_KEYS = {
    "orgs": "orgs",
    "schools": "orgs",
    "academicSessions": "academicSessions",
    "courses": "courses",
    "classes": "classes",
    "users": "users",
    "enrollments": "enrollments",
    "demographics": "demographics",
}

# A module-level default rather than ``RetryPolicy()`` in the signature (ruff B008); the policy is frozen.
_DEFAULT_RETRY = RetryPolicy()

# ---------------------------------------------------------------------------------------------------
# Authentication: three ways a OneRoster 1.1 server lets an app in.
# ---------------------------------------------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8 text, as OAuth 1.0a (RFC 5849 §3.6) requires.

    Everything but the unreserved characters ``A-Z a-z 0-9 - . _ ~`` is encoded, space as ``%20``.
    """
    return quote(value, safe="~")


def signature_base_string(method: str, url: str, oauth_params: dict[str, str]) -> str:
    """The OAuth 1.0a signature base string (RFC 5849 §3.4.1) of a request without a form body.

    Parameters
    ----------
    method
        The HTTP method.
    url
        The absolute request URL, query included, exactly as sent.
    oauth_params
        The ``oauth_*`` protocol parameters, without ``oauth_signature``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    port = parts.port
    authority = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    base_uri = f"{scheme}://{authority}{parts.path or '/'}"
    # Query parameters are decoded as the server will decode them, then everything is re-encoded.
    params = [*parse_qsl(parts.query, keep_blank_values=True), *oauth_params.items()]
    normalized = "&".join(
        f"{name}={value}" for name, value in sorted((percent_encode(k), percent_encode(v)) for k, v in params)
    )
    return "&".join((method.upper(), percent_encode(base_uri), percent_encode(normalized)))


class OAuth1Signature:
    """OAuth 1.0a two-legged request signing with HMAC-SHA256 (OneRoster 1.1's required security).

    Parameters
    ----------
    consumer_key, consumer_secret
        The app's credentials for this district's OneRoster server.
    clock
        Epoch seconds, for ``oauth_timestamp``.
    nonce
        A fresh random ``oauth_nonce`` per call.
    """

    mode = "oauth1"

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.consumer_key = consumer_key
        self._consumer_secret = consumer_secret
        self._clock = clock
        self._nonce = nonce

    def __repr__(self) -> str:
        return "OAuth1Signature(consumer_key=..., consumer_secret=...)"

    def authorization(self, method: str, url: str) -> str:
        """The ``Authorization`` header value that signs this request (a new nonce each call)."""
        oauth = {
            "oauth_consumer_key": self.consumer_key,
            "oauth_nonce": self._nonce(),
            "oauth_signature_method": "HMAC-SHA256",
            "oauth_timestamp": str(int(self._clock())),
            "oauth_version": "1.0",
        }
        # Two-legged: no token, so the key is the encoded consumer secret and an empty token secret.
        key = f"{percent_encode(self._consumer_secret)}&".encode()
        digest = hmac.new(key, signature_base_string(method, url, oauth).encode("utf-8"), hashlib.sha256).digest()
        oauth["oauth_signature"] = base64.b64encode(digest).decode("ascii")
        return "OAuth " + ", ".join(
            f'{percent_encode(name)}="{percent_encode(value)}"' for name, value in oauth.items()
        )


class OAuth2ClientCredentials:
    """OAuth 2 client credentials: a token from ``token_url``, cached until shortly before it expires.

    The client fetches the token (with its retries) and stores it here; a 401 from the API makes it
    ``forget`` the token and fetch one fresh token, once per request.

    Parameters
    ----------
    token_url
        The server's token endpoint.
    client_id, client_secret
        Sent with HTTP Basic.
    scope
        Sent only when set (servers that need one name it in their docs).
    clock
        Epoch seconds, for expiry.
    expiry_margin
        Seconds before ``expires_in`` runs out that the token is treated as expired.
    """

    mode = "oauth2"
    DEFAULT_LIFETIME = 3600.0

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        clock: Callable[[], float] = time.time,
        expiry_margin: float = 60.0,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self._clock = clock
        self._expiry_margin = expiry_margin
        self._token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(token_url={self.token_url!r}, client_id=..., client_secret=...)"

    @property
    def basic_auth(self) -> tuple[str, str]:
        return self.client_id, self._client_secret

    def token_form(self) -> dict[str, str]:
        """The token request's form body."""
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        return form

    def cached_token(self) -> str | None:
        """The cached access token while it is still good, else None."""
        if self._token is not None and self._clock() < self._expires_at:
            return self._token
        return None

    def store(self, access_token: str, expires_in: float | None) -> None:
        lifetime = expires_in if expires_in is not None and expires_in > 0 else self.DEFAULT_LIFETIME
        self._token = access_token
        # Never less than half the lifetime, so a short-lived token is still used for a while.
        self._expires_at = self._clock() + max(lifetime - self._expiry_margin, lifetime / 2)

    def forget(self) -> None:
        self._token = None
        self._expires_at = 0.0


class BearerToken:
    """A fixed bearer token (ClassLink's OneRoster proxy hands one out per district)."""

    mode = "bearer"

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerToken(...)"

    def authorization(self) -> str:
        return f"Bearer {self._token}"


OneRosterAuth = OAuth1Signature | OAuth2ClientCredentials | BearerToken

# What a district admin can do about a refused request, by auth mode.
_AUTH_ADVICE = {
    "oauth1": (
        "check the OneRoster consumer key and secret stored for this district's connection (in ClassLink: the "
        "app's OneRoster credentials) and that the district still shares data with the app"
    ),
    "oauth2": (
        "check the OneRoster client id and secret stored for this district's connection, that they may read "
        "rostering data, and that the district still shares data with the app"
    ),
    "bearer": (
        "the access token stored for this district's OneRoster connection may have been revoked or replaced: "
        "store the district's current token (in ClassLink: the app's OneRoster token) and check that the "
        "district still shares data with the app"
    ),
}


# ---------------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------------


class OneRosterRestClient:
    """A OneRoster 1.1 REST client for one district's server.

    Parameters
    ----------
    base_url
        Scheme and host (and any path prefix) of the server; ``/ims/oneroster/v1p1`` is added unless
        the URL already ends with it.
    auth
        How requests are authorised: ``OAuth1Signature``, ``OAuth2ClientCredentials`` or ``BearerToken``.
    page_limit
        Records asked for per page (``limit``); servers may send fewer, which the paging copes with.
    retry
        How 429, 5xx and connection errors are retried; ``retry.sleep`` does the waiting.
    timeout
        Seconds to wait for each HTTP answer.
    pacer
        Spaces the requests (this reader's share of a rate limit the connection names); none by default.
    """

    def __init__(
        self,
        base_url: str,
        auth: OneRosterAuth,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        retry: RetryPolicy = _DEFAULT_RETRY,
        timeout: float = 30,
        pacer: RequestPacer | None = None,
    ) -> None:
        if page_limit < 1:
            raise ValueError(f"page_limit must be at least 1, not {page_limit}")
        root = base_url.rstrip("/")
        self.api_url = root if root.endswith(API_PATH) else f"{root}{API_PATH}"
        self.auth = auth
        self.page_limit = page_limit
        self.retry = retry
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json"})
        self.pacer = pacer or RequestPacer()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def iter_collection(
        self, name: str, filter: str | None = None, outcome: FetchOutcome | None = None
    ) -> Iterator[dict[str, Any]]:
        """Stream every record of a collection, one page in memory at a time.

        Paging stops when ``X-Total-Count`` records have been read, or, on a server that does not send
        the count, at an empty or short page. A page identical to the one before it (a server that
        ignores ``offset``) stops the collection as unreadable rather than looping forever.

        Parameters
        ----------
        name
            ``orgs``, ``schools``, ``academicSessions``, ``courses``, ``classes``, ``users``,
            ``enrollments`` or ``demographics``.
        filter
            A OneRoster filter expression, e.g. ``dateLastModified>'2024-08-01T00:00:00.000Z'``.
        outcome
            Where a page that cannot be read is recorded; the collection then stops early. Without an
            outcome such a page raises ``ProviderUnavailableError`` instead, so it is never lost.

        Yields
        ------
        Each record (a dict) of each page, as the server sent it; a list element that is not an
        object is passed on too, for the mapping to report.

        Raises
        ------
        ProviderAuthError, ProviderRequestError, ProviderUnavailableError
        """
        for page in self.iter_pages(name, filter):
            yield from page.items
            if page.problem:
                self._unreadable_page(page.problem, f"{API_PATH}/{name}", outcome)
                return

    def count(self, name: str, filter: str | None = None) -> int | None:
        """How many records the collection holds, as the server counts them (``X-Total-Count`` of a page of
        one record), or None when it does not say."""
        if name not in COLLECTION_KEYS:
            raise ValueError(f"unknown OneRoster collection {name!r}; known: {', '.join(COLLECTION_KEYS)}")
        return _total_count(self._get(self._page_url(name, 1, 0, filter), f"{API_PATH}/{name}", 1))

    def _page_url(self, name: str, limit: int, offset: int, filter: str | None) -> str:
        params = [("limit", str(limit)), ("offset", str(offset)), *([("filter", filter)] if filter else [])]
        return f"{self.api_url}/{name}?" + "&".join(f"{k}={percent_encode(v)}" for k, v in params)

    def iter_pages(
        self,
        name: str,
        filter: str | None = None,
        start: dict[str, Any] | None = None,
        end: int | None = None,
        *,
        ahead: Callable[[ListPage], bool] | None = None,
    ) -> Iterator[ListPage]:
        """The pages of a collection from the first, or from ``start`` (the ``next`` of the page an
        earlier slice stopped after: offset, page number and a digest of that page's ids); ``end``: the
        offset where this part of the collection ends (the next part starts there), None to its end.
        ``ahead``: read the collection ahead (``paged``: the next page asked for while the caller handles
        this one, for as long as ``ahead(page)``).

        A page that cannot be read is yielded with its ``problem`` and no ``next`` (the collection stops
        there); the caller records it. Without ``ahead``, the next request is only sent when the next page
        is asked for.
        """
        if name not in COLLECTION_KEYS:
            raise ValueError(f"unknown OneRoster collection {name!r}; known: {', '.join(COLLECTION_KEYS)}")
        path = f"{API_PATH}/{name}"
        start = start or {}
        # a request: the next offset to read, the page's number, the digest of the ids of the page before it,
        # and the sourcedId of the last record read (None at the start of a list or of a part; at the start of
        # a part after the first, ``start["boundary"]``: the page is asked from one record back all the same,
        # and that record's id is the page's ``before``)
        boundary = bool(start.get("boundary"))
        first = (
            int(start.get("offset", 0)),
            int(start.get("page", 0)) + 1,
            start.get("previous_ids"),
            start.get("last_id"),
        )

        def asked(request: tuple[int, int, str | None, str | None]) -> tuple[int, int]:
            """The offset and limit a page asks for: from one record before the next one to read, when a
            record was read before it (the page must start with it) or a part starts there, up to the part's
            end."""
            offset, page, _, last_id = request
            back = 1 if (last_id or (boundary and page == first[1])) and offset > 0 else 0
            left = self.page_limit if end is None else end - offset + back
            return offset - back, min(self.page_limit, left)

        def answer(request: tuple[int, int, str | None, str | None]) -> requests.Response:
            offset, limit = asked(request)
            return self._get(self._page_url(name, limit, offset, filter), path, request[1])

        def page_of(
            response: requests.Response, request: tuple[int, int, str | None, str | None]
        ) -> tuple[ListPage, tuple[int, int, str, str | None] | None]:
            _, page, previous_ids, last_id = request
            offset, limit = asked(request)
            total = _total_count(response)
            try:
                body = response.json()
            except RecursionError:
                return ListPage([], None, f"page {page} of {path} is nested too deep to read"), None
            except ValueError:
                return ListPage([], None, f"page {page} of {path} was not valid JSON"), None
            items = body.get(COLLECTION_KEYS[name]) if isinstance(body, dict) else None
            if not isinstance(items, list):
                return ListPage([], None, f"page {page} of {path} has no {COLLECTION_KEYS[name]} list"), None
            ids = _ids_digest(items)
            if items and ids == previous_ids:
                problem = (
                    f"page {page} of {path} (offset {offset}) repeats the page before it: the server seems to "
                    "ignore offset"
                )
                return ListPage([], None, problem), None
            logger.debug("OneRoster page %d of %s: %d records (total %s)", page, path, len(items), total)
            before = None
            if offset < request[0] and not last_id:  # a part's first page, from the record before it
                before = sourced_id(items[0]) if items else ""
                new, moved = items[1:], False
            elif offset < request[0]:
                new, moved = _after_last_read(items, last_id)
            else:
                new, moved = items, False
            offset += len(items)
            following = last_id  # the last record read after this page
            if items:
                following = sourced_id(items[-1])
            if end is not None and offset >= end and items:
                # this part's last page: the next part reads on from here
                return ListPage(new, None, total=total, moved=moved, before=before), None
            if total is not None:
                if offset >= total:
                    return ListPage(new, None, total=total, moved=moved, before=before), None
                if not new:
                    problem = (
                        f"page {page} of {path} was empty after {offset} of the {total} records the server counted"
                    )
                    return ListPage(new, None, problem, moved=moved, before=before), None
                # A short page with records still to come: the server caps the page size; read on.
            elif len(items) < limit:
                return ListPage(new, None, moved=moved, before=before), None
            position = {"offset": offset, "page": page, "previous_ids": ids, "last_id": following}
            page_read = ListPage(new, position, total=total, moved=moved, before=before)
            return page_read, (offset, page + 1, ids, following)

        return paged(first, answer, page_of, ahead)

    # -- requests ------------------------------------------------------------------------------------

    def _get(self, url: str, path: str, page: int) -> requests.Response:
        """GET one page: retries on 429, 5xx and connection errors; one fresh OAuth 2 token on a 401."""
        refreshed = False
        while True:
            response = self._send("GET", url, f"page {page} of {path}", authorize=True)
            status = response.status_code
            if 200 <= status < 300:
                return response
            if status == 401 and isinstance(self.auth, OAuth2ClientCredentials) and not refreshed:
                logger.info("OneRoster refused the cached access token on %s; requesting a new one", path)
                self.auth.forget()
                refreshed = True
                continue
            if status in (401, 403):
                refused = "refused the access token even after a new one was issued" if refreshed else "refused"
                raise ProviderAuthError(
                    f"The OneRoster server {refused} the request for {path} (HTTP {status}): "
                    f"{_AUTH_ADVICE[self.auth.mode]}, then run the sync again"
                )
            raise ProviderRequestError(
                f"The OneRoster server rejected the request for page {page} of {path} (HTTP {status}"
                f"{_error_message(response)}); check the connection's base URL (the API is expected at "
                f"{self.api_url}/), or report this as a rostersync bug"
            )

    def _send(self, method: str, url: str, what: str, *, authorize: bool, **kwargs: Any) -> requests.Response:
        """Send a request, retrying 429, 5xx and connection errors; return the first other answer."""

        def send_once() -> requests.Response:
            headers = {"Authorization": self._authorization(method, url)} if authorize else {}
            self.pacer.wait()
            return self._session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)

        return send_with_retries(
            send_once,
            self.retry,
            what=what,
            rate_limit_wait=retry_after_seconds,
            unavailable=lambda attempts, problem: (
                f"The OneRoster server did not answer after {attempts} attempts ({problem}); it may be down or "
                "rate-limiting this district: run the sync again later, and ask the district to check their "
                "rostering provider's status if it keeps failing"
            ),
            log=logger,
            provider="OneRoster",
        )

    def _authorization(self, method: str, url: str) -> str:
        if isinstance(self.auth, OAuth1Signature):
            return self.auth.authorization(method, url)
        if isinstance(self.auth, BearerToken):
            return self.auth.authorization()
        return f"Bearer {self._access_token()}"

    def _access_token(self) -> str:
        """The cached OAuth 2 access token, or a new one from the token URL."""
        assert isinstance(self.auth, OAuth2ClientCredentials)
        token = self.auth.cached_token()
        if token is not None:
            return token
        response = self._send(
            "POST",
            self.auth.token_url,
            "the token URL",
            authorize=False,
            data=self.auth.token_form(),
            auth=self.auth.basic_auth,
        )
        status = response.status_code
        if status in (400, 401, 403):
            # RFC 6749 §5.2: a refused client answers 400 invalid_client or 401.
            raise ProviderAuthError(
                f"The OneRoster token URL refused the client credentials (HTTP {status}"
                f"{_oauth_error(response)}): {_AUTH_ADVICE['oauth2']}, then run the sync again"
            )
        if not 200 <= status < 300:
            raise ProviderRequestError(
                f"The OneRoster token URL answered HTTP {status}: check the token URL stored for this "
                "district's connection"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        access_token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access_token, str) or not access_token:
            raise ProviderRequestError(
                "The OneRoster token URL answered without an access token: check the token URL stored for this "
                "district's connection"
            )
        expires_in = finite_number(body.get("expires_in"))
        self.auth.store(access_token, expires_in)
        logger.info("New OneRoster access token, valid for %s s", "?" if expires_in is None else int(expires_in))
        return access_token

    def _unreadable_page(self, problem: str, path: str, outcome: FetchOutcome | None) -> None:
        unreadable_page("OneRoster", problem, path, outcome, logger)


def sourced_id(item: Any) -> str:
    """A record's ``sourcedId`` as text, as paging compares records ("" for an element that is not an
    object, or a record without one)."""
    return _text(item.get("sourcedId")) if isinstance(item, dict) else ""


def _after_last_read(items: list[Any], last_id: str | None) -> tuple[list[Any], bool]:
    """A page asked from one record before the next to read: the records after the last one read, and
    whether the page moved. It starts with the last record read when nothing before it changed; records
    added before it push that record further in (the ones read again are dropped: exact); records deleted
    before it pull it out of the page, and a record may then have moved back across the boundary unread
    (all are kept, and the page is ``moved``)."""
    for number, item in enumerate(items):
        if sourced_id(item) == last_id:
            return items[number + 1 :], False
    return items, True


def _ids_digest(items: list[Any]) -> str:
    """A short digest of a page's ids, to tell a page that repeats the one before it."""
    ids = "\n".join(sourced_id(item) for item in items)
    return hashlib.sha256(ids.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _total_count(response: requests.Response) -> int | None:
    value = response.headers.get("X-Total-Count")
    try:
        total = int(value) if value is not None else None
    except ValueError:
        return None
    return total if total is not None and total >= 0 else None


def _error_message(response: requests.Response) -> str:
    """The server's own error description (``imsx_description``), shortened, for an admin-facing error."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = None
    if isinstance(body, dict):
        # 1.1 servers send imsx_StatusInfo, alone or in a list under ``statusInfoSet``.
        infos = body.get("statusInfoSet")
        info = infos[0] if isinstance(infos, list) and infos and isinstance(infos[0], dict) else body
        message = info.get("imsx_description") or body.get("message")
    return f": {message[:200]}" if isinstance(message, str) and message else ""


def _oauth_error(response: requests.Response) -> str:
    """The OAuth error code (e.g. ``invalid_client``), never the rest of the body."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return f", {error[:50]}" if isinstance(error, str) and error else ""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------------------------------


def _iso_utc(moment: datetime) -> str:
    """``2024-08-01T12:00:00.000Z``: the form OneRoster servers send and compare ``dateLastModified`` in."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def delta_filter(since: str | None) -> str | None:
    """The filter a delta asks every collection with (demographics excepted: ``OneRosterRestProvider``)."""
    since = _valid_since(since)
    return None if since is None else f"dateLastModified>'{since}'"


def now_cursor() -> str:
    """The cursor of a read starting now."""
    return _iso_utc(datetime.now(UTC))


def _valid_since(since: str | None) -> str | None:
    """The stored high-water mark when it is a timestamp; otherwise None (a full fetch is always safe)."""
    if not since:
        return None
    try:
        datetime.fromisoformat(since)
    except ValueError:
        logger.warning("Stored OneRoster cursor is not an ISO timestamp; fetching the whole roster instead")
        return None
    return since


class OneRosterRestProvider:
    """The district's roster from a OneRoster 1.1 REST server, as canonical records.

    Parameters
    ----------
    client
        A client for the district's server.
    since
        The high-water mark of the last successful run: when set, every collection is asked only for
        records changed after it (``filter=dateLastModified>'since'``) and the fetch is a delta.
    started_at
        When the reading started, if before this provider was made (Fetch's slices read the lists
        first): the next cursor. Default: now.
    """

    name = PROVIDER

    def __init__(self, client: OneRosterRestClient, since: str | None = None, started_at: str | None = None) -> None:
        # ``client`` may also be Fetch's reader of the lists its slices read (``iter_collection`` alike).
        self._client = client
        self._since = _valid_since(since)
        self._started_at = started_at

    def fetch(self, outcome: FetchOutcome) -> Iterator[SnapshotItem]:
        """Stream the roster through the shared OneRoster mapping.

        ``outcome.cursor`` becomes this run's start, taken before the first request, so the next delta
        also sees records changed while this one was reading. A fetch that did not complete keeps the
        old cursor (``since``), so a later delta still asks for what this one missed.
        """
        outcome.cursor = self._started_at or _iso_utc(datetime.now(UTC))
        record_filter = None
        if self._since is not None:
            outcome.delta = True
            record_filter = f"dateLastModified>'{self._since}'"

        def collection(name: str) -> Iterator[dict[str, Any]]:
            # Demographics complete the users: a user changed since the last run comes with a birth date
            # whose own record did not change, so they are read whole even in a delta.
            wanted = None if name == "demographics" else record_filter
            return self._client.iter_collection(name, filter=wanted, outcome=outcome)

        yield from map_roster(collection, outcome)
        if not outcome.complete:
            outcome.cursor = self._since
        logger.info("Read the OneRoster roster (%s)", "delta" if outcome.delta else "full")


def build_oneroster_rest_provider(
    connection: dict[str, Any], secret: str, retry: RetryPolicy, cursor: str | None
) -> OneRosterRestProvider:
    """Build the provider for a stored ``oneroster-rest`` connection (shapes in the module docstring).

    Parameters
    ----------
    connection
        ``base_url``, ``auth`` (``oauth1``, ``oauth2`` or ``bearer``), ``token_url`` (oauth2),
        optional ``scope`` and ``page_limit``.
    secret
        The connection's Secrets Manager string: JSON ``{"key", "secret"}`` for oauth1/oauth2, the
        token for bearer.
    retry
        How the client backs off.
    cursor
        The stored high-water mark; None fetches the whole roster.

    Raises
    ------
    ConnectionNotConfiguredError
        The connection or its secret is incomplete; the message never quotes the secret.
    """
    return OneRosterRestProvider(build_oneroster_rest_client(connection, secret, retry), since=cursor)


def build_oneroster_rest_client(
    connection: dict[str, Any], secret: str, retry: RetryPolicy, pacer: RequestPacer | None = None
) -> OneRosterRestClient:
    """The client for a stored ``oneroster-rest`` connection (``build_oneroster_rest_provider``);
    ``pacer`` spaces its requests."""
    base_url = connection.get("base_url")
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConnectionNotConfiguredError("the district's OneRoster connection has no base_url")
    mode = connection.get("auth")
    auth: OneRosterAuth
    if mode == "bearer":
        if not secret.strip():
            raise ConnectionNotConfiguredError("the district's OneRoster connection has no access token stored")
        auth = BearerToken(secret.strip())
    elif mode in ("oauth1", "oauth2"):
        key, key_secret = _key_and_secret(secret, mode)
        if mode == "oauth1":
            auth = OAuth1Signature(key, key_secret)
        else:
            token_url = connection.get("token_url")
            if not isinstance(token_url, str) or not token_url.strip():
                raise ConnectionNotConfiguredError(
                    "the district's OneRoster connection uses oauth2 but has no token_url"
                )
            scope = connection.get("scope")
            auth = OAuth2ClientCredentials(token_url, key, key_secret, scope=scope if isinstance(scope, str) else None)
    else:
        raise ConnectionNotConfiguredError(
            f"the district's OneRoster connection names auth {mode!r}; rostersync supports oauth1, oauth2 and bearer"
        )
    try:
        page_limit = int(connection.get("page_limit") or DEFAULT_PAGE_LIMIT)
    except (TypeError, ValueError):
        raise ConnectionNotConfiguredError(
            "the district's OneRoster connection has a page_limit that is not a number"
        ) from None
    if page_limit < 1:
        raise ConnectionNotConfiguredError("the district's OneRoster connection has a page_limit below 1")
    return OneRosterRestClient(base_url.strip(), auth, page_limit=page_limit, retry=retry, pacer=pacer)


def _key_and_secret(secret: str, mode: str) -> tuple[str, str]:
    """``(key, secret)`` from the stored JSON; errors name what is missing, never the value."""
    try:
        stored = json.loads(secret)
    except ValueError:
        stored = None
    if not isinstance(stored, dict):
        raise ConnectionNotConfiguredError(
            f"the secret stored for the district's OneRoster connection ({mode}) is not JSON "
            '{"key": ..., "secret": ...}'
        )
    key, key_secret = stored.get("key"), stored.get("secret")
    if not isinstance(key, str) or not key or not isinstance(key_secret, str) or not key_secret:
        raise ConnectionNotConfiguredError(
            f"the secret stored for the district's OneRoster connection ({mode}) needs both a key and a secret"
        )
    return key, key_secret
