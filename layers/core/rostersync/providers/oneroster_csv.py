"""OneRoster 1.1 / 1.2 CSV bundles (a zip or a folder of CSV files), as canonical records.

A district's SIS drops a bundle (on AWS through Transfer Family SFTP into S3); this provider reads it
file by file, row by row, turns each row into the REST shape (``orgSourcedIds`` "a,b" becomes
``orgs: [{"sourcedId": "a", "type": "org"}, …]``) and hands the collections to the shared
:func:`~rostersync.providers.oneroster_mapping.map_roster`. Fetch reads a bundle a file per Map item
(``check_bundle``, then ``file_entries`` per file, in slices that resume from a ``FilePosition``) and maps
what they read with ``OneRosterFilesRead``, which gives what ``OneRosterCsvProvider`` gives for the bundle
read whole.

What real exports do, and what this provider does about it:

- UTF-8 with or without a BOM; bytes that are not UTF-8 are replaced and reported once per file.
- Header names in any case and order, extra columns (``metadata.*`` columns become ``metadata``), blank
  optional fields, empty header cells, rows with a trailing empty field. OneRoster 1.0 column names
  (``grade``, ``userId``, ``agents``, ``schoolYearId``, demographics' ``userSourcedId``) are read as
  their 1.1 names.
- ``status`` in any case; US dates (M/D/YYYY) in ``birthDate`` and ``dateLastModified`` become ISO.
- A bulk bundle whose users.csv has no rows is an empty export and is refused as a whole.
- ``manifest.csv`` (``propertyName,value``): ``file.X`` is ``bulk``, ``delta`` or ``absent``. Any delta
  file makes the fetch a delta (``outcome.delta``: nothing is archived for being absent, only
  ``tobedeleted`` rows). A blank value, or a file the manifest does not name, counts as bulk when the
  file is there and absent when it is not. Without a manifest the bundle is a bulk of the files it
  holds.
- OneRoster 1.2: users' roles come from ``roles.csv`` (one row per user and org; merged with a
  ``role`` column if users.csv has one), and their schools from the roles' orgs. ``userProfiles.csv``
  holds login profiles, which the directory does not keep: it is not read.

Whole-bundle problems raise :class:`BadBundleError` before any record is read: a bundle that is not a
zip or folder, a missing required file (orgs, classes, users, enrollments, unless the manifest says
``absent``), a missing required column, a misspelt header of a column rostersync reads (with the
closest OneRoster name, found by difflib), an unsupported manifest. A misspelt header of a column it
does not read is only logged. Per-row problems become ``RecordError`` lines; a file that breaks off
mid-way (a truncated zip member) is recorded in ``outcome`` as incomplete, so the run archives nothing.
A row that swallowed others (an unclosed quote: a value spanning lines shaped like rows, a value over
``CsvLimits.max_field_chars``, a row over ``max_lines_per_row`` lines) is not synced: its error names the
file, the line and the fix, never the swallowed text, and holds back archiving of what the file holds
(``FILE_HOLDS``), since the swallowed rows' people only look absent.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import re
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

from rostersync.domain.ids import id_problem
from rostersync.domain.records import Kind, RecordError, SnapshotItem
from rostersync.errors import RostersyncError
from rostersync.providers.base import FetchOutcome
from rostersync.providers.oneroster_mapping import PROVIDER, iso_date, map_roster

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class BadBundleError(RostersyncError):
    """The uploaded OneRoster bundle cannot be synced as a whole; the message says what to fix."""


class _TooManyRowsError(Exception):
    """A file has more rows than ``CsvLimits.max_rows_per_file``: it is not read further."""


@dataclass(frozen=True)
class _FileSpec:
    """One OneRoster CSV file: its columns, which must be there, which rostersync reads."""

    collection: str
    kind: Kind  # under which kind a row problem is reported
    columns: tuple[str, ...]  # the OneRoster 1.1 and 1.2 columns of the file
    required: frozenset[str]
    read: frozenset[str]
    aliases: dict[str, str] = field(default_factory=dict)  # OneRoster 1.0 names → 1.1 names

    @property
    def filename(self) -> str:
        return f"{self.collection}.csv"


_BASE = ("sourcedId", "status", "dateLastModified")

FILES: dict[str, _FileSpec] = {
    spec.collection: spec
    for spec in (
        _FileSpec(
            "orgs",
            Kind.SCHOOLS,
            (*_BASE, "name", "type", "identifier", "parentSourcedId"),
            required=frozenset({"sourcedId", "name", "type"}),
            read=frozenset({"sourcedId", "status", "name", "type", "identifier"}),
        ),
        _FileSpec(
            "academicSessions",
            Kind.CLASSROOMS,
            (*_BASE, "title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"),
            required=frozenset({"sourcedId", "title"}),
            read=frozenset({"sourcedId", "title"}),
        ),
        _FileSpec(
            "courses",
            Kind.CLASSROOMS,
            (
                *_BASE,
                "schoolYearSourcedId",
                "title",
                "courseCode",
                "grades",
                "orgSourcedId",
                "subjects",
                "subjectCodes",
            ),
            required=frozenset({"sourcedId", "title"}),
            read=frozenset({"sourcedId", "title"}),
            aliases={"schoolYearId": "schoolYearSourcedId", "grade": "grades"},
        ),
        _FileSpec(
            "classes",
            Kind.CLASSROOMS,
            (
                *_BASE,
                "title",
                "grades",
                "courseSourcedId",
                "classCode",
                "classType",
                "location",
                "schoolSourcedId",
                "termSourcedIds",
                "subjects",
                "subjectCodes",
                "periods",
            ),
            required=frozenset({"sourcedId", "title", "schoolSourcedId"}),
            read=frozenset(
                {
                    "sourcedId",
                    "status",
                    "title",
                    "grades",
                    "courseSourcedId",
                    "classCode",
                    "schoolSourcedId",
                    "termSourcedIds",
                    "subjects",
                    "periods",
                }
            ),
            aliases={"grade": "grades"},
        ),
        _FileSpec(
            "users",
            Kind.STUDENTS,
            (
                *_BASE,
                "enabledUser",
                "orgSourcedIds",
                "role",
                "username",
                "userIds",
                "givenName",
                "familyName",
                "middleName",
                "identifier",
                "email",
                "sms",
                "phone",
                "agentSourcedIds",
                "grades",
                "password",
                # OneRoster 1.2
                "userMasterIdentifier",
                "preferredGivenName",
                "preferredMiddleName",
                "preferredFamilyName",
                "primaryOrgSourcedId",
                "pronouns",
            ),
            # ``role`` is required too unless roles.csv carries the roles (OneRoster 1.2).
            required=frozenset({"sourcedId", "givenName", "familyName"}),
            read=frozenset(
                {
                    "sourcedId",
                    "status",
                    "orgSourcedIds",
                    "role",
                    "userIds",
                    "givenName",
                    "familyName",
                    "middleName",
                    "identifier",
                    "email",
                    "sms",
                    "phone",
                    "agentSourcedIds",
                    "grades",
                    "primaryOrgSourcedId",
                }
            ),
            aliases={"userId": "userIds", "agents": "agentSourcedIds", "grade": "grades"},
        ),
        _FileSpec(
            "enrollments",
            Kind.ENROLLMENTS,
            (
                *_BASE,
                "classSourcedId",
                "schoolSourcedId",
                "userSourcedId",
                "role",
                "primary",
                "beginDate",
                "endDate",
            ),
            required=frozenset({"sourcedId", "classSourcedId", "userSourcedId", "role"}),
            read=frozenset({"sourcedId", "status", "classSourcedId", "userSourcedId", "role"}),
        ),
        _FileSpec(
            "demographics",
            Kind.STUDENTS,
            (
                *_BASE,
                "birthDate",
                "sex",
                "americanIndianOrAlaskaNative",
                "asian",
                "blackOrAfricanAmerican",
                "nativeHawaiianOrOtherPacificIslander",
                "white",
                "demographicRaceTwoOrMoreRaces",
                "hispanicOrLatinoEthnicity",
                "countryOfBirthCode",
                "stateOfBirthAbbreviation",
                "cityOfBirth",
                "publicSchoolResidenceStatus",
            ),
            required=frozenset({"sourcedId"}),
            read=frozenset({"sourcedId", "status", "birthDate"}),
            aliases={"userSourcedId": "sourcedId"},
        ),
        _FileSpec(
            "roles",
            Kind.STUDENTS,
            (
                *_BASE,
                "userSourcedId",
                "roleType",
                "role",
                "beginDate",
                "endDate",
                "orgSourcedId",
                "userProfileSourcedId",
            ),
            required=frozenset({"userSourcedId", "role", "orgSourcedId"}),
            read=frozenset({"status", "userSourcedId", "roleType", "role", "orgSourcedId"}),
        ),
    )
}

# Without these a bulk bundle is not a roster; the manifest may still declare them absent.
REQUIRED_FILES = ("orgs", "classes", "users", "enrollments")
MODES = ("bulk", "delta", "absent")
SUPPORTED_VERSIONS = {"1.0": "1.1", "1.1": "1.1", "1.2": "1.2"}

# A misspelt header: this close (difflib ratio, lower case) to a OneRoster column the file lacks.
_MISSPELLING_CUTOFF = 0.8
# One ``{type:id}`` of a userIds cell.
USER_ID_PAIR = re.compile(r"\{\s*([^:{}]*?)\s*:\s*([^{}]*?)\s*\}")


class OneRosterCsvProvider:
    """The district's roster from an uploaded OneRoster CSV bundle.

    Parameters
    ----------
    bundle
        A folder of CSV files, a zip file's path, or a zip file's bytes (as downloaded from S3).
    """

    name = PROVIDER

    def __init__(self, bundle: Path | str | bytes, limits: Any = None) -> None:
        self._bundle = bundle
        self._limits = CsvLimits.from_settings(limits)

    def fetch(self, outcome: FetchOutcome) -> Iterator[SnapshotItem]:
        """Check the bundle, then stream its records; raises ``BadBundleError`` before the first record."""
        with _open_bundle(self._bundle, self._limits) as bundle:
            layout = _check_bundle(bundle)
            row_errors: deque[RecordError] = deque()
            reader = _BundleReader(bundle, layout, outcome, row_errors, self._limits)
            yield from _mapped(layout, reader, outcome, row_errors)


# ---------------------------------------------------------------------------------------------------
# The bundle: a folder or a zip, its members found by file name in any case.
# ---------------------------------------------------------------------------------------------------


class _Bundle:
    def __init__(self, members: dict[str, Callable[[], IO[bytes]]]) -> None:
        self.members = members  # lower-case file name → opener of its bytes

    def has(self, filename: str) -> bool:
        return filename.lower() in self.members

    @contextmanager
    def text(self, filename: str) -> Iterator[IO[str]]:
        # utf-8-sig drops a BOM; newline="" lets csv handle quoted line breaks and \r\n.
        text = io.TextIOWrapper(self.members[filename.lower()](), encoding="utf-8-sig", errors="replace", newline="")
        try:
            yield text
        finally:
            text.close()


# Members this small are never refused for their ratio (a header-only file compresses very well).
_RATIO_MIN_BYTES = 1 << 20


def _check_sizes(sizes: list[tuple[str, int, int]], limits: CsvLimits) -> None:
    """Refuse a bundle whose files (name, size, compressed size) expand past the limits, before reading."""
    total = sum(size for _, size, _ in sizes)
    if total > limits.max_bundle_bytes:
        raise BadBundleError(
            f"the bundle expands to {total:,} bytes, over the limit of {limits.max_bundle_bytes:,} (settings "
            "limits.max_bundle_bytes): it was not read. Check the export; a district this large can raise the limit"
        )
    for name, size, compressed in sizes:
        if size > _RATIO_MIN_BYTES and size > limits.max_compression_ratio * max(compressed, 1):
            raise BadBundleError(
                f"{name} expands {size // max(compressed, 1):,} times its compressed size (the limit is "
                f"{limits.max_compression_ratio:,}, settings limits.max_compression_ratio): that is not a roster "
                "export (a zip bomb?); it was not read"
            )


@contextmanager
def _open_bundle(bundle: Path | str | bytes | IO[bytes], limits: CsvLimits | None = None) -> Iterator[_Bundle]:
    limits = limits or CsvLimits()
    if isinstance(bundle, bytes | bytearray):
        source: Any = io.BytesIO(bundle)
    elif not isinstance(bundle, str | Path):
        source = bundle  # a seekable file of the zip's bytes (an upload read where it lies in S3)
    else:
        path = Path(bundle)
        if path.is_dir():
            files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv"]
            _check_sizes([(p.name, p.stat().st_size, p.stat().st_size) for p in files], limits)
            yield _Bundle(_folder_members(path))
            return
        if not path.is_file():
            raise BadBundleError("the OneRoster bundle was not found: upload a zip or a folder of CSV files")
        source = path
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadBundleError(
            "the OneRoster bundle is not a readable zip file: upload the CSV files zipped, or as a folder"
        ) from exc
    with archive:
        _check_sizes([(i.filename, i.file_size, i.compress_size) for i in archive.infolist() if not i.is_dir()], limits)
        yield _Bundle(_zip_members(archive))


def _folder_members(folder: Path) -> dict[str, Callable[[], IO[bytes]]]:
    members: dict[str, Callable[[], IO[bytes]]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() == ".csv":
            _add_member(members, path.name, _file_opener(path))
    return members


def _file_opener(path: Path) -> Callable[[], IO[bytes]]:
    def open_file() -> IO[bytes]:
        return path.open("rb")

    return open_file


def _zip_members(archive: zipfile.ZipFile) -> dict[str, Callable[[], IO[bytes]]]:
    """CSV members by file name; a zip made of a folder (``export/users.csv``) is read the same."""
    members: dict[str, Callable[[], IO[bytes]]] = {}
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        base = name.rsplit("/", 1)[-1]
        if info.is_dir() or name.startswith("__MACOSX/") or base.startswith("._"):
            continue
        if base.lower().endswith(".csv"):
            _add_member(members, base, partial(archive.open, info))
    return members


def _add_member(members: dict[str, Callable[[], IO[bytes]]], name: str, opener: Callable[[], IO[bytes]]) -> None:
    key = name.lower()
    if key in members and key in {spec.filename.lower() for spec in FILES.values()} | {"manifest.csv"}:
        raise BadBundleError(f"the bundle holds {name} more than once: keep one {name} and upload it again")
    members.setdefault(key, opener)


# ---------------------------------------------------------------------------------------------------
# Checking the bundle as a whole: manifest, files, headers.
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    version: str
    modes: dict[str, str]  # collection → bulk | delta | absent, for the files rostersync reads
    headers: dict[str, list[str | None]] = field(default_factory=dict)  # column position → 1.1 name

    @property
    def delta(self) -> bool:
        return "delta" in self.modes.values()

    def present(self, collection: str) -> bool:
        return self.modes.get(collection, "absent") != "absent"

    def to_json(self) -> dict[str, Any]:
        """As a Fetch plan keeps it (``check_bundle``), for the slices and the assembly."""
        return {"version": self.version, "modes": self.modes, "headers": self.headers}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Layout:
        return cls(version=data["version"], modes=dict(data["modes"]), headers=dict(data["headers"]))


def _check_bundle(bundle: _Bundle) -> _Layout:
    """Read the manifest and every header; raise one ``BadBundleError`` naming every problem found."""
    problems: list[str] = []
    manifest = (
        _unreadable_member(bundle, "manifest.csv", problems, _read_manifest) if bundle.has("manifest.csv") else None
    )
    version = _version(manifest, problems)
    modes: dict[str, str] = {}
    for collection, spec in FILES.items():
        stated = (manifest or {}).get(f"file.{collection}".lower(), "").strip().lower()
        if stated and stated not in MODES:
            problems.append(f'manifest.csv: file.{collection} is "{stated}"; expected bulk, delta or absent')
            continue
        there = bundle.has(spec.filename)
        if stated in ("bulk", "delta") and not there:
            problems.append(f"manifest.csv lists {spec.filename} as {stated}, but the bundle has no {spec.filename}")
            continue
        if stated == "absent" and there:
            logger.warning("Ignoring %s: the bundle's manifest says it is absent", spec.filename)
        modes[collection] = stated if stated in ("delta", "absent") else ("bulk" if there else "absent")
    if manifest is None:
        missing = [FILES[c].filename for c in REQUIRED_FILES if modes.get(c) == "absent"]
        if missing:
            problems.append(
                f"the bundle has no manifest.csv, and {_and(missing)} {'is' if len(missing) == 1 else 'are'} "
                "missing: a OneRoster bundle needs orgs.csv, classes.csv, users.csv and enrollments.csv "
                "(or a manifest.csv saying which are absent)"
            )
    else:
        for collection in REQUIRED_FILES:
            if modes.get(collection) == "absent" and manifest.get(f"file.{collection}".lower(), "") != "absent":
                problems.append(
                    f"the bundle has no {FILES[collection].filename}, and manifest.csv does not say it is absent"
                )
    layout = _Layout(version=version, modes=modes)
    roles_from_file = layout.present("roles")
    for collection, spec in FILES.items():
        if layout.present(collection):
            header = _unreadable_member(bundle, spec.filename, problems, _read_header, spec, problems)
            if header is not None:
                extra_required = {"role"} if collection == "users" and not roles_from_file else set()
                layout.headers[collection] = _check_header(spec, header, extra_required, problems, version)
    if (
        not problems
        and layout.modes.get("users") == "bulk"
        and _unreadable_member(bundle, "users.csv", problems, _has_rows, FILES["users"]) is False
    ):
        # A bulk roster without a single person is a failed export, never a district's real roster.
        problems.append("users.csv has no rows: the export is empty; check the SIS export and upload the bundle again")
    if problems:
        raise BadBundleError("; ".join(problems))
    return layout


def _has_rows(bundle: _Bundle, spec: _FileSpec) -> bool:
    """Whether the file has a data row that is not blank (it reads no further than that row)."""
    with bundle.text(spec.filename) as text:
        rows = csv.reader(text)
        next(rows, None)
        try:
            return any(any(cell.strip() for cell in row) for row in rows)
        except csv.Error:
            return True  # unreadable rows are reported, with their line, while streaming


def _unreadable_member(
    bundle: _Bundle, filename: str, problems: list[str], read: Callable[..., _T], *args: Any
) -> _T | None:
    """``read(bundle, *args)``, or None with a problem when the zip member cannot be read at all."""
    try:
        return read(bundle, *args)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        problems.append(f"{filename} could not be read from the zip ({type(exc).__name__}): upload the bundle again")
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or an unsupported compression method
        problems.append(
            f"{filename} could not be opened ({exc}): zip the bundle without a password and upload it again"
        )
    return None


def _read_manifest(bundle: _Bundle) -> dict[str, str]:
    """``manifest.csv`` as lower-case property name → value."""
    with bundle.text("manifest.csv") as text:
        rows = [row for row in csv.reader(text) if any(cell.strip() for cell in row)]
    if not rows or [cell.strip().lower() for cell in rows[0][:2]] != ["propertyname", "value"]:
        raise BadBundleError('manifest.csv must start with the header "propertyName,value"')
    return {row[0].strip().lower(): (row[1] if len(row) > 1 else "").strip() for row in rows[1:] if row[0].strip()}


def _version(manifest: dict[str, str] | None, problems: list[str]) -> str:
    if manifest is None:
        return "1.1"
    stated = manifest.get("oneroster.version") or manifest.get("manifest.version") or "1.1"
    version = SUPPORTED_VERSIONS.get(stated.strip())
    if version is None:
        problems.append(f"manifest.csv: OneRoster version {stated} is not supported (1.1 and 1.2 are)")
        return "1.1"
    return version


def _not_utf8_text(bundle: _Bundle, filename: str) -> str:
    """Why a file's bytes are not UTF-8 text a CSV reader can take ("" when they are): UTF-16 or UTF-32
    (a spreadsheet's "Unicode text" export), said as such rather than as missing columns."""
    with bundle.members[filename.lower()]() as raw:
        head = raw.read(4096)
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        encoding = "UTF-32"
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")) or (head and head.count(b"\x00") * 4 >= len(head)):
        encoding = "UTF-16"
    else:
        return ""
    return (
        f"{filename} is {encoding} text, not UTF-8: export it again as CSV UTF-8 (in Excel: Save As, "
        '"CSV UTF-8 (Comma delimited)") and upload the bundle again'
    )


def _read_header(bundle: _Bundle, spec: _FileSpec, problems: list[str]) -> list[str] | None:
    encoding = _not_utf8_text(bundle, spec.filename)
    if encoding:
        problems.append(encoding)
        return None
    with bundle.text(spec.filename) as text:
        try:
            header = next(csv.reader(text), None)
        except csv.Error as exc:
            problems.append(f"{spec.filename}: the header row is not readable CSV ({exc})")
            return None
    if not header or not any(cell.strip() for cell in header):
        problems.append(f"{spec.filename} is empty: it needs at least its header row")
        return None
    return header


def _check_header(
    spec: _FileSpec, header: list[str], extra_required: set[str], problems: list[str], version: str
) -> list[str | None]:
    """Each header cell's OneRoster 1.1 name (None for columns not read), checking what must be there."""
    known = {column.lower(): column for column in spec.columns}
    aliases = {alias.lower(): column for alias, column in spec.aliases.items()}
    names: list[str | None] = []
    found: dict[str, str] = {}
    unknown: list[str] = []
    for cell in header:
        text = cell.strip().lstrip("\ufeff").strip()
        lowered = text.lower()
        column = known.get(lowered) or aliases.get(lowered)
        if column is None and lowered.startswith("metadata.") and len(text) > len("metadata."):
            names.append(text)
            continue
        if column is None:
            if text:
                unknown.append(text)
            names.append(None)
            continue
        if column in found:
            problems.append(
                f'{spec.filename}: column "{column}" appears twice ("{found[column]}" and "{text}"): keep one'
            )
        found[column] = text
        names.append(column)
    required = spec.required | extra_required
    absent = {column.lower(): column for column in spec.columns if column not in found}
    misspelt: dict[str, str] = {}  # absent column → the header that looks like it
    for text in unknown:
        match = difflib.get_close_matches(text.lower(), list(absent), n=1, cutoff=_MISSPELLING_CUTOFF)
        if match:
            misspelt.setdefault(absent[match[0]], text)
    for column in sorted(required - set(found)):
        hint = f' (found "{misspelt[column]}": misspelt?)' if column in misspelt else ""
        why = " (OneRoster 1.2 bundles without roles.csv need it)" if column == "role" and version == "1.2" else ""
        problems.append(f'{spec.filename}: required column "{column}" is missing{hint}{why}')
    for column, text in sorted(misspelt.items()):
        if column in required:
            continue
        if column in spec.read:
            problems.append(f'{spec.filename}: column "{text}" is not a OneRoster column (misspelt "{column}"?)')
        else:
            logger.warning(
                '%s: column "%s" looks like a misspelt "%s", which rostersync does not read',
                spec.filename,
                text,
                column,
            )
    return names


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------------------------------------------
# Reading rows, as REST-shaped objects.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvLimits:
    """How large a bundle and its rows may be (settings ``limits``), and how far a row may go before it
    is taken for rows an unclosed quote swallowed."""

    max_field_chars: int = 8_192  # one value (a name, an email, a list of org ids)
    max_lines_per_row: int = 8  # physical lines of one row (a quoted address may hold a few)
    max_bundle_bytes: int = 8 << 30
    max_compression_ratio: int = 200
    max_rows_per_file: int = 10_000_000

    @classmethod
    def from_settings(cls, limits: Any) -> CsvLimits:
        """From a ``LimitSettings`` (None: the defaults)."""
        if limits is None:
            return cls()
        return cls(
            max_field_chars=limits.max_field_chars,
            max_bundle_bytes=limits.max_bundle_bytes,
            max_compression_ratio=limits.max_compression_ratio,
            max_rows_per_file=limits.max_rows_per_file,
        )


# What a file that could not be read to its end holds back: nothing of these is archived this run.
FILE_HOLDS: dict[str, list[str]] = {
    "orgs": ["schools", "classrooms", "people", "enrollments", "guardian_links"],
    "academicSessions": [],
    "courses": [],
    "classes": ["classrooms", "enrollments"],
    "users": ["people", "enrollments", "guardian_links"],
    "enrollments": ["enrollments"],
    "demographics": [],
    "roles": ["people", "enrollments", "guardian_links"],
}


def _swallowed_rows(cells: list[str], columns: int, lines: int, limits: CsvLimits) -> str:
    """Why this parsed row looks like other rows swallowed by an unclosed quote ("" when it does not): a
    value holding a line break followed by a row-shaped line, a value over the size limit, or a row
    spanning more physical lines than a real one does."""
    # A value that spans lines and holds a line with this many commas is rows, not an address.
    row_shaped = min(3, max(1, columns - 1))
    for cell in cells:
        if len(cell) > limits.max_field_chars:
            return f"a value of {len(cell):,} characters (the limit is {limits.max_field_chars:,})"
        if "\n" in cell or "\r" in cell:
            if any(part.count(",") >= row_shaped for part in cell.splitlines()):
                return "a quoted value that runs over lines shaped like rows"
    if lines > limits.max_lines_per_row:
        return f"one row spanning {lines:,} lines (the limit is {limits.max_lines_per_row:,})"
    return ""


def _swallowed_error(spec: _FileSpec, cells: list[str], names: list[str | None], line: int, why: str) -> RecordError:
    """The error line of a row that swallowed others. It names the file, the line and the fix, never the
    swallowed text (other families' data): only the row's own id, when that is clean."""
    position = names.index("sourcedId") if "sourcedId" in names else -1
    sourced_id = cells[position].strip() if 0 <= position < len(cells) else ""
    if id_problem(sourced_id) or "\n" in sourced_id:
        sourced_id = ""
    holds = FILE_HOLDS.get(spec.collection, [])
    return RecordError(
        kind=spec.kind,
        provider_id=sourced_id,
        reason=f'{spec.filename} line {line}: {why}: an unclosed quote (") there swallowed the rows after it, '
        f"so {spec.filename} could not be read to its end. That row and the rows it swallowed were not synced"
        + (", and nothing of them is archived this run" if holds else "")
        + f". Fix: close or remove the quote on line {line} of {spec.filename} and upload the bundle again",
        holds_archive=holds,
    )


@dataclass
class FilePosition:
    """How far one file has been read: CSV records taken (its header included), the last physical line,
    data rows counted (``max_rows_per_file``) and rows with replaced characters. A slice of the file that
    stops keeps it; the next slice reads on from it (``file_rows``)."""

    records: int = 0
    line: int = 1
    rows: int = 0
    replaced: int = 0
    # 0: reading rows; 1: the rows are done (read to the end, or the file broke off and that was said);
    # 2: the rows with replaced characters were said too: nothing is left
    stage: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, int] | None) -> FilePosition:
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class RowProblem:
    """A row's error line, or (``incomplete``) the file's end before its last row: the run archives nothing."""

    error: RecordError
    incomplete: bool = False


