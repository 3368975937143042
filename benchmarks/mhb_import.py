"""Benchmark: a synthetic 10-year MHB export (~5,000 visits with orders, labs, vaccinations).

Run: .venv/bin/python benchmarks/mhb_import.py [visits] [years]
     parse + map only (mhb_import, no node)
Run: .venv/bin/python benchmarks/mhb_import.py --e2e [visits] [years] [--database-url URL]
                                                [--repeat N]
     end to end through a fresh node (fhir_server.operations.import_mhb.run: parse, map,
     compare, validate, encrypt, index, store in one transaction), then a re-import of the
     same file; with --repeat N, N rounds and the median of every phase
Prints rows/s, resources/s and peak memory; asserts nothing.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

# this file is itself called mhb_import.py: import the package, not this script
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from mhb_import import parse_export, to_bundle  # noqa: E402
from mhb_import.synthetic import dumps_json, dumps_xml, synthetic_export  # noqa: E402


def _map(export):
    return to_bundle(
        export,
        patient_id="bench",
        id_namespace=b"bench-namespace-0123456789",
        imported_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _rows(export) -> int:
    return export.row_count() + sum(
        len(r.get(f"{s}_1", [])) for s, rs in export.sections.items() for r in rs
    )


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak_rss() -> float:
    """Reset the kernel's RSS high-water mark (Linux); returns the current RSS in MB."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _peak_rss() -> float:
    return _status_mb("VmHWM")


def _load_code_list() -> None:
    """The ICD-10-CM code list loads once per process (a server pays it at start, a
    one-shot CLI import once): timed on its own, outside the imports."""
    from mhb_import import icd10cm

    t0 = time.perf_counter()
    icd10cm.preload()
    print(f"ICD-10-CM code list load (once per process): {time.perf_counter() - t0:.2f}s")


def end_to_end(visits: int, years: int, database_url: str | None, repeat: int) -> None:
    _load_code_list()
    doc = synthetic_export(visits=visits, years=years)
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as shared:
        for n in range(repeat):
            for fmt, data in (("json", dumps_json(doc)), ("xml", dumps_xml(doc))):
                if database_url is None:  # a fresh SQLite node per round
                    with tempfile.TemporaryDirectory() as tmp:
                        _round(Path(tmp), None, "bench", fmt, data, runs)
                else:
                    # one database for every round: one data dir too (its master key
                    # wraps the data keys stored there), and a patient per round
                    _round(Path(shared), database_url, f"bench-{fmt}-{n}", fmt, data, runs)
    if repeat > 1:
        # the machine is shared: single runs vary by +-30 %, medians are what to compare
        print(f"medians of {repeat} runs:")
        for name, samples in runs.items():
            keys = samples[0].keys()
            cells = ", ".join(f"{k} {statistics.median(s[k] for s in samples):.2f}s" for k in keys)
            print(f"  {name}: {cells}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS {rss:.0f} MB")


def _round(data_dir: Path, database_url, patient_id: str, fmt: str, data: bytes, runs) -> None:
    """Import ``data`` into a new patient, then re-import it; print and record both."""
    from fhir_server.node import Node, NodeConfig
    from fhir_server.operations import import_mhb

    rows = _rows(parse_export(data))
    node = Node(NodeConfig(data_dir=data_dir, database_url=database_url))
    patient = {"resourceType": "Patient", "id": patient_id}
    with node.store.unit_of_work(prepare=[patient]) as writer:
        writer.update("Patient", patient_id, patient)
    for label in ("import", "re-import"):
        timings: dict = {}
        base = _reset_peak_rss()
        t0 = time.perf_counter()
        outcome = import_mhb.run(node, patient_id, data, timings=timings)
        elapsed = time.perf_counter() - t0
        peak = _peak_rss()
        totals = outcome.totals()
        n_res = sum(totals.values())
        phases = ", ".join(f"{k} {v:.2f}s" for k, v in timings.items())
        print(
            f"e2e {fmt} {label}: {len(data) / 1e6:.1f} MB, {rows} rows, "
            f"{n_res} resources (created {totals['created']}, updated "
            f"{totals['updated']}, unchanged {totals['unchanged']}) in "
            f"{elapsed:.2f}s | {rows / elapsed:,.0f} rows/s, "
            f"{n_res / elapsed:,.0f} resources/s | {phases} | "
            f"peak RSS {peak:.0f} MB (+{peak - base:.0f} MB)"
        )
        runs.setdefault(f"{fmt} {label}", []).append({"total": elapsed, **timings})
    node.close()


def main() -> None:
    args = sys.argv[1:]
    e2e = "--e2e" in args
    database_url = None
    if "--database-url" in args:
        i = args.index("--database-url")
        database_url = args[i + 1]
        del args[i : i + 2]
    repeat = 1
    if "--repeat" in args:
        i = args.index("--repeat")
        repeat = int(args[i + 1])
        del args[i : i + 2]
    args = [a for a in args if a != "--e2e"]
    visits = int(args[0]) if args else 5000
    years = int(args[1]) if len(args) > 1 else 10
    if e2e:
        end_to_end(visits, years, database_url, repeat)
        return
    _load_code_list()
    doc = synthetic_export(visits=visits, years=years)
    for fmt, data in (("json", dumps_json(doc)), ("xml", dumps_xml(doc))):
        # timed run without tracemalloc (it slows allocation-heavy code several-fold)
        t0 = time.perf_counter()
        export = parse_export(data)
        t1 = time.perf_counter()
        result = _map(export)
        t2 = time.perf_counter()
        # second run for the peak of Python allocations during parse+map
        tracemalloc.start()
        _map(parse_export(data))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows = _rows(export)
        n_res = result.summary["total_resources"]
        total = t2 - t1 + (t1 - t0)
        print(
            f"{fmt}: {len(data) / 1e6:.1f} MB, {rows} rows, {n_res} resources | "
            f"parse {t1 - t0:.2f}s, map {t2 - t1:.2f}s | "
            f"{rows / total:,.0f} rows/s, {n_res / total:,.0f} resources/s (parse+map) | "
            f"peak traced memory {peak / 1e6:.0f} MB"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
