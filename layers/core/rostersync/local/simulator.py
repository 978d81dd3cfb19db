"""A local stand-in for the Clever Data API v3.0, serving a dataset folder of Clever list responses.

The folder holds ``districts.json``, ``schools.json``, ``sections.json``, ``users.json``, ``terms.json``
and ``courses.json`` (each optional), shaped like Clever's answers: ``{"data": [{"data": {...}}], ...}``.
The simulator pages them like Clever (``limit``, ``starting_after``, ``links rel=next``), checks the
bearer token, can rate-limit like Clever, and injects faults for tests.

Run by hand::

    python -m rostersync.local.simulator --dataset DIR --port 8765
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

logger = logging.getLogger(__name__)

ENDPOINTS = ("districts", "schools", "sections", "users", "terms", "courses")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_TOKEN = "demo-district-token"  # noqa: S105 -- the simulator's well-known demo token, not a secret


@dataclass
class _Fault:
    path_prefix: str
    remaining: int
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    page: int | None = None  # set for a malformed page


@dataclass
class _Endpoint:
    items: list[Any]
    position: dict[str, int]  # cursor -> index, for starting_after


class ProviderSimulator:
    """A Clever Data API v3.0 simulator on 127.0.0.1, in a daemon thread.

    Parameters
    ----------
    dataset_dir
        Folder of Clever list responses; ``None`` serves empty lists.
    token
        The bearer token requests must carry.
    rate_limit_per_minute
        Requests allowed per clock minute before answering 429, like Clever; ``None`` turns it off.
    clock
        Epoch seconds; tests pass a fake clock that their injected sleep advances.
    port
        Port to bind; 0 picks a free one.
    """

    def __init__(
        self,
        dataset_dir: Path | None = None,
        token: str = DEFAULT_TOKEN,
        *,
        rate_limit_per_minute: int | None = None,
        clock: Callable[[], float] = time.time,
        port: int = 0,
    ) -> None:
        self.token = token
        self.rate_limit_per_minute = rate_limit_per_minute
        self._clock = clock
        self._port = port
        self._lock = threading.Lock()
        self._dataset_dir: Path | None = None
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        self._faults: list[_Fault] = []
        self._requests: list[tuple[str, str]] = []
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
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running simulator."""
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- data and faults -----------------------------------------------------------------------------

    def set_dataset(self, path: Path | None) -> None:
        """Serve another dataset folder (e.g. the next day's snapshot); its files are read on first use."""
        if path is not None and not Path(path).is_dir():
            raise FileNotFoundError(f"dataset folder {path} does not exist")
        with self._lock:
            self._dataset_dir = Path(path) if path is not None else None
            self._endpoints = {}

    def inject(self, path_prefix: str, status: int, times: int = 1, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next ``times`` requests whose path starts with ``path_prefix`` with ``status``.

        A 429 carries ``Retry-After: 0`` unless ``headers`` say otherwise.
        """
        if headers is None:
            headers = {"Retry-After": "0"} if status == 429 else {}
        with self._lock:
            self._faults.append(_Fault(path_prefix, times, status=status, headers=dict(headers)))

    def inject_malformed(self, path_prefix: str, page: int, times: int = 1) -> None:
        """Answer page ``page`` (1-based) of the matching endpoint with a 200 whose body is not JSON."""
        with self._lock:
            self._faults.append(_Fault(path_prefix, times, page=page))

    @property
    def requests_seen(self) -> list[tuple[str, str]]:
        """Every request so far as (path, query string), in arrival order."""
        with self._lock:
            return list(self._requests)

    # -- serving -------------------------------------------------------------------------------------

    def answer(self, request_path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        """Return (status, headers, body) for a GET; called by the request handler threads."""
        url = urlsplit(request_path)
        path, query = url.path, url.query
        with self._lock:
            self._requests.append((path, query))
            status_fault = self._take_fault(path, page=None)
        if status_fault is not None:
            return _json(status_fault.status, {"message": f"injected HTTP {status_fault.status}"}, status_fault.headers)
        if authorization != f"Bearer {self.token}":
            return _json(401, {"message": "invalid or missing bearer token"})
        limited = self._rate_limit()
        if limited is not None:
            return limited[0], limited[1], b'{"message": "rate limit exceeded"}'
        rate_headers = self._rate_headers()

        endpoint = path.removeprefix("/v3.0/")
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
            return 200, {"Content-Type": "application/json", **rate_headers}, b'{"data": [{"data": {"id": '

        page = data.items[start : start + limit]
        links = [{"rel": "self", "uri": f"{path}?{query}" if query else path}]
        if start + limit < len(data.items):
            next_query = {"limit": limit, "starting_after": _cursor(data.items[start + limit - 1], start + limit - 1)}
            if role:
                next_query["role"] = role
            links.append({"rel": "next", "uri": f"{path}?{urlencode(next_query)}"})
        return _json(200, {"data": page, "links": links}, rate_headers)

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
    if dataset_dir is None or not (dataset_dir / f"{name}.json").is_file():
        return []
    body = json.loads((dataset_dir / f"{name}.json").read_text(encoding="utf-8"))
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError(f"{dataset_dir / f'{name}.json'} is not a Clever list response (no data list)")
    return body["data"]


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], simulator: ProviderSimulator):
        super().__init__(address, handler)
        self.simulator = simulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        status, headers, body = self.server.simulator.answer(self.path, self.headers.get("Authorization"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The access line holds only the request line (paths and ids), never headers or bodies.
        logger.debug("simulator: " + format, *args)


def main(argv: list[str] | None = None) -> None:
    """Run the simulator by hand until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Serve a dataset folder as the Clever Data API v3.0.")
    parser.add_argument("--dataset", type=Path, help="folder of Clever list responses (users.json, ...)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token to require")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute before 429")
    args = parser.parse_args(argv)
    simulator = ProviderSimulator(
        args.dataset, args.token, rate_limit_per_minute=args.rate_limit, port=args.port
    ).start()
    print(f"Clever simulator at {simulator.base_url} (token {args.token!r}); Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
