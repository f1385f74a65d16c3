"""Deterministic data sets on the tables Loom builds for the bench bundle (SQLite file or PostgreSQL database).

Tables come from Loom itself (`open_runtime` + `ensure_schema`); rows go in with SQLAlchemy Core executemany
(SQLite) or COPY (PostgreSQL), with the module's indexes dropped during the load and rebuilt after.
SQLite files are kept under bench/data/ between runs (a side file says what they hold); a PostgreSQL data set lives
in a throwaway database `loom_bench_<run>_<rows>`, made by `pg_database` and dropped when the run ends.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
BUNDLE = HERE / "bundle"
DATA = HERE / "data"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
SEED = 20240601
FORMAT = 4  # bump when the generated rows change
USER, PASSWORD = "bench", "bench-password-1"
ROLE_USERS = {USER: ("admin",), "ruled": ("ruled",), "plain": ("plain",)}
WIDE_ROWS = 10_000
RUN = secrets.token_hex(3)

INDUSTRIES = ("manufacturing", "retail", "finance", "energy", "logistics", "healthcare", "education", "construction", "software", "hospitality")
REGIONS = ("north", "south", "east", "west", "central", "overseas")
RATINGS = ("hot", "warm", "cold")
CITIES = ("Beijing", "Shanghai", "Shenzhen", "Guangzhou", "Chengdu", "Hangzhou", "Wuhan", "Xi'an", "Nanjing", "Tianjin", "Suzhou", "Qingdao")
WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Hooli", "Vandelay", "Wonka")
TITLES = ("ceo", "cfo", "cto", "buyer", "engineer", "assistant")
STAGES = ("prospect", "qualified", "proposal", "negotiation", "won", "lost")
SOURCES = ("web", "referral", "event", "partner", "cold_call")
FIRST = ("Wei", "Fang", "Lei", "Min", "Jing", "Tao", "Yan", "Hui", "Qiang", "Li", "Anna", "John", "Maria", "Peter")
LAST = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Smith", "Brown", "Garcia", "Miller")
BASE = dt.datetime(2024, 1, 1, 8, 0, 0)
DAY0 = dt.date(1990, 1, 1)


@dataclass(frozen=True)
class Target:
    """One database the benchmark runs on."""

    kind: str  # sqlite | postgresql
    url: str
    rows: int

    @property
    def marker(self) -> str:
        return f"loom-bench rows={self.rows} seed={SEED} format={FORMAT}"


def target(kind: str, rows: int) -> Target:
    """The SQLite file (one per size) or this run's PostgreSQL database for that size."""
    if kind == "sqlite":
        return Target(kind, f"sqlite:///{DATA / f'loom_bench_{rows}.db'}", rows)
    return Target(kind, PG_SERVER + f"loom_bench_{RUN}_{rows}", rows)


def _pg_name(t: Target) -> str:
    return t.url.rsplit("/", 1)[1]


@contextmanager
def pg_database(t: Target) -> Iterator[Target]:
    """Drop `t`'s PostgreSQL database (made by `generate`) on the way out, whatever happened; SQLite passes through."""
    if t.kind != "postgresql":
        yield t
        return
    try:
        yield t
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{_pg_name(t)}" WITH (FORCE)')


def pg_admin(sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE…) on the PostgreSQL server's admin database, outside a transaction."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        admin.dispose()


def customer_name(i: int) -> str:
    """The unique name of customer number i (1-based)."""
    return f"{WORDS[i % len(WORDS)]} {i:07d} Co"


def _stamp(i: int) -> dt.datetime:
    return BASE + dt.timedelta(seconds=37 * i)


def _system(i: int, owner: int) -> dict[str, object]:
    at = _stamp(i)
    return {"id": i, "owner": owner, "created_at": at, "created_by": owner, "updated_at": at, "updated_by": owner, "version": 1}


def customers(rows: int, owner: int) -> Iterator[dict[str, object]]:
    """Customer rows: unique names, selects, amounts, dates."""
    rng = random.Random(SEED)
    for i in range(1, rows + 1):
        yield {"name": customer_name(i), "industry": INDUSTRIES[rng.randrange(10)], "region": REGIONS[rng.randrange(6)],
               "rating": RATINGS[rng.randrange(3)], "amount": round(rng.uniform(1_000, 50_000_000), 2),
               "employees": rng.randrange(1, 20_000), "founded": DAY0 + dt.timedelta(days=rng.randrange(12_000)),
               "city": CITIES[rng.randrange(len(CITIES))], "email": f"info{i}@example.com", "phone": f"+86 10 {rng.randrange(10**7, 10**8)}",
               "active": rng.random() < 0.9, "notes": None if rng.random() < 0.7 else f"Met at fair {rng.randrange(100)}",
               **_system(i, owner)}


def contacts(rows: int, owner: int) -> Iterator[dict[str, object]]:
    """Contact rows, each linked to a customer."""
    rng = random.Random(SEED + 1)
    for i in range(1, rows + 1):
        yield {"full_name": f"{FIRST[rng.randrange(len(FIRST))]} {LAST[rng.randrange(len(LAST))]} {i}", "customer": rng.randrange(1, rows + 1),
               "title": TITLES[rng.randrange(6)], "email": f"c{i}@example.com", "phone": f"+86 139 {rng.randrange(10**7, 10**8)}",
               "birthday": DAY0 + dt.timedelta(days=rng.randrange(10_000)), **_system(i, owner)}


