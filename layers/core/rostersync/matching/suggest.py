"""Suggest which product school is which provider school, and which product classroom is which section.

Before the first sync a district admin links the product's own schools (and classrooms) to the
provider's, because the sync matches by stored provider id only. These functions propose the pairs;
the admin confirms them (``rostersync schools match`` / ``classrooms match``). They do no I/O.

The rules, in the order a district admin would check them:

- An exact id match (school number, NCES id or state id, compared after trimming and dropping leading
  zeros, which spreadsheets lose) is ``high``. An id that *disagrees* beats a similar name: with no id
  agreeing the pair is vetoed; with one agreeing and another disagreeing it drops to ``low``.
- Names alone give at most ``medium`` (``NAME_MEDIUM``) or ``low`` (``NAME_LOW``), compared after
  normalising case, punctuation and "Elem."/"MS"-style abbreviations; two names with different numbers
  ("PS 12", "PS 21") never match on name.
- A classroom pairs only with a section of the school its own school is linked to. The teacher decides:
  a different teacher vetoes, so does a different period (a teacher teaches the same course in several
  periods); without a teacher on either side, a pair is at most ``low``.
- Pairs are one-to-one. Two equally good candidates are a tie: listed for the admin, never suggested.
  A record already linked is shown as linked and not suggested again. Whatever is left on either side
  is listed as unmatched, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rostersync.domain.records import ClassroomRecord, SchoolRecord

Confidence = Literal["high", "medium", "low"]
_RANK: dict[str, int] = {"high": 3, "medium": 2, "low": 1}
_BY_RANK: dict[int, Confidence] = {3: "high", 2: "medium", 1: "low"}

# Name similarity (difflib ratio of normalised names) needed for a name-only suggestion.
NAME_MEDIUM = 0.90
NAME_LOW = 0.75
# An id match whose names are less similar than this is only medium: a typo in an id is more likely
# than a school renamed beyond recognition.
NAME_DOUBT = 0.50
# Classrooms: a section's name (or course) this similar to the classroom's counts as agreeing.
CLASS_NAME_HIGH = 0.90
CLASS_NAME_MEDIUM = 0.75
CLASS_NAME_LOW = 0.50


# -- inputs --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductSchool:
    """A product school as matching sees it: the ids the product keeps, and its current link (if any)."""

    id: str
    name: str
    school_number: str = ""
    nces_id: str = ""
    state_id: str = ""
    provider_id: str = ""  # the provider id it is already linked to; "" when unlinked


@dataclass(frozen=True)
class ProductClassroom:
    id: str
    name: str
    school_id: str
    teacher_ids: tuple[str, ...] = ()  # product person ids
    period: str = ""
    grade: str = ""
    provider_id: str = ""


@dataclass(frozen=True)
class ProductPerson:
    """A product teacher: enough to tell whether it is a section's teacher."""

    id: str
    email: str = ""
    provider_id: str = ""


@dataclass(frozen=True)
class RosterTeacher:
    provider_id: str
    name: str = ""
    email: str = ""


@dataclass(frozen=True)
class Section:
    """A provider section with its teachers' provider ids (from the teacher enrollments)."""

    record: ClassroomRecord
    teacher_ids: tuple[str, ...] = ()


# -- results -------------------------------------------------------------------------------------------


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class Suggestion(_Result):
    product_id: str
    product_name: str
    provider_id: str
    provider_name: str
    confidence: Confidence
    reasons: list[str]
    school_id: str = ""  # classrooms: the product school both sides are in


class Linked(_Result):
    product_id: str
    product_name: str
    provider_id: str
    provider_name: str = ""
    in_roster: bool = True


class Tie(_Result):
    """Candidates that are equally good: the admin picks (``--confirm``), nothing is suggested."""

    product_ids: list[str]
    provider_ids: list[str]
    confidence: Confidence
    reason: str


class Unmatched(_Result):
    id: str
    name: str
    reason: str
    school_id: str = ""


class MatchSuggestions(_Result):
    suggestions: list[Suggestion] = Field(default_factory=list)
    linked: list[Linked] = Field(default_factory=list)
    ties: list[Tie] = Field(default_factory=list)
    unmatched_product: list[Unmatched] = Field(default_factory=list)
    unmatched_provider: list[Unmatched] = Field(default_factory=list)

    def accepted(self, confidence: Confidence = "high") -> list[Suggestion]:
        """The suggestions at ``confidence`` or better."""
        return [s for s in self.suggestions if _RANK[s.confidence] >= _RANK[confidence]]


