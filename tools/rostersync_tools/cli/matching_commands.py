"""rostersync schools match, classrooms match, people link: link product records to provider ids.

The sync matches a product school, classroom or person only through the provider id stored on it. These
commands are how a district admin stores those ids before the first sync: they read the roster from the
district's provider, suggest pairs (``matching.suggest``), and store the pairs the admin confirms
(``DirectoryRepository.link_provider_id``). Every confirmation is checked before anything is written:
one bad pair and nothing is linked.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rostersync.directory.repository import DirectoryRecord, DirectoryRepository
from rostersync.domain.records import Kind, Role
from rostersync.errors import ConnectionNotConfiguredError, LinkError, RostersyncError
from rostersync.matching.suggest import (
    MatchSuggestions,
    ProductClassroom,
    ProductPerson,
    ProductSchool,
    suggest_classroom_links,
    suggest_school_pairs,
)
from rostersync.providers.base import RetryPolicy
from rostersync.providers.registry import provider_name
from rostersync.reports.writer import neutralise_formula
from rostersync.roster_preview import RosterPreview, read_roster_preview
from rostersync_tools.cli.connect import StackError, StackHandle, add_stack_arguments, connect_from_args
from rostersync_tools.cli.inputs import UsageError

CSV_COLUMNS = ("confirm", "product_id", "product_name", "provider_id", "provider_name", "confidence", "reasons")
_YES = {"yes", "y", "x", "true", "1", "confirm", "confirmed"}
_NO = {"", "no", "n", "false", "0"}
_UNLINK_HELP = "remove this record's provider link (a wrong pair, before the first sync synced it)"
_SHOWN = 25  # unmatched records listed on the terminal; --out and --json have them all
# How the roster is read on 429/5xx answers; tests replace it with one that never sleeps.
PROVIDER_RETRY = RetryPolicy()


def register(commands: argparse._SubParsersAction) -> None:
    """``schools match``, ``classrooms match``, ``people link``."""
    schools = commands.add_parser("schools", help="match the product's schools to the provider's")
    school_commands = schools.add_subparsers(dest="schools_command", required=True)
    match = school_commands.add_parser(
        "match",
        help="suggest product school ↔ provider school pairs; store the ones confirmed",
        description="Lists provider and product schools side by side with suggested pairs. Confirm pairs with "
        "--confirm, --accept high or an edited --file; each confirmed pair stores the provider id on the product "
        "school, which is what the sync matches by.",
    )
    _pairing_arguments(match, "PRODUCT_SCHOOL_ID=PROVIDER_SCHOOL_ID")
    match.set_defaults(handler=run_schools_match)

    classrooms = commands.add_parser("classrooms", help="link the product's classrooms to the provider's sections")
    classroom_commands = classrooms.add_subparsers(dest="classrooms_command", required=True)
    match = classroom_commands.add_parser(
        "match",
        help="suggest product classroom ↔ section links within matched schools; store the ones confirmed",
        description="Suggests which existing product classroom is which section (same teacher, name, period, "
        "grade), only within schools already matched. Sections left unlinked are created or skipped by the first "
        "sync, as the setting classrooms.create_for_unlinked_sections says.",
    )
    _pairing_arguments(match, "PRODUCT_CLASSROOM_ID=SECTION_ID")
    match.set_defaults(handler=run_classrooms_match)

    people = commands.add_parser("people", help="link product people to provider users")
    people_commands = people.add_subparsers(dest="people_command", required=True)
    link = people_commands.add_parser(
        "link",
        help="link a product person to a provider user by hand",
        description="Resolves what the self-check lists as a duplicate candidate or an ambiguous match: the "
        "product person gets the provider user's id, and the sync updates that person instead of creating one.",
    )
    link.add_argument("--district", required=True, help="the district's id")
    link.add_argument(
        "--confirm",
        action="append",
        default=[],
        metavar="PERSON_ID=PROVIDER_USER_ID",
        help="link this product person to this provider user (repeatable)",
    )
    link.add_argument("--replace", action="store_true", help="replace a person's existing link to another user")
    link.add_argument("--unlink", action="append", default=[], metavar="PERSON_ID", help=_UNLINK_HELP + " (repeatable)")
    link.add_argument("--json", action="store_true", help="print what was linked as JSON")
    add_stack_arguments(link)
    link.set_defaults(handler=run_people_link)


def _pairing_arguments(parser: argparse.ArgumentParser, pair: str) -> None:
    parser.add_argument("--district", required=True, help="the district's id")
    parser.add_argument("--confirm", action="append", default=[], metavar=pair, help="store this pair (repeatable)")
    parser.add_argument("--accept", choices=["high"], help="store every high-confidence suggestion")
    parser.add_argument("--out", metavar="CSV", help="write the suggestions to a CSV to edit (its confirm column)")
    parser.add_argument("--file", metavar="CSV", help="store the rows of an edited --out CSV marked confirm=yes")
    parser.add_argument("--replace", action="store_true", help="replace an existing link to another provider id")
    parser.add_argument(
        "--unlink", action="append", default=[], metavar="PRODUCT_ID", help=_UNLINK_HELP + " (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print the suggestions (and what was linked) as JSON")
    add_stack_arguments(parser)


# -- the commands ----------------------------------------------------------------------------------------


def run_schools_match(args: argparse.Namespace) -> int:
    """``rostersync schools match``: suggest pairs, store the confirmed ones."""
    district = _district(args.district)
    if args.unlink:
        return _unlink_command(args, district, Kind.SCHOOLS)
    wanted = _wanted_pairs(args)
    handle = connect_from_args(args)
    preview = _preview(handle, district, schools_only=True)
    directory = handle.directory(district)
    records = _active(_records(directory, "schools"))
    products = [_product_school(r, preview.provider) for r in records]
    result = suggest_school_pairs(preview.schools, products)
    pairs = _chosen(wanted, result, args.accept)
    roster = {s.provider_id: s.name for s in preview.schools}
    names = {p.id: p.name for p in products}
    _check_pairs(pairs, names, roster, {p.id: p.provider_id for p in products}, "school", args.replace)
    if args.out:
        _write_csv(Path(args.out), result, names, roster)
    linked = _link(directory, Kind.SCHOOLS, pairs, preview.provider, args.replace)
    if args.json:
        _print_json(
            {
                "district_id": district,
                "provider": preview.provider,
                "roster_complete": preview.complete,
                "problems": preview.problems,
                "provider_schools": [s.model_dump(mode="json", exclude={"record_type"}) for s in preview.schools],
                "product_schools": [asdict(p) for p in products],
                **result.model_dump(mode="json"),
                "confirmed": linked,
            }
        )
        return 0
    out = _Printer()
    out.line(
        f"District {district} · {preview.provider}: {len(preview.schools)} provider schools, "
        f"{len(products)} product schools"
    )
    _warn_incomplete(out, preview)
    _print_suggestions(out, result, "school", "PRODUCT_SCHOOL_ID=PROVIDER_SCHOOL_ID")
    out.section("Provider schools no product school matches (not synced until one is linked to them)")
    out.rows([(u.id, u.name) for u in result.unmatched_provider])
    out.section("Product schools with no provider school")
    out.rows([(u.id, u.name) for u in result.unmatched_product])
    _print_linked(out, linked, names, roster, args)
    return 0


def run_classrooms_match(args: argparse.Namespace) -> int:
    """``rostersync classrooms match``: suggest links within matched schools, store the confirmed ones."""
    district = _district(args.district)
    if args.unlink:
        return _unlink_command(args, district, Kind.CLASSROOMS)
    wanted = _wanted_pairs(args)
    handle = connect_from_args(args)
    preview = _preview(handle, district)
    directory = handle.directory(district)
    provider = preview.provider
    school_links = {
        r.id: r.provider_ids[provider] for r in _active(_records(directory, "schools")) if provider in r.provider_ids
    }
    records = _active(_records(directory, "classrooms"))
    classrooms = [_product_classroom(r, provider) for r in records]
    people = _product_teachers(directory, classrooms, provider)
    sections = preview.section_list()
    result = suggest_classroom_links(sections, preview.teachers, classrooms, people, school_links)
    pairs = _chosen(wanted, result, args.accept)
    roster = {s.provider_id: s.name for s in preview.sections}
    names = {c.id: c.name for c in classrooms}
    _check_pairs(pairs, names, roster, {c.id: c.provider_id for c in classrooms}, "classroom", args.replace)
    _check_same_school(pairs, {c.id: c.school_id for c in classrooms}, preview, school_links)
    settings, _version = _settings(handle, district)
    create = settings.classrooms.create_for_unlinked_sections
    matched = set(school_links.values())
    # The sync's own rule (``SyncPlanner._in_scope``): a school is in scope by its product or provider id.
    scope = set(settings.schools_in_scope)
    in_scope = {q for p, q in school_links.items() if not scope or p in scope or q in scope}
    in_matched = [s for s in preview.sections if s.school in matched]
    carried = {c.provider_id for c in classrooms if c.provider_id} | {section for _, section in pairs}
    unlinked = [s for s in in_matched if s.provider_id not in carried and s.school in in_scope]
    out_of_scope = sum(1 for s in in_matched if s.school not in in_scope)
    outside = len(preview.sections) - len(in_matched)
    if args.out:
        _write_csv(Path(args.out), result, names, roster)
    linked = _link(directory, Kind.CLASSROOMS, pairs, provider, args.replace)
    first_sync = {
        "setting": "classrooms.create_for_unlinked_sections",
        "create_for_unlinked_sections": create,
        "unlinked_sections": len(unlinked),
        "would_create": len(unlinked) if create else 0,
        "would_skip": 0 if create else len(unlinked),
        "sections_in_unmatched_schools": outside,
        "sections_out_of_scope": out_of_scope,
    }
    if args.json:
        _print_json(
            {
                "district_id": district,
                "provider": provider,
                "roster_complete": preview.complete,
                "problems": preview.problems,
                **result.model_dump(mode="json"),
                "first_sync": first_sync,
                "confirmed": linked,
            }
        )
        return 0
    out = _Printer()
    out.line(
        f"District {district} · {provider}: {len(preview.sections)} sections ({len(in_matched)} in "
        f"{len(school_links)} matched schools), {len(classrooms)} product classrooms"
    )
    _warn_incomplete(out, preview)
    if not school_links:
        out.line("No school is matched yet: match schools first (rostersync schools match --district " + district + ")")
    _print_suggestions(out, result, "classroom", "PRODUCT_CLASSROOM_ID=SECTION_ID")
    out.section("Product classrooms with no section")
    out.rows([(u.id, u.name, u.reason) for u in result.unmatched_product])
    out.section("First sync")
    verb = "creates a classroom for each" if create else "skips them (no classroom is created)"
    out.line(
        f"  {len(unlinked)} sections of matched schools have no linked classroom: with "
        f"classrooms.create_for_unlinked_sections {'on' if create else 'off'}, the first sync {verb}."
    )
    if result.suggestions:
        out.line("  Confirm the suggestions above to link those classrooms instead.")
    if out_of_scope:
        out.line(f"  {out_of_scope} sections are in matched schools outside schools_in_scope: skipped.")
    if outside:
        out.line(f"  {outside} sections are in schools not matched: skipped until their school is matched.")
    _print_linked(out, linked, names, roster, args)
    return 0


def run_people_link(args: argparse.Namespace) -> int:
    """``rostersync people link``: link product people to provider users, checked against the roster."""
    district = _district(args.district)
    if args.unlink:
        return _unlink_command(args, district, Kind.STUDENTS)
    pairs = _parse_pairs(args.confirm, "--confirm")
    if not pairs:
        raise UsageError("people link: give --confirm PERSON_ID=PROVIDER_USER_ID (or --unlink PERSON_ID)")
    handle = connect_from_args(args)
    directory = handle.directory(district)
    records: dict[str, DirectoryRecord] = {}
    for person_id, _ in pairs:
        record = _call(lambda person_id=person_id: directory.get(Kind.STUDENTS, person_id))  # type: ignore[misc]
        if record is None:
            raise UsageError(f"--confirm {person_id}=…: no product person {person_id!r} in district {district}")
        records[person_id] = record
    preview = _preview(handle, district, people={user for _, user in pairs})
    for person_id, user_id in pairs:
        user = preview.people.get(user_id)
        if user is None:
            where = "roster" if preview.complete else "part of the roster that could be read"
            raise UsageError(f"--confirm {person_id}={user_id}: no user {user_id!r} in district {district}'s {where}")
        ours = Role.STUDENT.value in records[person_id].fields.get("roles", [])
        theirs = Role.STUDENT in user.roles
        if ours != theirs:
            raise UsageError(
                f"--confirm {person_id}={user_id}: the product person is {'a' if ours else 'not a'} student but the "
                f"provider user is {'a' if theirs else 'not a'} student; a student is never linked to an adult"
            )
    _check_pairs(
        pairs,
        {p: p for p in records},
        {u: u for u in preview.people},
        {p: r.provider_ids.get(preview.provider, "") for p, r in records.items()},
        "person",
        args.replace,
    )
    linked = _link(directory, Kind.STUDENTS, pairs, preview.provider, args.replace)
    if args.json:
        _print_json({"district_id": district, "provider": preview.provider, "confirmed": linked})
        return 0
    out = _Printer()
    for entry in linked:
        verb = "linked to" if entry["written"] else "already linked to"
        out.line(f"{entry['product_id']} {verb} {preview.provider} user {entry['provider_id']}")
    return 0


def _unlink_command(args: argparse.Namespace, district: str, kind: Kind) -> int:
    """``--unlink ID…``: remove provider links the admin confirmed by mistake, before a sync relied on them.

    A record the sync already manages keeps its link: without it the next run would see its provider
    record as new (or unmatched) while the record itself waited to be archived.
    """
    if args.confirm or getattr(args, "accept", None) or getattr(args, "file", None):
        raise UsageError("--unlink: run it on its own, without --confirm, --accept or --file")
    handle = connect_from_args(args)
    directory = handle.directory(district)
    connection = _call(lambda: handle.state(district).get_item("CONNECTION"))
    if not connection:
        raise UsageError(f"district {district} has no provider connection: nothing is linked to a provider")
    try:
        provider = provider_name(connection)
    except RostersyncError as exc:
        raise UsageError(str(exc)) from exc
    records = {}
    for record_id in dict.fromkeys(i.strip() for i in args.unlink):
        record = _call(lambda record_id=record_id: directory.get(kind, record_id))  # type: ignore[misc]
        if record is None:
            raise UsageError(f"--unlink {record_id}: no such record in district {district}")
        if record.managed_by_sync and provider in record.provider_ids:
            raise UsageError(
                f"--unlink {record_id}: the sync already manages it through {provider} id "
                f"{record.provider_ids[provider]}; its link is kept"
            )
        records[record_id] = record
    unlinked = []
    for record_id, record in records.items():
        try:
            written = _call(lambda record_id=record_id: directory.unlink_provider_id(kind, record_id, provider))  # type: ignore[misc]
        except LinkError as exc:
            raise UsageError(f"--unlink {record_id}: {exc}") from exc
        unlinked.append(
            {"product_id": record_id, "provider_id": record.provider_ids.get(provider, ""), "written": written}
        )
    if args.json:
        _print_json({"district_id": district, "provider": provider, "unlinked": unlinked})
        return 0
    for entry in unlinked:
        if entry["written"]:
            print(f"{entry['product_id']}: unlinked from {provider} id {entry['provider_id']}")
        else:
            print(f"{entry['product_id']}: was not linked to {provider}, unchanged")
    return 0


# -- reading ---------------------------------------------------------------------------------------------


def _district(value: str) -> str:
    value = value.strip()
    if not value:
        raise UsageError("--district: give the district's id")
    return value


def _call(read: Callable[[], Any]) -> Any:
    """Run a stack read, turning AWS failures into one line."""
    try:
        return read()
    except ClientError as exc:
        raise StackError(f"the stack refused a request: {exc.response['Error'].get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise StackError(f"cannot reach the stack: {exc}") from exc


def _records(directory: DirectoryRepository, collection: str) -> list[DirectoryRecord]:
    return list(_call(lambda: list(directory.records(collection))))


def _active(records: Iterable[DirectoryRecord]) -> list[DirectoryRecord]:
    return [r for r in records if r.status == "active"]


def _preview(
    handle: StackHandle, district: str, people: Iterable[str] = (), schools_only: bool = False
) -> RosterPreview:
    try:
        return _call(lambda: read_roster_preview(handle, district, people, schools_only, PROVIDER_RETRY))
    except ConnectionNotConfiguredError as exc:
        raise UsageError(
            f"cannot read district {district}'s roster: {exc} (connect it first: rostersync connect --district "
            f"{district} --provider …)"
        ) from exc
    except RostersyncError as exc:
        raise UsageError(f"cannot read district {district}'s roster: {exc}") from exc
    except KeyError as exc:  # a stored connection without a field its provider needs
        raise UsageError(f"district {district}'s provider connection has no {exc}: connect it again") from exc


def _settings(handle: StackHandle, district: str) -> Any:
    try:
        return _call(lambda: handle.state(district).current_settings())
    except (ValueError, RostersyncError) as exc:  # stored settings that no longer validate
        raise UsageError(f"district {district}'s stored settings are not valid: {exc}") from exc


def _text(record: DirectoryRecord, name: str) -> str:
    value = record.effective_fields().get(name, "")
    return "" if value is None else str(value)


def _product_school(record: DirectoryRecord, provider: str) -> ProductSchool:
    return ProductSchool(
        id=record.id,
        name=_text(record, "name"),
        school_number=_text(record, "school_number"),
        nces_id=_text(record, "nces_id"),
        state_id=_text(record, "state_id"),
        provider_id=record.provider_ids.get(provider, ""),
    )


def _product_classroom(record: DirectoryRecord, provider: str) -> ProductClassroom:
    teachers = record.product_fields.get("teacher_ids") or []
    return ProductClassroom(
        id=record.id,
        name=_text(record, "name"),
        school_id=str(record.fields.get("school") or record.product_fields.get("school_id") or record.parent_id),
        teacher_ids=tuple(str(t) for t in teachers) if isinstance(teachers, list) else (),
        period=_text(record, "period"),
        grade=_text(record, "grade"),
        provider_id=record.provider_ids.get(provider, ""),
    )


def _product_teachers(
    directory: DirectoryRepository, classrooms: list[ProductClassroom], provider: str
) -> dict[str, ProductPerson]:
    """The product people the classrooms name as teachers (read one by one: a few, not the whole district)."""
    people: dict[str, ProductPerson] = {}
    for person_id in sorted({t for c in classrooms for t in c.teacher_ids}):
        record = _call(lambda person_id=person_id: directory.get(Kind.TEACHERS, person_id))  # type: ignore[misc]
        if record is not None:
            people[person_id] = ProductPerson(person_id, _text(record, "email"), record.provider_ids.get(provider, ""))
    return people


# -- confirming ------------------------------------------------------------------------------------------


def _parse_pairs(values: Iterable[str], flag: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        ours, sep, theirs = value.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise UsageError(f"{flag} {value!r}: expected PRODUCT_ID=PROVIDER_ID")
        pairs.append((ours.strip(), theirs.strip()))
    return pairs


def _wanted_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The pairs named by --confirm and --file, checked for form before the stack is reached."""
    pairs = _parse_pairs(args.confirm, "--confirm")
    if args.file:
        pairs += _read_csv(Path(args.file))
    if args.out and args.file and Path(args.out).resolve() == Path(args.file).resolve():
        raise UsageError("--out and --file name the same file")
    return pairs


