"""Classroom ↔ section suggestions: teacher, name, period and grade; never across schools."""

from __future__ import annotations

from rostersync.domain.records import ClassroomRecord
from rostersync.matching.suggest import (
    MatchSuggestions,
    ProductClassroom,
    ProductPerson,
    RosterTeacher,
    Section,
    normalise_grade,
    normalise_period,
    suggest_classroom_links,
)

SCHOOLS = {"sch-1": "c-school-1", "sch-2": "c-school-2"}  # product school → provider school
TEACHERS = {
    "t-1": RosterTeacher("t-1", "Ada Trantow", "A.Trantow@Example.org"),
    "t-2": RosterTeacher("t-2", "Ben Greene", "ben.greene@example.org"),
}
PEOPLE = {
    "per-ada": ProductPerson("per-ada", email=" a.trantow@example.org ", provider_id=""),
    "per-ben": ProductPerson("per-ben", email="", provider_id="t-2"),
}


def section(
    provider_id: str, name: str, teachers: tuple[str, ...] = ("t-1",), school: str = "c-school-1", **fields: str
) -> Section:
    record = ClassroomRecord(provider="clever", provider_id=provider_id, school=school, name=name, **fields)
    return Section(record, teachers)


def classroom(
    class_id: str, name: str, teachers: tuple[str, ...] = ("per-ada",), school_id: str = "sch-1", **fields: str
) -> ProductClassroom:
    return ProductClassroom(class_id, name, school_id, teacher_ids=teachers, **fields)


def suggest(sections: list[Section], classrooms: list[ProductClassroom]) -> MatchSuggestions:
    return suggest_classroom_links(sections, TEACHERS, classrooms, PEOPLE, SCHOOLS)


def pairs(result: MatchSuggestions) -> dict[str, tuple[str, str]]:
    return {s.product_id: (s.provider_id, s.confidence) for s in result.suggestions}


def test_same_teacher_by_email_same_period_and_a_similar_name_is_high() -> None:
    result = suggest(
        [section("s-1", "AP English Language - Trantow", period="3")],
        [classroom("cls-1", "AP English Language (Ms. Trantow)", period="P3")],
    )
    (suggestion,) = result.suggestions
    assert (suggestion.provider_id, suggestion.confidence, suggestion.school_id) == ("s-1", "high", "sch-1")
    assert "same teacher (email)" in suggestion.reasons and "same period (3)" in suggestion.reasons


def test_the_teacher_can_agree_through_the_persons_provider_link() -> None:
    result = suggest(
        [section("s-1", "Algebra I", teachers=("t-2",))],
        [classroom("cls-1", "Algebra I", teachers=("per-ben",))],
    )
    assert pairs(result) == {"cls-1": ("s-1", "high")}
    assert "same teacher (linked)" in result.suggestions[0].reasons


def test_same_teacher_and_grade_with_a_different_name_is_medium() -> None:
    result = suggest(
        [section("s-1", "Homeroom 4B", grade="04")],
        [classroom("cls-1", "Ms. Trantow's class", grade="4")],
    )
    assert pairs(result) == {"cls-1": ("s-1", "medium")}


def test_a_different_teacher_vetoes_however_similar_the_name() -> None:
    result = suggest(
        [section("s-1", "Algebra I", teachers=("t-2",), period="1")],
        [classroom("cls-1", "Algebra I", teachers=("per-ada",), period="1")],
    )
    assert result.suggestions == []
    assert [u.id for u in result.unmatched_product] == ["cls-1"]
    assert [u.id for u in result.unmatched_provider] == ["s-1"]


def test_a_different_period_vetoes_the_same_teachers_same_course() -> None:
    result = suggest(
        [section("s-1", "Algebra I", period="2")],
        [classroom("cls-1", "Algebra I", period="Period 1")],
    )
    assert result.suggestions == []


def test_a_different_grade_lowers_the_confidence() -> None:
    result = suggest([section("s-1", "Algebra I", grade="9")], [classroom("cls-1", "Algebra I", grade="10")])
    (suggestion,) = result.suggestions
    assert suggestion.confidence == "medium"
    assert "but the grade differs (10 ≠ 9)" in suggestion.reasons


def test_a_section_without_a_teacher_gets_at_most_a_low_suggestion() -> None:
    result = suggest(
        [section("s-1", "Chess Club", teachers=(), period="7")],
        [classroom("cls-1", "Chess Club", period="7")],
    )
    assert pairs(result) == {"cls-1": ("s-1", "low")}
    assert "the section has no teacher" in result.suggestions[0].reasons


def test_without_a_teacher_a_merely_similar_name_is_not_enough() -> None:
    result = suggest([section("s-1", "Chess Club", teachers=())], [classroom("cls-1", "Chess Team", teachers=())])
    assert result.suggestions == []


def test_never_across_schools() -> None:
    result = suggest(
        [section("s-1", "Algebra I", school="c-school-2", period="1")],
        [classroom("cls-1", "Algebra I", school_id="sch-1", period="1")],
    )
    assert result.suggestions == []
    assert result.unmatched_provider[0].school_id == "sch-2"


def test_sections_and_classrooms_of_unmatched_schools_are_listed_not_paired() -> None:
    result = suggest(
        [section("s-1", "Algebra I", school="c-school-9")],
        [classroom("cls-1", "Algebra I", school_id="sch-9")],
    )
    assert result.suggestions == []
    assert [(u.id, u.reason) for u in result.unmatched_provider] == [("s-1", "its school is not matched")]
    assert [(u.id, u.reason) for u in result.unmatched_product] == [
        ("cls-1", "its school is not matched to a provider school")
    ]


def test_a_teachers_same_course_in_two_periods_is_a_tie_when_the_classroom_has_no_period() -> None:
    result = suggest(
        [section("s-1", "Algebra I", period="1"), section("s-2", "Algebra I", period="2")],
        [classroom("cls-1", "Algebra I")],
    )
    assert result.suggestions == []
    assert [(t.product_ids, t.provider_ids) for t in result.ties] == [(["cls-1"], ["s-1", "s-2"])]


def test_an_already_linked_classroom_is_shown_as_linked_and_its_section_is_not_offered_again() -> None:
    linked = ProductClassroom("cls-1", "Algebra I", "sch-1", teacher_ids=("per-ada",), provider_id="s-1")
    result = suggest([section("s-1", "Algebra I")], [linked, classroom("cls-2", "Algebra I")])
    assert [(x.product_id, x.provider_id) for x in result.linked] == [("cls-1", "s-1")]
    assert result.suggestions == []
    assert [u.id for u in result.unmatched_product] == ["cls-2"]


def test_period_and_grade_normalising() -> None:
    assert normalise_period("Period 01") == normalise_period("P1") == normalise_period("1") == "1"
    assert normalise_period("A") != normalise_period("B")
    assert normalise_grade("01") == normalise_grade("1st") == normalise_grade("Grade 1") == "1"
    assert normalise_grade("Kindergarten") == normalise_grade("K") == "k"
    assert normalise_grade("PreKindergarten") != normalise_grade("Kindergarten")