# -- normalising ---------------------------------------------------------------------------------------

_ABBREVIATIONS = {
    "elem": "elementary",
    "es": "elementary",
    "ms": "middle",
    "hs": "high",
    "jhs": "junior high",
    "jr": "junior",
    "sr": "senior",
    "acad": "academy",
    "ctr": "center",
    "cntr": "center",
    "centre": "center",
    "intl": "international",
    "prep": "preparatory",
    "&": "and",
}
_NOT_A_NAME = {"school", "schools", "sch", "the", "of"}
_DROPPED_MARKS = re.compile(r"[.'’`]")
_SEPARATORS = re.compile(r"[^\w&]+")
_NUMBER = re.compile(r"\d+")


def normalise_id(value: str) -> str:
    """An id as compared: trimmed, case and separators ignored, leading zeros dropped from numbers."""
    text = re.sub(r"[\s\-_]", "", value.strip().casefold())
    if text.isdigit():
        return text.lstrip("0") or "0"
    return text


def normalise_school_name(name: str) -> str:
    """``"Ridgeview Elem. School"`` → ``"ridgeview elementary"``: what is left to compare of a school name."""
    words = _SEPARATORS.sub(" ", _DROPPED_MARKS.sub("", name.casefold()).replace("&", " & ")).split()
    expanded = " ".join(_ABBREVIATIONS.get(w, w) for w in words).split()
    return " ".join(w for w in expanded if w not in _NOT_A_NAME)


@lru_cache(maxsize=65_536)  # each classroom and section name is compared with every other of its school
def _normalise_text(text: str) -> str:
    return " ".join(_SEPARATORS.sub(" ", _DROPPED_MARKS.sub("", text.casefold())).split())


def similarity(a: str, b: str, floor: float = 0.0) -> float:
    """difflib's ratio of two already normalised strings; 0 when either is empty.

    ``floor``: a ratio that cannot reach it is returned as 0 after difflib's cheap upper bounds, without
    the full comparison (a district's every product school against every provider school adds up).
    """
    if not a or not b:
        return 0.0
    matcher = SequenceMatcher(None, a, b)
    if floor and (matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor):
        return 0.0
    return matcher.ratio()


# Words that say a school's level, not which school it is: compared apart, so two "… Elementary" schools
# are not similar for sharing the word.
_LEVEL_WORDS = {"elementary", "middle", "high", "junior", "senior", "primary", "intermediate"}


def _levels(name: str) -> set[str]:
    return {w for w in name.split() if w in _LEVEL_WORDS}


def school_name_similarity(a: str, b: str, floor: float = 0.0) -> float:
    """Similarity of two normalised school names, on what is left without the level words when both have some.

    ``"riverdale elementary"`` and ``"riverside elementary"`` compare as ``riverdale``/``riverside`` (0.78),
    not 0.90.
    """
    core_a = " ".join(w for w in a.split() if w not in _LEVEL_WORDS)
    core_b = " ".join(w for w in b.split() if w not in _LEVEL_WORDS)
    if core_a and core_b:
        return similarity(core_a, core_b, floor)
    return similarity(a, b, floor)


def _numbers(text: str) -> set[str]:
    return {n.lstrip("0") or "0" for n in _NUMBER.findall(text)}


def _percent(ratio: float) -> str:
    return f"{round(ratio * 100)} %"


# -- pairing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    product_id: str
    provider_id: str
    confidence: Confidence
    score: tuple[float, ...]  # equal scores are a tie
    reasons: tuple[str, ...]


