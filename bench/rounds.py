"""One round of web scenarios: every contender's server up on one data set, the scenarios interleaved run by run."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from bench.contenders import Contender, Ctx, prime, server_env, sign_in
from bench.data import BUNDLE, RUN, Target
from bench.servers import Server, get
from bench.web import Load, Scenario

PAGE = 25
Log = Callable[[str], None]


@dataclass(frozen=True)
class Positions:
    """Where the list scenarios look: the first row of the filtered, sorted list and of a page half-way down."""

    offset: int
    first: str
    deep: str
    before: tuple[Decimal, int]  # (amount, id) of the row just above the deep page


def positions(url: str) -> Positions:
    """The list's expected rows, read straight from the database."""
    db = sa.create_engine(url)
    try:
        with db.connect() as conn:
            total = conn.exec_driver_sql("SELECT count(*) FROM customer WHERE industry = 'retail'").scalar_one()
            offset = max(PAGE, total // 2 // PAGE * PAGE)
            rows = conn.execute(sa.text("SELECT name, amount, id FROM customer WHERE industry = 'retail' ORDER BY amount DESC, id DESC "
                                        "LIMIT 2 OFFSET :o"), {"o": offset - 1}).all()
            first = conn.exec_driver_sql("SELECT name FROM customer WHERE industry = 'retail' ORDER BY amount DESC, id DESC LIMIT 1").scalar_one()
    finally:
        db.dispose()
    return Positions(offset, first, rows[1].name, (Decimal(rows[0].amount), int(rows[0].id)))


def deep_param(c: Contender, pos: Positions) -> str:
    """The query value that opens the deep page: a keyset cursor for Loom and the limit, a page number for the peers."""
    amount, rid = pos.before
    if c.name == "loom":
        from engine.loader import load
        from engine.query import encode_cursor

        return quote(encode_cursor(load(BUNDLE).spec.module("customer").field("amount"), amount, rid))
    if c.name == "limit":
        return quote(base64.urlsafe_b64encode(json.dumps([str(amount), rid]).encode()).decode())
    return str(pos.offset // PAGE + 1)


def _checks(c: Contender, port: int, ctx: Ctx, pos: Positions) -> dict[str, bool]:
    """Does each page show what it must (the same rows as the database says)?"""
    found: dict[str, bool] = {}
    for name, expected in (("list", pos.first), ("list_deep", pos.deep)):
        request = c.scenarios[name](ctx)[0]
        status, _, body = get(port, str(request["path"]), ctx.headers)
        found[name] = status == 200 and expected in body.decode("utf-8", "replace")
    return found


@dataclass
class Up:
    """A contender's running server with what its requests need."""

    contender: Contender
    server: Server
    ctx: Ctx
    cold_s: float
    checks: dict[str, bool]


def _start(c: Contender, t: Target, workers: int, pos: Positions, log: Log) -> Up:
    server = Server(f"{c.name}-{t.kind}-{t.rows}", c.python(), c.app, server_env(t.url), workers, c.factory)
    ctx = Ctx(t.rows, sign_in(c, t.url), tag=f"{c.name}{workers}{RUN}")
    if c.name == "loom":
        ctx.users = {u: sign_in(c, t.url, u) for u in ("ruled", "plain")}
    server.start()
    try:
        cold = server.wait(str(c.scenarios["list"](ctx)[0]["path"]), ctx.headers)
        prime(c, server.port, ctx)
        ctx.deep = deep_param(c, pos)
        checks = _checks(c, server.port, ctx, pos)
    except Exception:
        server.stop()
        raise
    log(f"    {c.name}: first page {cold:.2f} s after start; checks {checks}")
    return Up(c, server, ctx, cold, checks)


def web_round(t: Target, workers: int, contenders: list[Contender], scenarios: list[str], load: Load, log: Log) -> dict[str, Any]:
    """Start every contender on `t`, run the scenarios interleaved, stop them; one result per (scenario, contender)."""
    pos = positions(t.url)
    load = replace(load, concurrency=load.concurrency * workers)  # 8 connections per worker: the kernel hashes each to one
    ups: list[Up] = []
    try:
        for c in contenders:
            ups.append(_start(c, t, workers, pos, log))
        table = {(up.contender.name, s): Scenario(up.server.port, up.contender.scenarios[s](up.ctx), t.rows, load)
                 for up in ups for s in scenarios if s in up.contender.scenarios}
        for scenario in table.values():
            scenario.warm()
        for run in range(load.runs):
            log(f"    run {run + 1}/{load.runs}")
            for scenario in table.values():
                scenario.run()
        results = {f"{s}/{name}": sc.summary() for (name, s), sc in table.items()}
        servers = {up.contender.name: {"cold_start_s": up.cold_s, "checks": up.checks, "worker_rss_mb": up.server.worker_rss_mb(),
                                       "total_rss_mb": up.server.rss_mb()} for up in ups}
    finally:
        for up in ups:
            up.server.stop()
        _forget_created(t)
    return {"scenarios": results, "servers": servers, "deep_offset": pos.offset}


def _forget_created(t: Target) -> None:
    """Remove the rows the create scenario added, so the data set stays the one its marker names."""
    db = sa.create_engine(t.url)
    try:
        with db.begin() as conn:
            conn.execute(sa.text("DELETE FROM customer WHERE id > :n"), {"n": t.rows})
    finally:
        db.dispose()
