"""The import pipeline: read → map → parse → resolve links → match by key → validate → write, in batches,
inside one transaction that is rolled back for a dry run or (all-or-nothing) when any row failed."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from engine import records
from engine.access import Access
from engine.errors import Invalid
from engine.io import columns
from engine.io.bulk import Draft, create_many
from engine.io.cells import Parsed, Parser, as_text, column_parser, computed, parse_cells
from engine.io.limits import DEFAULT_LIMITS, Limits
from engine.io.links import Resolver
from engine.io.plan import SAMPLES, Options, Problem, Result
from engine.io.sheet import Item, Sheet, open_sheet
from engine.io.updates import update_item
from engine.runtime import Runtime
from engine.spec import Module

BATCH = 1_000
Progress = Callable[[int, int], None]
Finish = Callable[[sa.Connection, Result], None]
T = TypeVar("T")
BULK_CACHE_KB = 16_384
GC_YOUNG = 10_000


@dataclass
class Job:
    """One import while it runs: where it writes, as whom, and what it found so far."""

    conn: sa.Connection
    rt: Runtime
    access: Access
    module: Module
    options: Options
    found: dict[str, columns.Target]
    result: Result
    resolver: Resolver
    headers_of: dict[str, str] = field(default_factory=dict)
    made: dict[tuple[str, str], Any] = field(default_factory=dict)  # what is worked out once per module and import

    def parsers(self, module: Module) -> dict[str, Parser]:
        """Field name → its column parser."""
        return self._once("parsers", module, lambda: {f.name: column_parser(f) for f in module.fields})

    def links(self, module: Module) -> tuple[str, ...]:
        """The module's link and user fields (the cells the resolver turns into ids)."""
        return self._once("links", module, lambda: tuple(f.name for f in module.fields if f.type in ("link", "user") and f.name != "id"))

    def computed(self, module: Module) -> frozenset[str]:
        """Fields an insert never takes from the file: id, formulas, autonumbers, system fields but the owner."""
        return self._once("computed", module, lambda: frozenset(f.name for f in module.fields if computed(f)) | {"id"})

    def column(self, target: str) -> int | None:
        """The sheet column of `target` (a mapped field)."""
        return self._once("columns", self.module, lambda: {t: i for i, t in enumerate(self.result.mapping) if t}).get(target)

    def _once(self, what: str, module: Module, make: Callable[[], T]) -> T:
        """What `make` works out for a module, once per import (callers ask once per batch)."""
        key = (what, module.name)
        if key not in self.made:
            self.made[key] = make()
        return cast(T, self.made[key])


def prepare(rt: Runtime, access: Access, name: str, path: str, kind: str, options: Options,
            limits: Limits = DEFAULT_LIMITS) -> tuple[Sheet, list[str | None], str | None]:
    """Open the sheet and settle the mapping and key (the proposal, or the caller's confirmed mapping)."""
    module = records.module_of(rt, name)
    records.require(access, module, "import")
    found = columns.targets(rt.spec, module)
    if options.key is not None and options.key not in found:
        raise Invalid("unknown key field", {"key": f"'{options.key}' is not a field of {module.name}"})
    sheet = open_sheet(path, kind, found, limits)
    proposed = list(options.mapping) if options.mapping is not None else columns.propose(sheet.headers, found, sheet.names)
    proposed = (proposed + [None] * len(sheet.headers))[: len(sheet.headers)]
    key = options.key or columns.default_key(module, proposed)
    mapping = proposed if options.mapping is not None else columns.settle(proposed, found, key)
    return sheet, mapping, key


def execute(rt: Runtime, access: Access, name: str, path: str, kind: str, options: Options, progress: Progress | None = None,
            finish: Finish | None = None, limits: Limits = DEFAULT_LIMITS) -> Result:
    """Run the import (or its dry run) and return what it did; commits only a clean (or skip-errors) apply."""
    options = options.checked()
    sheet, mapping, key = prepare(rt, access, name, path, kind, options, limits)
    with closing(sheet):
        return _run(rt, access, rt.spec.module(name), sheet, mapping, key, options, progress, finish)