def _pair_up(candidates: Iterable[_Candidate]) -> tuple[list[_Candidate], list[Tie]]:
    """One-to-one pairs, best first; equally good candidates for one record are a tie, not a guess.

    Candidates are taken by descending score. At each score, a candidate whose product record and provider
    record both have no other candidate at that score is accepted; the others form ties, and the records
    in a tie are not paired at a lower score either (the admin decides them).
    """
    by_score: dict[tuple[float, ...], list[_Candidate]] = {}
    for c in candidates:
        by_score.setdefault(c.score, []).append(c)
    taken_product: set[str] = set()
    taken_provider: set[str] = set()
    pairs: list[_Candidate] = []
    ties: list[Tie] = []
    for score in sorted(by_score, reverse=True):
        level = [
            c for c in by_score[score] if c.product_id not in taken_product and c.provider_id not in taken_provider
        ]
        per_product: dict[str, int] = {}
        per_provider: dict[str, int] = {}
        for c in level:
            per_product[c.product_id] = per_product.get(c.product_id, 0) + 1
            per_provider[c.provider_id] = per_provider.get(c.provider_id, 0) + 1
        tied = [c for c in level if per_product[c.product_id] > 1 or per_provider[c.provider_id] > 1]
        for c in level:
            if per_product[c.product_id] == 1 and per_provider[c.provider_id] == 1:
                pairs.append(c)
                taken_product.add(c.product_id)
                taken_provider.add(c.provider_id)
        for group in _groups(tied):
            products = sorted({c.product_id for c in group})
            providers = sorted({c.provider_id for c in group})
            taken_product.update(products)
            taken_provider.update(providers)
            ties.append(
                Tie(
                    product_ids=products,
                    provider_ids=providers,
                    confidence=group[0].confidence,
                    reason=f"{len(group)} equally good pairings ({'; '.join(group[0].reasons)}): pick one",
                )
            )
    return pairs, ties


def _groups(tied: Sequence[_Candidate]) -> list[list[_Candidate]]:
    """Tied candidates in groups that share a product or a provider record (connected components)."""
    groups: list[list[_Candidate]] = []
    for c in tied:
        joined = [g for g in groups if any(o.product_id == c.product_id or o.provider_id == c.provider_id for o in g)]
        merged = [c, *(o for g in joined for o in g)]
        groups = [g for g in groups if g not in joined] + [merged]
    return [sorted(g, key=lambda c: (c.product_id, c.provider_id)) for g in groups]


# -- schools -------------------------------------------------------------------------------------------


_ID_LABELS = ("school number", "NCES id", "state id")


@dataclass(frozen=True)
class _SchoolKey:
    """What comparing a school needs, computed once per school rather than once per pair."""

    name: str  # normalised
    core: str  # the normalised name without its level words
    levels: frozenset[str]
    numbers: frozenset[str]
    ids: tuple[str, str, str]  # school number, NCES id, state id, normalised ("" when absent)
    shown: tuple[str, str, str]  # the same, as given (trimmed), for the reasons

    @classmethod
    def of(cls, name: str, school_number: str, nces_id: str, state_id: str) -> _SchoolKey:
        normalised = normalise_school_name(name)
        given = (school_number.strip(), nces_id.strip(), state_id.strip())
        return cls(
            name=normalised,
            core=" ".join(w for w in normalised.split() if w not in _LEVEL_WORDS),
            levels=frozenset(_levels(normalised)),
            numbers=frozenset(_numbers(normalised)),
            ids=tuple(normalise_id(i) if i else "" for i in given),  # type: ignore[arg-type]
            shown=given,
        )


def _name_ratio(ours: _SchoolKey, theirs: _SchoolKey, matcher: SequenceMatcher[str], floor: float) -> float:
    """``school_name_similarity`` of two keys; ``matcher`` already holds ``theirs.core`` as its second sequence."""
    if not (ours.core and theirs.core):
        return similarity(ours.name, theirs.name, floor)
    matcher.set_seq1(ours.core)
    if floor and (matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor):
        return 0.0
    return matcher.ratio()


