"""The product's directory as JSON: imported before the first sync, exported after each run.

The product file (``rostersync demo --product FILE``)::

    {"district": {"id", "name", "provider_ids": {"clever": …}},
     "schools": [{"id", "name", "provider_ids": {…}, …other fields}],
     "classrooms": [{"id", "name", "school_id", "provider_ids": {…}}],
     "people": [{"id", "roles": ["staff"|"teacher"|"student"|"guardian"], "given_name", "family_name",
                 "email", "school_ids": […], "provider_ids": {…}}]}

History the product keeps about students (the sync never writes it; ``rostersync cleanup`` and
``rostersync duplicates merge`` move it):

    "enrollments":        [{"id", "classroom_id", "person_id", "role": "student"}]
    "guardian_links":     [{"id", "guardian_id", "student_id", "relationship"}]
    "announcements":      [{"id", "title", "sent_at", "school_id", "recipient_ids": [student ids]}]
    "backpack_items":     [{"id", "student_id", "title", "file_name", "shared_at"}]
    "interaction_logs":   [{"id", "student_id", "author_id", "kind", "note", "at"}]
    "student_attributes": [{"id", "student_id", "key", "value"}]

Every id they name must be a record of the same file. Any other field a record carries (a school's
``nces_id``, a person's ``sis_id``, ``phone``, ``birth_date``) is the product's own (``product_fields``):
matching reads it, the sync never writes it. ``product_edits`` holds synced fields someone edited in the
product (``{"email": "new@…"}``): they win over the roster's value unless the district's settings say
edited contact details are overwritten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rostersync.directory.history import HISTORY_COLLECTIONS, history_item
from rostersync.directory.keys import COLLECTIONS
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository, SyncStateRepository
from rostersync.domain.ids import DistrictId
from rostersync.domain.records import Kind, Role, kind_of_roles


class _ProductRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    provider_ids: dict[str, str] = Field(default_factory=dict)
    status: str = "active"
    product_edits: dict[str, Any] = Field(default_factory=dict)

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ProductDistrict(_ProductRecord):
    id: DistrictId
    name: str
    # The district's plan in the product (rostersync.lifecycle.entitlement): premium and enterprise include
    # sync. Absent: the plan recorded before (by an event or an earlier import) stays.
    plan: str | None = None

    @field_validator("plan")
    @classmethod
    def _plan(cls, value: str | None) -> str | None:
        from rostersync.lifecycle.entitlement import plan_problem

        if value is None:
            return None
        problem = plan_problem(value)
        if problem:
            raise ValueError(problem)
        return value.strip().lower()


class ProductSchool(_ProductRecord):
    name: str


class ProductClassroom(_ProductRecord):
    name: str
    school_id: str


class ProductPerson(_ProductRecord):
    roles: list[Role] = Field(min_length=1)
    school_ids: list[str] = Field(default_factory=list)


class ProductEnrollment(_ProductRecord):
    classroom_id: str = Field(min_length=1)
    person_id: str = Field(min_length=1)
    role: str = "student"


class ProductGuardianLink(_ProductRecord):
    guardian_id: str = Field(min_length=1)
    student_id: str = Field(min_length=1)
    relationship: str = ""


class _HistoryItem(BaseModel):
    """A product-owned item about one or more students: kept whole (every field is the product's)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    status: str = "active"

    def stored_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in ("id", "status")}


class ProductAnnouncement(_HistoryItem):
    title: str = ""
    recipient_ids: list[str] = Field(min_length=1)


class ProductBackpackItem(_HistoryItem):
    student_id: str = Field(min_length=1)
    title: str = ""


class ProductInteractionLog(_HistoryItem):
    student_id: str = Field(min_length=1)
    kind: str = "note"


class ProductStudentAttribute(_HistoryItem):
    student_id: str = Field(min_length=1)
    key: str = Field(min_length=1)
    value: Any = None


class ProductDirectory(BaseModel):
    """The product's directory before the first sync, with the history it holds about students."""

    model_config = ConfigDict(extra="forbid")

    district: ProductDistrict
    schools: list[ProductSchool] = Field(default_factory=list)
    classrooms: list[ProductClassroom] = Field(default_factory=list)
    people: list[ProductPerson] = Field(default_factory=list)
    enrollments: list[ProductEnrollment] = Field(default_factory=list)
    guardian_links: list[ProductGuardianLink] = Field(default_factory=list)
    announcements: list[ProductAnnouncement] = Field(default_factory=list)
    backpack_items: list[ProductBackpackItem] = Field(default_factory=list)
    interaction_logs: list[ProductInteractionLog] = Field(default_factory=list)
    student_attributes: list[ProductStudentAttribute] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> ProductDirectory:
        """Every id an enrollment, link or history item names is a record of this file (or, for a
        classroom, a synced one is not known yet: only the file's classrooms can be named)."""
        people = {p.id: {r.value for r in p.roles} for p in self.people}
        classrooms = {c.id for c in self.classrooms}

        def student(where: str, person_id: str) -> None:
            if "student" not in people.get(person_id, set()):
                raise ValueError(f"{where}: {person_id!r} is not a student of this file")

        for e in self.enrollments:
            if e.classroom_id not in classrooms:
                raise ValueError(f"enrollments {e.id}: classroom {e.classroom_id!r} is not in this file")
            if e.person_id not in people:
                raise ValueError(f"enrollments {e.id}: person {e.person_id!r} is not in this file")
        for g in self.guardian_links:
            student(f"guardian_links {g.id}", g.student_id)
            if "guardian" not in people.get(g.guardian_id, set()):
                raise ValueError(f"guardian_links {g.id}: {g.guardian_id!r} is not a guardian of this file")
        for a in self.announcements:
            for r in a.recipient_ids:
                student(f"announcements {a.id}", r)
        for items in (self.backpack_items, self.interaction_logs, self.student_attributes):
            for item in items:
                student(f"{type(item).__name__} {item.id}", item.student_id)  # type: ignore[attr-defined]
        seen: set[tuple[str, str]] = set()
        for attribute in self.student_attributes:
            if (attribute.student_id, attribute.key) in seen:
                raise ValueError(f"student_attributes: {attribute.student_id} has key {attribute.key!r} twice")
            seen.add((attribute.student_id, attribute.key))
        return self


