"""Person matching (issue 4 item 4): a roster person without a provider link finds their product account,
or is created, or is skipped with the reason — and the rules that must not match don't."""

from __future__ import annotations

import pytest
from test_planner import (
    PRODUCT_SCHOOL_ID,
    PROVIDER,
    Roster,
    directory_index,
    enrolment,
    guardian,
    link,
    person,
    product_school,
    school,
    section,
)

from rostersync.directory.keys import synced_record_id
from rostersync.directory.repository import DirectoryRecord
from rostersync.domain.records import Kind, Role
from rostersync.matching.people import CandidateIndex, normal_phone
from rostersync.matching.plan import AMBIGUOUS, NO_REACH, SyncPlanner
from rostersync.settings import SyncSettings

DISTRICT = "d-1042"


def product_person(record_id: str, roles: list[str], schools=(PRODUCT_SCHOOL_ID,), **fields) -> DirectoryRecord:
    """A person the product already has, with no link to the provider (imported before the first sync)."""
    kind = {"student": Kind.STUDENTS, "teacher": Kind.TEACHERS, "staff": Kind.STAFF, "guardian": Kind.GUARDIANS}
    return DirectoryRecord(
        id=record_id,
        kind=kind[roles[0]],
        status="active",
        managed_by_sync=False,
        provider_ids={},
        fields={"roles": roles, "schools": list(schools)},
        product_fields=fields,
    )


def run(roster: Roster, *accounts: DirectoryRecord, **settings):
    index = directory_index(product_school())
    candidates = CandidateIndex.from_records(accounts)
    return plan_with(roster, index, candidates, SyncSettings.model_validate(settings))


def plan_with(roster, index, candidates, settings):
    from same_plan import assert_same_plan, options_copy
    from test_planner import Plan

    writes, lines, errors = [], [], []
    before = options_copy({"settings": settings, "candidates": candidates})
    planner = SyncPlanner(
        DISTRICT,
        PROVIDER,
        index,
        write=writes.append,
        line=lines.append,
        error=errors.append,
        settings=settings,
        candidates=candidates,
    )
    candidates_out = planner.plan(lambda c: getattr(roster, c))
    result = Plan(planner, writes, lines, errors, candidates_out)
    assert_same_plan(DISTRICT, PROVIDER, index, lambda c: getattr(roster, c), before, result)
    return result


def new_id(provider_id: str) -> str:
    return synced_record_id(DISTRICT, "people", PROVIDER, provider_id)


# -- students -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("id_field", ["sis_id", "student_number", "state_id"])
def test_a_student_is_linked_by_the_student_id_the_district_chose(id_field):
    roster = Roster(schools=[school()], people=[person("stu-1", **{id_field: " 000123 "})])
    account = product_person("per_kid", ["student"], **{id_field: "000123"})

    result = run(roster, account, student_match_id=id_field)

    (write,) = result.writes_of(Kind.STUDENTS)
    assert (write.op, write.record.id, write.record.provider_ids) == ("update", "per_kid", {PROVIDER: "stu-1"})
    line = result.line_for(Kind.STUDENTS, "stu-1")
    assert (line.action, line.reason) == ("linked", f"matched by {id_field.replace('_', ' ')}")
    assert result.counts(Kind.STUDENTS) == {"linked": 1}


def test_a_student_id_other_than_the_chosen_one_does_not_match():
    # The district matches on sis_id; the product student shares only the state id.
    roster = Roster(schools=[school()], people=[person("stu-1", sis_id="A1", state_id="S9")])
    account = product_person("per_kid", ["student"], sis_id="B2", state_id="S9")

    result = run(roster, account, student_match_id="sis_id")

    (write,) = result.writes_of(Kind.STUDENTS)
    assert (write.op, write.record.id) == ("create", new_id("stu-1"))


def test_with_provider_id_matching_no_student_id_links_anyone():
    roster = Roster(schools=[school()], people=[person("stu-1", sis_id="A1")])
    account = product_person("per_kid", ["student"], sis_id="A1")

    result = run(roster, account)  # default: student_match_id = provider_id

    assert result.write_for("stu-1").op == "create"