def _school_candidate(
    product: ProductSchool,
    ours: _SchoolKey,
    school: SchoolRecord,
    theirs: _SchoolKey,
    matcher: SequenceMatcher[str],
) -> _Candidate | None:
    agree: list[str] = []
    disagree: list[str] = []
    for label, a, b, shown_a, shown_b in zip(_ID_LABELS, ours.ids, theirs.ids, ours.shown, theirs.shown, strict=True):
        if a and b:
            if a == b:
                agree.append(f"{label} {shown_b} matches")
            else:
                disagree.append(f"{label} differs ({shown_a} ≠ {shown_b})")
    if disagree and not agree:
        return None  # an id that disagrees vetoes a name-only pairing
    if not agree:
        if ours.numbers and theirs.numbers and ours.numbers != theirs.numbers:
            return None  # "PS 12" is not "PS 21", however similar the letters
        if ours.levels and theirs.levels and ours.levels != theirs.levels:
            return None  # "Lakeside Middle" is not "Lakeside High"
    # Without an id, only a name above NAME_LOW counts: difflib's cheap bounds rule most pairs out first.
    ratio = _name_ratio(ours, theirs, matcher, floor=0.0 if agree else NAME_LOW)
    name = f"name {_percent(ratio)} similar"
    if agree and disagree:
        confidence: Confidence = "low"
        reasons = [*agree, *(f"but {d}" for d in disagree), name]
    elif agree:
        confidence = "high" if ratio >= NAME_DOUBT else "medium"
        reasons = [*agree, name if ratio >= NAME_DOUBT else f"but the names differ ({name})"]
    elif ratio >= NAME_MEDIUM:
        confidence, reasons = "medium", [name]
    elif ratio >= NAME_LOW:
        confidence, reasons = "low", [name]
    else:
        return None
    return _Candidate(
        product_id=product.id,
        provider_id=school.provider_id,
        confidence=confidence,
        score=(_RANK[confidence], len(agree) - len(disagree), round(ratio, 2)),
        reasons=tuple(reasons),
    )


def suggest_school_pairs(
    provider_schools: Iterable[SchoolRecord], product_schools: Iterable[ProductSchool]
) -> MatchSuggestions:
    """Pair product schools with the provider's (see the module docstring for the rules)."""
    roster = {s.provider_id: s for s in provider_schools}
    products = list(product_schools)
    linked = [
        Linked(
            product_id=p.id,
            product_name=p.name,
            provider_id=p.provider_id,
            provider_name=roster[p.provider_id].name if p.provider_id in roster else "",
            in_roster=p.provider_id in roster,
        )
        for p in products
        if p.provider_id
    ]
    carried = {p.provider_id for p in products if p.provider_id}
    open_products = [p for p in products if not p.provider_id]
    open_schools = [s for s in roster.values() if s.provider_id not in carried]
    product_keys = [(p, _SchoolKey.of(p.name, p.school_number, p.nces_id, p.state_id)) for p in open_products]
    candidates: list[_Candidate] = []
    for school in open_schools:
        theirs = _SchoolKey.of(school.name, school.school_number, school.nces_id, school.state_id)
        matcher: SequenceMatcher[str] = SequenceMatcher(None, "", theirs.core)  # difflib caches its 2nd sequence
        for product, ours in product_keys:
            candidate = _school_candidate(product, ours, school, theirs, matcher)
            if candidate is not None:
                candidates.append(candidate)
    pairs, ties = _pair_up(candidates)
    names = {p.id: p.name for p in products}
    suggestions = [
        Suggestion(
            product_id=c.product_id,
            product_name=names[c.product_id],
            provider_id=c.provider_id,
            provider_name=roster[c.provider_id].name,
            confidence=c.confidence,
            reasons=list(c.reasons),
        )
        for c in pairs
    ]
    decided_products = {c.product_id for c in pairs} | {p for t in ties for p in t.product_ids}
    decided_schools = {c.provider_id for c in pairs} | {p for t in ties for p in t.provider_ids}
    return MatchSuggestions(
        suggestions=_by_name(suggestions),
        linked=sorted(linked, key=lambda x: x.product_name.casefold()),
        ties=ties,
        unmatched_product=[
            Unmatched(id=p.id, name=p.name, reason="no provider school with a matching id or a similar name")
            for p in sorted(open_products, key=lambda p: p.name.casefold())
            if p.id not in decided_products
        ],
        unmatched_provider=[
            Unmatched(id=s.provider_id, name=s.name, reason="no product school with a matching id or a similar name")
            for s in sorted(open_schools, key=lambda s: s.name.casefold())
            if s.provider_id not in decided_schools
        ],
    )


def _by_name(suggestions: list[Suggestion]) -> list[Suggestion]:
    return sorted(suggestions, key=lambda s: (s.school_id, -_RANK[s.confidence], s.product_name.casefold()))


# -- classrooms ----------------------------------------------------------------------------------------

