"""For every write path × every field a role may not write (field rules, system fields, computed fields,
the owner without `assign`, a workflow's state field): a 4xx and the database unchanged.

Write paths come from the router: every unsafe route parameterized by a module is sent the field (as
JSON and as a form); the record-writing ones (create, update, import) must refuse with a 4xx, and no
route may change the field. A control request without the field succeeds, so the 4xx is the field's.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.routing import Route
from starlette.testclient import TestClient

from engine import records
from engine.access import SystemAccess
from engine.fieldtypes import stored_type
from engine.runtime import Runtime
from engine.spec import Field, Module

from .conftest import CRM_BUNDLE, TEST_BUNDLE, add_test_user, login
from .test_permissions_routes import UNSAFE, fill, module_params, routes

SERIAL = itertools.count(1)
RECORD_WRITES = {"api_create", "api_update", "record_create", "record_update", "api_io_import"}
WORKFLOW = ("name: deal_flow\nmodule: deal\nfield: stage\n"
            "states: [{name: initial, initial: true}, {name: proposal}, {name: won}, {name: lost}]\n"
            "transitions:\n  - {name: propose, from: initial, to: proposal}\n  - {name: win, from: proposal, to: won, roles: [manager]}\n")


def with_workflow(tmp_path: Path) -> Path:
    """The test bundle plus a workflow on deal.stage."""
    bundle = tmp_path / "wf"
    shutil.copytree(TEST_BUNDLE, bundle)
    (bundle / "workflows").mkdir(exist_ok=True)
    (bundle / "workflows" / "deal_flow.yaml").write_text(WORKFLOW)
    return bundle


def valid(f: Field, rt: Runtime, made: dict[str, int], me: int) -> Any:
    """A value the field accepts (JSON form), creating a linked record when needed."""
    kind = stored_type(f)
    if f.type == "link":
        return made.get(f.module or "") or make_record(rt, rt.spec.module(f.module or ""), made, me)
    simple: dict[str, Any] = {"select": f.options[0].value if f.options else None, "multiselect": [f.options[0].value] if f.options else [],
                              "boolean": True, "date": "2024-01-02", "datetime": "2024-01-02T03:04:05", "email": "a@b.co",
                              "phone": "13800000000", "url": "https://a.io", "user": me}
    if kind in simple:
        return simple[kind]
    if kind in ("integer", "decimal", "currency", "percent"):
        return int(f.min) + 1 if f.min is not None else 1
    return f"w{next(SERIAL)}{f.name[:20]}"  # unique: text fields may be declared unique


def required_values(rt: Runtime, module: Module, made: dict[str, int], me: int) -> dict[str, Any]:
    """Values for the required fields of a module."""
    return {f.name: valid(f, rt, made, me) for f in module.fields if f.required and f.writable and f.type != "table"}


def make_record(rt: Runtime, module: Module, made: dict[str, int], me: int) -> int:
    """A valid record of `module` (and the records its required links need), made by the system."""
    if module.name in made:
        return made[module.name]
    made[module.name] = 0
    record = records.create(rt, SystemAccess(), module.name, required_values(rt, module, made, me) | {"owner": me})
    made[module.name] = int(record["id"])
    return made[module.name]


def forbidden_value(f: Field, rt: Runtime, made: dict[str, int], me: int, other: int) -> Any:
    """A well-formed value for a field the role may not write (so the refusal is about permission, not format)."""
    system = {"id": 987654, "owner": other, "created_by": other, "updated_by": other, "version": 77,
              "created_at": "2001-02-03T04:05:06", "updated_at": "2001-02-03T04:05:06"}
    if f.name in system:
        return system[f.name]
    if f.type == "autonumber":
        return "FORGED-1"
    if f.type == "formula":
        return 4242
    if f.type == "select" and len(f.options) > 1:
        return f.options[-1].value
    return valid(f, rt, made, me)


def snapshot(rt: Runtime, module: Module, name: str) -> list[tuple[Any, ...]]:
    """Every row's id and value of one field (and how many rows there are)."""
    table = rt.tables[module.name]
    with rt.db.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table.c.id, table.c[name]).order_by(table.c.id))]


def unwritable(rt: Runtime, module: Module, writable: frozenset[str]) -> list[Field]:
    """The stored fields a role may not write (system fields included)."""
    return [f for f in module.fields if f.name not in writable and f.type != "table" and f.type != "attachment"]