def test_two_product_students_with_the_same_id_match_nobody_and_the_student_is_skipped():
    roster = Roster(schools=[school()], people=[person("stu-1", sis_id="A1")])
    twins = [product_person(f"per_{n}", ["student"], sis_id="A1") for n in (1, 2)]

    result = run(roster, *twins, student_match_id="sis_id")

    assert result.writes_of(Kind.STUDENTS) == []
    line = result.line_for(Kind.STUDENTS, "stu-1")
    assert line.action == "ambiguous" and AMBIGUOUS in line.reason and "people link" in line.reason
    assert result.planner.summary.findings.ambiguous_matches == 1


def test_an_account_matched_once_is_not_matched_again():
    roster = Roster(schools=[school()], people=[person("stu-1", sis_id="A1"), person("stu-2", sis_id="A1")])
    account = product_person("per_kid", ["student"], sis_id="A1")

    result = run(roster, account, student_match_id="sis_id")

    assert result.write_for("stu-1").record.id == "per_kid"
    assert result.line_for(Kind.STUDENTS, "stu-2").action == "ambiguous"
    assert [w.record.provider_ids[PROVIDER] for w in result.writes_of(Kind.STUDENTS)] == ["stu-1"]


def test_same_name_and_birth_date_in_the_school_is_only_a_candidate_never_merged():
    roster = Roster(
        schools=[school()], people=[person("stu-1", given_name="Ada", family_name="Lovelace", birth_date="2012-04-01")]
    )
    account = product_person(
        "per_ada", ["student"], given_name=" ada ", family_name="LOVELACE", birth_date="2012-04-01"
    )

    result = run(roster, account)

    write = result.write_for("stu-1")
    assert (write.op, write.record.id) == ("create", new_id("stu-1"))  # a new student; the product's is untouched
    flagged = [line for line in result.lines if line.action == "possible_duplicate"]
    assert len(flagged) == 1 and "per_ada" in flagged[0].reason and "not merged" in flagged[0].reason
    assert result.planner.summary.findings.duplicate_candidates == 1


@pytest.mark.parametrize(
    ("changes", "account_schools"),
    [
        ({"birth_date": "2012-04-02"}, (PRODUCT_SCHOOL_ID,)),  # another birth date
        ({"given_name": "Augusta"}, (PRODUCT_SCHOOL_ID,)),  # another name
        ({}, ("sch_other",)),  # another school
    ],
)
def test_name_and_birth_date_candidates_need_all_three_to_agree(changes, account_schools):
    roster = Roster(schools=[school()], people=[person("stu-1", birth_date="2012-04-01")])
    fields = {"given_name": "Ada", "family_name": "Lovelace", "birth_date": "2012-04-01"} | changes
    account = product_person("per_ada", ["student"], schools=account_schools, **fields)

    result = run(roster, account)

    assert not [line for line in result.lines if line.action == "possible_duplicate"]


# -- teachers and staff -------------------------------------------------------------------------------


def test_a_teacher_is_linked_by_email_ignoring_case_and_spaces():
    roster = Roster(schools=[school()], people=[person("tch-1", Role.TEACHER, email="  M.Ellery@Example.org")])
    account = product_person("per_teacher", ["teacher"], email="m.ellery@example.org ")

    result = run(roster, account)

    write = result.write_for("tch-1")
    assert (write.op, write.record.id) == ("update", "per_teacher")
    assert result.line_for(Kind.TEACHERS, "tch-1").reason == "matched by email"


@pytest.mark.parametrize(
    ("roster_email", "account_roles", "account_email"),
    [
        ("m.ellery@example.org", ["teacher"], "m.ellery@example.com"),  # another address
        ("m.ellery@example.org", ["guardian"], "m.ellery@example.org"),  # a parent's account is not a teacher's
        ("", ["teacher"], ""),  # no email on either side
    ],
)
def test_teachers_do_not_match_without_the_same_email_on_a_staff_account(roster_email, account_roles, account_email):
    roster = Roster(schools=[school()], people=[person("tch-1", Role.TEACHER, email=roster_email)])
    account = product_person("per_x", account_roles, email=account_email)

    result = run(roster, account)

    assert result.write_for("tch-1").op == "create"


