"""The readiness checklist: what a district admin fixes or reviews before enabling sync.

A pure function over what the run already knows (the plan summary and its findings, how the fetch went,
the error count, the deletion-threshold checks), so a self-check and a real run compute it the same way
from the same data. Each item names the command that fixes it. Details carry counts and school names,
never a person's name or contact details: the report is read by people who may not see them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rostersync.domain.records import Kind
from rostersync.matching import plan
from rostersync.matching.archive import ThresholdCheck, check_deletion_threshold
from rostersync.reports.model import (
    KIND_LABELS,
    Findings,
    KindCounts,
    ProductSchool,
    ProviderSchool,
    ReadinessItem,
    ReadinessStatus,
)

PASS, WARN, FAIL = ReadinessStatus.PASS, ReadinessStatus.WARN, ReadinessStatus.FAIL
NAMES_SHOWN = 5
"""School names a detail lists before "and N more" (the findings section of the HTML lists them all)."""

_MATCHED_SCHOOL_COUNTS = ("created", "updated", "linked", "restored", "unchanged")


@dataclass(frozen=True)
class RunFacts:
    """What the checklist is computed from, gathered by ``steps.report.write_report``.

    ``planned`` is False when Match never wrote a summary (the run failed before it): then only the run
    and fetch items can be judged. ``findings`` is None when the summary carries none (a run from before
    findings existed). ``fetch_complete`` is None when the roster was not fetched at all. ``threshold``
    holds every kind with records to archive (``check_deletion_threshold``), and ``threshold_checked`` is
    False when the check was not made (an incomplete fetch archives nothing, so there is none).
    """

    district_id: str
    dry_run: bool = False
    planned: bool = False
    counts: Mapping[Kind, KindCounts] = field(default_factory=dict)
    findings: Findings | None = None
    fetch_complete: bool | None = None
    fetch_problems: Sequence[str] = ()
    fetched_records: int = 0
    errors_total: int = 0
    threshold: Mapping[Kind, ThresholdCheck] = field(default_factory=dict)
    threshold_checked: bool = True
    limit_percent: float = 10.0
    emptied_schools: Mapping[str, int] = field(default_factory=dict)
    failure_reason: str | None = None

    @classmethod
    def from_summary(
        cls,
        summary: dict[str, Any] | None,
        *,
        district_id: str,
        dry_run: bool = False,
        fetch_complete: bool | None = True,
        fetch_problems: Sequence[str] = (),
        fetched_records: int = 0,
        limit_percent: float = 10.0,
        errors_total: int = 0,
        failure_reason: str | None = None,
    ) -> RunFacts:
        """Read Match's ``plan/summary.json`` (None: Match never ran) into the facts the checklist needs.

        Counts and findings a summary lacks read as zero. The deletion threshold is checked only after a
        complete fetch: an incomplete one archives nothing (people on unread pages only look absent), so
        there is no threshold to hold, and no emptied school either.
        """
        if not summary:
            return cls(
                district_id=district_id,
                dry_run=dry_run,
                counts={kind: KindCounts() for kind in Kind},
                fetch_complete=fetch_complete,
                fetch_problems=tuple(fetch_problems),
                fetched_records=fetched_records,
                errors_total=errors_total,
                threshold_checked=False,
                limit_percent=limit_percent,
                failure_reason=failure_reason,
            )
        checked = fetch_complete is not False
        raw_counts = summary.get("counts") or {}
        threshold = (
            check_deletion_threshold(
                {Kind(k): int(v) for k, v in (summary.get("archive_candidates") or {}).items()},
                {Kind(k): int(v) for k, v in (summary.get("managed") or {}).items()},
                limit_percent,
            )
            if checked
            else {}
        )
        return cls(
            district_id=district_id,
            dry_run=dry_run,
            planned=True,
            counts={kind: KindCounts.from_summary(raw_counts.get(kind.value)) for kind in Kind},
            findings=Findings.from_summary(summary),
            fetch_complete=fetch_complete,
            fetch_problems=tuple(fetch_problems),
            fetched_records=fetched_records,
            errors_total=errors_total,
            threshold=threshold,
            threshold_checked=checked,
            limit_percent=limit_percent,
            emptied_schools={str(k): int(v) for k, v in (summary.get("emptied_schools") or {}).items()}
            if checked
            else {},
            failure_reason=failure_reason,
        )

    def count(self, kind: Kind, column: str) -> int:
        counts = self.counts.get(kind)
        return int(getattr(counts, column)) if counts is not None else 0

    def total(self, column: str) -> int:
        return sum(int(getattr(counts, column)) for counts in self.counts.values())


def readiness_checklist(facts: RunFacts) -> list[ReadinessItem]:
    """Return the readiness checklist of a run, in the order an admin works through it.

    The rules (``fail`` blocks enabling sync; ``warn`` asks for a look; ``pass`` needs nothing):

    - **Run finished** (only when the run failed): fail, with the failure reason.
    - **Roster fetched completely**: fail if a page could not be read or the roster was not fetched;
      pass otherwise.
    - **Schools matched**: fail if no provider school is matched to a product school; warn if provider
      schools in scope have no product school, or product schools are linked to no provider school;
      pass otherwise. Without findings (an older run), provider schools skipped stand for unmatched ones.
    - **Deletion threshold**: fail if a kind would archive more than the limit of its sync-managed
      records, or a school would lose all its students (both hold archiving back); warn if it could not
      be checked (incomplete fetch); pass otherwise, with what would be archived.
    - **Roster records with errors**: warn if any record cannot be used (``errors.csv``); pass if none.
    - **Sections without a teacher**, **Students in no section**: warn if any; pass if none.
    - **Guardians skipped**: warn if any is skipped for a reason the admin can fix (no unique email nor SMS
      phone, ambiguous, links the settings leave out), with the count per reason and what fixes each;
      pass if none, or only because their students are not synced or guardians are off.
    - **Duplicate candidates** (same name and date of birth as a product student, never merged unasked):
      warn if any; pass if none.
    - **Ambiguous matches** (several product people fit one roster person, none linked): warn if any.
    - **Students not in the sync** (product students of synced schools no roster record matched): warn
      with "N in M schools" and the clean-up command (``rostersync cleanup archive-unmanaged``).
    - **Possible duplicates** (only after a real sync: students it created that look like product
      students): warn with the count and ``rostersync duplicates list``.
    - **People in several roles**: always pass; says how many get one account and how many separate.
    - **Manual edits**: warn if edited fields would be overwritten; pass if they are kept (or none).
    - **Unlinked sections**: always pass; says how many would get a new classroom or be skipped, and
      the setting that decides (``classrooms.create_for_unlinked_sections``).

    Parameters
    ----------
    facts : RunFacts
        The run's summary, fetch outcome, error count and threshold checks.

    Returns
    -------
    list[ReadinessItem]
        Never empty; the report is ready when no item fails.
    """
    items: list[ReadinessItem] = []
    if facts.failure_reason is not None:
        items.append(_run_failed(facts))
    items.append(_fetched(facts))
    if not facts.planned:
        if facts.failure_reason is None:
            items.append(
                ReadinessItem(
                    status=FAIL,
                    check="Roster matched",
                    detail="The roster was not matched against the directory, so nothing else could be checked.",
                    action=f"Run {_again(facts)} again.",
                )
            )
        return items
    findings = facts.findings or Findings()
    items += [
        _schools(facts),
        _threshold(facts),
        _errors(facts),
        _count_item(
            facts.findings,
            findings.sections_without_teacher,
            "Sections without a teacher",
            "section has no teacher in the roster",
            "sections have no teacher in the roster",
            "Every section has a teacher.",
            "Their classrooms have no teacher in the product until one is assigned. Assign teachers in the "
            "student information system; the next sync picks them up.",
        ),
        _count_item(
            facts.findings,
            findings.students_without_section,
            "Students in no section",
            "student is enrolled in no section",
            "students are enrolled in no section",
            "Every student is enrolled in a section.",
            "They are in no classroom in the product. Check their schedules in the student information system.",
        ),
        _guardians(facts, findings),
        _count_item(
            facts.findings,
            findings.duplicate_candidates,
            "Duplicate candidates",
            "roster student has the same name and date of birth as a product student with no roster link",
            "roster students have the same name and date of birth as a product student with no roster link",
            "No roster student looks like an unlinked product student.",
            "They are not merged unasked. Review the possible_duplicate lines in students.csv and link the "
            f"right ones with `rostersync people link --district {facts.district_id} --confirm "
            "PERSON_ID=PROVIDER_ID`.",
        ),
        _count_item(
            facts.findings,
            findings.ambiguous_matches,
            "Ambiguous matches",
            "roster person matches more than one product person, so none was linked",
            "roster people match more than one product person, so none was linked",
            "No roster person matches more than one product person.",
            "Review the ambiguous lines in the CSV files and link each by hand with `rostersync people link "
            f"--district {facts.district_id} --confirm PERSON_ID=PROVIDER_ID`.",
        ),
        _not_in_sync(facts, findings),
    ]
    if not facts.dry_run:
        items.append(_possible_duplicates(facts, findings))
    items += [
        _multi_role(facts, findings),
        _edits(facts, findings),
        _unlinked_sections(facts, findings),
    ]
    return items


# -- the items ---------------------------------------------------------------------------------------


def _not_in_sync(facts: RunFacts, findings: Findings) -> ReadinessItem:
    count, schools = findings.students_not_in_sync, findings.schools_with_students_not_in_sync
    check = "Students not in the sync"
    if not count:
        detail = "Not reported by this run." if facts.findings is None else "Every student of a synced school is in it."
        return ReadinessItem(status=PASS, check=check, detail=detail)
    when = "Once the first sync has run, archive" if facts.dry_run else "Archive"
    return ReadinessItem(
        status=WARN,
        check=check,
        detail=f"{count:,} in {_n(schools, 'school')} (product students no roster record matched).",
        action=f"{when} them (sync-managed students are never archived this way; preview first, undo possible): "
        f"`rostersync cleanup archive-unmanaged --district {facts.district_id} --scope district --preview` "
        "(or `--school SCHOOL_ID` per school). Merge the ones that are duplicates first.",
    )


def _possible_duplicates(facts: RunFacts, findings: Findings) -> ReadinessItem:
    count = findings.duplicate_candidates
    check = "Possible duplicates"
    if not count:
        return ReadinessItem(
            status=PASS, check=check, detail="No student this sync created looks like a product student."
        )
    return ReadinessItem(
        status=WARN,
        check=check,
        detail=f"{count:,} (a synced student and a product student who look like one child).",
        action=f"Review them with `rostersync duplicates list --district {facts.district_id}` and merge them "
        f"(`rostersync duplicates merge --district {facts.district_id} --keep A --merge B`): their history moves "
        "to one student.",
    )


def _again(facts: RunFacts) -> str:
    command = "self-check" if facts.dry_run else "sync"
    return f"`rostersync {command} --district {facts.district_id}`"


def _run_failed(facts: RunFacts) -> ReadinessItem:
    return ReadinessItem(
        status=FAIL,
        check="Run finished",
        detail=f"The {'self-check' if facts.dry_run else 'sync'} stopped before the end: {facts.failure_reason}",
        action=f"Fix what stopped it, then run {_again(facts)} again.",
    )


def _fetched(facts: RunFacts) -> ReadinessItem:
    check = "Roster fetched completely"
    if facts.fetch_complete is None:
        return ReadinessItem(
            status=FAIL,
            check=check,
            detail="The roster was not fetched.",
            action=f"Check the district's provider connection, then run {_again(facts)} again.",
        )
    if not facts.fetch_complete:
        problems = "; ".join(facts.fetch_problems) or "no reason was given"
        return ReadinessItem(
            status=FAIL,
            check=check,
            detail=f"Part of the roster could not be read ({problems}). What follows counts only what was read, "
            "and nothing would be archived.",
            action=f"Fix the provider side (or wait for it to recover), then run {_again(facts)} again.",
        )
    read = f" ({_n(facts.fetched_records, 'record')})" if facts.fetched_records else ""
    return ReadinessItem(status=PASS, check=check, detail=f"Every page of the roster was read{read}.")


def _schools(facts: RunFacts) -> ReadinessItem:
    check, findings = "Schools matched", facts.findings
    action = f"Match schools with `rostersync schools match --district {facts.district_id}`."
    matched = sum(facts.count(Kind.SCHOOLS, column) for column in _MATCHED_SCHOOL_COUNTS)
    if findings is None:
        unmatched_count, product_side, out_of_scope = facts.count(Kind.SCHOOLS, "skipped"), [], []
        unmatched_names = ""
    else:
        unmatched_count = len(findings.unmatched_provider_schools)
        unmatched_names = _names(findings.unmatched_provider_schools)
        product_side, out_of_scope = findings.unlinked_product_schools, findings.out_of_scope_schools
    scope = f" {_n(len(out_of_scope), 'school is', 'schools are')} out of scope." if out_of_scope else ""
    if matched == 0:
        provider = _n(unmatched_count, "provider school") if unmatched_count else "no provider school"
        return ReadinessItem(
            status=FAIL,
            check=check,
            detail=f"No provider school is matched to a product school ({provider} in scope unmatched), so "
            f"nobody would be synced.{scope}",
            action=action,
        )
    problems = []
    if unmatched_count:
        listed = f": {unmatched_names}" if unmatched_names else ""
        problems.append(
            f"{unmatched_count:,} of {matched + unmatched_count:,} provider schools in scope "
            f"{'has' if unmatched_count == 1 else 'have'} no product school{listed}; their people are skipped"
        )
    if product_side:
        problems.append(
            f"{_n(len(product_side), 'product school is', 'product schools are')} linked to no provider school: "
            f"{_names(product_side)}"
        )
    if problems:
        return ReadinessItem(status=WARN, check=check, detail=". ".join(problems) + "." + scope, action=action)
    return ReadinessItem(
        status=PASS,
        check=check,
        detail=f"All {_n(matched, 'provider school')} in scope {'is' if matched == 1 else 'are'} matched to a "
        f"product school.{scope}",
    )


def _threshold(facts: RunFacts) -> ReadinessItem:
    check = "Deletion threshold"
    limit = _percent(facts.limit_percent)
    if not facts.threshold_checked:
        return ReadinessItem(
            status=WARN,
            check=check,
            detail="Not checked: the roster was not read completely, so nothing would be archived.",
            action=f"Run {_again(facts)} again once the roster is read completely.",
        )
    breaches = [c for c in facts.threshold.values() if c.exceeded]
    would = "would archive" if facts.dry_run else "would have archived"
    if breaches or facts.emptied_schools:
        found = [
            f"the sync {would} {c.would_archive:,} of {c.managed:,} {_label(c.kind)} ({_percent(c.percent)} %), "
            f"over the {limit} % limit"
            for c in breaches
        ]
        found += [
            f"school {school} would lose all its {count:,} students (that looks like a broken export): nothing of "
            "that school would be archived"
            for school, count in facts.emptied_schools.items()
        ]
        held = " or ".join(_label(kind) for kind in dict.fromkeys(c.kind for c in breaches))
        # The limit that would let this run through: the admin decides, the checklist only does the sum.
        needed = math.ceil(max((c.percent for c in breaches), default=0.0))
        raise_it = (
            f"; if they really left, allow it once with `rostersync settings set --district {facts.district_id} "
            f"deletion_threshold_percent={needed}` and set it back after the sync"
            if breaches
            else ""
        )
        return ReadinessItem(
            status=FAIL,
            check=check,
            detail=_sentence("; ".join(found)) + (f" No {held} would be archived." if held else ""),
            action=f"Check that the roster export is complete{raise_it}.",
        )
    archiving = [c for c in facts.threshold.values() if c.would_archive]
    if not archiving:
        return ReadinessItem(status=PASS, check=check, detail=f"Nothing would be archived (limit {limit} %).")
    listed = ", ".join(
        f"{c.would_archive:,} of {c.managed:,} {_label(c.kind)} ({_percent(c.percent)} %)" for c in archiving
    )
    return ReadinessItem(status=PASS, check=check, detail=f"Within the {limit} % limit: {listed} would be archived.")


def _errors(facts: RunFacts) -> ReadinessItem:
    check = "Roster records with errors"
    if not facts.errors_total:
        return ReadinessItem(status=PASS, check=check, detail="Every roster record can be used.")
    kinds = ", ".join(f"{_label(kind)} {counts.errors:,}" for kind, counts in facts.counts.items() if counts.errors)
    by_kind = f" ({kinds})" if kinds else ""
    return ReadinessItem(
        status=WARN,
        check=check,
        detail=f"{_n(facts.errors_total, 'roster record')}{by_kind} cannot be used and "
        f"{'is' if facts.errors_total == 1 else 'are'} skipped; the rest goes ahead.",
        action="errors.csv lists each with the reason: fix them in the student information system.",
    )


def _count_item(
    reported: Findings | None, count: int, check: str, one: str, many: str, clean: str, action: str
) -> ReadinessItem:
    if count:
        return ReadinessItem(
            status=WARN, check=check, detail=f"{count:,} {one if count == 1 else many}.", action=action
        )
    if reported is None:
        return ReadinessItem(status=PASS, check=check, detail="Not reported by this run.")
    return ReadinessItem(status=PASS, check=check, detail=clean)


def _guardian_actions(district_id: str) -> dict[str, tuple[bool, str]]:
    """Per skip reason (the planner's sentences): whether it asks for a look, and what fixes it."""
    settings = f"rostersync settings set --district {district_id}"
    return {
        plan.NO_REACH: (
            True,
            "Add a unique email or a mobile phone for them in the student information system, or widen which "
            f"phone types take texts with `{settings} phones.sms_phone_types=TYPE,...`.",
        ),
        plan.AMBIGUOUS: (
            True,
            f"Link each to the right product account with `rostersync people link --district {district_id}`.",
        ),
        plan.LINKS_EXCLUDED: (
            True,
            f"If they should sync, widen `{settings} guardians.contact_types=…` or `guardians.relationships=…`.",
        ),
        plan.NO_STUDENT_SYNCED: (
            False,
            "Guardians follow their students: they sync once their students' schools are matched "
            f"(`rostersync schools match --district {district_id}`).",
        ),
        plan.GUARDIANS_OFF: (False, f"To sync guardians: `{settings} guardians.manage=true`."),
    }


def _guardians(facts: RunFacts, findings: Findings) -> ReadinessItem:
    """Warn when guardians are skipped for a reason the admin can fix (no way to reach them, ambiguous,
    links left out); guardians skipped because their students are (or because guardians are off) pass."""
    check = "Guardians skipped"
    total = findings.guardians_skipped_total
    if not total:
        detail = "Not reported by this run." if facts.findings is None else "No guardian is skipped."
        return ReadinessItem(status=PASS, check=check, detail=detail)
    reasons = sorted(findings.guardians_skipped.items(), key=lambda item: (-item[1], item[0]))
    by_reason = "; ".join(f"{count:,}: {_unsentence(reason)}" for reason, count in reasons if count)
    known = _guardian_actions(facts.district_id)
    present = [reason for reason, count in reasons if count]
    look = any(known.get(reason, (True, ""))[0] for reason in present)
    actions = [known[reason][1] for reason in present if reason in known]
    return ReadinessItem(
        status=WARN if look else PASS,
        check=check,
        detail=f"{_n(total, 'guardian is', 'guardians are')} skipped ({by_reason}).",
        action=" ".join(dict.fromkeys(actions)) or known[plan.NO_REACH][1],
    )


def _multi_role(facts: RunFacts, findings: Findings) -> ReadinessItem:
    check = "People in several roles"
    merged, separate = findings.multi_role.merged, findings.multi_role.separate
    if facts.findings is None:
        return ReadinessItem(status=PASS, check=check, detail="Not reported by this run.")
    if not merged and not separate:
        return ReadinessItem(status=PASS, check=check, detail="Nobody is in several roles.")
    return ReadinessItem(
        status=PASS,
        check=check,
        detail=f"{_n(merged + separate, 'person is', 'people are')} in several roles (e.g. a teacher who is also "
        f"a parent): {merged:,} with one account (name, email and phone agree), {separate:,} with separate "
        "accounts. The merged and separate_account lines in the CSV files list them.",
    )


def _edits(facts: RunFacts, findings: Findings) -> ReadinessItem:
    check = "Manual edits"
    kept = findings.edits_kept or facts.total("edits_kept")
    overwritten = findings.edits_overwritten or facts.total("edits_overwritten")
    kept_text = f" {_n(kept, 'edited field is', 'edited fields are')} kept." if kept else ""
    if overwritten:
        return ReadinessItem(
            status=WARN,
            check=check,
            detail=f"{_n(overwritten, 'field', 'fields')} people edited in the product would be overwritten by the "
            f"roster (setting update_edited_contact_details=always).{kept_text}",
            action="If the product's edits should win, keep them with `rostersync settings set --district "
            f"{facts.district_id} update_edited_contact_details=never`; the edit_overwritten lines list them.",
        )
    if kept:
        return ReadinessItem(
            status=PASS,
            check=check,
            detail=f"{_n(kept, 'field', 'fields')} people edited in the product differ from the roster and are kept; "
            "none is overwritten.",
        )
    if facts.findings is None:
        return ReadinessItem(status=PASS, check=check, detail="Not reported by this run.")
    return ReadinessItem(status=PASS, check=check, detail="No field edited in the product differs from the roster.")


def _unlinked_sections(facts: RunFacts, findings: Findings) -> ReadinessItem:
    check = "Unlinked sections"
    create, skip = findings.unlinked_sections.create, findings.unlinked_sections.skip
    link = f"Link existing classrooms first with `rostersync classrooms match --district {facts.district_id}`"
    setting = f"`rostersync settings set --district {facts.district_id} classrooms.create_for_unlinked_sections="
    if facts.findings is None:
        return ReadinessItem(status=PASS, check=check, detail="Not reported by this run.")
    if create:
        return ReadinessItem(
            status=PASS,
            check=check,
            detail=f"{_n(create, 'section has', 'sections have')} no linked classroom and would get a new one "
            "(setting classrooms.create_for_unlinked_sections is on).",
            action=f"{link}; to skip them instead: {setting}false`.",
        )
    if skip:
        return ReadinessItem(
            status=PASS,
            check=check,
            detail=f"{_n(skip, 'section has', 'sections have')} no linked classroom and would be skipped "
            "(setting classrooms.create_for_unlinked_sections is off).",
            action=f"{link}; to create classrooms for them instead: {setting}true`.",
        )
    synced = (
        sum(getattr(facts.counts[Kind.CLASSROOMS], column) for column in ("created", "updated", "linked", "unchanged"))
        if Kind.CLASSROOMS in facts.counts
        else 0
    )
    if not synced:
        return ReadinessItem(
            status=PASS, check=check, detail="No section would be synced: none is in a matched school in scope."
        )
    return ReadinessItem(status=PASS, check=check, detail="Every section is linked to a product classroom.")


# -- wording -----------------------------------------------------------------------------------------


def _n(count: int, one: str, many: str | None = None) -> str:
    """``3 schools``, ``1 school``: a count and its noun, grouped by thousands."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _names(schools: Sequence[ProviderSchool | ProductSchool]) -> str:
    names = [s.name or (s.provider_id if isinstance(s, ProviderSchool) else s.id) or "(no name)" for s in schools]
    more = len(names) - NAMES_SHOWN
    return ", ".join(names[:NAMES_SHOWN]) + (f" and {more:,} more" if more > 0 else "")


def _label(kind: Kind) -> str:
    return KIND_LABELS[kind].lower()


def _percent(value: float) -> str:
    return f"{round(value, 1):g}"


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _unsentence(text: str) -> str:
    """A reason sentence from the planner, to sit inside a list: no final full stop."""
    return text.strip().rstrip(".")
