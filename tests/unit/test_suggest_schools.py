"""School pairing suggestions: each rule, and the pairings that must not be suggested."""

from __future__ import annotations

import pytest

from rostersync.domain.records import SchoolRecord
from rostersync.matching.suggest import (
    ProductSchool,
    normalise_id,
    normalise_school_name,
    suggest_school_pairs,
)


def school(provider_id: str, name: str, **ids: str) -> SchoolRecord:
    return SchoolRecord(provider="clever", provider_id=provider_id, name=name, **ids)


def pairs(result: object) -> dict[str, tuple[str, str]]:
    return {s.product_id: (s.provider_id, s.confidence) for s in result.suggestions}  # type: ignore[attr-defined]


def test_an_exact_nces_id_is_a_high_confidence_pair_with_its_reason() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Summit High School", nces_id="369999900104")],
        [ProductSchool("sch-1", "Summit HS", nces_id="369999900104")],
    )
    (suggestion,) = result.suggestions
    assert (suggestion.provider_id, suggestion.confidence) == ("c-1", "high")
    assert "NCES id 369999900104 matches" in suggestion.reasons
    assert "name 100 % similar" in suggestion.reasons
    assert not result.unmatched_product and not result.unmatched_provider


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("school_number", "school_number"), ("state_id", "state_id")],
)
def test_school_number_and_state_id_match_too(ours: str, theirs: str) -> None:
    result = suggest_school_pairs(
        [school("c-1", "Lakeside Middle School", **{theirs: "106"})],
        [ProductSchool("sch-1", "Lakeside Middle", **{ours: "106"})],
    )
    assert pairs(result) == {"sch-1": ("c-1", "high")}


def test_ids_are_compared_after_trimming_and_leading_zeros() -> None:
    assert normalise_id(" 00104 ") == normalise_id("104")
    assert normalise_id("ab-12") == normalise_id("AB12")
    result = suggest_school_pairs(
        [school("c-1", "Summit High School", school_number="104")],
        [ProductSchool("sch-1", "Summit High School", school_number=" 000104")],
    )
    assert pairs(result) == {"sch-1": ("c-1", "high")}


def test_similar_names_alone_are_medium_or_low_never_high() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Ridgeview Elementary School"), school("c-2", "Northside Math & Science Academy")],
        [ProductSchool("sch-1", "Ridgeview Elem."), ProductSchool("sch-2", "North Side Math and Science Acad")],
    )
    assert pairs(result) == {"sch-1": ("c-1", "medium"), "sch-2": ("c-2", "medium")}


def test_names_are_normalised_for_case_punctuation_and_school_words() -> None:
    assert normalise_school_name("Ridgeview Elem. School") == "ridgeview elementary"
    assert normalise_school_name("THE Lakeside MS") == "lakeside middle"
    assert normalise_school_name("St. Mary's & Joseph") == "st marys and joseph"


def test_a_somewhat_similar_name_is_low() -> None:
    result = suggest_school_pairs([school("c-1", "Riverdale Elementary")], [ProductSchool("s-1", "Riverside Elem")])
    assert pairs(result) == {"s-1": ("c-1", "low")}


def test_a_dissimilar_name_is_not_suggested_and_both_sides_are_listed_unmatched() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Summit High School")], [ProductSchool("sch-9", "Demo Adult Learning Center")]
    )
    assert result.suggestions == []
    assert [u.id for u in result.unmatched_product] == ["sch-9"]
    assert [u.id for u in result.unmatched_provider] == ["c-1"]


def test_middle_and_high_schools_of_the_same_name_do_not_match_on_name() -> None:
    result = suggest_school_pairs([school("c-1", "Lakeside High School")], [ProductSchool("s-1", "Lakeside Middle")])
    assert result.suggestions == []


def test_names_with_different_numbers_never_match_on_name() -> None:
    result = suggest_school_pairs([school("c-1", "P.S. 12")], [ProductSchool("s-1", "PS 21")])
    assert result.suggestions == []


def test_an_id_that_disagrees_vetoes_a_name_only_pair() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Summit High School", nces_id="369999900104")],
        [ProductSchool("sch-1", "Summit High School", nces_id="369999900999")],
    )
    assert result.suggestions == []
    assert [u.id for u in result.unmatched_product] == ["sch-1"]


def test_one_id_agreeing_and_another_disagreeing_is_only_low_and_says_so() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Summit High School", nces_id="369999900104", school_number="104")],
        [ProductSchool("sch-1", "Summit High School", nces_id="369999900104", school_number="105")],
    )
    (suggestion,) = result.suggestions
    assert suggestion.confidence == "low"
    assert "but school number differs (105 ≠ 104)" in suggestion.reasons
    assert result.accepted("high") == []