def _read_csv(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})") from exc
    rows = csv.DictReader(text.splitlines())
    missing = [c for c in ("confirm", "product_id", "provider_id") if c not in (rows.fieldnames or [])]
    if missing:
        raise UsageError(f"{path}: no {missing[0]} column (write one with --out)")
    pairs: list[tuple[str, str]] = []
    for number, row in enumerate(rows, start=2):
        mark = (row.get("confirm") or "").strip().casefold()
        if mark in _NO:
            continue
        if mark not in _YES:
            raise UsageError(f"{path}, line {number}: confirm is {row['confirm']!r}; write yes, or leave it empty")
        ours, theirs = _cell(row.get("product_id")), _cell(row.get("provider_id"))
        if not ours or not theirs:
            raise UsageError(f"{path}, line {number}: confirmed, but product_id or provider_id is empty")
        pairs.append((ours, theirs))
    return pairs


def _cell(value: str | None) -> str:
    """A cell as written: without the quote ``--out`` put before a cell a spreadsheet would run as a formula."""
    text = (value or "").strip()
    if text.startswith("'") and neutralise_formula(text[1:]) != text[1:]:
        return text[1:]
    return text


def _chosen(wanted: list[tuple[str, str]], result: MatchSuggestions, accept: str | None) -> list[tuple[str, str]]:
    pairs = list(wanted)
    if accept:
        pairs += [(s.product_id, s.provider_id) for s in result.accepted("high")]
    return list(dict.fromkeys(pairs))


