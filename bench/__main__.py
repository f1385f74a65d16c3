"""`python -m bench`: Loom against its peers and the hand-written limit, on the same data, in one run; one table.

    python -m bench --rows 10000,100000 --db sqlite,postgresql --workers 1,2
    python -m bench --rows 1000000 --no-peers --only list list_deep api_list api_get
    python -m bench --quick --rows 10000 --db sqlite

Web scenarios run over HTTP against uvicorn servers (one per contender, started side by side, the scenarios
interleaved run by run) with the load generator in its own process; batch scenarios run in fresh processes.
Peers live in their own virtual environments under bench/.venvs (made on first use).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

from bench import batch, bundle300, report, start, venvs
from bench.contenders import ALL, Contender
from bench.data import DATA, RUN, Target, generate, pg_database, target
from bench.rounds import web_round
from bench.servers import REPO
from bench.web import QUICK, Load

WEB = ("list", "list_deep", "record", "create", "api_list", "api_get", "wide_api_ruled", "wide_api_plain", "wide_list_ruled", "wide_list_plain")
BATCH = ("metadata_crm", "metadata_300", "start_crm", "add_field")
IO = ("xlsx_import", "xlsx_export")
CRM = REPO / "metadata"
STARTED = time.perf_counter()


def log(message: str) -> None:
    """A progress line with the time since the start."""
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=_ints, default=[100_000], help="data set sizes, comma separated (default 100000)")
    p.add_argument("--db", type=lambda s: s.split(","), default=["sqlite", "postgresql"], help="sqlite,postgresql")
    p.add_argument("--workers", type=_ints, default=[1], help="uvicorn workers per server, comma separated (default 1)")
    p.add_argument("--only", nargs="+", choices=[*WEB, *BATCH, *IO], help="run only these scenarios")
    p.add_argument("--no-peers", action="store_true", help="Loom and the hand-written limit only")
    p.add_argument("--peer-rows", type=int, default=0, help="run the peers only on data sets up to this size (0: all)")
    p.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    p.add_argument("--runs", type=int, help="measured runs per scenario (median taken)")
    p.add_argument("--seconds", type=float, help="seconds per measured run")
    p.add_argument("--io", action="store_true", help="also run python -m bench.io_bench (else fold in its newest results)")
    p.add_argument("--note", default="", help="a note stored with the results")
    return p.parse_args(argv)


def load_of(args: argparse.Namespace) -> Load:
    """How hard each web scenario is driven."""
    base = QUICK if args.quick else Load()
    return Load(base.concurrency, args.seconds or base.seconds, args.runs or base.runs, base.warm, base.serial, args.seconds or base.serial_seconds)


def wanted(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """The scenarios of one family that this run asks for."""
    return [n for n in names if not args.only or n in args.only]


def contenders_for(args: argparse.Namespace, rows: int) -> list[Contender]:
    """Loom and the limit always; the peers unless left out for this size."""
    peers_here = not args.no_peers and (not args.peer_rows or rows <= args.peer_rows)
    return [c for c in ALL if c.name in ("loom", "limit") or peers_here]


def prepare(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """Make the environments the run needs; the versions that matter in each."""
    names = {c.env for rows in args.rows for c in contenders_for(args, rows) if c.env}
    found = {}
    for name in sorted(names):
        log(f"environment {name}: {venvs.ensure(name)}")
        found[name] = venvs.versions(name)
    return found


def web_results(t: Target, workers: int, round_: dict[str, Any]) -> list[report.Row]:
    """The round's scenarios as flat result records."""
    out = []
    for name, figures in round_["scenarios"].items():
        scenario, contender = name.split("/")
        out.append({"kind": "web", "db": t.kind, "rows": t.rows, "workers": workers, "scenario": scenario, "contender": contender, **figures})
    return out


def metadata_results(args: argparse.Namespace) -> list[report.Row]:
    """Load + validate + build of the CRM bundle and of the generated 300-module bundle, each in a fresh process."""
    out = []
    bundles = {"metadata_crm": CRM, "metadata_300": DATA / "bundle300"}
    for scenario in wanted(args, ("metadata_crm", "metadata_300")):
        if scenario == "metadata_300":
            bundle300.write(bundles[scenario])
        found = batch.run("metadata", str(bundles[scenario]))
        log(f"  {scenario}: {found['seconds']:.3f} s first, {found['warm_s']:.3f} s warm, {found['peak_mb']:.0f} MB")
        out.append({"kind": "batch", "db": "-", "rows": found["modules"], "workers": "-", "scenario": scenario, "contender": "loom", **found})
    return out


