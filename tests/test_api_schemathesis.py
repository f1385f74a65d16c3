"""The REST API checked against its own OpenAPI document by schemathesis: every operation of every module of the
test bundle and of the CRM bundle, valid and invalid input, no 5xx and no answer outside the document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from engine import records
from engine.access import SystemAccess
from engine.auth import sessions
from engine.loader import load
from engine.runtime import Settings
from engine.web.openapi import document

from .conftest import CRM_BUNDLE, TEST_BUNDLE, add_test_user

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 20
CRM_EXAMPLES = 12
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def operations(bundle: Path) -> list[tuple[str, str]]:
    """(method, path) of every operation the bundle's document describes."""
    return [(method.upper(), path) for path, item in document(load(bundle).spec)["paths"].items() for method in item if method != "parameters"]


OPERATIONS = operations(TEST_BUNDLE)
CRM_OPERATIONS = operations(CRM_BUNDLE)


def _token(rt: Any, username: str) -> dict[str, str]:
    with rt.db.begin() as conn:
        user_id = conn.execute(sa.text("SELECT id FROM loom_user WHERE username = :u"), {"u": username}).scalar_one()
        token = sessions.start(conn, user_id, kind="token", lifetime=None)
    return {"Authorization": f"Bearer {token}"}


def _seed(app: Any) -> tuple[dict[str, str], dict[str, int]]:
    rt = app.state.runtime
    add_test_user(rt, "admin", ("admin",))
    system = SystemAccess()
    account = records.create(rt, system, "account", {"name": "Seed", "tags": ["vip"], "credit_limit": 10, "founded": "2020-02-02"})
    records.create(rt, system, "account", {"name": "Pooled", "owner": None})
    contact = records.create(rt, system, "contact", {"full_name": "Seed Person", "account": account["id"]})
    deal = records.create(rt, system, "deal", {"title": "Seed deal", "account": account["id"], "lines": [{"product": "P", "quantity": 1}]})
    return _token(rt, "admin"), {"account": account["id"], "contact": contact["id"], "deal": deal["id"]}


def _current_version(app: Any, module: str, record_id: int) -> int | None:
    table = app.state.runtime.tables[module]
    with app.state.runtime.db.connect() as conn:
        return conn.execute(sa.select(table.c.version).where(table.c.id == record_id)).scalar()


def conforms(app: Any, auth: dict[str, str], seeded: dict[str, int], method: str, path: str, examples: int) -> None:
    """Run schemathesis on one operation: random input, and for /{id} paths also an existing record."""
    module = path.split("/")[2]
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=auth)
    operation = schema[path][method]
    known = [None, {"id": seeded[module]}] if "{id}" in path and module in seeded else [None]
    cases = st.one_of(*(operation.as_strategy(generation_mode=mode, path_parameters=ids) for mode in MODES for ids in known))

    @given(case=cases)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        body = case.body
        existing = case.path_parameters == {"id": seeded.get(module)}
        if method == "PATCH" and existing and isinstance(body, dict) and isinstance(body.get("version"), int):
            body["version"] = _current_version(app, module, seeded[module])  # else nearly every update is a 409
        case.call_and_validate(headers=auth, checks=CHECKS)

    check()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_document(make_app: Callable[..., Any], method: str, path: str) -> None:
    app = make_app()
    auth, seeded = _seed(app)
    conforms(app, auth, seeded, method, path, EXAMPLES)


@pytest.fixture(scope="module")
def crm_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str], dict[str, int]]]:
    """One app on the CRM bundle with its small demo loaded (shared: loading takes a while), an admin token,
    and the newest record of every module that has one."""
    from engine.demo import load_demo
    from engine.web.app import create_app

    folder = tmp_path_factory.mktemp("crm")
    app = create_app(Settings(metadata=CRM_BUNDLE, db_url=f"sqlite:///{folder / 'loom.db'}", files=folder / "files"))
    rt = app.state.runtime
    load_demo(rt, size="small", echo=lambda _: None)
    seeded: dict[str, int] = {}
    with rt.db.connect() as conn:
        for name, module in rt.spec.modules.items():
            if not module.child:
                newest = conn.execute(sa.select(sa.func.max(rt.tables[name].c.id))).scalar()
                if newest is not None:
                    seeded[name] = int(newest)
    yield app, _token(rt, "admin"), seeded
    rt.db.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), CRM_OPERATIONS, ids=[f"{m} {p}" for m, p in CRM_OPERATIONS])
def test_crm_operation_conforms_to_the_document(crm_app: tuple[Any, dict[str, str], dict[str, int]], method: str, path: str) -> None:
    app, auth, seeded = crm_app
    conforms(app, auth, seeded, method, path, CRM_EXAMPLES)


def test_every_module_of_both_bundles_is_checked() -> None:
    for bundle, checked in ((TEST_BUNDLE, OPERATIONS), (CRM_BUNDLE, CRM_OPERATIONS)):
        spec = load(bundle).spec
        wanted = {m.name for m in spec.modules.values() if not m.child}
        for verb, suffix in (("GET", ""), ("POST", ""), ("GET", "/{id}"), ("PATCH", "/{id}"), ("DELETE", "/{id}")):
            assert {p.split("/")[2] for m, p in checked if m == verb and p.count("/") == 2 + bool(suffix)} == wanted
