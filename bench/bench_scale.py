"""Benchmark at several sizes: how each step's time and peak memory grow with the district.

    python bench/bench_scale.py --sizes 10000 100000 [--provider clever] [--side-by-side]
                                [--results DIR [--print-only]]
    (make bench-scale; SIZES="10000 100000" to change them)

Runs ``bench_sync.py`` three times per size, each in a process of its own (the embedded AWS keeps everything
in memory): once timed (full sync, write floors, unchanged re-sync, read floor; ``--no-memory``), once
traced (``--memory-only``: a full sync with tracemalloc around each invocation, in a stack of its own), and
once for Match's people phase on an unchanged night (``--memory-only --resync --trace-steps match_roster``:
a full sync untraced, then the re-sync with the people phase traced; it holds the district's directory
index then, where a first sync's is empty), all without the 1 %-change nights. At 100,000 students one
process could not hold them all. ``--side-by-side`` runs a size's processes at the same time (a core each
on a two-core machine shared by three: the timed one's seconds are then slower than alone, its ratios to
its floors less so, since the floors run in the same process).

Match runs in the power of two of partitions nearest to one per 2,500 students, 4 to 64 (``MatchPartitions``:
4 at 10,000, 32 at 100,000; the template says 16 or more for NYC), so that each partition holds a like
share at every size: issue 10 asks Match's memory to be bounded by the partition, not the district.

Prints per step: time per record and peak memory per record at each size, and the ratio of the largest size
to the smallest for time and for peak memory (what issue 10 targets: peak memory 100k/10k at most 1.2 for
Fetch, Upsert, Archive and Report). Records are the roster records Fetch read. Peak memory is
tracemalloc's, per invocation (``bench_sync.py``); an Upsert invocation writes one plan chunk, whatever the
district's size.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS = {"fetch_roster": 1.2, "upsert_chunk": 1.2, "archive_unmanaged": 1.2, "write_report": 1.2}
RESYNC_STEP = "match_roster (unchanged)"  # Match's people phase traced on the unchanged re-sync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--provider", default="clever")
    parser.add_argument("--side-by-side", action="store_true", help="run a size's timed and traced runs at once")
    parser.add_argument(
        "--results",
        type=Path,
        help="keep each run's figures here (SIZE-timed.json, SIZE-traced.json; side by side, its output too)",
    )
    parser.add_argument(
        "--print-only", action="store_true", help="run nothing: print the table from the runs kept in --results"
    )
    args = parser.parse_args()
    if args.print_only and not args.results:
        parser.error("--print-only needs --results")
    with tempfile.TemporaryDirectory(prefix="rostersync-bench-scale-") as scratch:
        folder = args.results or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for size in sorted(args.sizes):
            if not args.print_only:
                run_size(size, args.provider, args.side_by_side, folder)
        print_scale([read_size(size, folder) for size in sorted(args.sizes)])


def run_size(size: int, provider: str, side_by_side: bool, folder: Path) -> None:
    """The timed and the traced run of one size, in a process each; their figures in ``folder``."""
    partitions = match_partitions(size)
    print(f"=== {size:,} students, MatchPartitions {partitions} ===", flush=True)
    runs = []
    kinds = (
        ("timed", ["--no-memory"]),
        ("traced", ["--memory-only"]),
        ("resync-traced", ["--memory-only", "--resync", "--trace-steps", "match_roster"]),
    )
    for kind, flags in kinds:
        command = [
            sys.executable,
            str(Path(__file__).resolve().parent / "bench_sync.py"),
            *("--students", str(size), "--provider", provider, "--match-partitions", str(partitions)),
            *("--no-events", *flags, "--json", str(folder / f"{size}-{kind}.json")),
        ]
        log = (folder / f"{size}-{kind}.log").open("w") if side_by_side else None
        runs.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))  # noqa: S603
        if not side_by_side:
            _finish(*runs[-1])
    if side_by_side:
        for process, log in runs:
            _finish(process, log)
            print(Path(log.name).read_text(), flush=True)


def read_size(size: int, folder: Path) -> dict:
    """One size's figures: the timed run's, with the traced runs' peak memory per step (the people phase on an
    unchanged night as the step ``match_roster (unchanged)``, when that run was kept: results kept before it
    have none)."""
    result = json.loads((folder / f"{size}-timed.json").read_text())
    result["memory"] = json.loads((folder / f"{size}-traced.json").read_text())["memory"]
    resync = folder / f"{size}-resync-traced.json"
    if resync.exists():
        result["memory"][RESYNC_STEP] = json.loads(resync.read_text())["memory"]["match_roster"]
    return result


def _finish(process: subprocess.Popen, log: object) -> None:
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(map(str, process.args))} failed ({process.returncode})")
    if log is not None:
        log.close()  # type: ignore[attr-defined]


def match_partitions(students: int) -> int:
    """The power of two nearest to one partition per 2,500 students, 4 to 64."""
    return min(64, max(4, 2 ** round(math.log2(max(1, students) / 2_500))))


def _step(result: dict, step: str) -> dict:
    """A step's timed figures: the unchanged re-sync's people phase from the timed run's re-sync (kept since
    December 2026; none before), every other step from its full sync."""
    if step == RESYNC_STEP:
        return result.get("resync_steps", {}).get("match_roster", {})
    return result["steps"].get(step, {})


def _size(students: int) -> str:
    return f"{students // 1000}k" if students >= 1000 and students % 1000 == 0 else str(students)


def print_scale(results: list[dict]) -> None:
    small, large = results[0], results[-1]
    ratio_label = f"{_size(large['students'])}/{_size(small['students'])}"
    sizes = " vs ".join(f"{r['students']:,}" for r in results)
    print(f"\n=== per step, {sizes} students ===")
    header = f"{'step':24}"
    for r in results:
        k = _size(r["students"])
        header += f" {'ms/rec ' + k:>12} {'peak MiB ' + k:>13} {'B/rec ' + k:>10}"
    header += f" {'time ' + ratio_label:>13} {'peak ' + ratio_label:>13} {'target':>7}"
    print(header)
    steps = list(small["steps"]) + ([RESYNC_STEP] if all(RESYNC_STEP in r["memory"] for r in results) else [])
    for step in steps:
        row = f"{step:24}"
        for r in results:
            records = max(1, r["steps"]["fetch_roster"]["records_out"])
            seconds = _step(r, step).get("seconds", 0)
            peak = r["memory"].get(step, {}).get("peak", 0)
            row += f" {seconds / records * 1000:>12.3f} {peak / 2**20:>13.1f} {peak / records:>10.0f}"
        t_small = _step(small, step).get("seconds", 0)
        t_large = _step(large, step).get("seconds", 0)
        p_small = small["memory"].get(step, {}).get("peak", 0)
        p_large = large["memory"].get(step, {}).get("peak", 0)
        target = TARGETS.get(step)
        row += f" {t_large / t_small if t_small else 0:>13.2f} {p_large / p_small if p_small else 0:>13.2f}"
        row += f" {'≤ ' + str(target) if target else '':>7}"
        print(row)
    print("\n=== whole runs ===")
    for r in results:
        cost = r.get("cost") or {}
        print(
            f"{r['students']:>9,} students: full sync {r['full_seconds']:.1f}s = "
            f"{r['full_seconds'] / r['write_floor_seconds']:.2f}x the write floor (target ≤ 1.4); unchanged re-sync "
            f"{r['resync_seconds']:.1f}s, {r['resync_writes']} writes = "
            f"{r['resync_seconds'] / r['read_floor_seconds']:.2f}x the read floor (target 0 writes, ≤ 1.5); "
            f"counted cost ${cost.get('total_usd', 0):.4f}"
        )
        upsert = r["steps"].get("upsert_chunk", {})
        if "wall" in upsert and "write_floor_capacity_seconds" in r:  # runs kept since December 2026
            others = sum(f.get("wall", 0.0) for step, f in r["steps"].items() if step != "upsert_chunk")
            print(
                f"{'':>19} the write floor asking for the capacity {r['write_floor_capacity_seconds']:.1f}s "
                f"({r['write_floor_capacity_seconds'] / r['write_floor_seconds']:.2f}x the plain one); Upsert's wall "
                f"time {upsert['wall']:.1f}s = {upsert['wall'] / r['write_floor_seconds']:.2f}x the plain floor; "
                f"the other steps' wall time {others:.1f}s = {others / r['write_floor_seconds']:.2f}x"
            )


if __name__ == "__main__":
    main()