def import_product_directory(
    product: ProductDirectory,
    directory: DirectoryRepository,
    state: SyncStateRepository,
    now: datetime | None = None,
) -> int:
    """Write the product's own records (not sync-managed) into the directory; return how many. ``now``
    stamps the plan's history item (default: the clock)."""
    state.put_item(
        "DISTRICT",
        {"name": product.district.name, "provider_ids": product.district.provider_ids, "id": product.district.id},
    )
    if product.district.plan is not None:
        from rostersync.lifecycle.district import DistrictLifecycle

        current = state.get_item("PLAN") or {}
        if current.get("plan") != product.district.plan:
            DistrictLifecycle(state).set_plan(product.district.plan, "import-product", "import-product", now)
    records: list[DirectoryRecord] = []
    for school in product.schools:
        records.append(_product_record(Kind.SCHOOLS, school, {"name": school.name}, ""))
    for classroom in product.classrooms:
        fields = {"name": classroom.name, "school": classroom.school_id}
        records.append(_product_record(Kind.CLASSROOMS, classroom, fields, classroom.school_id))
    for person in product.people:
        fields = {"roles": [r.value for r in person.roles], "schools": person.school_ids}
        parent = person.school_ids[0] if person.school_ids else ""
        records.append(_product_record(kind_of_roles(person.roles), person, fields, parent))
    for e in product.enrollments:
        fields = {"classroom": e.classroom_id, "person": e.person_id, "role": e.role}
        records.append(_product_record(Kind.ENROLLMENTS, e, fields, e.classroom_id))
    for g in product.guardian_links:
        fields = {"guardian": g.guardian_id, "student": g.student_id, "relationship": g.relationship}
        records.append(_product_record(Kind.GUARDIAN_LINKS, g, fields, g.student_id))
    written = directory.put_records(records)
    history = []
    for collection in HISTORY_COLLECTIONS:
        for entry in getattr(product, collection):
            item = history_item(directory.district_id, collection, entry.id, entry.stored_fields())
            item["status"] = entry.status
            history.append(item)
    if history:
        written += directory.items().put_new(history)
    return written


def _product_record(kind: Kind, record: _ProductRecord, fields: dict[str, Any], parent: str) -> DirectoryRecord:
    return DirectoryRecord(
        id=record.id,
        kind=kind,
        status=record.status,
        managed_by_sync=False,
        provider_ids=record.provider_ids,
        fields=fields,
        parent_id=parent,
        product_fields=record.extra_fields(),
        product_edits=record.product_edits,
    )


def export_directory(directory: DirectoryRepository, state: SyncStateRepository) -> dict[str, Any]:
    """The district's whole directory as ``directory.json``: every record, archived ones included."""
    district = state.get_item("DISTRICT") or {}
    out: dict[str, Any] = {
        "district": {
            "id": district.get("id", directory.district_id),
            "name": district.get("name", ""),
            "provider_ids": district.get("provider_ids", {}),
        }
    }
    for collection in COLLECTIONS:
        rows = []
        for record in directory.records(collection):
            row = {
                "id": record.id,
                "status": record.status,
                "provider_ids": record.provider_ids,
                "managed_by_sync": record.managed_by_sync,
                **_public_fields(collection, record.effective_fields()),
            }
            if record.product_edits:
                row["edited_fields"] = sorted(record.product_edits)
            rows.append(row)
        out[collection] = sorted(rows, key=lambda r: r["id"])
    items = directory.items()
    for collection in HISTORY_COLLECTIONS:
        rows = [
            {"id": i["id"], "status": i.get("status", "active"), **(i.get("fields") or {})}
            for i in items.collection(collection)
        ]
        out[collection] = sorted(rows, key=lambda r: r["id"])
    return out


# Directory field names, as the product shows them (references resolved to directory ids).
_RENAMES = {
    "schools": {},
    "classrooms": {"school": "school_id"},
    "people": {"schools": "school_ids"},
    "enrollments": {"classroom": "classroom_id", "person": "person_id"},
    "guardian_links": {"guardian": "guardian_id", "student": "student_id"},
}


def _public_fields(collection: str, fields: dict[str, Any]) -> dict[str, Any]:
    renames = _RENAMES[collection]
    return {renames.get(k, k): v for k, v in fields.items()}
