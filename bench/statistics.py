"""How statistics scale: 100,000 local case records computed into a release, and a regional body
rolling up 55 countries' releases into its report.

Measured in one run, each step next to a baseline measured in the same run (machines are shared
and noisy: compare the ratios, not the seconds across runs):

* **import** — checking ``--records`` CSV rows (HTCDS columns; :func:`node.stats.cases.read_csv`)
  next to the bare ``csv`` module reading the same text, then storing them in one transaction
  of a fresh SQLite store;
* **compute** — every indicator for one quarter from the stored records
  (:func:`node.statistics.compute`, records read back from the store included), next to one
  bare pass counting the same records by one key;
* **protect** — primary and secondary suppression with the linear-programming audit of every
  table (:func:`node.stats.release.make_release`), and with differential privacy;
* **check** — what a receiving node runs on each release (its business rules, the audit
  included), next to decoding the same payload from Avro;
* **roll-up and report** — 55 invented national releases (one per AU member, sizes drawn between
  100 and 5,000 records) combined for a quarter (:func:`node.stats.rollup.roll_up`) and written
  as HTML, PDF and CSV;
* **memory** — peak RSS of this process after each step (``ru_maxrss``).

Run: ``python bench/statistics.py [--records 100000] [--countries 55]`` (about a minute).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pycountry

from node import statistics, validation
from node.audit import AuditEvent
from node.checks import Context
from node.codec import default_registry
from node.payloads import STATISTICS_SCHEMA
from node.stats import release, rollup
from node.stats.cases import read_csv
from node.stats.indicators import Inputs, compute_all
from node.stats.model import Method
from node.stats.periods import parse_period
from node.stats.sample import sample_cases, to_csv
from node.store.sqlite import SqliteStore

QUARTER = parse_period("2026-Q2")
YEAR = (dt.date(2026, 1, 1), dt.date(2026, 12, 1))
AU = (
    "DZ AO BJ BW BF BI CV CM CF TD KM CG CD CI DJ EG GQ ER SZ ET GA GM GH GN GW KE LS LR LY MG "
    "MW ML MR MU MA MZ NA NE NG RW ST SN SC SL SO ZA SS SD TZ TG TN UG ZM ZW EH"
).split()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def line(name: str, seconds: float, baseline: float | None = None, note: str = "") -> None:
    ratio = f"{seconds / baseline:7.1f}x baseline" if baseline else " " * 18
    print(f"{name:<44} {seconds:8.3f} s  {ratio}  RSS {rss_mb():6.0f} MB  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--countries", type=int, default=55)
    args = parser.parse_args()
    registry = default_registry()
    today = dt.date(2026, 12, 5)
    print(f"statistics bench: {args.records:,} case records, {args.countries} releases; "
          f"Python {sys.version.split()[0]}\n")  # fmt: skip

    records = sample_cases(args.records, "ZM", *YEAR, seed=5)
    text = to_csv(records)
    base, _ = timed(lambda: sum(1 for _ in csv.reader(io.StringIO(text))))
    seconds, checked = timed(lambda: read_csv(text, today))
    line(f"import: check {len(checked):,} rows", seconds, base,
         f"({len(text) / 1e6:.1f} MB of CSV; baseline: csv.reader alone)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore.open(Path(tmp) / "node.db")
        now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
        event = AuditEvent("cases-imported", now, detail={})
        seconds, _ = timed(lambda: store.import_cases(checked, now, True, event))
        line("import: store in one transaction", seconds)
        size = (Path(tmp) / "node.db").stat().st_size + (Path(tmp) / "node.db-wal").stat().st_size
        print(f"{'':44} store: {size / len(checked):.0f} bytes per record")

        def bare() -> Counter[str]:
            return Counter(r.gender for r in store.local_cases()
                           if QUARTER.contains(r.identified_on))  # fmt: skip

        base, _ = timed(bare)
        seconds, tables = timed(lambda: statistics.compute(store, QUARTER))
        line("compute: 12 indicators, one quarter", seconds, base,
             "(records read from the store; baseline: read + count by one key)")  # fmt: skip
        store.close()

    method = Method(5)
    seconds, made = timed(
        lambda: release.make_release(tables, QUARTER, method, coverage="National", area="ZM")
    )
    cells = sum(len(t.cells) for t in made.tables)
    hidden = sum(v is None for t in made.tables for v in t.cells.values())
    line("protect: suppression + LP audit", seconds, None,
         f"({cells:,} cells, {hidden:,} suppressed)")  # fmt: skip
    seconds, noisy = timed(lambda: release.make_release(
        tables, QUARTER, Method(5, 1, 1.0), coverage="National", area="ZM"))  # fmt: skip
    line("protect: with differential privacy (eps 1)", seconds)

    payload = release.to_payload(made, release.default_handling("TraffickingInPersonsProtocol"))
    value = registry.from_json(STATISTICS_SCHEMA, payload, "payload")
    encoded = registry.encode(STATISTICS_SCHEMA, value)
    base, _ = timed(lambda: registry.decode(STATISTICS_SCHEMA, encoded))
    ctx = Context(dt.datetime(2026, 8, 1, tzinfo=dt.UTC), ("bw-sadc",), "zm-secretariat")
    seconds, problems = timed(lambda: validation.validate(registry, STATISTICS_SCHEMA, value, ctx))
    assert not problems, problems[:3]
    line("check: the receiver's rules on one release", seconds, base,
         f"({len(encoded) / 1024:.0f} KB of Avro; baseline: decoding it)")  # fmt: skip

    rng = random.Random(11)
    received = []
    started = time.perf_counter()
    for i, country in enumerate(AU[: args.countries]):
        recs = sample_cases(rng.randrange(100, 5000), country, QUARTER.start, QUARTER.end, seed=i)
        t = compute_all(Inputs(recs), QUARTER)
        r = release.make_release(t, QUARTER, method, coverage="National", area=country)
        at = dt.datetime(2026, 7, 10 + i % 40 // 2, tzinfo=dt.UTC)
        received.append(rollup.Received(f"{country.lower()}-secretariat", at, r))
    line(f"(making {len(received)} national releases)", time.perf_counter() - started)
    expected = [f"{c.lower()}-secretariat" for c in AU[: args.countries]] + ["xx-missing"]
    seconds, data = timed(lambda: rollup.roll_up(received, [QUARTER], expected, today, 30))
    line(f"roll-up: {len(received)} releases, one quarter", seconds)
    try:
        from node.stats import report
    except ImportError:
        print("(node.stats.report not available: no report timings)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("html", "pdf", "csv"):
            path = Path(tmp) / f"report.{suffix}"
            seconds, _ = timed(lambda p=path: report.write_report(
                data, p, title="Regional report", language="en",
                generated_at=dt.datetime(2026, 12, 5, tzinfo=dt.UTC), threshold=5))  # fmt: skip
            line(f"report: {suffix.upper()}", seconds, None,
                 f"({path.stat().st_size / 1024:.0f} KB)")  # fmt: skip
    print(f"\npeak RSS {rss_mb():.0f} MB; {len(pycountry.countries)} ISO countries in the "
          "citizenship dimension")  # fmt: skip
    assert noisy


if __name__ == "__main__":
    main()
