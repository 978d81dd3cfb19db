"""Which of the product's plans include sync, and whether a district may sync.

The product sells sync only to its paying tier. A district's plan comes from the product: its "District
Plan Changed" event, or ``district.plan`` in the product directory that ``import-product`` (or the demo's
``--product``) reads. The values:

========== ============= ===========================================================
plan        includes sync  meaning
========== ============= ===========================================================
free        no            the free tier: messaging only
essentials  no            the basic paid tier: no rostering
premium     yes           the paying tier that includes rostering sync
enterprise  yes           a district contract (premium and more)
========== ============= ===========================================================

A district with no plan recorded, or a plan not listed here, is not entitled (the reason says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SYNC_PLANS = frozenset({"premium", "enterprise"})
PLANS = ("free", "essentials", "premium", "enterprise")


def plan_problem(plan: Any) -> str | None:
    """Why ``plan`` is not a plan value (None when it is one)."""
    if not isinstance(plan, str) or not plan.strip():
        return "the plan is missing"
    if plan.strip().lower() not in PLANS:
        return f"{plan!r} is not a plan (one of {', '.join(PLANS)})"
    return None


@dataclass(frozen=True)
class Entitlement:
    """Whether the district may sync, on which plan, and why not."""

    entitled: bool
    plan: str | None
    reason: str = ""


def entitlement_of(district_id: str, district: dict[str, Any] | None, plan_item: dict[str, Any] | None) -> Entitlement:
    """The entitlement of a district from its ``DISTRICT`` and ``PLAN`` sync-state items."""
    if district is None and plan_item is None:
        return Entitlement(
            False,
            None,
            f"District {district_id} is not known to rostersync: the product has not imported it "
            "(rostersync import-product) nor sent its plan.",
        )
    plan = (plan_item or {}).get("plan")
    if not plan:
        return Entitlement(
            False,
            None,
            f"District {district_id} has no plan recorded, and sync is included only in the "
            f"{' and '.join(sorted(SYNC_PLANS))} plans: the product sends its plan with "
            '"District Plan Changed" (or district.plan in import-product).',
        )
    plan = str(plan).lower()
    if plan not in SYNC_PLANS:
        return Entitlement(
            False,
            plan,
            f"District {district_id} is on the {plan} plan, which does not include rostering sync "
            f"(only {' and '.join(sorted(SYNC_PLANS))} do): nothing was fetched or written.",
        )
    return Entitlement(True, plan)