def _check_pairs(
    pairs: list[tuple[str, str]],
    products: dict[str, str],
    roster: dict[str, str],
    current: dict[str, str],
    noun: str,
    replace: bool,
) -> None:
    """Refuse the whole confirmation, before anything is written, if any pair cannot be stored."""
    seen_product: dict[str, str] = {}
    seen_provider: dict[str, str] = {}
    carried = {provider_id: product_id for product_id, provider_id in current.items() if provider_id}
    for ours, theirs in pairs:
        label = f"{ours}={theirs}"
        if ours not in products:
            raise UsageError(f"{label}: no active product {noun} {ours!r} in this district")
        if theirs not in roster:
            raise UsageError(f"{label}: {theirs!r} is not a {noun if noun != 'classroom' else 'section'} in the roster")
        if seen_product.setdefault(ours, theirs) != theirs:
            raise UsageError(f"{label}: {ours} is confirmed twice, with {seen_product[ours]} and {theirs}")
        if seen_provider.setdefault(theirs, ours) != ours:
            raise UsageError(f"{label}: {theirs} is confirmed for two {noun}s, {seen_provider[theirs]} and {ours}")
        holder = carried.get(theirs)
        if holder and holder != ours:
            raise UsageError(f"{label}: {theirs} is already linked to {noun} {holder}")
        if current.get(ours) and current[ours] != theirs and not replace:
            raise UsageError(f"{label}: {ours} is already linked to {current[ours]} (add --replace to change it)")