def _run(rt: Runtime, access: Access, module: Module, sheet: Sheet, mapping: list[str | None], key: str | None, options: Options,
         progress: Progress | None, finish: Finish | None) -> Result:
    found = columns.targets(rt.spec, module)
    columns.check(rt.spec, module, access, sheet.headers, mapping, found, key)
    if options.mode != "insert" and key is None:
        raise Invalid("choose the key column that finds existing records", {"key": "required for update and upsert"})
    result = Result(sheet.header_row, sheet.headers, mapping, key)
    with rt.db.connect() as conn, bulk_cache(conn), fewer_collections():
        trans = conn.begin()
        job = Job(conn, rt, access, module, options, found, result, Resolver(conn, rt, access),
                  {m: h or m for h, m in zip(sheet.headers, mapping, strict=False) if m})
        try:
            for batch in _batches(job, sheet.items(mapping, key, found)):
                _run_batch(job, batch)
                if progress:
                    progress(result.records, max(sheet.total, result.records))
            result.reader_kb = sheet.sizes.get("worker_kb", 0)
            keep = not options.dry_run and (not result.problems or options.on_error == "skip")
            if keep and finish:
                finish(conn, result)
            result.applied = keep
        finally:
            (trans.commit if result.applied else trans.rollback)()
    return result


