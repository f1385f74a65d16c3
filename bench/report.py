"""The one table of a bench run: Loom's figure, each peer's and the limit's, the ratios, the targets; JSON under bench/results/.

A result is a flat record: {"kind": "web"|"batch", "db", "rows", "workers", "scenario", "contender", ...figures}.
Web figures: rps, median_ms, p99_ms (under load), single_ms (one request at a time). Batch figures: seconds, peak_mb.
Ratios compare speed both ways: peer / Loom is the peer's throughput over Loom's (for batch, Loom's seconds over the
peer's), so below 0.5 means Loom is more than twice as fast; Loom / limit is Loom's throughput over the limit's.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PEERS = ("sqladmin", "starlette_admin", "django")
OTHERS = ("limit", *PEERS)
Row = dict[str, Any]
Key = tuple[str, str, str, str]


def key(r: Row) -> Key:
    """Where a result sits in the table: database, rows, workers, scenario."""
    return (str(r.get("db", "-")), str(r.get("rows", "-")), str(r.get("workers", "-")), str(r["scenario"]))


def speed(r: Row | None) -> float:
    """Bigger is faster: requests per second for web, 1 / seconds for batch."""
    if r is None:
        return math.nan
    if r["kind"] == "web":
        return float(r["rps"])
    return 1 / float(r["seconds"]) if r["seconds"] else math.nan


def cell(r: Row | None) -> str:
    """One contender's figure, short."""
    if r is None:
        return "-"
    if r["kind"] == "web":
        return f"{r['rps']:.0f}/s {r['median_ms']:.0f}/{r['p99_ms']:.0f}ms 1x{r['single_ms']:.1f}"
    peak = float(r.get("peak_mb", math.nan))
    return f"{r['seconds']:.2f}s" + ("" if math.isnan(peak) else f" {peak:.0f}MB")


def grouped(results: Iterable[Row]) -> dict[Key, dict[str, Row]]:
    """Results by table row, then by contender (in the order they were measured)."""
    table: dict[Key, dict[str, Row]] = {}
    for r in results:
        table.setdefault(key(r), {})[str(r["contender"])] = r
    return table


def _ratio(a: float, b: float) -> str:
    return "-" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}"


ORDER = ("metadata_crm", "metadata_300", "start_crm", "list", "list_deep", "record", "create", "api_list", "api_get", "wide_api_ruled",
         "wide_api_plain", "wide_list_ruled", "wide_list_plain", "add_field", "xlsx_import", "xlsx_export")


def _place(k: Key) -> tuple[int, str, int, str, int]:
    batch_only = k[3] in ("add_field", "xlsx_import", "xlsx_export")
    rows = int(k[1]) if k[1].isdigit() else 0
    return (k[0] != "-", k[0], rows, "~" if batch_only else k[2], ORDER.index(k[3]) if k[3] in ORDER else len(ORDER))  # type: ignore[return-value]