def add_field_results(t: Target) -> list[report.Row]:
    """Loom adds a field to `customer` (customization layer + migration) against one hand-written ALTER TABLE, each on a copy."""
    out = []
    for contender, kind in (("loom", "add_field"), ("limit", "alter")):
        copy = batch.copy_of(t)
        try:
            found = batch.run(kind, copy.url)
        finally:
            batch.drop_copy(copy)
        log(f"  add_field/{contender}: {found['seconds']:.3f} s")
        out.append({"kind": "batch", "db": t.kind, "rows": t.rows, "workers": "-", "scenario": "add_field", "contender": contender, **found})
    return out


def one_data_set(args: argparse.Namespace, t: Target, load: Load) -> list[report.Row]:
    """Generate (or reuse) one data set and run the web rounds and the add-field scenario on it."""
    out: list[report.Row] = []
    log(f"data set {t.kind} {t.rows:,} rows")
    seconds = generate(t, lambda m: log(m))
    log(f"  generated in {seconds:.0f} s" if seconds else "  reused")
    scenarios = wanted(args, WEB)
    for workers in args.workers if scenarios else []:
        who = contenders_for(args, t.rows)
        log(f"web round {t.kind} {t.rows:,} rows, {workers} worker(s): {', '.join(c.name for c in who)}; {', '.join(scenarios)}")
        round_ = web_round(t, workers, who, scenarios, load, log)
        out += web_results(t, workers, round_)
        out += [{"kind": "server", "db": t.kind, "rows": t.rows, "workers": workers, "contender": name, **info}
                for name, info in round_["servers"].items()]
    if "add_field" in wanted(args, BATCH):
        out += add_field_results(t)
    return out


def io_results(args: argparse.Namespace) -> list[report.Row]:
    """Run the spreadsheet benchmark when asked, then fold in its newest results."""
    if args.io:
        for db in args.db:
            for rows in args.rows:
                log(f"spreadsheet benchmark {db} {rows:,} rows")
                flags = ["--no-peer"] if args.no_peers else []
                subprocess.run([sys.executable, "-m", "bench.io_bench", "--rows", str(rows), "--db", db, *flags], cwd=REPO, check=True)
    return [r for r in report.io_rows() if r["db"] in args.db]


def machine(args: argparse.Namespace) -> dict[str, Any]:
    """What the figures were measured on."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(), "load": os.getloadavg(),
            "note": "; ".join(filter(None, [f"shared machine: {os.cpu_count()} cores", args.note]))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every scenario asked for; the report (results, targets, the table's lines)."""
    load = load_of(args)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    found = {"run": RUN, "started": started, "options": vars(args), "load": asdict(load),
             "environments": prepare(args)}
    results: list[report.Row] = metadata_results(args)
    for kind in args.db if "start_crm" in wanted(args, BATCH) else []:
        results.append(start.measure(kind, 1 if args.quick else 3))
        log(f"  start_crm {kind}: {results[-1]['seconds']:.2f} s to the first page, {results[-1]['peak_mb']:.0f} MB")
    for kind in args.db:
        for rows in args.rows:
            with pg_database(target(kind, rows)) as t:
                results += one_data_set(args, t, load)
    if wanted(args, IO):
        results += [r for r in io_results(args) if r["scenario"] in wanted(args, IO)]
    measured = [r for r in results if r["kind"] != "server"]
    found.update(results=results, targets=report.targets(measured), table=report.lines(measured), machine=machine(args),
                 finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    return found


def main(argv: list[str] | None = None) -> int:
    """Run, print the table and the targets, write the JSON."""
    args = parse(argv)
    found = run(args)
    print("\n".join(found["table"]))
    print("\ncells: throughput/s median/p99 ms under load (8 connections per worker), 1x = median ms one request at a time; batch: wall s, peak MB")
    print("\n".join(report.target_lines(found["targets"])))
    print("\n" + "\n".join(report.server_lines(found["results"])))
    out = report.write(found)
    print(f"\n{found['machine']['note']}; load average {found['machine']['load'][0]:.1f}\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
