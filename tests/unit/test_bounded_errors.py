"""A step's error reaches the workflow's state with a bounded message and its own name (issue 9, 5).

The state machine keeps a failed step's error in the run's state (``Catch`` → ``$.error``); a message
over Step Functions' 256 KB would end the run with no report (States.DataLimitExceeded, which no Catch
takes), as a bundle with 200,000 duplicated header columns did.
"""

import pytest

from rostersync.errors import ERROR_MESSAGE_LIMIT, BadInputError, bounded_error
from rostersync.observability import step_metrics


def test_a_short_error_is_left_as_it_is():
    error = BadInputError("users.csv: a header is repeated")
    assert bounded_error(error) is error


def test_a_long_error_keeps_its_name_and_says_it_was_cut():
    error = BadInputError("duplicated column " * 100_000)

    bounded = bounded_error(error)

    assert type(bounded).__name__ == "BadInputError"  # what Catch and the report match on
    assert len(str(bounded)) < ERROR_MESSAGE_LIMIT + 100
    assert str(bounded).startswith("duplicated column")
    assert "1,800,000 characters" in str(bounded)


def test_a_handler_raises_its_step_errors_bounded():
    @step_metrics("fetch_roster")
    def handler(event, context):
        raise ValueError("x" * 1_000_000)

    with pytest.raises(Exception) as raised:
        handler({}, None)

    assert type(raised.value).__name__ == "ValueError"
    assert len(str(raised.value)) < ERROR_MESSAGE_LIMIT + 100