def record_problem(problem: RowProblem, outcome: FetchOutcome, row_errors: deque[RecordError]) -> None:
    """Where a problem ``file_rows`` met goes: the error lines, and the outcome when the file broke off."""
    if problem.incomplete:
        outcome.mark_incomplete(problem.error.reason)
    row_errors.append(problem.error)


def file_rows(
    bundle: _Bundle, spec: _FileSpec, names: list[str | None], limits: CsvLimits, position: FilePosition
) -> Iterator[tuple[dict[str, str] | None, RowProblem | None]]:
    """One file's data rows from ``position`` on, each as ({1.1 column name: value}, None), and, where they
    fall, its problems as (None, problem): a row with more values than columns, a row that swallowed
    others, the file breaking off (the last thing it yields), rows not valid UTF-8 (counted, said at the
    end). ``position`` moves before each thing yielded, so a reader that stops after any of them can read
    on from it later."""
    if position.stage == 0:
        yield from _rows_from(bundle, spec, names, limits, position)
        position.stage = 1
    if position.stage == 1:
        position.stage = 2
        if position.replaced:
            yield (
                None,
                RowProblem(
                    RecordError(
                        kind=spec.kind,
                        reason=f"{spec.filename}: {position.replaced} rows are not valid UTF-8; their unreadable "
                        "characters were replaced (export the bundle as UTF-8)",
                    )
                ),
            )