@contextmanager
def bulk_cache(conn: sa.Connection) -> Iterator[None]:
    """A 16 MB SQLite page cache while an import writes (the table's indexes stay in memory: 100k rows into a table of
    17 indexes go in 25 % faster than with the 2 MB default); the connection's usual cache afterwards."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver: Any = conn.connection.driver_connection  # outside SQLAlchemy's transaction: a pragma is no statement of it
    usual = driver.execute("PRAGMA cache_size").fetchone()[0]
    driver.execute(f"PRAGMA cache_size={-BULK_CACHE_KB}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA cache_size={int(usual)}")


class _Collections:
    """Python's cycle collector after 10,000 new objects instead of 700 while imports run: an import keeps a batch of
    records alive across thousands of allocations, and at 700 the collector ran 2,500 times over a 100k-row import
    (1.2 s of 8.7 s); at 10,000 about ten times. The usual threshold is back when the last import ends (requests,
    measured, gain nothing from the larger one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.usual = gc.get_threshold()

    @contextmanager
    def fewer(self) -> Iterator[None]:
        with self.lock:
            if not self.running:
                self.usual = gc.get_threshold()
                gc.set_threshold(GC_YOUNG, *self.usual[1:])
            self.running += 1
        try:
            yield
        finally:
            with self.lock:
                self.running -= 1
                if not self.running:
                    gc.set_threshold(*self.usual)


fewer_collections = _Collections().fewer


def _batches(job: Job, found: Iterable[Item]) -> Iterator[list[Item]]:
    """Batches of records; a batch ends before a record that links by name to one earlier in it (self links)."""
    own = [f.name for f in job.module.fields if f.type == "link" and f.module == job.module.name and f.name in job.result.mapping]
    names = [n for n in (job.module.title_field, job.result.key) if n]
    batch: list[Item] = []
    seen: set[str] = set()
    for item in found:
        if batch and (len(batch) >= BATCH or any(as_text(item.cells[f]) in seen for f in own if item.cells.get(f) is not None)):
            yield batch
            batch, seen = [], set()
        batch.append(item)
        if own:
            seen.update(as_text(item.cells[n]) for n in names if item.cells.get(n) is not None)
    if batch:
        yield batch


def _run_batch(job: Job, batch: list[Item]) -> None:
    job.result.records += len(batch)
    parsers = job.parsers(job.module)
    parsed = [_parse(job, item, parsers) for item in batch]
    _resolve(job, batch, parsed)
    existing = _existing(job, parsed)
    inserts: list[tuple[Item, Draft]] = []
    for item, draft in zip(batch, parsed, strict=True):
        target = existing.get(_key_value(job, draft))
        action = _action(job, draft, target)
        if action == "error":
            _fail(job, item, draft)
        elif action == "insert":
            inserts.append((item, draft))
        elif isinstance(target, dict):
            update_item(job, item, draft, target)
    _insert(job, inserts)
    job.resolver.forget_missing(job.module.name)


def _key_value(job: Job, draft: Draft) -> Any:
    return draft.values.get(job.result.key) if job.result.key else None


def _action(job: Job, draft: Draft, target: Any) -> str:
    """'insert', 'update' or 'error' (key problems; an update with bad cells). Insert drafts keep their
    cell errors so that validation reports every problem of the row at once."""
    key, mode = job.result.key or "", job.options.mode
    problem = None
    if isinstance(target, str):
        problem = target
    elif target is not None and mode == "insert":
        problem = "a record with this key exists already (import with update or upsert)"
    elif target is None and mode == "update":
        problem = "no record with this key" if _key_value(job, draft) is not None else "the key is empty"
    if problem:
        draft.errors.setdefault(key, problem)
        return "error"
    if target is None:
        return "insert"
    return "error" if draft.errors else "update"


def _parse(job: Job, item: Item, parsers: dict[str, Parser]) -> Draft:
    """Parent and child cells parsed through the field registry (unless parsed as they were read); link cells stay
    text until they are resolved."""
    values, errors = item.parsed or _parse_into(parsers, item.cells, "")
    draft = Draft(values, errors=errors)
    for (number, column, value) in item.conflicts:
        draft.errors.setdefault(column, f"row {number} repeats this record's key with a different value '{as_text(value)}'")
    for table, lines in item.lines.items():
        parsers = job.parsers(job.rt.spec.module(job.module.field(table).module or ""))
        rows = []
        for i, (_, cells) in enumerate(lines):
            values, errors = _parse_into(parsers, {k: v for k, v in cells.items() if v is not None}, f"{table}[{i}].")
            draft.errors.update(errors)
            rows.append(values)
        draft.rows[table] = rows
    return draft


def _parse_into(parsers: dict[str, Parser], cells: dict[str, Any], where: str) -> Parsed:
    values, problems = parse_cells(parsers, cells)
    return values, {where + name: reason for name, reason in problems.items()} if where else problems


def _resolve(job: Job, batch: list[Item], parsed: list[Draft]) -> None:
    """Resolve every link cell of the batch with one lookup per link field."""
    links = job.links(job.module)
    cells = [(draft, _link_cells(job, draft, links)) for draft in parsed]
    wanted: dict[tuple[str, str], set[str]] = {}
    for _, found in cells:
        for module, name, values, _ in found:
            wanted.setdefault((module, name), set()).add(values[name])
    answers = {k: job.resolver.resolve(job.rt.spec.module(k[0]).field(k[1]), v) for k, v in wanted.items()}
    for draft, found in cells:
        for module, name, values, where in found:
            answer = answers[(module, name)][values[name]]
            if isinstance(answer, int):
                values[name] = answer
            else:
                del values[name]
                draft.errors[where] = answer


def _link_cells(job: Job, draft: Draft, links: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any], str]]:
    out = [(job.module.name, n, draft.values, n) for n in links if type(draft.values.get(n)) is str]
    for table, rows in draft.rows.items():
        child = job.rt.spec.module(job.module.field(table).module or "")
        names = job.links(child)
        out += [(child.name, n, r, f"{table}[{i}].{n}") for i, r in enumerate(rows) for n in names if type(r.get(n)) is str]
    return out