def _check_same_school(
    pairs: list[tuple[str, str]], school_of: dict[str, str], preview: RosterPreview, school_links: dict[str, str]
) -> None:
    section_school = {s.provider_id: s.school for s in preview.sections}
    for ours, theirs in pairs:
        linked = school_links.get(school_of.get(ours, ""))
        if linked is None:
            raise UsageError(
                f"{ours}={theirs}: classroom {ours}'s school is not matched to a provider school; match it first "
                "(rostersync schools match)"
            )
        if section_school.get(theirs) != linked:
            raise UsageError(f"{ours}={theirs}: the section is in another school than classroom {ours}")


def _link(
    directory: DirectoryRepository, kind: Kind, pairs: list[tuple[str, str]], provider: str, replace: bool
) -> list[dict[str, Any]]:
    # The index knows every record of the collection (archived ones, people not loaded here): ask it
    # about each pair before writing any.
    for ours, theirs in pairs:
        holder = _call(lambda theirs=theirs: directory.find_by_provider_id(kind, provider, theirs))  # type: ignore[misc]
        if holder is not None and holder.id != ours:
            raise UsageError(f"{ours}={theirs}: {provider} id {theirs} is already linked to {holder.id}")
    linked = []
    for ours, theirs in pairs:
        try:
            written = _call(
                lambda ours=ours, theirs=theirs: directory.link_provider_id(kind, ours, provider, theirs, replace)  # type: ignore[misc]
            )
        except LinkError as exc:
            done = ", ".join(f"{e['product_id']}={e['provider_id']}" for e in linked)
            raise UsageError(f"{ours}={theirs}: {exc}" + (f" (already linked: {done})" if done else "")) from exc
        linked.append({"product_id": ours, "provider_id": theirs, "written": written})
    return linked


