"""HTTP to a rostering provider: one request, sent again while the provider is busy or unreachable.

Both REST clients (Clever and OneRoster) retry the same failures the same way: a connection error, a
5xx or a 429 is tried again after a backoff (or the wait a 429 asks for), up to ``RetryPolicy``'s
attempts. What a refused or rejected request means is the client's business, so the first other
answer is handed back as it came; the wording of the final error is the client's too. A page that
arrives but cannot be read stops its list the same way in both (``unreadable_page``). A list read in
slices asks for its next page's answer while it handles this one (``paged``; a list read from the last
run's mirror too, a chunk its page).
"""

from __future__ import annotations

import contextvars
import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

import requests

from rostersync.errors import ProviderUnavailableError
from rostersync.providers.base import FetchOutcome, ListPage, RetryPolicy

Request = TypeVar("Request")  # what a client needs to ask for one page of a list (its URL, offset, number)
Answer = TypeVar("Answer")  # the provider's answer to it, as it arrived

# Failures worth another attempt: the request never got a complete answer.
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def send_with_retries(
    send: Callable[[], requests.Response],
    retry: RetryPolicy,
    *,
    what: str,
    rate_limit_wait: Callable[[requests.Response], float | None],
    unavailable: Callable[[int, str], str],
    log: logging.Logger,
    provider: str,
    log_detail: str = "",
) -> requests.Response:
    """Send a request, retrying 429, 5xx and connection errors; return the first other answer.

    Parameters
    ----------
    send
        Sends the request once (called again for each attempt, so a signature can be made afresh).
    retry
        How many attempts, how long to back off; ``retry.sleep`` does the waiting.
    what
        The request in an admin's words, e.g. ``/v3.0/users`` or ``page 2 of /ims/oneroster/v1p1/users``.
    rate_limit_wait
        Seconds a 429 answer asks to wait (from its headers), or None to back off as usual.
    unavailable
        The message of the final error, from the number of attempts and the last problem.
    log
        The client's logger, for the warning before each retry.
    provider
        The provider's name at the start of that warning.
    log_detail
        Added to the problem in that warning, e.g. ``", page 2"``.

    Raises
    ------
    ProviderUnavailableError
        When no attempt got an answer other than 429 or 5xx.
    """
    attempts = max(1, retry.max_attempts)
    last_problem = ""
    for attempt in range(1, attempts + 1):
        try:
            response = send()
        except TRANSIENT_ERRORS as exc:
            last_problem = f"{type(exc).__name__} on {what}"
            delay = retry.backoff(attempt)
        else:
            status = response.status_code
            if status == 429:
                wait = rate_limit_wait(response)
                delay = retry.backoff(attempt) if wait is None else min(max(wait, 0.0), retry.max_delay)
            elif status >= 500:
                delay = retry.backoff(attempt)
            else:
                return response
            last_problem = f"HTTP {status} on {what}"
        if attempt < attempts:
            log.warning(
                "%s %s%s (attempt %d of %d); retrying in %.1f s",
                provider,
                last_problem,
                log_detail,
                attempt,
                attempts,
                delay,
            )
            retry.sleep(delay)
    raise ProviderUnavailableError(unavailable(attempts, last_problem))


@dataclass
class RequestPacer:
    """Spaces one reader's requests at least ``interval`` seconds apart, retries included.

    Fetch reads a district's lists in parallel branches that share the provider's per-district rate
    limit; each branch gets a fixed share of it (``steps.fetch_slices.branch_interval``) and paces its
    own requests, so the branches together never exceed the limit without talking to each other.
    ``last`` (the clock time of the last request) is carried from one slice of a list to the next, so a
    new invocation continues the spacing. ``clock`` and ``sleep`` are injectable: tests never wait.
    ``interval`` 0 does not pace at all.
    """

    interval: float = 0.0
    last: float | None = None
    clock: Callable[[], float] = field(default=time.time)
    sleep: Callable[[float], None] = field(default=time.sleep)

    def wait(self) -> None:
        """Wait until the next request may be sent, and count it as sent now."""
        if self.interval <= 0:
            return
        now = self.clock()
        if self.last is not None and now < self.last + self.interval:
            self.sleep(self.last + self.interval - now)
            now = self.clock()
        # A sleep that woke early still leaves the full interval between two requests.
        self.last = now if self.last is None else max(now, self.last + self.interval)


def unreadable_page(provider: str, problem: str, path: str, outcome: FetchOutcome | None, log: logging.Logger) -> None:
    """A page of a list that could not be read: the list stops there, so the run archives nothing.

    Recorded in ``outcome`` (the fetch goes on with the other lists); without an outcome it raises
    ``ProviderUnavailableError``, so the page is never lost silently.
    """
    message = f"{provider} {problem}; the rest of {path} was not read, so this run will not archive anything"
    log.warning("Unreadable %s page: %s", provider, problem)
    if outcome is None:
        raise ProviderUnavailableError(message)
    outcome.mark_incomplete(message)


def retry_after_seconds(response: requests.Response, *, http_date: bool = True) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: delay-seconds, or (``http_date``) an HTTP date."""
    header = response.headers.get("Retry-After")
    seconds = finite_number(header)
    if seconds is None and header and http_date:
        try:
            seconds = parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            seconds = None
    return seconds


def rate_limit_reset_seconds(response: requests.Response) -> float | None:
    """Seconds until the Unix time in an ``X-RateLimit-Reset`` header."""
    reset_at = finite_number(response.headers.get("X-RateLimit-Reset"))
    return None if reset_at is None else reset_at - time.time()


def finite_number(value: object) -> float | None:
    """A finite number from JSON or header text, or None (booleans, NaN, infinity, anything else)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def paged(
    first: Request,
    answer: Callable[[Request], Answer],
    page_of: Callable[[Answer, Request], tuple[ListPage, Request | None]],
    ahead: Callable[[ListPage], bool] | None = None,
) -> Iterator[ListPage]:
    """The pages of a provider's list: ``answer(request)`` asks for one page, ``page_of(answer, request)``
    reads it into the page and the request for the next one (None: the list ends there).

    Without ``ahead``, each page is asked for when the caller asks for it. With it, the list is read
    ahead: ``ahead(page)`` is asked as each page is read, before it is handed over, and True sends the
    request for the next page at once, from a thread of its own, so the provider answers while the caller
    maps this page; False ends the list after this page (a slice's page bound or its time margin), and
    nothing more is asked of the provider. The next page's answer is read into a page only when the
    caller asks for it, in the caller's thread: a page parsed is about three times its answer's bytes
    (a Clever users page of 10,000: 26.8 MiB parsed, 8 MiB sent), so the caller holds this page and the
    next one's answer, not two pages (a caller that lets go of the page it handled before asking for the
    next). At most one request is in flight; it runs in the caller's context (its ``metering`` counts it),
    and what it raises is raised to the caller when it asks for that page.
    """
    context = contextvars.copy_context()
    pool: ThreadPoolExecutor | None = None
    pending: Future[Answer] | None = None
    request: Request | None = first
    try:
        while request is not None:
            arrived = pending.result() if pending is not None else answer(request)
            page, request = page_of(arrived, request)
            pending = None
            del arrived  # the answer's bytes: only the page is held from here
            if request is not None and ahead is not None:
                if ahead(page):
                    pool = pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
                    pending = pool.submit(context.run, answer, request)
                else:
                    request = None
            yield page
            del page  # asked for the next page: the caller is done with this one
    finally:
        # Stopped early (the caller's error), the request in flight is waited for and its answer dropped.
        if pool is not None:
            pool.shutdown(wait=True)
