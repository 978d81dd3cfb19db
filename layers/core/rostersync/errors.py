"""Domain errors. Their class names are the error names the state machine sees (Retry/Catch)."""


class RostersyncError(Exception):
    """Base of every error the sync raises on purpose."""


class ProviderAuthError(RostersyncError):
    """The provider refused our credentials (401/403): the district must reconnect the app."""


class ProviderUnavailableError(RostersyncError):
    """The provider could not be reached or kept failing (5xx, timeouts) after our retries."""


class ProviderRequestError(RostersyncError):
    """The provider rejected a request as malformed (400/404): a bug or a misconfigured connection."""


class LockHeldError(RostersyncError):
    """Another run for the same district is in progress."""


class ConnectionNotConfiguredError(RostersyncError):
    """The district has no provider connection stored."""


class BadInputError(RostersyncError):
    """A step was given input it cannot work with."""


class LinkError(RostersyncError):
    """A provider link cannot be stored or removed as asked (no such record, or the id is taken)."""


class DirectoryThrottledError(RostersyncError):
    """DynamoDB kept throttling the directory's writes after botocore's own retries (or left items
    unprocessed past our bound). Writes are idempotent: the state machine retries the chunk with backoff."""


# What a step's error may put into the workflow's state. Step Functions keeps a failed step's error message
# in the state (``Catch`` … ``ResultPath: $.error``), whose limit is 256 KB; past it the execution fails
# with States.DataLimitExceeded, which no Catch takes, and the run would end with no report.
ERROR_MESSAGE_LIMIT = 4_000


def bounded_error(exc: BaseException, limit: int = ERROR_MESSAGE_LIMIT, full_text_at: str = "") -> BaseException:
    """``exc`` itself when its message is short; else an error of the same name with the message cut.

    The name is what the state machine's ``Catch`` and the report read, so it is kept; the message says
    how long it was, and where the full text was kept (``full_text_at``, an S3 key) when it was.
    """
    message = str(exc)
    if len(message) <= limit:
        return exc
    kept = f"; the full text is in the run's files: {full_text_at}" if full_text_at else ""
    cut = f"{message[:limit]}… (cut: the message was {len(message):,} characters{kept})"
    same_name = type(type(exc).__name__, (Exception,), {"__module__": type(exc).__module__})
    return same_name(cut)


class RunActionRefusedError(RostersyncError):
    """An undo or approval that cannot act on the run it names (still running, undone already, the roster
    moved on since it was held…): the run records the reason, nothing is written."""
