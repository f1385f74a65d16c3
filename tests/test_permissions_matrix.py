"""The permission matrix, generated from the metadata and the router.

For every role and every value it may not see (a field it may not read, or a record out of its
scope), a unique canary is seeded; no GET path of the app (enumerated from app.routes, path
parameters filled with the seeded modules and records) may answer it. And two databases that differ
only in those values answer every read path identically, sorting and filtering included: no oracle.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from engine.runtime import Settings
from engine.spec import Module
from engine.web.app import create_app

from .conftest import CRM_BUNDLE, PG_URL, TEST_BUNDLE, _pg_database, login
from .test_permissions_routes import fill, module_params, routes
from .test_permissions_world import STRANGER, World, alter, body_text, finder, seed

BUNDLES = [TEST_BUNDLE] + ([pytest.param(CRM_BUNDLE, marks=pytest.mark.slow, id="crm")] if (CRM_BUNDLE / "app.yaml").is_file() else [])
FULL = os.environ.get("LOOM_MATRIX") == "full"
PASSWORD = "pw-long-enough"


@dataclass(frozen=True)
class Get:
    """One read request."""

    path: str
    params: tuple[tuple[str, str], ...] = ()
    htmx: bool = False

    def send(self, client: TestClient) -> Any:
        """Make the request."""
        return client.get(self.path, params=list(self.params), headers={"HX-Request": "true"} if self.htmx else {}, follow_redirects=False)


def _is_export(route: Route) -> bool:
    return "export" in (route.name or "") or "export" in route.path


def _record_ids(world: World, module: Module, role: str) -> list[int]:
    mine = [rid for (name, rid), owner in world.owners.items() if name == module.name and owner == role]
    theirs = [rid for (name, rid), owner in world.owners.items() if name == module.name and owner == STRANGER]
    return (mine[:1] + theirs[:1]) or [1]


def _module_calls(world: World, route: Route, module: Module, role: str, fields: list[str], htmx: bool) -> Iterator[Get]:
    spec = world.rt.spec
    if "id" not in route.param_convertors:
        path = fill(route, module_params(spec, module, None))
        yield from (Get(path), Get(path, (("q", "zqv"),)), *((Get(path, htmx=True),) if htmx else ()))
        if _is_export(route):
            yield from (Get(path, (("format", "csv"),)), Get(path, (("format", "xlsx"),)))
        for name in fields:
            yield from (Get(path, (("sort", name),)), Get(path, ((name, world_value(world, module, name)),)))
        return
    for i, record_id in enumerate(_record_ids(world, module, role)):
        path = fill(route, module_params(spec, module, record_id))
        yield from (Get(path), Get(path, htmx=True)) if i == 0 and htmx else (Get(path),)


def world_value(world: World, module: Module, name: str) -> str:
    """A seeded value of a field as a query parameter (the first record's)."""
    for (m, _, f), (_, value) in world.values.items():
        if m == module.name and f == name:
            return str(value.isoformat() if hasattr(value, "isoformat") else value).lower()
    return "x"


def read_calls(world: World, role: str, fields: Callable[[Module], list[str]] = lambda m: [], htmx: bool = True) -> Iterator[Get]:
    """Every GET route, per module and seeded record (own and a stranger's), with list variants."""
    spec = world.rt.spec
    for route in routes(world.app):
        if "GET" not in (route.methods or ()) or route.path.startswith("/locale"):
            continue
        if "module" not in route.param_convertors:
            path = fill(route, module_params(spec, next(iter(spec.modules.values())), None))
            yield from (Get(path), Get(path, (("q", "zqv"),)))
            continue
        for module in spec.modules.values():
            yield from _module_calls(world, route, module, role, fields(module), htmx)


def _roles(world: World, bundle: Path) -> list[str]:
    roles = [r.name for r in world.rt.spec.app.roles if not r.admin]
    return roles if FULL or bundle == TEST_BUNDLE else roles[::2]


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_no_value_a_role_may_not_see_leaves_the_server_on_any_read_path(make_app: Callable[..., Any], bundle: Path) -> None:
    app = make_app(bundle)
    world = seed(app, [r.name for r in app.state.runtime.spec.app.roles])
    checked = 0
    for role in _roles(world, bundle):
        client = login(app, f"u_{role}", password=PASSWORD)
        find = finder(world, world.hidden(role))
        leaks = []
        for call in read_calls(world, role):
            answer = call.send(client)
            assert answer.status_code < 500, (role, call, answer.text[:300])
            hits = find(body_text(answer))
            if hits:
                leaks.append((call.path, call.params, call.htmx, sorted(hits)[:4]))
            checked += 1
        assert not leaks, f"{role} sees values it may not read: {leaks[:10]}"
    assert checked > 100


@contextmanager
def _second_world(bundle: Path, db_url: str, tmp_path: Path) -> Iterator[Any]:
    """An app on a second, empty database (dropped afterwards), closed also when the comparison fails."""
    databases = iter([f"sqlite:///{tmp_path / 'twin.db'}"]) if db_url.startswith("sqlite") else _pg_database()
    app = create_app(Settings(metadata=bundle, db_url=next(databases), files=tmp_path / "twin-files"))
    try:
        yield app
    finally:
        app.state.runtime.db.dispose()
        next(databases, None)  # a throwaway PostgreSQL database is dropped


def _normal(text: str, csrf: str) -> str:
    """Without what differs between two processes by nature: the CSRF token, Python object addresses, the minute a
    page was printed, and a `default: now` prefilled in a new form (the two requests may fall in different seconds)."""
    text = re.sub(r" at 0x[0-9a-f]+", " at 0x…", text)
    text = _NOW.sub(lambda m: "NOW" if _recent(m.group(0)) else m.group(0), text)
    text = re.sub(r'(<footer class="print-foot[^"]*">)[^<]*', r"\1", text)
    return re.sub(r'name="csrf_token" value="[^"]*"', "", text.replace(csrf, "CSRF")) if csrf else text


_NOW = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?")


def _recent(stamp: str) -> bool:
    """Whether a timestamp is within ten minutes of now: seeded values never are, a prefilled `now` always is."""
    moment = datetime.fromisoformat(stamp)
    return any(abs((moment - now).total_seconds()) < 600 for now in (datetime.now(), datetime.now(UTC).replace(tzinfo=None)))


def _hidden_fields(world: World, role: str, module: Module) -> list[str]:
    access = world.access(role)
    hidden = [f.name for f in module.stored_fields if f.name not in access.readable(module)]
    return hidden if FULL or len(world.rt.spec.modules) < 10 else hidden[:2]


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_databases_differing_only_in_hidden_values_answer_alike(make_app: Callable[..., Any], db_url: str, tmp_path: Path,
                                                                 bundle: Path) -> None:
    if db_url.startswith("postgresql") and not PG_URL:
        pytest.skip("LOOM_TEST_PG is not set")
    app = make_app(bundle)
    roles = [r.name for r in app.state.runtime.spec.app.roles]
    base = seed(app, roles)
    with _second_world(bundle, db_url, tmp_path) as twin_app:
        twin = seed(twin_app, roles)
        assert twin.values == base.values
        differences = 0
        for role in _roles(base, bundle):
            hidden = base.hidden(role)
            alter(twin, hidden, True)
            a, b = login(app, f"u_{role}", password=PASSWORD), login(twin_app, f"u_{role}", password=PASSWORD)
            for call in read_calls(base, role, lambda m, r=role: _hidden_fields(base, r, m), htmx=False):
                left, right = call.send(a), call.send(b)
                assert left.status_code == right.status_code, (role, call, left.status_code, right.status_code)
                assert _normal(body_text(left), a.headers["X-CSRF-Token"]) == _normal(body_text(right), b.headers["X-CSRF-Token"]), (role, call)
                differences += 1
            alter(twin, hidden, False)
        assert differences > 100