def lines(results: list[Row]) -> list[str]:
    """The table as Markdown lines (read as plain text in a terminal too)."""
    table = dict(sorted(grouped(results).items(), key=lambda item: _place(item[0])))
    present = [c for c in OTHERS if any(c in row for row in table.values())]
    head = ["db", "rows", "w", "scenario", "loom", *present, "loom/limit", *(f"{p}/loom" for p in present if p != "limit")]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k, row in table.items():
        loom = row.get("loom")
        cells = [*k, cell(loom), *(cell(row.get(c)) for c in present), _ratio(speed(loom), speed(row.get("limit")))]
        cells += [_ratio(speed(row.get(p)), speed(loom)) for p in present if p != "limit"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def server_lines(results: list[Row]) -> list[str]:
    """Cold start (process start to the first list page) and resident memory of each server, one line per contender and round."""
    out = ["| db | rows | w | contender | first page after start, s | worker RSS, MB |", "|---|---|---|---|---|---|"]
    for r in results:
        if r["kind"] == "server":
            out.append(f"| {r['db']} | {r['rows']} | {r['workers']} | {r['contender']} | {r['cold_start_s']:.2f} | {r['worker_rss_mb']:.0f} |")
    return out


def _verdict(name: str, value: float, op: str, goal: float) -> dict[str, Any]:
    met = (value <= goal if op == "<=" else value < goal if op == "<" else value >= goal) if not math.isnan(value) else None
    return {"target": name, "measured": value, "op": op, "goal": goal, "met": met}


def _web_targets(k: Key, row: dict[str, Row]) -> list[dict[str, Any]]:
    loom, where = row.get("loom"), " ".join(k[:3]) + " " + k[3]
    if loom is None or loom["kind"] != "web" or k[3].startswith("wide_"):
        return []
    found = [_verdict(f"{where}: {p} / loom throughput", speed(row[p]) / speed(loom), "<=", 0.5) for p in PEERS if p in row]
    if "limit" in row:
        found.append(_verdict(f"{where}: loom / limit throughput", speed(loom) / speed(row["limit"]), ">=", 0.7))
    if k[1] == "1000000" and k[3] in ("list", "list_deep", "api_list"):
        found.append(_verdict(f"{where}: loom median ms, one request at a time", float(loom["single_ms"]), "<", 50))
    return found


def _rule_targets(table: dict[Key, dict[str, Row]]) -> list[dict[str, Any]]:
    found = []
    for k, row in table.items():
        if not k[3].endswith("_ruled") or "loom" not in row:
            continue
        plain = table.get((*k[:3], k[3].replace("_ruled", "_plain")), {}).get("loom")
        if plain is not None:
            cost = speed(plain) / speed(row["loom"]) - 1
            found.append(_verdict(f"{' '.join(k[:3])} {k[3].removesuffix('_ruled')}: field-rule cost (plain / ruled - 1)", cost, "<=", 0.10))
    return found


def _deep_targets(table: dict[Key, dict[str, Row]]) -> list[dict[str, Any]]:
    found = []
    for k, row in table.items():
        first = table.get((*k[:3], "list"), {}).get("loom")
        if k[3] == "list_deep" and "loom" in row and first is not None:
            ratio = float(row["loom"]["single_ms"]) / float(first["single_ms"])
            found.append(_verdict(f"{' '.join(k[:3])}: deep page / first page latency", ratio, "<=", 1.5))
    return found


def _batch_targets(results: list[Row]) -> list[dict[str, Any]]:
    goals = {"metadata_crm": 0.3, "metadata_300": 3.0}
    newest = {r["scenario"]: r for r in results if r["scenario"] in goals and r["contender"] == "loom"}  # as the table: later runs win
    found = [_verdict(f"{r['scenario']}: load + validate + build, s", float(r["seconds"]), "<", goals[r["scenario"]]) for r in newest.values()]
    starts = {r["db"]: r for r in results if r["scenario"] == "start_crm"}
    for db, r in starts.items():
        found += [_verdict(f"{db} start_crm: loom serve to the first page, s", float(r["seconds"]), "<", 2.0),
                  _verdict(f"{db} start_crm: worker RSS, MB", float(r["peak_mb"]), "<", 120)]
    return found


def targets(results: list[Row]) -> list[dict[str, Any]]:
    """Every target of issues 3, 4 and 7 that the results can judge."""
    table = grouped(results)
    found = [t for k, row in table.items() for t in _web_targets(k, row)]
    return found + _deep_targets(table) + _rule_targets(table) + _batch_targets(results)


def target_lines(found: list[dict[str, Any]]) -> list[str]:
    """The verdicts, one a line."""
    mark = {True: "met", False: "MISSED", None: "n/a"}
    return [f"{mark[t['met']]:>6}  {t['target']}: {t['measured']:.3g} (target {t['op']} {t['goal']:g})" for t in found]


def write(report: dict[str, Any]) -> Path:
    """Write the run as a timestamped JSON file and as latest.json; return the timestamped path."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.json"
    text = json.dumps(report, indent=1, default=str)
    out.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return out


def io_rows(limit_rows: set[int] | None = None) -> list[Row]:
    """The spreadsheet results of `python -m bench.io_bench` (its newest file per database and size), as table rows."""
    newest: dict[tuple[str, int], Path] = {}
    for path in sorted(RESULTS.glob("io-*.json")):
        data = json.loads(path.read_text())
        if limit_rows is None or data["rows"] in limit_rows:
            newest[(data["db"], data["rows"])] = path
    rows: list[Row] = []
    for (db, n), path in sorted(newest.items()):
        phases = json.loads(path.read_text())["phases"]
        pairs = {"xlsx_import": {"loom": "loom_import", "django": "django_import"}, "xlsx_export": {"loom": "loom_export", "django": "django_export"}}
        for scenario, who in pairs.items():
            for contender, phase in who.items():
                if phase in phases:
                    p = phases[phase]
                    rows.append({"kind": "batch", "db": db, "rows": n, "workers": "-", "scenario": scenario, "contender": contender,
                                 "seconds": p["seconds"], "peak_mb": (p.get("self_kb", 0) + p.get("worker_kb", 0)) / 1024,
                                 "source": path.name})
        if "raw_read" in phases and "raw_insert" in phases:
            rows.append({"kind": "batch", "db": db, "rows": n, "workers": "-", "scenario": "xlsx_import", "contender": "limit",
                         "seconds": phases["raw_read"]["seconds"] + phases["raw_insert"]["seconds"], "peak_mb": math.nan, "source": path.name})
        writers = [phases[k] for k in ("raw_write", "rust_write") if k in phases]
        if writers:
            fastest = min(writers, key=lambda w: float(w["seconds"]))
            rows.append({"kind": "batch", "db": db, "rows": n, "workers": "-", "scenario": "xlsx_export", "contender": "limit",
                         "seconds": fastest["seconds"], "peak_mb": fastest.get("self_kb", 0) / 1024, "source": path.name})
    return rows


INTRO = """## Benchmarks

`python -m bench` runs Loom, the peers and the hand-written limit on the same generated data (customers, contacts,
opportunities; 10k, 100k or 1M rows; SQLite and PostgreSQL) on this machine, prints one table and writes it as JSON
under `bench/results/` (a timestamped file and `latest.json`):

```
python -m bench --rows 100000 --db sqlite,postgresql --workers 1,2   # every scenario, every peer
python -m bench --quick --rows 10000 --db sqlite                     # a smoke test in about three minutes
python -m bench --rows 1000000 --no-peers --only list list_deep api_list api_get add_field
python -m bench.report --readme [FILES]           # put latest.json (or these runs) into this section
python -m bench.instructions --db sqlite          # instructions per request (callgrind): the same figure however busy the machine is
python -m bench.start --db sqlite,postgresql      # loom serve with the CRM bundle and its demo data: start to first page, memory
python -m bench.profile record api_list --rows 100000   # where Loom's server spends a scenario's time (py-spy)
python -m bench.field_rules --db sqlite           # field rules' CPU cost, same output for both roles
python -m bench.io_bench --rows 100000 --db sqlite      # spreadsheet import/export against raw tools and django-import-export
```

- **Contenders.** Loom (`bench/bundle`), the *limit* — a hand-written Starlette + SQLAlchemy Core app serving the same
  pages and JSON with no metadata layer (`bench/peers/limit_app.py`) — and the peers sqladmin, starlette-admin and
  Django admin (+ django-import-export for spreadsheets), configured on the same tables. Each peer is installed by the
  bench command into its own virtual environment under `bench/.venvs/` (never one of Loom's dependencies); the limit's
  environment pins the Starlette, SQLAlchemy, uvicorn, httptools and uvloop versions Loom runs, and it runs at most 4
  requests at once per worker, handed to its threads as Loom hands them, so that loom/limit measures the metadata
  layer alone; the peers run as they ship (sqladmin and starlette-admin without a login, Django admin with one).
- **Web scenarios** run over HTTP against real uvicorn servers (the same server for all: uvicorn with httptools and
  uvloop, as `loom serve` runs it; 1 or 2 workers), all contenders started side by side and the scenarios interleaved
  run by run, driven by a load generator in its own process: list page (25 rows, filter + sort on indexed columns), a
  deep list page half-way down, record page, create through the form (CSRF token and all), API list and get, and Loom's
  field-rule cost (the 40-field `wide` module read as a role with rules on 20 fields and as one without). Each cell is
  throughput under 8 connections per worker, median / p99 ms under that load, and `1x` = the median ms of one request
  at a time; warm-up first, then the median of several runs. Before measuring, each server is checked to show the rows
  the database says the first and the deep page hold.
- **Batch scenarios** run in fresh processes (wall time, peak RSS): metadata load + validation + table build of the CRM
  bundle and of a generated 300-module bundle; `start_crm`, `loom serve` with the CRM bundle and its demo data from
  the process start to a sales rep's first list page (median of 3 starts after a warm-up; the worker's RSS after it);
  adding a field to `customer` (Loom's customization layer and migration against one hand-written `ALTER TABLE`); and
  `python -m bench.io_bench`'s spreadsheet import/export (folded in from its newest results; `--io` runs it). There
  the limit is the fastest raw tool: python-calamine's read plus a Core executemany insert with the page cache Loom's
  import uses, and the fastest writer (rustpy-xlsxwriter, which Loom's export uses too).
- **Instructions.** `python -m bench.instructions` drives each contender's app in its own process without a server
  (`bench/asgi_driver.py`, the web scenarios' requests, one at a time after a warm-up) under callgrind and counts the
  instructions per request: its Python, its libraries and SQLite's C, repeating to a fraction of a percent on a busy
  machine. Left out: the HTTP server's share (uvicorn with httptools and uvloop, about 0.2M instructions a request,
  the same for every contender), the kernel's (file writes, sockets) and, on PostgreSQL, the database server's work.
- **Ratios** are speed ratios: `peer/loom` below 0.5 means Loom is more than twice as fast; `loom/limit` at 1.0 means as
  fast as the hand-written code. Targets (issues 3, 4, 7, DEVELOPERS.md): every web scenario at least 2x each peer and
  at least 70 % of the limit; list page and API list on 1,000,000 rows under 50 ms median, deep pages as fast as the
  first; CRM bundle under 300 ms, 300 modules under 3 s; from `loom serve` to the first page under 2 s and under 120 MB
  per worker; field rules cost at most 10 %.

The figures below come from a shared 2-core virtual machine whose speed moves with its neighbours: compare the ratios,
not the absolute numbers (the limit's list page served 631/s on 2026-11-29, 109/s on 2026-12-04); with three runs of
three seconds each, differences under about 15 % are noise, which is what `bench.instructions` is for. Servers start
through `bench/uvicorn_workers.py`: with `--workers 2` each worker listens on a socket of its own (SO_REUSEPORT), as
`loom serve --workers N` does, and the 2-worker runs use 16 connections (8 per worker; the kernel hashes each
connection to a worker). Over HTTP the field-rule rows differ in output (the ruled role sees 30 of 40 fields) and
drown in noise; `python -m bench.field_rules` measures the rules' own cost in process, CPU per request, roles
alternating block by block: on the API with the same 30 fields for both roles the ruled role costs 0.98-1.04x the
plain one (SQLite and PostgreSQL, 10k rows, 2026-11-29 and 2026-12-07; target at most 1.10).

Where a target is missed, and why:
- **Create against sqladmin (2x).** sqladmin and starlette-admin run as they ship: no login, no CSRF check, no audit
  trail. Loom's create reads the session, checks the CSRF token, validates, inserts, reads the row back and writes an
  audit row. Counted by callgrind it does 0.55 of sqladmin's work per create (3.1M instructions against 5.7M); the
  hand-written limit, with a session and a CSRF check but no audit, does 0.77 of it. Over HTTP the gap shrinks to
  0.49-0.91, as the database's commit and the socket weigh the same for both. Reaching 2x would mean dropping the
  audit row or the session check; neither is a cost the product should shed.
- **SQLite, 2 workers, list against the limit** swings with the run (0.54 here; 0.67-0.83 in the runs before, 0.77
  at 1M rows); in instructions the list page is at 0.78 of the limit. Loom's page is 25 kB against the limit's 6 kB
  (the navigation, the filter form, the column and view menus, the bulk actions), which the kernel's socket writes and
  the load generator's reads make a larger share than the instruction count shows.
- **Deep page / first page on PostgreSQL** is a ratio of two single-request medians of a few milliseconds each (2.5 and
  4.8 ms in the 2-worker 100k row); the seven other rows are 0.84-1.14, and at 1M rows, where a deep page that
  scanned instead of seeking would take ten times as long, both take the same time (1.05-1.08).
- **Field rules over HTTP** differ in output between the two roles and drown in noise; in process (above) they cost
  nothing measurable.
"""


def instruction_lines() -> list[str]:
    """The newest `bench.instructions` table of each database and size, under a line naming it."""
    newest: dict[tuple[str, int], Path] = {}
    for path in sorted(RESULTS.glob("instructions-*.json")):
        data = json.loads(path.read_text())
        newest[(data["db"], data["rows"])] = path
    out: list[str] = []
    for (db, rows), path in sorted(newest.items()):
        data = json.loads(path.read_text())
        out += ["", f"{db}, {rows:,} rows ({path.name}; {data['requests']} requests per scenario after {data['warm']}):", "", *data["table"]]
    return out


def readme_section(found: dict[str, Any]) -> str:
    """The README's Benchmarks section with the table and verdicts of one run, and the newest instruction counts."""
    when = f"Latest run ({found.get('started', '?')} to {found.get('finished', '?')}, run {found.get('run', '?')}):"
    note = found.get("machine", {}).get("note", "")
    verdicts = "\n".join(target_lines(found.get("targets", [])))
    servers = "\n".join(server_lines(found.get("results", [])))
    counted = instruction_lines()
    instructions = ("\nInstructions per request, in process (`python -m bench.instructions`; lower is better, ratios as above):\n"
                    + "\n".join(counted) + "\n") if counted else ""
    return (f"{INTRO}\n{when} {note}.\n\n" + "\n".join(found["table"]) + f"\n\nTargets:\n\n```\n{verdicts}\n```\n\n"
            f"Servers (after the measured runs):\n\n{servers}\n{instructions}")


def update_readme(readme: Path, found: dict[str, Any]) -> None:
    """Replace (or append) the Benchmarks section of the README, leaving every other section as it is."""
    text = readme.read_text(encoding="utf-8")
    start = text.find("\n## Benchmarks\n")
    if start < 0:
        readme.write_text(text.rstrip("\n") + "\n\n" + readme_section(found), encoding="utf-8")
        return
    end = text.find("\n## ", start + 1)
    rest = text[end:] if end >= 0 else ""
    readme.write_text(text[: start + 1] + readme_section(found) + rest, encoding="utf-8")


def merged(paths: list[Path]) -> dict[str, Any]:
    """Several runs' results as one report (the table and the targets recomputed over all of them; the spreadsheet rows
    from `bench.io_bench`'s newest results)."""
    runs = [json.loads(p.read_text()) for p in paths]
    results = [r for run in runs for r in run["results"] if not str(r.get("scenario", "")).startswith("xlsx_")] + io_rows()
    measured = [r for r in results if r["kind"] != "server"]
    notes = "; ".join(dict.fromkeys(part for run in runs for part in run.get("machine", {}).get("note", "").split("; ") if part))
    return {"run": "+".join(str(run.get("run")) for run in runs), "started": min(run["started"] for run in runs),
            "finished": max(run["finished"] for run in runs), "results": results, "table": lines(measured),
            "targets": targets(measured), "machine": {**runs[-1].get("machine", {}), "note": notes}}


if __name__ == "__main__":
    import sys

    files = [Path(a) for a in sys.argv[1:] if not a.startswith("--")] or [RESULTS / "latest.json"]
    found = merged(files)
    if "--readme" in sys.argv:
        update_readme(RESULTS.parent.parent / "README.md", found)
    print("\n".join(found["table"]))
    print("\n".join(target_lines(found["targets"])))
