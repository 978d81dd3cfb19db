"""The embedded stack's in-process transport: a botocore request addressed to a stack running in this
process is handed to that stack server's WSGI app in the calling thread, without a socket.

Everything above the socket is what a request over HTTP meets: botocore serialises and signs it as for
AWS; the app is the server's own (the S3 request counter, the IAM check, moto's dispatcher and
backends); the WSGI environ is built as werkzeug's server builds it from the request line and headers
urllib3 would send (moto's underscore-preserving headers included); the answer's status, headers and
bytes are what the server would write. Only the loopback connection, werkzeug's request parsing and
the hop to a server thread are skipped: about a fifth of an end-to-end test's CPU, and a thread switch
per request.

The server still listens: another process (the CLI against ``rostersync local up``, a browser opening
a report link) reaches the stack over HTTP, and so does a client in this process that the stack was not
registered for (``register``), e.g. with ``ROSTERSYNC_STACK_OVER_HTTP=1`` set before the stack starts.
"""

from __future__ import annotations

import contextvars
import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

_SERVERS: dict[str, Any] = {}  # "host:port" of a running stack → its (werkzeug) server
_LOCK = threading.Lock()
_THREAD = threading.local()  # ``over_http``: this thread's requests go over the socket meanwhile


def register(endpoint: str, server: Any) -> None:
    """Send this process's botocore requests for ``endpoint`` (``http://host:port``) to ``server``'s app."""
    install()
    with _LOCK:
        _SERVERS[urlsplit(endpoint).netloc] = server


def unregister(endpoint: str) -> None:
    with _LOCK:
        _SERVERS.pop(urlsplit(endpoint).netloc, None)


@contextmanager
def over_http() -> Iterator[None]:
    """Send this thread's requests to the stack over its socket meanwhile (a test compares the two)."""
    previous, _THREAD.over_http = getattr(_THREAD, "over_http", False), True
    try:
        yield
    finally:
        _THREAD.over_http = previous


class _Body(io.BytesIO):
    """The answer's bytes, read as botocore reads a urllib3 response (``read``, ``stream``)."""

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk

    def release_conn(self) -> None:
        return None


def install() -> None:
    """Patch botocore's HTTP session once: requests for a registered stack never reach a socket."""
    from botocore import httpsession

    if getattr(httpsession.URLLib3Session, "_rostersync_in_process", False):
        return
    generic = httpsession.URLLib3Session.send

    def send(self: Any, request: Any) -> Any:
        server = _SERVERS.get(urlsplit(request.url).netloc) if _SERVERS else None
        if server is None or getattr(_THREAD, "over_http", False):
            return generic(self, request)
        return answer(server, request)

    httpsession.URLLib3Session.send = send
    httpsession.URLLib3Session._rostersync_in_process = True


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    data = body.read()  # a file-like body (an upload): sent from where it stands, as http.client sends it
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _header_text(value: Any) -> str:
    # http.client sends a str header as latin-1, the server's email parser reads it back as latin-1.
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class _Headers(list[tuple[str, str]]):
    """A request's headers, in order, as the server's handler reads http.client's message of them."""

    def items(self) -> list[tuple[str, str]]:
        return list(self)

    def keys(self) -> list[str]:
        return [name for name, _ in self]


def environ_for(request: Any, body: bytes, server: Any) -> dict[str, Any]:
    """The environ ``server``'s handler (moto's, over werkzeug's) builds for ``request`` as urllib3 sends it:
    its own ``make_environ``, run on a handler that holds the request line and headers instead of a socket."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    url = urlsplit(request.url)
    target = url.path or "/"  # botocore's request target: the URL's path and query, as urllib3 sends them
    if url.query:
        target += "?" + url.query
    headers = _Headers((str(name), _header_text(value)) for name, value in request.headers.items())
    names = {name.lower() for name, _ in headers}
    # What http.client adds to a request line by itself (putrequest, _send_request).
    if "host" not in names:
        headers.insert(0, ("Host", url.netloc))
    if "accept-encoding" not in names:
        headers.insert(1, ("Accept-Encoding", "identity"))
    chunked = any(n.lower() == "transfer-encoding" and "chunked" in v.lower() for n, v in headers)
    if "content-length" not in names and not chunked and (body or request.method in ("POST", "PUT", "PATCH")):
        headers.append(("Content-Length", str(len(body))))
    handler = MotoRequestHandler.__new__(MotoRequestHandler)  # no socket: nothing of __init__ is wanted
    handler.server, handler.connection, handler.client_address = server, None, ("127.0.0.1", 0)
    handler.command, handler.path, handler.request_version = request.method, target, "HTTP/1.1"
    handler.headers, handler.rfile = headers, io.BytesIO(body)
    environ: dict[str, Any] = handler.make_environ()
    if chunked:  # the body is whole already: the server de-chunks what urllib3 framed
        environ["wsgi.input"] = io.BytesIO(body)
    return environ


def answer(server: Any, request: Any) -> Any:
    """Run ``request`` through ``server``'s WSGI app in this thread; botocore's ``AWSResponse`` to it."""
    from botocore.awsrequest import AWSResponse, HeadersDict
    from werkzeug.test import run_wsgi_app

    app = server.app
    environ = environ_for(request, _body_bytes(request.body), server)
    # A server thread starts with no context variables set: the app must not see the caller's (the
    # meter of the invocation that sent the request, the invocation's role session).
    try:
        app_iter, status, headers = contextvars.Context().run(run_wsgi_app, app, environ, True)
    except Exception:
        # What werkzeug's server does with an app that raised: log it, answer 500 Internal Server Error.
        from werkzeug.exceptions import InternalServerError

        logging.getLogger("werkzeug").error("Error on request", exc_info=True)
        app_iter, status, headers = run_wsgi_app(InternalServerError(), environ, True)
    code = int(status.split(" ", 1)[0])
    content = b"" if request.method == "HEAD" or code in (204, 304) or code < 200 else b"".join(app_iter)
    response = AWSResponse(request.url, code, HeadersDict(headers.to_wsgi_list()), _Body(content))
    if not request.stream_output:
        response.content  # read at once, as botocore's own send does  # noqa: B018
    return response
