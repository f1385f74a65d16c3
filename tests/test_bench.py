"""The benchmark's own logic: its data sets are the same every time, its bundle loads, and its report judges the
issue's targets as stated (a miss says MISSED). The measurements themselves run on demand (`python -m bench`)."""

from __future__ import annotations

from typing import Any

from bench import data, report
from bench.instructions import table as instruction_table
from engine.loader import load


def web(contender: str, scenario: str, rps: float, rows: int = 100_000, workers: int = 1, db: str = "sqlite",
        single_ms: float = 3.0) -> dict[str, Any]:
    return {"kind": "web", "contender": contender, "scenario": scenario, "db": db, "rows": rows, "workers": workers, "rps": rps,
            "median_ms": 1000 / rps, "p99_ms": 2000 / rps, "single_ms": single_ms}


def verdicts(results: list[dict[str, Any]]) -> dict[str, tuple[float, bool | None]]:
    return {t["target"]: (round(t["measured"], 3), t["met"]) for t in report.targets(results)}


def test_data_sets_are_the_same_every_time_and_links_stay_inside() -> None:
    for rows in (data.customers, data.contacts, data.opportunities):
        assert list(rows(200, 1)) == list(rows(200, 1))
    names = [r["name"] for r in data.customers(500, 1)]
    assert len(set(names)) == 500 and names[:2] == ["Globex 0000001 Co", data.WORDS[2 % len(data.WORDS)] + " 0000002 Co"]
    for r in data.opportunities(300, 1):
        assert 1 <= r["customer"] <= 300 and 1 <= r["contact"] <= 300
    industries = {r["industry"] for r in data.customers(2_000, 1)}
    assert len(industries) == 10  # the list filter (industry = retail) selects about a tenth


def test_the_bench_bundle_loads() -> None:
    spec = load("bench/bundle").spec
    assert {"customer", "contact", "opportunity", "wide"} <= set(spec.modules)
    assert len(spec.modules["wide"].fields) >= 40


def test_web_targets_are_judged_as_the_issue_states() -> None:
    slow = [web("loom", "list", 100), web("limit", "list", 150), web("sqladmin", "list", 60)]
    found = verdicts(slow)
    assert found["sqlite 100000 1 list: loom / limit throughput"] == (0.667, False)
    assert found["sqlite 100000 1 list: sqladmin / loom throughput"] == (0.6, False)
    fast = verdicts([web("loom", "list", 120), web("limit", "list", 150), web("sqladmin", "list", 60)])
    assert fast["sqlite 100000 1 list: loom / limit throughput"] == (0.8, True)
    assert fast["sqlite 100000 1 list: sqladmin / loom throughput"] == (0.5, True)  # exactly 2x is met


def test_one_million_rows_latency_deep_pages_and_batch_targets() -> None:
    results = [web("loom", "list", 300, rows=1_000_000, single_ms=55), web("loom", "list_deep", 300, rows=1_000_000, single_ms=80),
               {"kind": "batch", "contender": "loom", "scenario": "metadata_crm", "seconds": 0.31, "peak_mb": 60},
               {"kind": "batch", "contender": "loom", "scenario": "start_crm", "db": "sqlite", "seconds": 1.5, "peak_mb": 130}]
    found = verdicts(results)
    assert found["sqlite 1000000 1 list: loom median ms, one request at a time"] == (55, False)
    assert found["sqlite 1000000 1: deep page / first page latency"] == (1.455, True)
    assert found["metadata_crm: load + validate + build, s"] == (0.31, False)
    assert found["sqlite start_crm: loom serve to the first page, s"] == (1.5, True)
    assert found["sqlite start_crm: worker RSS, MB"] == (130, False)
    assert any(line.startswith("MISSED") and "metadata_crm" in line for line in report.target_lines(report.targets(results)))


def test_table_rows_carry_both_ratios() -> None:
    lines = report.lines([web("loom", "record", 200), web("limit", "record", 250), web("sqladmin", "record", 50)])
    assert lines[0].startswith("| db | rows | w | scenario | loom | limit | sqladmin | loom/limit | sqladmin/loom |")
    assert lines[2].endswith("| 0.80 | 0.25 |") and "200/s" in lines[2]
    counted = instruction_table({"loom": {"list": 9e6}, "limit": {"list": 7.2e6}, "sqladmin": {"list": 1.35e8}}, ["list"])
    assert counted[2] == "| list | 9.00M | 7.20M | 135.00M | 0.80 | 0.07 |"