def _bodies(route: Route, values: dict[str, Any], own: int) -> Iterator[dict[str, Any]]:
    """The request bodies for one route: a CSV upload for an import, JSON for the API, a form for screens."""
    def cell(v: Any) -> str:
        return str(v[0] if isinstance(v, list) else v)

    if route.name == "api_io_import":
        header, row = ",".join(values), ",".join(cell(v) for v in values.values())
        yield {"files": {"file": ("rows.csv", f"{header}\n{row}\n".encode(), "text/csv")}, "data": {"mode": "insert"}}
        if "id" not in values:
            yield {"files": {"file": ("rows.csv", f"id,{header}\n{own},{row}\n".encode(), "text/csv")}, "data": {"mode": "update", "key": "id"}}
    elif route.path.startswith("/api/"):
        yield {"json": values}
    else:
        yield {"data": {k: (",".join(v) if isinstance(v, list) else str(v)) for k, v in values.items()}}


def _run_role(app: Any, role: str, modules: list[Module], only: frozenset[str] | None = None) -> list[str]:
    """Attack every module the role may create in or write: each unwritable field alone on the record-writing
    routes, and all of them at once on every other unsafe route (`only`: just these route names)."""
    rt: Runtime = app.state.runtime
    me = add_test_user(rt, f"w_{role}", (role,))
    other = add_test_user(rt, f"x_{role}", ())
    client = lenient(login(app, f"w_{role}"))
    problems: list[str] = []
    for module in modules:
        access = client_access(rt, me, role)
        if module.child or not (access.can(module, "create") or access.can(module, "write")):
            continue
        made: dict[str, int] = {}
        own = make_record(rt, module, made, me)
        base = required_values(rt, module, made, me)
        forged = {f.name: forbidden_value(f, rt, made, me, other) for f in unwritable(rt, module, access.writable(module))}
        writes = [r for r in routes(app) if r.name in (only or RECORD_WRITES)]
        for name, value in forged.items():
            problems += _attack(app, client, module, {name: value}, own, base, writes)
        if only is None:
            others = [r for r in routes(app) if r.name not in RECORD_WRITES]
            problems += _attack(app, client, module, forged, own, base, others)
    return problems


def lenient(client: TestClient) -> TestClient:
    """The same session, but a server error is an answer (500) to report rather than an exception."""
    other = TestClient(client.app, raise_server_exceptions=False, headers=dict(client.headers))
    other.cookies = client.cookies
    return other


def client_access(rt: Runtime, user_id: int, role: str) -> Any:
    """The gate of a user with one role."""
    from engine.access import Actor
    from engine.gate import RoleAccess

    return RoleAccess(Actor(user_id, "x", (role,)), rt.spec)


def _changed(before: list[tuple[Any, ...]], after: list[tuple[Any, ...]], forged: Any) -> bool:
    """Whether the forged value landed: a row holds it now that did not before (an action may change system
    fields by itself — a new version, updated_at — which is not the caller's value)."""
    def forged_in(rid: Any, value: Any) -> bool:
        return rid == forged or value == forged or (value is not None and str(forged) in (str(value), getattr(value, "isoformat", str)()))

    had = {rid for rid, v in before if forged_in(rid, v)}
    return any(forged_in(rid, v) and rid not in had for rid, v in after)


def _attack(app: Any, client: TestClient, module: Module, forged: dict[str, Any], own: int, base: dict[str, Any],
            targets: list[Route]) -> list[str]:
    """Send the forged fields to the routes; problems found (screen routes that answer 2xx are tagged 'screen:')."""
    rt: Runtime = app.state.runtime
    table = rt.tables[module.name]
    problems = []
    for route in targets:
        for method in sorted((route.methods or set()) & UNSAFE - {"DELETE"}):
            if "module" not in route.param_convertors or "delete" in (route.name or ""):
                continue  # deleting a record is not writing a field
            path = fill(route, module_params(rt.spec, module, own))
            with rt.db.connect() as conn:
                version = conn.execute(sa.select(table.c.version).where(table.c.id == own)).scalar_one()
            on_record = "id" in route.param_convertors or method != "POST"
            values = ({"version": version} if on_record else dict(base)) | forged
            for body in _bodies(route, values, own):
                before = {name: snapshot(rt, module, name) for name in forged}
                answer = client.request(method, path, follow_redirects=False, **body)
                problems += _verdict(rt, f"{method} {path} with {forged}", route, module, forged, before, answer)
    return problems


