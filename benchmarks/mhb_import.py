"""Benchmark: parse + map a synthetic 10-year MHB export (~5,000 visits).

Run: .venv/bin/python benchmarks/mhb_import.py [visits] [years]
Prints rows/s, resources/s and peak memory; asserts nothing.
"""

from __future__ import annotations

import resource
import sys
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


def main() -> None:
    visits = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    years = int(sys.argv[2]) if len(sys.argv) > 2 else 10
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
        rows = export.row_count() + sum(
            len(r.get(f"{s}_1", [])) for s, rs in export.sections.items() for r in rs
        )
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