def _rows_from(
    bundle: _Bundle, spec: _FileSpec, names: list[str | None], limits: CsvLimits, position: FilePosition
) -> Iterator[tuple[dict[str, str] | None, RowProblem | None]]:
    with bundle.text(spec.filename) as text:
        reader = csv.reader(text)
        line = position.line
        try:
            for _ in range(max(position.records, 1)):  # the header (checked already), and what was read before
                next(reader, None)
            position.records = max(position.records, 1)
            for cells in reader:
                position.records += 1
                first_line, line = line + 1, reader.line_num
                position.line = line
                if not any(cell.strip() for cell in cells):
                    continue
                position.rows += 1
                if position.rows > limits.max_rows_per_file:
                    raise _TooManyRowsError
                swallowed = _swallowed_rows(cells, len(names), line - first_line + 1, limits)
                if swallowed:
                    yield None, RowProblem(_swallowed_error(spec, cells, names, first_line, swallowed))
                    continue
                if any("\ufffd" in cell for cell in cells):
                    position.replaced += 1
                row: dict[str, str] = {}
                for index, cell in enumerate(cells[: len(names)]):
                    column = names[index]
                    if column is not None:
                        row[column] = cell.strip()
                overflow = [cell for cell in cells[len(names) :] if cell.strip()]
                if overflow:
                    yield (
                        None,
                        RowProblem(
                            RecordError(
                                kind=spec.kind,
                                provider_id=row.get("sourcedId", ""),
                                reason=f"{spec.filename} line {line} has {len(cells)} values but the header "
                                f"has {len(names)} columns (a value with an unquoted comma?); skipped",
                            )
                        ),
                    )
                    continue
                yield row, None
        except (csv.Error, zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, _TooManyRowsError) as exc:
            why = type(exc).__name__
            if isinstance(exc, _TooManyRowsError):
                why = (
                    f"it has more than {limits.max_rows_per_file:,} rows, the limit (settings limits.max_rows_per_file)"
                )
            if isinstance(exc, csv.Error) and "field larger than field limit" in str(exc):
                why = (
                    f'a value is longer than {csv.field_size_limit():,} characters: an unclosed quote (") '
                    "swallowed the lines after it? Close or remove that quote"
                )
            problem = (
                f"{spec.filename} could not be read past line {line + 1} ({why}); the rest of it was not "
                "read, so this run will not archive anything"
            )
            logger.warning("Unreadable OneRoster CSV: %s", problem)
            position.stage = 1  # said once: a slice after this one does not read the file again
            yield None, RowProblem(RecordError(kind=spec.kind, reason=problem), incomplete=True)


