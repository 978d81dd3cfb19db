"""A local stand-in for the rostering providers: Clever Data API v3.0 and OneRoster 1.1 REST.

One dataset folder serves both. Clever reads ``districts.json``, ``schools.json``, ``sections.json``,
``users.json``, ``terms.json`` and ``courses.json`` (each optional), shaped like Clever's answers:
``{"data": [{"data": {...}}], ...}``; the simulator pages them like Clever (``limit``, ``starting_after``,
``links rel=next``; ``role`` on ``/users``; one user at ``/users/{id}``), checks the bearer token and can
rate-limit like Clever. ``/v3.0/events`` serves the
changes between successive datasets as Clever's events (``clever_events_sim``: ids, times, paging, and
``events.drop``/``events.reorder``/``events.keep_only_last`` to model missed, shuffled or expired events).

OneRoster reads the folder as a OneRoster CSV bundle (``manifest.csv``, ``orgs.csv``, ``users.csv``, ...;
files the manifest calls absent are not served) and answers under ``/ims/oneroster/v1p1/`` with the
REST shape (``{"users": [...]}``, references as GUIDRefs), paged with ``limit``/``offset`` and
``X-Total-Count``, filtered by ``filter=field>'value'`` (``dateLastModified`` compares as a time; one
predicate, or several joined by AND or OR). Requests are authorised in one of three modes:
``bearer`` (the ``token``), ``oauth1`` (OAuth 1.0a HMAC-SHA256 signatures, verified for real, nonces
not reusable) or ``oauth2`` (client credentials at ``/oauth/token`` with HTTP Basic; issued tokens
expire). ``ignore_offset`` plays a broken server that always sends the first page.

Both sides take injected faults (``inject``, ``inject_malformed``) for tests.

Run by hand::

    python -m rostersync_tools.local.simulator --dataset DIR --port 8765 [--oneroster-auth oauth1]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit

from rostersync.providers.base import iso_date
from rostersync.providers.oneroster_csv import as_object
from rostersync.providers.oneroster_rest import API_PATH, AUTH_MODES, COLLECTION_KEYS, AuthMode
from rostersync_tools.local.clever_events_sim import EVENTS_PATH, EventLog

logger = logging.getLogger(__name__)

ENDPOINTS = ("districts", "schools", "sections", "users", "terms", "courses")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_TOKEN = "demo-district-token"  # noqa: S105 -- the simulator's well-known demo token, not a secret

ONEROSTER_PREFIX = f"{API_PATH}/"
TOKEN_PATH = "/oauth/token"  # noqa: S105 -- a path, not a secret
DEFAULT_ONEROSTER_KEY = "demo-oneroster-key"
DEFAULT_ONEROSTER_SECRET = "demo-oneroster-secret"  # noqa: S105 -- the simulator's well-known demo secret
ONEROSTER_DEFAULT_LIMIT = 100  # the OneRoster 1.1 default page size
OAUTH1_TIMESTAMP_WINDOW = 300  # seconds a signed request's timestamp may be off by
MAX_POST_BYTES = 64 * 1024
# What a connection to a simulator without a rate limit says it may send a minute: so many that Fetch's
# pacing (each list's share of it, ``steps.fetch.branch_interval``) spaces requests 50 µs apart.
UNLIMITED_REQUESTS_PER_MINUTE = 6_000_000


HOLD_LIMIT_SECONDS = 600  # a held request gives up waiting after this (a bound, so no thread is left forever)


@dataclass
class _Fault:
    path_prefix: str
    remaining: int
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    page: int | None = None  # set for a malformed page
    body: bytes | None = None  # the malformed page's body (default: a page cut off mid-way)


@dataclass
class _Endpoint:
    items: list[Any]
    position: dict[str, int]  # cursor -> index, for starting_after


class ProviderSimulator:
    """A Clever Data API v3.0 and OneRoster 1.1 REST simulator on 127.0.0.1, in a daemon thread.

    Parameters
    ----------
    dataset_dir
        Folder of Clever list responses and/or a OneRoster CSV bundle; ``None`` serves empty lists.
    token
        The bearer token requests must carry (Clever, and OneRoster in ``bearer`` mode).
    rate_limit_per_minute
        Requests allowed per clock minute before answering 429, like Clever; ``None`` turns it off.
    clock
        Epoch seconds; tests pass a fake clock that their injected sleep advances. OAuth 1 timestamps
        and OAuth 2 token expiry use it too.
    port
        Port to bind; 0 picks a free one.
    oneroster_auth
        How OneRoster requests are authorised: ``bearer``, ``oauth1`` or ``oauth2``.
    oneroster_key, oneroster_secret
        The OAuth consumer key and secret (``oauth1``) or client id and secret (``oauth2``).
    token_lifetime
        Seconds an OAuth 2 token is good for (``expires_in``).
    ignore_offset
        Play a broken OneRoster server that ignores ``offset`` and always sends the first page.
    send_total_count
        Send ``X-Total-Count`` with OneRoster pages (some servers do not).
    max_page_size
        Send at most this many OneRoster records a page whatever ``limit`` asks for, as servers that cap
        the page size do; ``None`` honours any limit.
    answer_seconds
        Seconds each request waits before it is answered, as a provider across the internet takes to
        build and send a page (``bench/bench_fetch.py --answer-seconds``); 0 answers at once.
    """

    def __init__(
        self,
        dataset_dir: Path | None = None,
        token: str = DEFAULT_TOKEN,
        *,
        rate_limit_per_minute: int | None = None,
        clock: Callable[[], float] = time.time,
        port: int = 0,
        oneroster_auth: AuthMode = "bearer",
        oneroster_key: str = DEFAULT_ONEROSTER_KEY,
        oneroster_secret: str = DEFAULT_ONEROSTER_SECRET,
        token_lifetime: int = 3600,
        ignore_offset: bool = False,
        send_total_count: bool = True,
        max_page_size: int | None = None,
        answer_seconds: float = 0.0,
    ) -> None:
        if oneroster_auth not in AUTH_MODES:
            raise ValueError(f"oneroster_auth must be one of {', '.join(AUTH_MODES)}, not {oneroster_auth!r}")
        self.token = token
        self.rate_limit_per_minute = rate_limit_per_minute
        self.oneroster_auth = oneroster_auth
        self.oneroster_key = oneroster_key
        self.oneroster_secret = oneroster_secret
        self.token_lifetime = token_lifetime
        self.ignore_offset = ignore_offset
        self.send_total_count = send_total_count
        self.max_page_size = max_page_size
        self.answer_seconds = answer_seconds
        self._clock = clock
        self._port = port
        self._lock = threading.Lock()
        self._dataset_dir: Path | None = None
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        self._oneroster: dict[tuple[str, str], list[Any]] = {}  # (collection, filter) → records
        self._changes: dict[str, _Changes] = {}  # collection → what the last dataset switch changed
        self.events = EventLog(clock)  # Clever's /v3.0/events: the changes between successive datasets
        self._issued_tokens: dict[str, float] = {}  # OAuth 2 access token → expiry
        self._nonces: set[tuple[str, str]] = set()  # OAuth 1 (timestamp, nonce) already used
        self._faults: list[_Fault] = []
        self._removals: dict[tuple[str, int], str] = {}  # (collection, page offset) → record removed after it
        self._holds: list[tuple[str, threading.Event, threading.Event]] = []
        self._requests: list[tuple[str, str]] = []
        self._request_times: list[tuple[float, str, int]] = []  # (clock time, path, status) per request
        self._window = -1
        self._window_count = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.set_dataset(dataset_dir)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving; returns the simulator, so ``sim = ProviderSimulator(d).start()`` reads well."""
        if self._server is None:
            self._server = _Server(("127.0.0.1", self._port), _Handler, self)
            # A short poll interval makes stop() quick, which keeps test teardown fast.
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="provider-simulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def requests_per_minute(self) -> int:
        """What a connection to this simulator may send a minute (its ``requests_per_minute``): the limit it
        answers 429 past, or with none, ``UNLIMITED_REQUESTS_PER_MINUTE``. A connection that names no rate
        is paced to Clever's 1,200 a minute, real seconds that a simulator without a limit never needs."""
        return self.rate_limit_per_minute or UNLIMITED_REQUESTS_PER_MINUTE

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running simulator."""
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- data and faults -----------------------------------------------------------------------------

    def set_dataset(self, path: Path | None) -> None:
        """Serve another dataset folder (e.g. the next day's snapshot); its files are read on first use.

        OneRoster answers change as a real server's would: a record the new bundle adds or changes gets
        ``dateLastModified`` now, and one it no longer holds is served as ``status: tobedeleted``
        (modified now), so a ``dateLastModified`` delta sees the night's changes, deletions included.
        """
        if path is not None and not Path(path).is_dir():
            raise FileNotFoundError(f"dataset folder {path} does not exist")
        new = Path(path) if path is not None else None
        with self._lock:
            previous = self._dataset_dir
            self._changes = {}
            if previous is not None and new is not None and previous != new:
                self._changes = _changes_between(previous, new, _iso_utc(self._clock()))
                self.events.record(previous, new)
            self._dataset_dir = new
            self._endpoints = {}
            self._oneroster = {}

    def serve_role_from(self, role: str, path: Path) -> None:
        """Serve Clever's users of ``role`` (``/users?role=...``) from another dataset folder than the rest, until
        the dataset changes: a roster that changed while its role lists were read (they are read side by side,
        not at one instant)."""
        items = [item for item in _load(Path(path), "users") if _has_role(item, role)]
        with self._lock:
            self._endpoints[("users", role)] = _index(items)

    def remove_while_read(self, collection: str, source_id: str, after_offset: int) -> None:
        """Remove OneRoster record ``source_id`` from ``collection`` once a page of records starting at
        ``after_offset`` was answered (not a page of one, which a client asks to count the collection), as a
        server whose data changes while a client pages through it: the records after it move back one place,
        and a client paging by offset passes over the one that crosses its next page's start. It stays
        removed until the dataset changes."""
        with self._lock:
            self._removals[(collection, after_offset)] = source_id

    def inject(self, path_prefix: str, status: int, times: int = 1, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next ``times`` requests whose path starts with ``path_prefix`` with ``status``.

        A 429 carries ``Retry-After: 0`` unless ``headers`` say otherwise.
        """
        if headers is None:
            headers = {"Retry-After": "0"} if status == 429 else {}
        with self._lock:
            self._faults.append(_Fault(path_prefix, times, status=status, headers=dict(headers)))

    def hold(self, path_prefix: str) -> tuple[threading.Event, threading.Event]:
        """Keep requests whose path starts with ``path_prefix`` waiting until released (a provider that
        hangs). Returns (``arrived``, ``release``): ``arrived`` is set when the first such request came;
        setting ``release`` lets every held request go on."""
        arrived, release = threading.Event(), threading.Event()
        with self._lock:
            self._holds.append((path_prefix, arrived, release))
        return arrived, release

    def inject_malformed(self, path_prefix: str, page: int, times: int = 1, body: bytes | None = None) -> None:
        """Answer page ``page`` (1-based) of the matching endpoint with a 200 whose body is not JSON (cut off
        mid-way), or is ``body``."""
        with self._lock:
            self._faults.append(_Fault(path_prefix, times, page=page, body=body))

    def clear_faults(self) -> None:
        """Forget every injected fault not yet consumed, and let every held request go on."""
        with self._lock:
            self._faults.clear()
            holds, self._holds = self._holds, []
        for _prefix, _arrived, release in holds:
            release.set()

    def expire_tokens(self) -> None:
        """Forget every OAuth 2 token issued so far, as a server does when they expire or are revoked."""
        with self._lock:
            self._issued_tokens.clear()

    @property
    def requests_seen(self) -> list[tuple[str, str]]:
        """Every request so far as (path, query string), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def requests_timed(self) -> list[tuple[float, str, int]]:
        """Every request so far as (clock time on arrival, path, status answered), in arrival order."""
        with self._lock:
            return list(self._request_times)

    # -- serving -------------------------------------------------------------------------------------

    def answer(
        self,
        request_path: str,
        authorization: str | None,
        *,
        method: str = "GET",
        host: str | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        """Return (status, headers, body) for a request; called by the request handler threads.

        ``host`` is the request's Host header (OAuth 1 signatures cover it); ``body`` a POST's form.
        """
        arrived = self._clock()
        if self.answer_seconds > 0:
            time.sleep(self.answer_seconds)  # a benchmark's provider across the internet (real time, no clock)
        answered = self._answer(request_path, authorization, method=method, host=host, body=body)
        with self._lock:
            self._request_times.append((arrived, urlsplit(request_path).path, answered[0]))
        return answered

    def _answer(
        self,
        request_path: str,
        authorization: str | None,
        *,
        method: str,
        host: str | None,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(request_path)
        path, query = url.path, url.query
        oneroster = path.startswith(ONEROSTER_PREFIX) or path == TOKEN_PATH
        with self._lock:
            self._requests.append((path, query))
            status_fault = self._take_fault(path, page=None)
            holds = [(arrived, release) for prefix, arrived, release in self._holds if path.startswith(prefix)]
        for arrived, release in holds:
            arrived.set()
            release.wait(timeout=HOLD_LIMIT_SECONDS)
        if status_fault is not None:
            message = f"injected HTTP {status_fault.status}"
            if oneroster:
                return _imsx(status_fault.status, message, status_fault.headers)
            return _json(status_fault.status, {"message": message}, status_fault.headers)
        if path == TOKEN_PATH:
            return self._issue_token(method, authorization, body)
        if method != "GET":
            return _json(405, {"message": f"{method} is not supported here"})
        if path.startswith(ONEROSTER_PREFIX):
            return self._answer_oneroster(path, query, authorization, host)
        if authorization != f"Bearer {self.token}":
            return _json(401, {"message": "invalid or missing bearer token"})
        limited = self._rate_limit()
        if limited is not None:
            return limited[0], limited[1], b'{"message": "rate limit exceeded"}'
        rate_headers = self._rate_headers()

        if path == EVENTS_PATH:
            with self._lock:
                malformed = self._take_fault(path, page=self.events.page_number(query))
                if malformed is not None:
                    body = malformed.body if malformed.body is not None else b'{"data": [{"data": {"id": '
                    return 200, {"Content-Type": "application/json", **rate_headers}, body
                status, events_body = self.events.answer(query, rate_headers)
            return _json(status, events_body, rate_headers)
        endpoint = path.removeprefix("/v3.0/")
        if path.startswith("/v3.0/users/") and endpoint.count("/") == 1:
            # one user by id (Clever's getUser): the item the users list holds, with a self link
            user_id = unquote(endpoint.removeprefix("users/"))
            users = self._endpoint("users", "")
            at = users.position.get(user_id)
            if at is None:
                return _json(404, {"message": "Resource not found"}, rate_headers)
            return _json(
                200, {"data": users.items[at].get("data"), "links": [{"rel": "self", "uri": path}]}, rate_headers
            )
        if not path.startswith("/v3.0/") or endpoint not in ENDPOINTS:
            return _json(404, {"message": f"no such endpoint {path}"}, rate_headers)
        params = parse_qs(query)
        try:
            limit = int(params.get("limit", [str(DEFAULT_LIMIT)])[0])
        except ValueError:
            return _json(400, {"message": "limit must be an integer"}, rate_headers)
        if not 1 <= limit <= MAX_LIMIT:
            return _json(400, {"message": f"limit must be between 1 and {MAX_LIMIT}"}, rate_headers)
        role = params.get("role", [""])[0] if endpoint == "users" else ""
        data = self._endpoint(endpoint, role)
        start = 0
        if "starting_after" in params:
            cursor = params["starting_after"][0]
            if cursor not in data.position:
                return _json(400, {"message": f"unknown starting_after id {cursor}"}, rate_headers)
            start = data.position[cursor] + 1

        with self._lock:
            malformed = self._take_fault(path, page=start // limit + 1)
        if malformed is not None:
            # A page cut off mid-way, as a dropped connection behind a proxy would leave it.
            body = malformed.body if malformed.body is not None else b'{"data": [{"data": {"id": '
            return 200, {"Content-Type": "application/json", **rate_headers}, body

        page = data.items[start : start + limit]
        links = [{"rel": "self", "uri": f"{path}?{query}" if query else path}]
        if start + limit < len(data.items):
            next_query = {"limit": limit, "starting_after": _cursor(data.items[start + limit - 1], start + limit - 1)}
            if role:
                next_query["role"] = role
            links.append({"rel": "next", "uri": f"{path}?{urlencode(next_query)}"})
        return _json(200, {"data": page, "links": links}, rate_headers)

    # -- OneRoster 1.1 REST --------------------------------------------------------------------------

    def _answer_oneroster(
        self, path: str, query: str, authorization: str | None, host: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        if not self._oneroster_authorised("GET", path, query, authorization, host):
            return _imsx(401, "the request is not authorised", {"WWW-Authenticate": self._challenge()})
        limited = self._rate_limit()
        if limited is not None:
            return _imsx(limited[0], "rate limit exceeded", limited[1])
        rate_headers = self._rate_headers()

        name = path.removeprefix(ONEROSTER_PREFIX)
        if name not in COLLECTION_KEYS:
            return _imsx(404, f"no such collection {name}", rate_headers)
        params = parse_qs(query, keep_blank_values=True)
        try:
            limit = int(params.get("limit", [str(ONEROSTER_DEFAULT_LIMIT)])[0])
            offset = int(params.get("offset", ["0"])[0])
        except ValueError:
            return _imsx(400, "limit and offset must be integers", rate_headers)
        if limit < 1 or offset < 0:
            return _imsx(400, "limit must be at least 1 and offset at least 0", rate_headers)
        expression = params.get("filter", [""])[0]
        records = self._oneroster_records(name, expression)
        if records is None:
            return _imsx(400, f"unsupported filter {expression!r}", rate_headers)

        if self.max_page_size is not None:
            limit = min(limit, self.max_page_size)
        start = 0 if self.ignore_offset else offset
        with self._lock:
            # a page asked from one record before the next to read (the client's overlap) is the next page
            malformed = self._take_fault(path, page=-(-start // limit) + 1)
        headers = dict(rate_headers)
        if self.send_total_count:
            headers["X-Total-Count"] = str(len(records))
        if malformed is not None:
            # A page cut off mid-way, as a dropped connection behind a proxy would leave it.
            key = COLLECTION_KEYS[name]
            return 200, {"Content-Type": "application/json", **headers}, f'{{"{key}": [{{"sourcedId": '.encode()
        answer = _json(200, {COLLECTION_KEYS[name]: records[start : start + limit]}, headers)
        with self._lock:
            removed = self._removals.pop((name, start), None) if limit > 1 else None
            if removed is not None:
                for key, cached in self._oneroster.items():
                    if key[0] == name:
                        self._oneroster[key] = [r for r in cached if r.get("sourcedId") != removed]
        return answer

    def _oneroster_authorised(
        self, method: str, path: str, query: str, authorization: str | None, host: str | None
    ) -> bool:
        if self.oneroster_auth == "bearer":
            return authorization is not None and hmac.compare_digest(authorization, f"Bearer {self.token}")
        if self.oneroster_auth == "oauth2":
            if not authorization or not authorization.startswith("Bearer "):
                return False
            with self._lock:
                expiry = self._issued_tokens.get(authorization.removeprefix("Bearer "))
            return expiry is not None and self._clock() < expiry
        return self._oauth1_valid(method, path, query, authorization, host)

    def _challenge(self) -> str:
        return {"bearer": "Bearer", "oauth2": "Bearer", "oauth1": 'OAuth realm="oneroster"'}[self.oneroster_auth]

    def _oauth1_valid(self, method: str, path: str, query: str, authorization: str | None, host: str | None) -> bool:
        """Verify an OAuth 1.0a HMAC-SHA256 signature (RFC 5849 §3.4) and spend its nonce."""
        oauth = _oauth1_header(authorization)
        if oauth is None:
            return False
        signature = oauth.pop("oauth_signature", "")
        oauth.pop("realm", None)
        nonce, timestamp = oauth.get("oauth_nonce", ""), oauth.get("oauth_timestamp", "")
        if (
            oauth.get("oauth_consumer_key") != self.oneroster_key
            or oauth.get("oauth_signature_method") != "HMAC-SHA256"
            or oauth.get("oauth_version", "1.0") != "1.0"
            or "oauth_token" in oauth
            or not nonce
            or not timestamp.isdigit()
            or abs(self._clock() - int(timestamp)) > OAUTH1_TIMESTAMP_WINDOW
        ):
            return False
        authority = (host or f"127.0.0.1:{self._bound_port()}").lower().removesuffix(":80")
        base_uri = f"http://{authority}{path}"
        pairs = sorted(
            (_rfc3986(name), _rfc3986(value))
            for name, value in [*parse_qsl(query, keep_blank_values=True), *oauth.items()]
        )
        normalized = "&".join(f"{name}={value}" for name, value in pairs)
        base_string = "&".join((method.upper(), _rfc3986(base_uri), _rfc3986(normalized)))
        key = f"{_rfc3986(self.oneroster_secret)}&".encode()
        expected = base64.b64encode(hmac.new(key, base_string.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            return False
        with self._lock:
            if (timestamp, nonce) in self._nonces:
                return False  # a replayed request
            self._nonces.add((timestamp, nonce))
        return True

    def _issue_token(self, method: str, authorization: str | None, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The OAuth 2 token endpoint: client credentials grant, client authenticated with HTTP Basic."""
        if method != "POST":
            return _json(405, {"error": "invalid_request", "error_description": "use POST"})
        if self.oneroster_auth != "oauth2":
            return _json(404, {"error": "invalid_request", "error_description": "this server does not issue tokens"})
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        client = _basic_credentials(authorization)
        if client is None and "client_id" in form:  # RFC 6749 also allows the credentials in the body
            client = (form["client_id"][0], form.get("client_secret", [""])[0])
        if (
            client is None
            or not hmac.compare_digest(client[0], self.oneroster_key)
            or not hmac.compare_digest(client[1], self.oneroster_secret)
        ):
            return _json(401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="oneroster"'})
        if form.get("grant_type") != ["client_credentials"]:
            return _json(400, {"error": "unsupported_grant_type"})
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._issued_tokens[access_token] = self._clock() + self.token_lifetime
        answer = {"access_token": access_token, "token_type": "bearer", "expires_in": self.token_lifetime}
        return _json(200, answer, {"Cache-Control": "no-store"})

    def _oneroster_records(self, name: str, expression: str) -> list[Any] | None:
        """A collection's REST objects that pass the filter (None: unsupported filter); cached per dataset."""
        with self._lock:
            key = (name, expression)
            if key not in self._oneroster:
                if (name, "") not in self._oneroster:
                    if name == "schools":
                        orgs = self._oneroster.get(("orgs", "")) or self._load_changed("orgs")
                        self._oneroster[("orgs", "")] = orgs
                        everything = [org for org in orgs if str(org.get("type", "")).lower() == "school"]
                    else:
                        everything = self._load_changed(name)
                    self._oneroster[(name, "")] = everything
                if expression:
                    keep = _record_filter(expression)
                    if keep is None:
                        return None
                    self._oneroster[key] = [record for record in self._oneroster[(name, "")] if keep(record)]
            return self._oneroster[key]

    def _load_changed(self, name: str) -> list[Any]:
        """The collection's objects, with the last dataset switch's changes stamped on (lock held)."""
        objects = _load_oneroster(self._dataset_dir, name)
        changes = self._changes.get(name)
        if changes is None:
            return objects
        for obj in objects:
            if obj.get("sourcedId") in changes.changed_ids:
                obj["dateLastModified"] = changes.stamp
        return objects + changes.removed

    def _bound_port(self) -> int:
        return self._server.server_address[1] if self._server is not None else self._port

    def _take_fault(self, path: str, page: int | None) -> _Fault | None:
        """Consume one matching fault: status faults when ``page`` is None, else malformed-page faults."""
        for fault in self._faults:
            if path.startswith(fault.path_prefix) and fault.page == page:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _rate_limit(self) -> tuple[int, dict[str, str]] | None:
        """Count this request in the current minute; return a 429 answer when over the limit."""
        if self.rate_limit_per_minute is None:
            return None
        now = self._clock()
        with self._lock:
            window = int(now // 60)
            if window != self._window:
                self._window, self._window_count = window, 0
            self._window_count += 1
            over = self._window_count > self.rate_limit_per_minute
        if not over:
            return None
        headers = self._rate_headers()
        headers["Retry-After"] = str(max(1, math.ceil((window + 1) * 60 - now)))
        headers["Content-Type"] = "application/json"
        return 429, headers

    def _rate_headers(self) -> dict[str, str]:
        if self.rate_limit_per_minute is None:
            return {}
        with self._lock:
            remaining = max(0, self.rate_limit_per_minute - self._window_count)
            reset = (self._window + 1) * 60
        return {
            "X-RateLimit-Limit": str(self.rate_limit_per_minute),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        }

    def preload(self) -> None:
        """Load every list of the dataset now, users by each role they hold, as the first request of each
        would (the benchmark's traced sync measures the invocations' memory, not the simulator's caches)."""
        folder = self._dataset_dir
        for path in sorted(folder.glob("*.json")) if folder is not None else []:
            everyone = self._endpoint(path.stem, "").items
            for role in sorted({role for item in everyone for role in (item.get("data") or {}).get("roles") or {}}):
                self._endpoint(path.stem, role)

    def _endpoint(self, name: str, role: str) -> _Endpoint:
        """The endpoint's items (filtered by role for users), loaded once per dataset and cached."""
        with self._lock:
            key = (name, role)
            if key not in self._endpoints:
                if (name, "") not in self._endpoints:
                    self._endpoints[(name, "")] = _index(_load(self._dataset_dir, name))
                if role:
                    everyone = self._endpoints[(name, "")].items
                    self._endpoints[key] = _index([item for item in everyone if _has_role(item, role)])
            return self._endpoints[key]


def _load(dataset_dir: Path | None, name: str) -> list[Any]:
    """A Clever list as Clever serves it: sorted by ascending id ("Elements are returned sorted with ascending
    IDs", Clever's paging documentation). A recorded list with an item that has no id (a broken export a test
    plays) is served in its recorded order."""
    if dataset_dir is None or not (dataset_dir / f"{name}.json").is_file():
        return []
    body = json.loads((dataset_dir / f"{name}.json").read_text(encoding="utf-8"))
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError(f"{dataset_dir / f'{name}.json'} is not a Clever list response (no data list)")
    items: list[Any] = body["data"]
    ids = [_item_id(item) for item in items]
    if all(ids):
        order = sorted(range(len(items)), key=ids.__getitem__)
        items = [items[i] for i in order]
    return items


def _item_id(item: Any) -> str:
    data = item.get("data") if isinstance(item, dict) else None
    record_id = data.get("id") if isinstance(data, dict) else None
    return record_id if isinstance(record_id, str) else ""


def _index(items: list[Any]) -> _Endpoint:
    return _Endpoint(items, {_cursor(item, index): index for index, item in enumerate(items)})


def _cursor(item: Any, index: int) -> str:
    """The ``starting_after`` value for an item: its id, or its position for a broken item with none."""
    data = item.get("data") if isinstance(item, dict) else None
    record_id = data.get("id") if isinstance(data, dict) else None
    return record_id if isinstance(record_id, str) and record_id else f"@{index}"


def _has_role(item: Any, role: str) -> bool:
    data = item.get("data") if isinstance(item, dict) else None
    roles = data.get("roles") if isinstance(data, dict) else None
    return isinstance(roles, dict) and role in roles


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode("utf-8")


def _imsx(status: int, description: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A OneRoster 1.1 error answer (``imsx_StatusInfo``)."""
    body = {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_CodeMinor": {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": "TargetEndSystem"}]},
    }
    return _json(status, body, headers)


# -- OneRoster: OAuth helpers ------------------------------------------------------------------------


def _rfc3986(text: str) -> str:
    """Percent-encoding as OAuth 1.0a signs it: everything but A-Z a-z 0-9 - . _ ~ (RFC 5849 §3.6)."""
    return quote(text, safe="~")


def _oauth1_header(authorization: str | None) -> dict[str, str] | None:
    """The parameters of an ``Authorization: OAuth k="v", ...`` header, decoded; None if it is not one."""
    if not authorization or not authorization.startswith("OAuth "):
        return None
    params: dict[str, str] = {}
    for part in authorization[len("OAuth ") :].split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or len(value) < 2 or not (value.startswith('"') and value.endswith('"')) or name in params:
            return None
        params[unquote(name)] = unquote(value[1:-1])
    return params


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[len("Basic ") :], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else None


# -- OneRoster: filters ------------------------------------------------------------------------------

_PREDICATE = r"\s*(\w+)\s*(>=|<=|!=|>|<|=|~)\s*'([^']*)'\s*"
_FILTER = re.compile(rf"{_PREDICATE}(?:\s(AND|OR)\s{_PREDICATE})*")


def _record_filter(expression: str) -> Callable[[dict[str, Any]], bool] | None:
    """A OneRoster filter (``field op 'value'``, predicates joined by one of AND / OR) as a test; None if
    it is not one. ``dateLastModified`` compares as a moment; other fields as text."""
    if not _FILTER.fullmatch(expression):
        return None
    predicates = re.findall(_PREDICATE, expression)
    joined_by_or = " OR " in re.sub(r"'[^']*'", "''", expression)
    tests = [_predicate(field, op, value) for field, op, value in predicates]
    if joined_by_or:
        return lambda record: any(test(record) for test in tests)
    return lambda record: all(test(record) for test in tests)


def _predicate(field_name: str, op: str, value: str) -> Callable[[dict[str, Any]], bool]:
    as_moment = field_name == "dateLastModified"
    wanted: Any = _moment(value) if as_moment else value

    def test(record: dict[str, Any]) -> bool:
        raw = record.get(field_name)
        actual: Any = _moment(raw) if as_moment else ("" if raw is None else str(raw))
        if actual is None or wanted is None:
            return False
        if op == "~":
            return str(wanted).lower() in str(actual).lower()
        return {
            "=": actual == wanted,
            "!=": actual != wanted,
            ">": actual > wanted,
            ">=": actual >= wanted,
            "<": actual < wanted,
            "<=": actual <= wanted,
        }[op]

    return test


def _moment(value: object) -> datetime | None:
    """An ISO date or date-time (``Z``, offsets, a space instead of ``T``, US dates) as an aware datetime."""
    text = iso_date(value) if isinstance(value, str) else ""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- OneRoster: the CSV bundle as REST objects ------------------------------------------------------------
# A small loader of its own: enough for well-formed 1.0/1.1/1.2 bundles (BOM, header case, 1.0 column
# names, metadata.* columns, roles.csv). The CSV provider is the judge of messy bundles; its tables of
# which columns hold references and lists are shared, the reading is not (a server's GUIDRefs carry an
# href, empty references are left out, and a Clever-only folder serves empty lists).

_BASE_COLUMNS = ("sourcedId", "status", "dateLastModified")
_COLUMNS = {
    column.lower(): column
    for column in (
        *_BASE_COLUMNS,
        *("name", "type", "identifier", "parentSourcedId", "title", "startDate", "endDate", "schoolYear"),
        *("schoolYearSourcedId", "courseCode", "grades", "orgSourcedId", "subjects", "subjectCodes", "periods"),
        *("courseSourcedId", "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds"),
        *("enabledUser", "orgSourcedIds", "role", "roleType", "username", "userIds", "givenName", "familyName"),
        *("middleName", "email", "sms", "phone", "agentSourcedIds", "password", "primaryOrgSourcedId"),
        *("classSourcedId", "userSourcedId", "primary", "beginDate", "endDate", "birthDate", "sex"),
        *("americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican", "nativeHawaiianOrOtherPacificIslander"),
        *("white", "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity", "countryOfBirthCode"),
        *("stateOfBirthAbbreviation", "cityOfBirth", "publicSchoolResidenceStatus"),
    )
}
# OneRoster 1.0 column names → 1.1.
_ALIASES = {
    "userid": "userIds",
    "agents": "agentSourcedIds",
    "grade": "grades",
    "schoolyearid": "schoolYearSourcedId",
}
_COLLECTION_OF_TYPE = {
    "org": "orgs",
    "course": "courses",
    "class": "classes",
    "user": "users",
    "academicSession": "academicSessions",
}


def _load_oneroster(dataset_dir: Path | None, name: str) -> list[Any]:
    """A collection of the bundle in ``dataset_dir`` as OneRoster 1.1 REST objects ([] when absent)."""
    if dataset_dir is None or _manifest_modes(dataset_dir).get(name) == "absent":
        return []
    rows = _csv_rows(dataset_dir, name)
    if name == "demographics":
        # OneRoster 1.0 demographics name their user in ``userSourcedId``: it is their sourcedId.
        for row in rows:
            if not row.get("sourcedId") and row.get("userSourcedId"):
                row["sourcedId"] = row["userSourcedId"]
            row.pop("userSourcedId", None)
    objects = [_rest_object(name, row) for row in rows]
    if name == "users":
        _add_roles(objects, _csv_rows(dataset_dir, "roles"))
    return objects


def _manifest_modes(dataset_dir: Path) -> dict[str, str]:
    """``file.X`` values of the bundle's manifest.csv, as {collection: mode}."""
    modes: dict[str, str] = {}
    for row in _csv_file(dataset_dir, "manifest.csv")[1:]:
        if len(row) >= 2 and row[0].strip().lower().startswith("file."):
            modes[row[0].strip()[len("file.") :]] = row[1].strip().lower()
    return modes


def _csv_file(dataset_dir: Path, filename: str) -> list[list[str]]:
    """Every row of a CSV file found by name in any case; [] when there is none."""
    matches = [path for path in sorted(dataset_dir.glob("*")) if path.name.lower() == filename.lower()]
    if not matches or not matches[0].is_file():
        return []
    with matches[0].open(encoding="utf-8-sig", errors="replace", newline="") as text:
        return [row for row in csv.reader(text) if any(cell.strip() for cell in row)]


def _csv_rows(dataset_dir: Path, name: str) -> list[dict[str, str]]:
    """Data rows as {1.1 column name: value}; ``metadata.*`` columns keep their names."""
    rows = _csv_file(dataset_dir, f"{name}.csv")
    if not rows:
        return []
    columns: list[str | None] = []
    for cell in rows[0]:
        text = cell.strip().lstrip("\ufeff").strip()
        lowered = text.lower()
        if lowered.startswith("metadata.") and len(text) > len("metadata."):
            columns.append(text)
        else:
            columns.append(_COLUMNS.get(lowered) or _ALIASES.get(lowered))
    return [
        {column: cell.strip() for column, cell in zip(columns, row, strict=False) if column is not None}
        for row in rows[1:]
    ]


def _rest_object(collection: str, row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as a server sends it: the provider's own reading of the row (``as_object``), with
    each GUIDRef's ``href``, empty references left out and ``primary`` a boolean."""
    obj: dict[str, Any] = {}
    for key, value in as_object(collection, row).items():
        if value is None:
            continue  # an empty reference column: a server leaves the field out
        if _is_guid_ref(value):
            value = _guid_ref(value["sourcedId"], value["type"])
        elif isinstance(value, list) and value and all(_is_guid_ref(item) for item in value):
            value = [_guid_ref(item["sourcedId"], item["type"]) for item in value]
        obj[key] = value
    if isinstance(obj.get("primary"), str):
        obj["primary"] = {"true": True, "false": False}.get(obj["primary"].lower(), obj["primary"])
    return obj


def _is_guid_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"sourcedId", "type"}


def _add_roles(users: list[dict[str, Any]], role_rows: list[dict[str, str]]) -> None:
    """OneRoster 1.2 bundles keep roles in roles.csv: served as each user's ``roles``."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for row in role_rows:
        if row.get("userSourcedId") and row.get("role") and row.get("status", "").lower() != "tobedeleted":
            entry = {"role": row["role"], "roleType": row.get("roleType", "")}
            entry["org"] = _guid_ref(row["orgSourcedId"], "org") if row.get("orgSourcedId") else None
            by_user.setdefault(row["userSourcedId"], []).append(entry)
    if by_user:
        for user in users:
            user["roles"] = by_user.get(str(user.get("sourcedId", "")), [])


@dataclass
class _Changes:
    """What switching datasets changed in one collection, as a server would show it."""

    stamp: str  # the switch's time, as dateLastModified
    changed_ids: set[str]  # added or changed in the new bundle
    removed: list[dict[str, Any]]  # gone from the new bundle: served as tobedeleted


def _changes_between(previous: Path, new: Path, stamp: str) -> dict[str, _Changes]:
    """Per collection: the records ``new`` adds or changes, and those it no longer holds."""
    changes: dict[str, _Changes] = {}
    for name in COLLECTION_KEYS:
        if name == "schools":
            continue
        before = {str(obj.get("sourcedId", "")): obj for obj in _load_oneroster(previous, name)}
        after = {str(obj.get("sourcedId", "")): obj for obj in _load_oneroster(new, name)}
        changed = {
            sourced_id
            for sourced_id, obj in after.items()
            if sourced_id not in before or _content(obj) != _content(before[sourced_id])
        }
        removed = [
            {**obj, "status": "tobedeleted", "dateLastModified": stamp}
            for sourced_id, obj in before.items()
            if sourced_id not in after and str(obj.get("status", "")).lower() != "tobedeleted"
        ]
        if changed or removed:
            changes[name] = _Changes(stamp, changed, removed)
    return changes


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key != "dateLastModified"}


def _iso_utc(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _guid_ref(sourced_id: str, ref_type: str) -> dict[str, str]:
    href = f"{ONEROSTER_PREFIX}{_COLLECTION_OF_TYPE[ref_type]}/{quote(sourced_id, safe='')}"
    return {"href": href, "sourcedId": sourced_id, "type": ref_type}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], simulator: ProviderSimulator):
        super().__init__(address, handler)
        self.simulator = simulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._reply(
            self.server.simulator.answer(
                self.path, self.headers.get("Authorization"), method="GET", host=self.headers.get("Host")
            )
        )

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_POST_BYTES:
            self._reply(_json(413, {"error": "invalid_request", "error_description": "body too large"}))
            return
        body = self.rfile.read(length)
        self._reply(
            self.server.simulator.answer(
                self.path, self.headers.get("Authorization"), method="POST", host=self.headers.get("Host"), body=body
            )
        )

    def _reply(self, answer: tuple[int, dict[str, str], bytes]) -> None:
        status, headers, body = answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The access line holds only the request line (paths and ids), never headers or bodies.
        logger.debug("simulator: " + format, *args)


class SimulatorProcess:
    """A simulator serving ``dataset_dir`` from a Python process of its own (``main``), its lists loaded
    before it answers: for a benchmark that traces an invocation's memory (tracemalloc traces the whole
    process, so what an in-process simulator allocates to answer a page would count as Fetch's). Only what
    a connection needs is here (``base_url``, ``token``); faults and datasets are the in-process
    simulator's."""

    def __init__(self, dataset_dir: Path, token: str = DEFAULT_TOKEN) -> None:
        self.dataset_dir = dataset_dir
        self.token = token
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        command = [sys.executable, "-m", __name__, "--dataset", str(self.dataset_dir), "--token", self.token]
        self._process = subprocess.Popen([*command, "--preload"], stdout=subprocess.PIPE, text=True)  # noqa: S603
        assert self._process.stdout is not None
        first = self._process.stdout.readline()  # "Clever simulator at <base url>/v3.0 ...", once it serves
        found = re.match(r"Clever simulator at (\S+)/v3\.0 ", first)
        if found is None:
            self.stop()
            raise RuntimeError(f"the simulator's process did not start: {first!r}")
        self.base_url = found.group(1)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=60)
            self._process = None


def main(argv: list[str] | None = None) -> None:
    """Run the simulator by hand until Ctrl-C."""
    parser = argparse.ArgumentParser(
        description="Serve a dataset folder as Clever Data API v3.0 and OneRoster 1.1 REST."
    )
    parser.add_argument("--dataset", type=Path, help="folder of Clever list responses and/or a OneRoster CSV bundle")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token to require")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute before 429")
    parser.add_argument("--oneroster-auth", choices=AUTH_MODES, default="bearer", help="OneRoster auth mode")
    parser.add_argument(
        "--preload", action="store_true", help="load every list before serving (ProviderSimulator.preload)"
    )
    args = parser.parse_args(argv)
    simulator = ProviderSimulator(
        args.dataset,
        args.token,
        rate_limit_per_minute=args.rate_limit,
        port=args.port,
        oneroster_auth=args.oneroster_auth,
    )
    if args.preload:
        simulator.preload()
    simulator.start()
    print(f"Clever simulator at {simulator.base_url}/v3.0 (token {args.token!r})", flush=True)
    credentials = (
        f"token {args.token!r}"
        if args.oneroster_auth == "bearer"
        else f"key {DEFAULT_ONEROSTER_KEY!r}, secret {DEFAULT_ONEROSTER_SECRET!r}"
    )
    print(f"OneRoster simulator at {simulator.base_url}{ONEROSTER_PREFIX} ({args.oneroster_auth}, {credentials})")
    print("Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
