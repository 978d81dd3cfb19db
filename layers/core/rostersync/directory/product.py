"""The product's directory as JSON: imported before the first sync, exported after each run.

The product file (``rostersync demo --product FILE``)::

    {"district": {"id", "name", "provider_ids": {"clever": …}},
     "schools": [{"id", "name", "provider_ids": {…}, …other fields}],
     "classrooms": [{"id", "name", "school_id", "provider_ids": {…}}],
     "people": [{"id", "roles": ["staff"|"teacher"|"student"|"guardian"], "given_name", "family_name",
                 "email", "school_ids": […], "provider_ids": {…}}]}

Any other field a record carries (a school's ``nces_id``, a person's ``sis_id``, ``phone``,
``birth_date``) is the product's own (``product_fields``): matching reads it, the sync never writes it.
``product_edits`` holds synced fields someone edited in the product (``{"email": "new@…"}``): they win
over the roster's value unless the district's settings say edited contact details are overwritten.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rostersync.directory.keys import COLLECTIONS
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository, SyncStateRepository
from rostersync.domain.ids import district_id_problem
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

    @field_validator("id")
    @classmethod
    def _district_id(cls, value: str) -> str:
        problem = district_id_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ProductSchool(_ProductRecord):
    name: str


class ProductClassroom(_ProductRecord):
    name: str
    school_id: str


class ProductPerson(_ProductRecord):
    roles: list[Role] = Field(min_length=1)
    school_ids: list[str] = Field(default_factory=list)


class ProductDirectory(BaseModel):
    """The product's directory before the first sync."""

    model_config = ConfigDict(extra="forbid")

    district: ProductDistrict
    schools: list[ProductSchool] = Field(default_factory=list)
    classrooms: list[ProductClassroom] = Field(default_factory=list)
    people: list[ProductPerson] = Field(default_factory=list)


def import_product_directory(
    product: ProductDirectory, directory: DirectoryRepository, state: SyncStateRepository
) -> int:
    """Write the product's own records (not sync-managed) into the directory; return how many."""
    state.put_item(
        "DISTRICT",
        {"name": product.district.name, "provider_ids": product.district.provider_ids, "id": product.district.id},
    )
    if product.district.plan is not None:
        from rostersync.lifecycle.district import DistrictLifecycle

        current = state.get_item("PLAN") or {}
        if current.get("plan") != product.district.plan:
            DistrictLifecycle(state).set_plan(product.district.plan, "import-product", "import-product")
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
    return directory.put_records(records)


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