def test_staff_match_staff_accounts_by_email_too():
    roster = Roster(schools=[school()], people=[person("stf-1", Role.STAFF, email="office@example.org")])
    account = product_person("per_office", ["staff"], email="OFFICE@example.org")

    assert run(roster, account).write_for("stf-1").record.id == "per_office"


# -- guardians ----------------------------------------------------------------------------------------


def family(*guardians, links=None):
    return Roster(
        schools=[school()],
        classrooms=[section()],
        people=[person("stu-1")],
        guardians=list(guardians),
        enrollments=[enrolment("sec-1", "stu-1")],
        guardian_links=links if links is not None else [link(g.provider_id, "stu-1") for g in guardians],
    )


def test_a_guardian_is_linked_by_email():
    account = product_person("per_mum", ["guardian"], schools=(), email="mum@example.org")

    result = run(family(guardian("gdn-1", email="Mum@Example.org")), account)

    assert result.write_for("gdn-1").record.id == "per_mum"
    assert result.line_for(Kind.GUARDIANS, "gdn-1").reason == "matched by email"


def test_a_guardian_without_email_is_linked_by_sms_phone():
    account = product_person("per_dad", ["guardian"], schools=(), phone="+1 (555) 010-2000")
    roster = family(guardian("gdn-1", email="", phone="555-010-2000", phone_type="Cell"))

    result = run(roster, account)

    assert result.write_for("gdn-1").record.id == "per_dad"
    assert result.line_for(Kind.GUARDIANS, "gdn-1").reason == "matched by SMS phone"


def test_a_home_phone_does_not_link_a_guardian():
    account = product_person("per_dad", ["guardian"], schools=(), phone="555-010-2000")
    roster = family(guardian("gdn-1", email="dad@example.org", phone="555-010-2000", phone_type="Home"))

    result = run(roster, account)

    assert result.write_for("gdn-1").op == "create"


def test_a_guardian_with_no_email_and_no_sms_phone_is_skipped_with_that_reason():
    roster = family(guardian("gdn-1", email="", phone="555-010-2000", phone_type="Home"))

    result = run(roster)

    assert result.writes_of(Kind.GUARDIANS) == []
    assert result.line_for(Kind.GUARDIANS, "gdn-1").reason == NO_REACH
    assert result.planner.summary.findings.guardians_skipped == {NO_REACH: 1}
    assert result.line_for(Kind.GUARDIAN_LINKS, "gdn-1:stu-1").action == "skipped"


def test_guardians_sharing_an_email_need_an_sms_phone_each():
    roster = family(
        guardian("gdn-1", email="family@example.org"),
        guardian("gdn-2", email="family@example.org", phone="555 010 3000", phone_type="cell"),
    )

    result = run(roster)

    assert result.line_for(Kind.GUARDIANS, "gdn-1").reason == NO_REACH
    assert result.write_for("gdn-2").op == "create"


# -- the same answer every night -----------------------------------------------------------------------


def next_night(night, roster: Roster, *accounts: DirectoryRecord, **settings):
    """The next run on the same roster: the directory as ``night``'s writes left it, and as candidates the
    product accounts it did not take over."""
    from test_planner import index_after

    taken = {w.record.id for w in night.writes}
    index = index_after(night.writes, directory_index(product_school()))
    candidates = CandidateIndex.from_records(a for a in accounts if a.id not in taken)
    return plan_with(roster, index, candidates, SyncSettings.model_validate(settings))


