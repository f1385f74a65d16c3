"""The REST API checked against its own OpenAPI document by schemathesis: every operation of every module
of the test bundle, valid and invalid input, no 5xx and no answer outside the document."""

from __future__ import annotations

from collections.abc import Callable
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
from engine.web.openapi import document

from .conftest import TEST_BUNDLE, add_test_user

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 20
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
OPERATIONS = [(method.upper(), path) for path, item in document(load(TEST_BUNDLE).spec)["paths"].items()
              for method in item if method != "parameters"]


def _seed(app: Any) -> tuple[dict[str, str], dict[str, int]]:
    rt = app.state.runtime
    admin = add_test_user(rt, "admin", ("admin",))
    with rt.db.begin() as conn:
        token = sessions.start(conn, admin, kind="token", lifetime=None)
    system = SystemAccess()
    account = records.create(rt, system, "account", {"name": "Seed", "tags": ["vip"], "credit_limit": 10, "founded": "2020-02-02"})
    records.create(rt, system, "account", {"name": "Pooled", "owner": None})
    contact = records.create(rt, system, "contact", {"full_name": "Seed Person", "account": account["id"]})
    deal = records.create(rt, system, "deal", {"title": "Seed deal", "account": account["id"], "lines": [{"product": "P", "quantity": 1}]})
    return {"Authorization": f"Bearer {token}"}, {"account": account["id"], "contact": contact["id"], "deal": deal["id"]}


def _current_version(app: Any, module: str, record_id: int) -> int | None:
    table = app.state.runtime.tables[module]
    with app.state.runtime.db.connect() as conn:
        return conn.execute(sa.select(table.c.version).where(table.c.id == record_id)).scalar()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_document(make_app: Callable[..., Any], method: str, path: str) -> None:
    app = make_app()
    auth, seeded = _seed(app)
    module = path.split("/")[2]
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=auth)
    operation = schema[path][method]
    known = [None, {"id": seeded[module]}] if "{id}" in path else [None]  # random ids (mostly 404) and an existing record
    cases = st.one_of(*(operation.as_strategy(generation_mode=mode, path_parameters=ids) for mode in MODES for ids in known))

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        body = case.body
        if method == "PATCH" and case.path_parameters == {"id": seeded[module]} and isinstance(body, dict) and isinstance(body.get("version"), int):
            body["version"] = _current_version(app, module, seeded[module])  # else nearly every update is a 409
        case.call_and_validate(headers=auth, checks=CHECKS)

    check()
