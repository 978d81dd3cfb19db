"""The one rule for ids: a provider's record ids and the product's district ids.

An id is a key: it ends up in DynamoDB keys (``sk`` at most 1,024 bytes, a partition key at most 2,048,
with the district and collection in front) and in S3 keys, and a record is found again by it on the next
night. So an id must be clean text: no bytes that were not UTF-8 (decoded as U+FFFD), no control
characters (NUL included), no surrogates, not blank, and not longer than ``ID_MAX_BYTES`` in UTF-8. An id
that breaks the rule is not synced: a corrupted id would archive the real record and create a duplicate.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field

# Room for two ids and a separator in an enrollment id (``<section>:<person>``) under the 1,024-byte sort
# key, with the district and collection prefix: a real provider id is 24 to 64 characters.
ID_MAX_BYTES = 255
ID_MAX_BYTES_LIMIT = 480

DISTRICT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
_DISTRICT_ID = re.compile(DISTRICT_ID_PATTERN)


def id_problem(value: object, max_bytes: int = ID_MAX_BYTES) -> str | None:
    """Why ``value`` is not a usable record id (a phrase to follow "its id …"), or None when it is."""
    if not isinstance(value, str):
        return "is not text"
    if not value.strip():
        return "is blank"
    if value.isascii() and value.isprintable():
        # Most ids: printable ASCII holds no control character, surrogate or U+FFFD, and is a byte a
        # character (a third of a OneRoster bundle's assembly went to the character-by-character loop below).
        size = len(value)
        return f"is {size:,} bytes long; an id may be at most {max_bytes:,} bytes" if size > max_bytes else None
    if "\ufffd" in value:
        return "holds bytes that are not UTF-8 text (corrupted in the export)"
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            return "holds a control character (a NUL byte or a line break, say)"
        if category == "Cs":
            return "holds bytes that are not UTF-8 text (corrupted in the export)"
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        return f"is {size:,} bytes long; an id may be at most {max_bytes:,} bytes"
    return None


def shown_id(value: object, limit: int = 40) -> str:
    """An id as a report may show it: control and broken characters escaped, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    escaped = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "…"


def district_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a district id (letters, digits, '_', '.', '-'; 1 to 128), or None."""
    if _DISTRICT_ID.fullmatch(value):
        return None
    return f"district id {shown_id(value)!s} must be 1 to 128 letters, digits, '_', '.' or '-'"


def _district_id(value: str) -> str:
    problem = district_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# A district id in a model (an event's detail, the product's district): refused with the rule's words.
DistrictId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_district_id)]