@pytest.mark.parametrize("order", ["phone only first", "email first"])
def test_a_phone_two_accounts_share_matches_nobody_on_the_next_night_either(order):
    # Given two product accounts with one phone: one also has the email of a roster guardian, who takes it;
    # the other guardian has only that phone, as a cell (the roster's order either way)
    kai = product_person("per_kai", ["guardian"], schools=(), phone="617 555 0153")
    noah = product_person("per_noah", ["guardian"], schools=(), phone="617 555 0153", email="noah@example.org")
    phone_only = guardian("gdn-kai", email="", phone="(617) 555-0153", phone_type="Cell")
    with_email = guardian("gdn-noah", email="noah@example.org", phone="(617) 555-0153", phone_type="Home")
    pair = [phone_only, with_email] if order == "phone only first" else [with_email, phone_only]
    roster = family(*pair)

    # When it syncs twice with nothing changed
    first = run(roster, kai, noah)
    second = next_night(first, roster, kai, noah)

    # Then the guardian with the email took their account the first night, and the phone matched nobody:
    # not the first night (two accounts have it), nor the next (one of them is now another guardian's)
    assert first.write_for("gdn-noah").record.id == "per_noah"
    for night in (first, second):
        line = night.line_for(Kind.GUARDIANS, "gdn-kai")
        assert line.action == "ambiguous" and AMBIGUOUS in line.reason
        assert [w for w in night.writes if w.record.provider_ids.get(PROVIDER) == "gdn-kai"] == []
    assert second.writes == []


def test_an_account_another_roster_person_took_keeps_its_key_from_matching_a_candidate():
    # Given a product student whom a roster student took the first night by SIS id
    kid = product_person("per_kid", ["student"], sis_id="A1")
    first = run(Roster(schools=[school()], people=[person("stu-1", sis_id="A1")]), kid, student_match_id="sis_id")

    # When a second roster student with that id comes the next night, and a product account with it too
    roster = Roster(schools=[school()], people=[person("stu-1", sis_id="A1"), person("stu-2", sis_id="A1")])
    late = product_person("per_late", ["student"], sis_id="A1")
    second = next_night(first, roster, kid, late, student_match_id="sis_id")

    # Then it is ambiguous (two accounts have the id, one of them another student's), not linked to the new one
    assert first.write_for("stu-1").record.id == "per_kid"
    line = second.line_for(Kind.STUDENTS, "stu-2")
    assert line.action == "ambiguous" and "already matched another roster person" in line.reason
    assert [w for w in second.writes if w.record.provider_ids.get(PROVIDER) == "stu-2"] == []


# -- one person, several roles ------------------------------------------------------------------------


def test_a_teacher_who_is_also_a_parent_gets_one_account_when_name_email_and_phone_agree():
    roster = family(guardian("gdn-1", given_name="Ada", family_name="Lovelace", email="ada@example.org"))
    roster.people.append(person("tch-1", Role.TEACHER, email="ADA@example.org"))

    result = run(roster)

    teacher = result.write_for("tch-1").record
    assert teacher.fields["roles"] == ["teacher", "guardian"]
    assert [w for w in result.writes_of(Kind.GUARDIANS)] == []
    merged = result.line_for(Kind.GUARDIANS, "gdn-1")
    assert merged.action == "merged" and merged.id == teacher.id
    (guardian_link,) = result.writes_of(Kind.GUARDIAN_LINKS)
    assert guardian_link.record.fields["guardian"] == teacher.id
    assert dict(result.planner.summary.findings.multi_role) == {"merged": 1}


@pytest.mark.parametrize(
    "changes",
    [{"given_name": "Augusta"}, {"phone": "555 010 4000", "phone_type": "cell"}],
)
def test_a_teacher_and_a_parent_sharing_an_email_stay_separate_when_name_or_phone_differ(changes):
    parent = {"given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.org"} | changes
    roster = family(guardian("gdn-1", **parent))
    roster.people.append(person("tch-1", Role.TEACHER, email="ada@example.org", phone="555 010 5000"))

    result = run(roster)

    assert result.write_for("tch-1").record.fields["roles"] == ["teacher"]
    lines = {line.action: line for line in result.lines if line.provider_id == "gdn-1"}
    if "phone" in changes:  # an SMS phone of their own: a separate account
        assert set(lines) == {"created", "separate_account"} and "tch-1" in lines["separate_account"].reason
        assert result.write_for("gdn-1").op == "create"
        assert dict(result.planner.summary.findings.multi_role) == {"separate": 1}
    else:  # the email is the teacher's and no SMS phone: the product could not reach them apart
        assert lines["skipped"].reason == NO_REACH


def test_phone_normalisation_drops_punctuation_and_the_us_country_code():
    assert normal_phone("+1 (555) 010-2000") == normal_phone("555.010.2000") == "5550102000"
    assert normal_phone("12345") == ""