_PERIOD_WORDS = re.compile(r"^(period|per|p)\s*", re.IGNORECASE)
_GRADES = {
    "k": "k",
    "kg": "k",
    "kindergarten": "k",
    "pk": "pk",
    "prek": "pk",
    "prekindergarten": "pk",
    "tk": "tk",
    "transitionalkindergarten": "tk",
}


def normalise_period(value: str) -> str:
    """``"Period 01"``, ``"P1"`` and ``"1"`` are one period."""
    text = _PERIOD_WORDS.sub("", value.strip()).strip().casefold()
    if text.isdigit():
        return text.lstrip("0") or "0"
    return text


def normalise_grade(value: str) -> str:
    """``"01"``, ``"1"``, ``"1st"`` are one grade; ``"K"``, ``"Kindergarten"`` another."""
    text = re.sub(r"[\s\-_.]", "", value.strip().casefold())
    text = re.sub(r"^(\d+)(st|nd|rd|th)(grade)?$", r"\1", text)
    text = re.sub(r"^grade(\d+)$", r"\1", text)
    if text.isdigit():
        return text.lstrip("0") or "0"
    return _GRADES.get(text, text)


def normalise_email(value: str) -> str:
    return value.strip().casefold()


def _teacher_agreement(
    classroom: ProductClassroom,
    section: Section,
    people: Mapping[str, ProductPerson],
    teachers: Mapping[str, RosterTeacher],
) -> tuple[str, str]:
    """``("agree" | "disagree" | "unknown", reason)``: is the classroom's teacher one of the section's?"""
    if not classroom.teacher_ids or not section.teacher_ids:
        missing = "the section has no teacher" if not section.teacher_ids else "the classroom has no teacher"
        return "unknown", missing
    section_teachers = set(section.teacher_ids)
    section_emails = {normalise_email(teachers[t].email) for t in section.teacher_ids if t in teachers} - {""}
    for person_id in classroom.teacher_ids:
        person = people.get(person_id)
        if person is None:
            continue
        if person.provider_id and person.provider_id in section_teachers:
            return "agree", "same teacher (linked)"
        if person.email and normalise_email(person.email) in section_emails:
            return "agree", "same teacher (email)"
    return "disagree", "different teacher"


def _classroom_candidate(
    classroom: ProductClassroom,
    section: Section,
    people: Mapping[str, ProductPerson],
    teachers: Mapping[str, RosterTeacher],
) -> _Candidate | None:
    record = section.record
    teacher, teacher_reason = _teacher_agreement(classroom, section, people, teachers)
    if teacher == "disagree":
        return None
    ours = _normalise_text(classroom.name)
    # Without a teacher only a near-identical name counts: the cheap bounds rule the rest out.
    floor = 0.0 if teacher == "agree" else CLASS_NAME_HIGH
    ratio = max(
        similarity(ours, _normalise_text(record.name), floor), similarity(ours, _normalise_text(record.course), floor)
    )
    period = _compare(classroom.period, record.period, normalise_period)
    if period == "disagree":
        return None  # a teacher's same course in another period is another class
    grade = _compare(classroom.grade, record.grade, normalise_grade)
    reasons = [teacher_reason, f"name {_percent(ratio)} similar"]
    if period == "agree":
        reasons.append(f"same period ({record.period})")
    if grade == "agree":
        reasons.append(f"same grade ({record.grade})")
    if teacher == "agree":
        if (period == "agree" and ratio >= CLASS_NAME_LOW) or ratio >= CLASS_NAME_HIGH:
            rank = 3
        elif period == "agree" or grade == "agree" or ratio >= CLASS_NAME_MEDIUM:
            rank = 2
        elif ratio >= CLASS_NAME_LOW:
            rank = 1
        else:
            return None
    elif ratio >= CLASS_NAME_HIGH:
        rank = 1  # no teacher to compare: a name is not enough for more
    else:
        return None
    if grade == "disagree":
        rank -= 1
        reasons.append(f"but the grade differs ({classroom.grade} ≠ {record.grade})")
        if rank == 0:
            return None
    agreements = sum(1 for x in (teacher, period, grade) if x == "agree")
    return _Candidate(
        product_id=classroom.id,
        provider_id=record.provider_id,
        confidence=_BY_RANK[rank],
        score=(rank, agreements, round(ratio, 2)),
        reasons=tuple(reasons),
    )