# -- writing ---------------------------------------------------------------------------------------------


def _write_csv(path: Path, result: MatchSuggestions, products: dict[str, str], roster: dict[str, str]) -> None:
    """The suggestions as a CSV the admin edits: ``confirm`` = yes on the rows to store (``--file``)."""
    rows: list[tuple[str, ...]] = []
    for s in result.suggestions:
        rows.append(
            ("", s.product_id, s.product_name, s.provider_id, s.provider_name, s.confidence, "; ".join(s.reasons))
        )
    for tie in result.ties:
        for ours in tie.product_ids:
            for theirs in tie.provider_ids:
                rows.append(("", ours, products.get(ours, ""), theirs, roster.get(theirs, ""), "tie", tie.reason))
    for u in result.unmatched_product:
        rows.append(("", u.id, u.name, "", "", "", u.reason))
    for u in result.unmatched_provider:
        rows.append(("", "", "", u.id, u.name, "", u.reason))
    try:
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(CSV_COLUMNS)
            writer.writerows([neutralise_formula(cell) for cell in row] for row in rows)
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot be written ({exc.strerror or exc.__class__.__name__})") from exc


def _print_json(value: dict[str, Any]) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


class _Printer:
    def line(self, text: str = "") -> None:
        print(text)

    def section(self, title: str) -> None:
        print(f"\n{title}:")

    def rows(self, rows: list[tuple[str, ...]], limit: int = _SHOWN) -> None:
        if not rows:
            print("  (none)")
            return
        widths = [min(40, max(len(r[i]) for r in rows)) for i in range(len(rows[0]) - 1)]
        for row in rows[:limit]:
            print("  " + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip())
        if len(rows) > limit:
            print(f"  … and {len(rows) - limit} more (all of them with --out or --json)")


