"""Generated records through the providers' mapping (issue 9, fault campaign): records built from Clever's
own Data API schema and from the OneRoster 1.1 CSV binding's column specifications, valid and hostile.
Not one may crash the mapping or vanish: each gives canonical records or a RecordError with a reason.
``make chaos`` runs the same checks over 10,000 records and more; here a bounded few hundred (100 users,
150 sections, about 170 users.csv rows): generating them (hypothesis-jsonschema), not mapping them, is
nearly all of this file's time."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from rostersync_tools.local.generated import (
    check_clever_sections,
    check_clever_users,
    check_oneroster_users,
    clever_items,
    oneroster_user_rows,
)

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same records every run: a failure here reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(BOUNDED, max_examples=100)
@given(clever_items("User"))
def test_a_generated_clever_user_becomes_records_or_an_error_line(item: object) -> None:
    check_clever_users(item)


@BOUNDED
@given(clever_items("Section"))
def test_a_generated_clever_section_becomes_records_or_an_error_line(item: object) -> None:
    check_clever_sections(item)


@settings(BOUNDED, max_examples=40)
@given(oneroster_user_rows())
def test_generated_oneroster_user_rows_become_records_or_error_lines(rows: list[dict[str, str]]) -> None:
    check_oneroster_users(rows)