class _RosterFiles:
    """The bundle's collections as ``map_roster`` asks for them: REST-shaped objects, a file's problems
    recorded where they fall. Read from the bundle itself (``_BundleReader``) or from what Fetch's slices
    read of it, a file each (``_FilesRead``)."""

    def __init__(self, layout: _Layout, outcome: FetchOutcome, row_errors: deque[RecordError]) -> None:
        self.layout = layout
        self.outcome = outcome
        self.row_errors = row_errors

    def collection(self, name: str) -> Iterator[dict[str, Any]]:
        """The objects of one collection, REST-shaped; none when the bundle does not have the file."""
        if name not in FILES or not self.layout.present(name) or name not in self.layout.headers:
            return iter(())
        if name == "users" and self.layout.present("roles") and "roles" in self.layout.headers:
            return self._users_with_roles()
        return self._objects(name)

    def _objects(self, name: str) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _role_rows(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _users_with_roles(self) -> Iterator[dict[str, Any]]:
        """OneRoster 1.2: users joined with their roles.csv rows (read first, kept by user)."""
        roles: dict[str, list[tuple[str, str, str]]] = {}
        for row in self._role_rows():
            user, role = row.get("userSourcedId", ""), row.get("role", "")
            if not user or not role or row.get("status", "").lower() == "tobedeleted":
                continue
            roles.setdefault(user, []).append((role, row.get("roleType", ""), row.get("orgSourcedId", "")))
        for obj in self._objects("users"):
            entries = roles.pop(obj.get("sourcedId", ""), [])
            obj["roles"] = [
                {"role": role, "roleType": role_type, "org": _ref(org, "org") if org else None}
                for role, role_type, org in entries
            ]
            yield obj


class _BundleReader(_RosterFiles):
    def __init__(
        self,
        bundle: _Bundle,
        layout: _Layout,
        outcome: FetchOutcome,
        row_errors: deque[RecordError],
        limits: CsvLimits | None = None,
    ) -> None:
        super().__init__(layout, outcome, row_errors)
        self.bundle = bundle
        self.limits = limits or CsvLimits()

    def _objects(self, name: str) -> Iterator[dict[str, Any]]:
        return (as_object(name, row) for row in self._rows(name))

    def _role_rows(self) -> Iterator[dict[str, Any]]:
        return self._rows("roles")

    def _rows(self, collection: str) -> Iterator[dict[str, str]]:
        """Each data row as {1.1 column name: value}; rows with more values than columns are reported."""
        spec = FILES[collection]
        for row, problem in file_rows(self.bundle, spec, self.layout.headers[collection], self.limits, FilePosition()):
            if problem is None:
                yield row  # type: ignore[misc]
            else:
                record_problem(problem, self.outcome, self.row_errors)


class _FilesRead(_RosterFiles):
    """The bundle's files as Fetch's slices read them (``file_entries``), a file at a time."""

    def __init__(
        self,
        layout: _Layout,
        entries: Callable[[str, FetchOutcome], Iterable[dict[str, Any]]],
        outcome: FetchOutcome,
        row_errors: deque[RecordError],
    ) -> None:
        super().__init__(layout, outcome, row_errors)
        self._entries = entries

    def _objects(self, name: str) -> Iterator[dict[str, Any]]:
        for entry in self._entries(name, self.outcome):
            if "o" in entry:
                yield entry["o"]
            else:
                error = RecordError.model_validate(entry["e"])
                record_problem(RowProblem(error, bool(entry.get("incomplete"))), self.outcome, self.row_errors)

    def _role_rows(self) -> Iterator[dict[str, Any]]:
        return self._objects("roles")


# ---------------------------------------------------------------------------------------------------
# A bundle read a file at a time: checked once (``check_bundle``), each file read apart, maybe in slices
# (``file_entries``), then mapped together (``OneRosterFilesRead``).
# ---------------------------------------------------------------------------------------------------


def check_bundle(source: Path | str | bytes, limits: Any = None) -> dict[str, Any]:
    """The bundle checked as a whole (raises ``BadBundleError`` as ``OneRosterCsvProvider`` does): its
    version, each file's mode and each header's column names, as JSON, for ``file_entries``."""
    with _open_bundle(source, CsvLimits.from_settings(limits)) as bundle:
        return _check_bundle(bundle).to_json()


def files_to_read(layout: dict[str, Any]) -> list[str]:
    """The files of a checked bundle that are read: each present file whose header was read."""
    checked = _Layout.from_json(layout)
    return [name for name in FILES if checked.present(name) and name in checked.headers]


@contextmanager
def file_entries(
    source: Path | str | bytes | IO[bytes], layout: dict[str, Any], collection: str, limits: Any, position: FilePosition
) -> Iterator[Iterator[dict[str, Any]]]:
    """One file of a checked bundle from ``position`` on, as JSON entries in the file's order: ``{"o": …}``
    a row as its REST object (roles.csv: the row itself, joined to its users when they are mapped), or
    ``{"e": error, "incomplete": …}`` a problem where it fell (``file_rows``). ``position`` moves with each
    entry taken."""
    spec = FILES[collection]
    names = layout["headers"][collection]
    csv_limits = CsvLimits.from_settings(limits)
    with _open_bundle(source, csv_limits) as bundle:

        def entries() -> Iterator[dict[str, Any]]:
            for row, problem in file_rows(bundle, spec, names, csv_limits, position):
                if problem is not None:
                    yield {"e": problem.error.model_dump(mode="json"), "incomplete": problem.incomplete}
                elif collection == "roles":
                    yield {"o": row}
                else:
                    yield {"o": as_object(collection, row)}  # type: ignore[arg-type]

        yield entries()


class OneRosterFilesRead:
    """A bundle's roster from its files as they were read apart (``file_entries``: ``entries(collection,
    outcome)`` gives a file's entries in order, and records in ``outcome`` a file it lacks), mapped as
    ``OneRosterCsvProvider`` maps the bundle read whole."""

    name = PROVIDER

    def __init__(
        self, layout: dict[str, Any], entries: Callable[[str, FetchOutcome], Iterable[dict[str, Any]]]
    ) -> None:
        self._layout = _Layout.from_json(layout)
        self._entries = entries

    def fetch(self, outcome: FetchOutcome) -> Iterator[SnapshotItem]:
        row_errors: deque[RecordError] = deque()
        reader = _FilesRead(self._layout, self._entries, outcome, row_errors)
        yield from _mapped(self._layout, reader, outcome, row_errors)


def _mapped(
    layout: _Layout, reader: _RosterFiles, outcome: FetchOutcome, row_errors: deque[RecordError]
) -> Iterator[SnapshotItem]:
    """The roster mapped, each file's error lines just before the record read after them."""
    outcome.delta = layout.delta
    logger.info(
        "Reading OneRoster %s CSV bundle (%s): %s",
        layout.version,
        "delta" if layout.delta else "bulk",
        ", ".join(f"{name} {mode}" for name, mode in sorted(layout.modes.items())),
    )
    for item in map_roster(reader.collection, outcome):
        while row_errors:
            yield row_errors.popleft()
        yield item
    while row_errors:
        yield row_errors.popleft()


def _ref(sourced_id: str, ref_type: str) -> dict[str, str]:
    return {"sourcedId": sourced_id, "type": ref_type}


def _refs(value: str, ref_type: str) -> list[dict[str, str]]:
    return [_ref(item, ref_type) for item in split_list(value)]


def split_list(value: str) -> list[str]:
    """A OneRoster CSV list cell (comma-separated) as its items, spaces trimmed, empty items dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _user_ids(value: str) -> list[dict[str, str]]:
    """``{type:id},{type:id}`` as [{"type", "identifier"}]; a bare value (OneRoster 1.0) has no type."""
    pairs = [{"type": kind, "identifier": ident} for kind, ident in USER_ID_PAIR.findall(value) if ident]
    if not pairs and value.strip() and "{" not in value:
        pairs = [{"type": "", "identifier": value.strip()}]
    return pairs


def _bool(value: str) -> bool | str:
    lowered = value.strip().lower()
    return {"true": True, "false": False}.get(lowered, value)


# CSV columns holding references (→ REST field, GUIDRef type), lists of references, plain lists.
REFERENCE_COLUMNS = {
    "parentSourcedId": ("parent", "org"),
    "schoolSourcedId": ("school", "org"),
    "courseSourcedId": ("course", "course"),
    "classSourcedId": ("class", "class"),
    "userSourcedId": ("user", "user"),
    "orgSourcedId": ("org", "org"),
    "schoolYearSourcedId": ("schoolYear", "academicSession"),
}
REFERENCE_LIST_COLUMNS = {
    "orgSourcedIds": ("orgs", "org"),
    "termSourcedIds": ("terms", "academicSession"),
    "agentSourcedIds": ("agents", "user"),
}
LIST_COLUMNS = ("grades", "subjects", "subjectCodes", "periods")


def as_object(collection: str, row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the REST object of its collection (the simulator serves bundles through it too)."""
    obj: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for column, value in row.items():
        if column.lower().startswith("metadata."):
            if value:
                metadata[column[len("metadata.") :]] = value
        elif column == "password":
            continue  # never carried further
        elif column in REFERENCE_COLUMNS and not (collection == "demographics" and column == "userSourcedId"):
            field_name, ref_type = REFERENCE_COLUMNS[column]
            obj[field_name] = _ref(value, ref_type) if value else None
        elif column in REFERENCE_LIST_COLUMNS:
            field_name, ref_type = REFERENCE_LIST_COLUMNS[column]
            obj[field_name] = _refs(value, ref_type)
        elif column in LIST_COLUMNS:
            obj[column] = split_list(value)
        elif column == "userIds":
            obj[column] = _user_ids(value)
        elif column in ("dateLastModified", "birthDate"):
            obj[column] = iso_date(value)
        elif column == "enabledUser":
            obj[column] = _bool(value)
        else:
            obj[column] = value
    if collection == "users" and row.get("primaryOrgSourcedId"):
        orgs = obj.setdefault("orgs", [])
        if all(ref["sourcedId"] != row["primaryOrgSourcedId"] for ref in orgs):
            orgs.insert(0, _ref(row["primaryOrgSourcedId"], "org"))
    if metadata:
        obj["metadata"] = metadata
    return obj