def _warn_incomplete(out: _Printer, preview: RosterPreview) -> None:
    if not preview.complete:
        out.line("Warning: the roster could not be read completely; some records may be missing below:")
        for problem in preview.problems[:5]:
            out.line(f"  {problem}")


def _print_suggestions(out: _Printer, result: MatchSuggestions, noun: str, pair: str) -> None:
    out.section(f"Suggested pairs (confirm with --confirm {pair}, --accept high, or --out then --file)")
    out.rows(
        [
            (s.confidence, s.product_id, s.product_name, "↔", s.provider_id, s.provider_name, "; ".join(s.reasons))
            for s in result.suggestions
        ],
        limit=sys.maxsize,
    )
    if result.ties:
        out.section("Ties: equally good candidates, not suggested (pick one with --confirm)")
        out.rows(
            [(t.confidence, ", ".join(t.product_ids), "↔", ", ".join(t.provider_ids), t.reason) for t in result.ties]
        )
    out.section(f"Already linked {noun}s")
    out.rows(
        [
            (x.product_id, x.product_name, "→", x.provider_id, x.provider_name or "(not in the roster)")
            for x in result.linked
        ]
    )
    if result.unmatched_provider and noun == "classroom":
        out.section("Sections with no classroom to link")
        shown = result.unmatched_provider[:SECTIONS_SHOWN]
        out.rows([(u.id, u.name, u.reason) for u in shown])
        if len(result.unmatched_provider) > len(shown):
            more = len(result.unmatched_provider) - len(shown)
            out.line(f"  … and {more:,} more (--json or --out lists them all)")


SECTIONS_SHOWN = 25  # a district has thousands of sections; the rest are in --json and --out


def _print_linked(
    out: _Printer, linked: list[dict[str, Any]], products: dict[str, str], roster: dict[str, str], args: Any
) -> None:
    if args.out:
        out.line(f"\nSuggestions written to {args.out}: put yes in the confirm column of the rows to store, then "
                 f"run again with --file {args.out}")  # fmt: skip
    if not linked:
        if not (args.confirm or args.file or args.accept):
            out.line("\nNothing was linked (no --confirm, --accept or --file).")
        else:
            out.line("\nNothing was linked (no pair confirmed).")
        return
    out.section("Linked")
    for entry in linked:
        state = "linked" if entry["written"] else "already linked, unchanged"
        ours, theirs = entry["product_id"], entry["provider_id"]
        out.line(f"  {ours} ({products.get(ours, '')}) → {theirs} ({roster.get(theirs, '')}): {state}")