def test_an_id_match_with_a_very_different_name_is_only_medium() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Summit High School", state_id="999999000104")],
        [ProductSchool("sch-1", "Eastwood Primary Annex", state_id="999999000104")],
    )
    assert pairs(result) == {"sch-1": ("c-1", "medium")}


def test_an_already_linked_school_is_shown_as_linked_and_not_suggested_again() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Summit High School", nces_id="1"), school("c-2", "Summit High School Annex")],
        [ProductSchool("sch-1", "Summit High School", nces_id="1", provider_id="c-1")],
    )
    assert result.suggestions == []
    (linked,) = result.linked
    assert (linked.product_id, linked.provider_id, linked.provider_name, linked.in_roster) == (
        "sch-1",
        "c-1",
        "Summit High School",
        True,
    )
    assert [u.id for u in result.unmatched_provider] == ["c-2"]


def test_a_link_to_a_school_gone_from_the_roster_says_so() -> None:
    result = suggest_school_pairs([], [ProductSchool("sch-1", "Old School", provider_id="c-gone")])
    assert [(x.provider_id, x.in_roster) for x in result.linked] == [("c-gone", False)]


def test_two_equally_good_candidates_are_a_tie_for_the_admin_not_a_suggestion() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Lincoln Elementary School"), school("c-2", "Lincoln Elementary School")],
        [ProductSchool("sch-1", "Lincoln Elementary")],
    )
    assert result.suggestions == []
    (tie,) = result.ties
    assert (tie.product_ids, tie.provider_ids) == (["sch-1"], ["c-1", "c-2"])
    # the tied schools are in the tie, not also "unmatched"
    assert result.unmatched_product == [] and result.unmatched_provider == []


def test_two_product_schools_claiming_one_provider_school_are_a_tie() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Summit High School", nces_id="7")],
        [ProductSchool("sch-1", "Summit High", nces_id="7"), ProductSchool("sch-2", "Summit High", nces_id="007")],
    )
    assert result.suggestions == []
    assert [(t.product_ids, t.provider_ids) for t in result.ties] == [(["sch-1", "sch-2"], ["c-1"])]


def test_a_better_candidate_wins_over_a_weaker_one_for_the_same_school() -> None:
    result = suggest_school_pairs(
        [school("c-1", "Summit High School", nces_id="7"), school("c-2", "Summit High School")],
        [ProductSchool("sch-1", "Summit High School", nces_id="7")],
    )
    assert pairs(result) == {"sch-1": ("c-1", "high")}
    assert [u.id for u in result.unmatched_provider] == ["c-2"]


def test_pairs_are_one_to_one() -> None:
    roster = [school("c-1", "Summit High School", nces_id="1"), school("c-2", "Summit High School West")]
    product = [ProductSchool("sch-1", "Summit High School", nces_id="1"), ProductSchool("sch-2", "Summit High School")]
    result = suggest_school_pairs(roster, product)
    assert pairs(result)["sch-1"] == ("c-1", "high")
    assert len({s.provider_id for s in result.suggestions}) == len(result.suggestions)


def test_the_demo_districts_schools_pair_by_id() -> None:
    roster = [
        school("a4", "Summit High School", school_number="104", nces_id="369999900104", state_id="999999000104"),
        school("a5", "Ridgeview Elementary School", school_number="105", nces_id="369999900105"),
        school("a6", "Lakeside Middle School", school_number="106", nces_id="369999900106"),
        school("b7", "Northside Math & Science Academy", school_number="207", nces_id="369999900207"),
    ]
    product = [
        ProductSchool("sch-summit", "Summit High School", nces_id="369999900104"),
        ProductSchool("sch-ridge", "Ridgeview Elementary", school_number="105"),
        ProductSchool("sch-lake", "Lakeside Middle School", state_id="", school_number="106"),
        ProductSchool("sch-adult", "Demo Adult Learning Center"),
    ]
    result = suggest_school_pairs(roster, product)
    assert pairs(result) == {"sch-summit": ("a4", "high"), "sch-ridge": ("a5", "high"), "sch-lake": ("a6", "high")}
    assert [u.id for u in result.unmatched_product] == ["sch-adult"]
    assert [u.id for u in result.unmatched_provider] == ["b7"]


def test_level_words_do_not_make_two_schools_similar() -> None:
    from rostersync.matching.suggest import school_name_similarity

    riverdale, riverside = normalise_school_name("Riverdale Elementary"), normalise_school_name("Riverside Elem")
    assert school_name_similarity(riverdale, riverside) < 0.8
    assert school_name_similarity(riverdale, riverside, floor=0.9) == 0.0  # below the floor: not computed
    assert school_name_similarity("elementary", "elementary") == 1.0  # a name of level words only still compares
