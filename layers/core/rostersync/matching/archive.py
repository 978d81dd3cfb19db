"""The deletion threshold: how much a run may archive before it stops and asks a person."""

from __future__ import annotations

from dataclasses import dataclass

from rostersync.domain.records import Kind


@dataclass(frozen=True)
class ThresholdCheck:
    kind: Kind
    would_archive: int
    managed: int
    limit_percent: float

    @property
    def percent(self) -> float:
        if not self.managed:
            return 100.0 if self.would_archive else 0.0
        return 100.0 * self.would_archive / self.managed

    @property
    def exceeded(self) -> bool:
        return self.would_archive > 0 and self.percent > self.limit_percent


def check_deletion_threshold(
    would_archive: dict[Kind, int], managed: dict[Kind, int], limit_percent: float
) -> dict[Kind, ThresholdCheck]:
    """Check each kind's would-be archive count against ``limit_percent`` of its managed records."""
    return {
        kind: ThresholdCheck(kind, count, managed.get(kind, 0), limit_percent)
        for kind, count in would_archive.items()
        if count
    }