def _compare(ours: str, theirs: str, normalise: Callable[[str], str]) -> str:
    """``agree``/``disagree`` when both sides have a value, else ``unknown``."""
    if not ours.strip() or not theirs.strip():
        return "unknown"
    return "agree" if normalise(ours) == normalise(theirs) else "disagree"


def suggest_classroom_links(
    sections: Iterable[Section],
    teachers: Mapping[str, RosterTeacher],
    classrooms: Iterable[ProductClassroom],
    people: Mapping[str, ProductPerson],
    school_links: Mapping[str, str],
) -> MatchSuggestions:
    """Pair product classrooms with sections, only within schools linked to each other.

    Parameters
    ----------
    sections
        The provider's sections with their teachers' provider ids.
    teachers
        The section teachers by provider id (name, email).
    classrooms
        The product's classrooms.
    people
        The product's teachers by product id (email, provider link).
    school_links
        Product school id → the provider school id it is linked to.
    """
    roster = {s.record.provider_id: s for s in sections}
    products = list(classrooms)
    product_school_of = {provider: product for product, provider in school_links.items()}
    linked = [
        Linked(
            product_id=c.id,
            product_name=c.name,
            provider_id=c.provider_id,
            provider_name=roster[c.provider_id].record.name if c.provider_id in roster else "",
            in_roster=c.provider_id in roster,
        )
        for c in products
        if c.provider_id
    ]
    carried = {c.provider_id for c in products if c.provider_id}
    open_sections: dict[str, list[Section]] = {}
    unmatched_provider: list[Unmatched] = []
    for section in roster.values():
        if section.record.provider_id in carried:
            continue
        school = product_school_of.get(section.record.school)
        if school is None:
            unmatched_provider.append(
                Unmatched(id=section.record.provider_id, name=section.record.name, reason="its school is not matched")
            )
            continue
        open_sections.setdefault(school, []).append(section)
    candidates: list[_Candidate] = []
    unmatched_product: list[Unmatched] = []
    open_products = [c for c in products if not c.provider_id]
    for classroom in open_products:
        if classroom.school_id not in school_links:
            continue  # listed below: its school is not linked
        for section in open_sections.get(classroom.school_id, []):
            candidate = _classroom_candidate(classroom, section, people, teachers)
            if candidate is not None:
                candidates.append(candidate)
    pairs, ties = _pair_up(candidates)
    school_of_product = {c.id: c.school_id for c in products}
    names = {c.id: c.name for c in products}
    suggestions = [
        Suggestion(
            product_id=c.product_id,
            product_name=names[c.product_id],
            provider_id=c.provider_id,
            provider_name=roster[c.provider_id].record.name,
            confidence=c.confidence,
            reasons=list(c.reasons),
            school_id=school_of_product[c.product_id],
        )
        for c in pairs
    ]
    decided_products = {c.product_id for c in pairs} | {p for t in ties for p in t.product_ids}
    decided_sections = {c.provider_id for c in pairs} | {p for t in ties for p in t.provider_ids}
    for classroom in sorted(open_products, key=lambda c: (c.school_id, c.name.casefold())):
        if classroom.id in decided_products:
            continue
        reason = (
            "no section of its school with the same teacher or a similar name"
            if classroom.school_id in school_links
            else "its school is not matched to a provider school"
        )
        unmatched_product.append(
            Unmatched(id=classroom.id, name=classroom.name, reason=reason, school_id=classroom.school_id)
        )
    for school, group in sorted(open_sections.items()):
        for section in sorted(group, key=lambda s: s.record.name.casefold()):
            if section.record.provider_id not in decided_sections:
                reason = "no product classroom to link" + (
                    "" if section.teacher_ids else " (the section has no teacher)"
                )
                unmatched_provider.append(
                    Unmatched(id=section.record.provider_id, name=section.record.name, reason=reason, school_id=school)
                )
    return MatchSuggestions(
        suggestions=_by_name(suggestions),
        linked=sorted(linked, key=lambda x: x.product_name.casefold()),
        ties=ties,
        unmatched_product=unmatched_product,
        unmatched_provider=unmatched_provider,
    )