def _existing(job: Job, parsed: list[Draft]) -> dict[Any, Any]:
    """Key value → the stored row (or a message when several records share it)."""
    key = job.result.key
    if key is None:
        return {}
    wanted = {d.values[key] for d in parsed if d.values.get(key) is not None and key not in d.errors}
    if not wanted:
        return {}
    table = job.rt.tables[job.module.name]
    out: dict[Any, Any] = {}
    for row in job.conn.execute(sa.select(table).where(table.c[key].in_(wanted))).mappings():
        value = row[key]
        out[value] = f"{job.module.label('en').lower()} records share this key" if value in out else dict(row)
    return out


def _insert(job: Job, inserts: list[tuple[Item, Draft]]) -> None:
    if not inserts:
        return
    computed = job.computed(job.module)
    for _, draft in inserts:
        draft.values = {k: v for k, v in draft.values.items() if v is not None and k not in computed}
        draft.given = set(draft.values)
    if job.options.bulk:
        key = job.result.key  # `_existing` has just found these drafts' keys in no stored record
        create_many(job.conn, job.rt, job.access, job.module, [d for _, d in inserts], frozenset({key} if key else ()))
    else:
        for _, draft in inserts:
            _create_one(job, draft)
    for item, draft in inserts:
        if draft.errors:
            _fail(job, item, draft)
            continue
        job.result.inserted += 1
        job.result.created.append(draft.id or 0)
        if len(job.result.samples["insert"]) < SAMPLES:
            job.result.sample("insert", {"row": item.rows[0], "id": draft.id, "values": _shown(job, draft.values)})


def _create_one(job: Job, draft: Draft) -> None:
    """The records path (one `records.create` per record), kept for comparison with the bulk path."""
    raw = dict(draft.values) | {t: rows for t, rows in draft.rows.items()}
    if draft.errors:
        return
    try:
        draft.id = records.create(job.rt, job.access, job.module.name, raw, job.conn)["id"]
    except Invalid as exc:
        draft.errors.update(exc.fields or {"": exc.message})


def _shown(job: Job, values: dict[str, Any]) -> dict[str, str]:
    from engine.fieldtypes import show

    return {job.headers_of.get(k, k): show(job.module.field(k), v, job.access.actor.locale)
            for k, v in values.items() if k in job.headers_of and k in job.module.by_name}


def _fail(job: Job, item: Item, draft: Draft) -> None:
    """Record the row's problems against the columns they came from."""
    job.result.failed += 1
    rows: set[int] = set()
    for where, reason in draft.errors.items():
        row, target = _locate(item, where)
        column = job.headers_of.get(target) or _label(job, target)
        value = _cell_text(job, item, where, target)
        job.result.problems.append(Problem(row, column, value, reason))
        rows.add(row)
    for row in item.rows:  # the record's other rows go into the error report with it
        if row not in rows:
            job.result.problems.append(Problem(row, "", "", f"belongs to the record of row {item.rows[0]}, which has errors"))
            rows.add(row)


def _locate(item: Item, where: str) -> tuple[int, str]:
    if "[" not in where:
        return item.rows[0], where
    table, rest = where.split("[", 1)
    index, name = rest.split("].", 1) if "]." in rest else (rest.rstrip("]"), "")
    lines = item.lines.get(table, [])
    row = lines[int(index)][0] if index.isdigit() and int(index) < len(lines) else item.rows[0]
    return row, f"{table}.{name}" if name else table


def _label(job: Job, target: str) -> str:
    found = job.found.get(target)
    return found.label(job.access.actor.locale) if found else (target or "")


def _cell_text(job: Job, item: Item, where: str, target: str) -> str:
    """The cell as the file gave it."""
    if item.row is not None:
        at = job.column(target)
        value = item.row[at] if at is not None and at < len(item.row) else None
    elif "." not in target:
        value = item.cells.get(target)
    else:
        table, name = target.split(".", 1)
        _, rest = where.split("[", 1)
        index = rest.split("]", 1)[0]
        lines = item.lines.get(table, [])
        value = lines[int(index)][1].get(name) if index.isdigit() and int(index) < len(lines) else None
    return "" if value is None else as_text(value)