def opportunities(rows: int, owner: int) -> Iterator[dict[str, object]]:
    """Opportunity rows linked to a customer and a contact."""
    rng = random.Random(SEED + 2)
    for i in range(1, rows + 1):
        yield {"title": f"Deal {i} {WORDS[rng.randrange(len(WORDS))]}", "customer": rng.randrange(1, rows + 1), "contact": rng.randrange(1, rows + 1),
               "stage": STAGES[rng.randrange(6)], "amount": round(rng.uniform(100, 5_000_000), 2), "probability": rng.randrange(0, 101),
               "close_date": dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(730)), "source": SOURCES[rng.randrange(5)], **_system(i, owner)}


def _value(field: object, i: int, rng: random.Random) -> object:
    kind = field.type  # type: ignore[attr-defined]
    if kind in ("integer",):
        return rng.randrange(0, 100_000)
    if kind in ("decimal", "currency"):
        return round(rng.uniform(0, 1_000_000), 2)
    if kind == "date":
        return DAY0 + dt.timedelta(days=rng.randrange(12_000))
    if kind == "select":
        return field.options[rng.randrange(len(field.options))].value  # type: ignore[attr-defined]
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "email":
        return f"w{i}@example.com"
    return f"{WORDS[rng.randrange(len(WORDS))]} {field.name} {i}"  # type: ignore[attr-defined]


def wide(module: object, rows: int, owner: int) -> Iterator[dict[str, object]]:
    """Rows of the 40-field module, one value per field from its type."""
    rng = random.Random(SEED + 3)
    fields = [f for f in module.fields if f.name not in SYSTEM]  # type: ignore[attr-defined]
    for i in range(1, rows + 1):
        yield {**{f.name: _value(f, i, rng) for f in fields}, **_system(i, owner)}


GENERATORS = {"customer": customers, "contact": contacts, "opportunity": opportunities}
SYSTEM = frozenset({"id", "owner", "created_at", "created_by", "updated_at", "updated_by", "version"})


def _chunks(rows: Iterator[dict[str, object]], size: int) -> Iterator[list[dict[str, object]]]:
    chunk: list[dict[str, object]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _copy(conn: sa.Connection, table: sa.Table, rows: Iterator[dict[str, object]]) -> None:
    names = [c.name for c in table.columns]
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({", ".join(chr(34) + n + chr(34) for n in names)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[n] for n in names])


def _insert(conn: sa.Connection, table: sa.Table, rows: Iterator[dict[str, object]]) -> None:
    if conn.dialect.name == "postgresql":
        _copy(conn, table, rows)
        return
    for chunk in _chunks(rows, 20_000):
        conn.execute(table.insert(), chunk)


def _reset_database(t: Target) -> None:
    if t.kind == "sqlite":
        path = Path(t.url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", ".json"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    pg_admin(f'DROP DATABASE IF EXISTS "{_pg_name(t)}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{_pg_name(t)}"')


def current_marker(t: Target) -> str | None:
    """What data set the database holds now (None when none or unknown)."""
    if t.kind == "sqlite":
        side = Path(t.url.removeprefix("sqlite:///") + ".json")
        return str(json.loads(side.read_text())["marker"]) if side.exists() else None
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            query = sa.text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :name")
            return conn.execute(query, {"name": _pg_name(t)}).scalar()
    finally:
        admin.dispose()


def _write_marker(t: Target, seconds: float) -> None:
    if t.kind == "sqlite":
        Path(t.url.removeprefix("sqlite:///") + ".json").write_text(json.dumps({"marker": t.marker, "seconds": seconds}))
        return
    pg_admin(f"COMMENT ON DATABASE \"{_pg_name(t)}\" IS '{t.marker}'")


def _users(db: sa.Engine) -> int:
    """The bench users (one per role the scenarios act as); returns the admin's id, the owner of every row."""
    from engine.auth.users import add_user

    with db.begin() as conn:
        ids = [add_user(conn, name, PASSWORD, roles, name.title()).id for name, roles in ROLE_USERS.items()]
    return ids[0]


def session(url: str, username: str = USER) -> tuple[str, str]:
    """A new web session of a bench user on the data set at `url`: (cookie token, CSRF token)."""
    from engine.auth import sessions

    db = sa.create_engine(url)
    try:
        with db.begin() as conn:
            uid = conn.execute(sa.select(sessions.USERS.c.id).where(sessions.USERS.c.username == username)).scalar_one()
            token = sessions.start(conn, uid)
            csrf = conn.execute(sa.select(sessions.SESSIONS.c.csrf).where(sessions.SESSIONS.c.token_hash == sessions.digest(token))).scalar_one()
    finally:
        db.dispose()
    return token, str(csrf)


def generate(t: Target, log: object = print) -> float:
    """(Re)build the data set unless the database holds it already; returns the seconds it took (0 when kept)."""
    from engine.migrate import ensure_schema
    from engine.runtime import Settings, open_runtime

    if current_marker(t) == t.marker:
        return 0.0
    started = time.perf_counter()
    _reset_database(t)
    rt = open_runtime(Settings(metadata=BUNDLE, db_url=t.url, auto_migrate=True))
    ensure_schema(rt)
    owner = _users(rt.db)
    for name in (*GENERATORS, "wide"):
        table = rt.tables[name]
        t0 = time.perf_counter()
        rows = GENERATORS[name](t.rows, owner) if name in GENERATORS else wide(rt.spec.module(name), WIDE_ROWS, owner)
        with rt.db.begin() as conn:
            for ix in table.indexes:
                ix.drop(conn)
            _insert(conn, table, rows)
            for ix in table.indexes:
                ix.create(conn)
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM \"{name}\"))")
        log(f"  {name}: loaded in {time.perf_counter() - t0:.1f} s")  # type: ignore[operator]
    _analyze(rt.db)
    rt.db.dispose()
    seconds = time.perf_counter() - started
    _write_marker(t, seconds)
    return seconds


def _analyze(db: sa.Engine) -> None:
    if db.dialect.name == "postgresql":
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        return
    with db.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