def _verdict(rt: Runtime, where: str, route: Route, module: Module, forged: dict[str, Any], before: dict[str, Any], answer: Any) -> list[str]:
    problems = []
    if answer.status_code >= 500:
        problems.append(f"{where}: {answer.status_code}")
    for name, value in forged.items():
        if _changed(before[name], snapshot(rt, module, name), value):
            problems.append(f"{where} changed {name} ({answer.status_code})")
    # an import skips the columns of system and computed fields (an exported sheet comes back with them)
    skipped = route.name == "api_io_import" and not any(module.field(n).writable for n in forged)
    if route.name in RECORD_WRITES and not skipped and not 400 <= answer.status_code < 500:
        tag = "" if route.path.startswith("/api/") else "screen: "
        problems.append(f"{tag}{where}: {answer.status_code}, expected a 4xx")
    return problems


@pytest.mark.parametrize("role", ["rep", "manager", "admin"])
def test_writing_a_field_the_role_may_not_write_is_refused_everywhere(make_app: Callable[..., Any], tmp_path: Path, role: str) -> None:
    app = make_app(with_workflow(tmp_path))
    problems = [p for p in _run_role(app, role, list(app.state.runtime.spec.modules.values())) if not p.startswith("screen: ")]
    assert not problems, "\n".join(problems[:30])


def test_screen_forms_refuse_fields_the_role_may_not_write(make_app: Callable[..., Any], tmp_path: Path) -> None:
    app = make_app(with_workflow(tmp_path))
    spec = app.state.runtime.spec
    problems = [p for p in _run_role(app, "rep", [spec.module("account"), spec.module("deal")], frozenset({"record_create", "record_update"}))
                if p.startswith("screen: ")]
    assert not problems, "\n".join(problems[:30])


def test_the_refusals_are_about_the_field_a_control_write_succeeds(make_app: Callable[..., Any], tmp_path: Path) -> None:
    app = make_app(with_workflow(tmp_path))
    rt: Runtime = app.state.runtime
    me = add_test_user(rt, "ctl", ("rep",))
    client = login(app, "ctl")
    made: dict[str, int] = {}
    own = make_record(rt, rt.spec.module("account"), made, me)
    created = client.post("/api/account", json=required_values(rt, rt.spec.module("account"), {}, me) | {"name": "Control"})
    assert created.status_code == 201, created.text
    version = client.get(f"/api/account/{own}").json()["version"]
    assert client.patch(f"/api/account/{own}", json={"notes": "ok", "version": version}).status_code == 200
    refused = client.patch(f"/api/account/{own}", json={"credit_limit": 5, "version": version + 1})
    assert refused.status_code == 422 and "credit_limit" in refused.json()["error"]["fields"]
    deal = make_record(rt, rt.spec.module("deal"), made, me)
    moved = client.patch(f"/api/deal/{deal}", json={"stage": "won", "version": 1})
    assert moved.status_code == 422 and "stage" in moved.json()["error"]["fields"]
    csv = b"name,secret_score\nImported,5\n"
    imported = client.post("/api/account/import", files={"file": ("a.csv", csv, "text/csv")}, data={"mode": "insert"})
    assert 400 <= imported.status_code < 500, imported.text
    assert rt.db.connect().execute(sa.select(sa.func.count()).select_from(rt.tables["account"]).where(
        rt.tables["account"].c.name == "Imported")).scalar() == 0


def test_a_stale_update_does_not_reveal_hidden_values_in_the_conflict(make_app: Callable[..., Any]) -> None:
    app = make_app()
    rt: Runtime = app.state.runtime
    rep = login(app, "ann", ("rep",))
    me = rt.db.connect().execute(sa.text("SELECT id FROM loom_user WHERE username = 'ann'")).scalar_one()
    record = records.create(rt, SystemAccess(), "account", {"name": "Mine", "owner": me})
    records.update(rt, SystemAccess(), "account", record["id"], {"secret_score": 8675309, "notes": "n2"}, 1)
    answer = rep.patch(f"/api/account/{record['id']}", json={"notes": "mine", "version": 1})
    assert answer.status_code == 409
    assert "8675309" not in answer.text and "secret_score" not in answer.text
    screen = rep.post(f"/m/account/{record['id']}/edit", data={"name": "Mine", "notes": "x", "version": "1"})
    assert "8675309" not in screen.text


@pytest.mark.slow
@pytest.mark.skipif(not (CRM_BUNDLE / "app.yaml").is_file(), reason="no CRM bundle")
def test_crm_write_paths(make_app: Callable[..., Any]) -> None:
    app = make_app(CRM_BUNDLE)
    spec = app.state.runtime.spec
    problems = []
    for role in [r.name for r in spec.app.roles][::3]:
        problems += _run_role(app, role, [m for m in spec.modules.values() if not m.child][:8])
    assert not problems, "\n".join(problems[:30])
