"""/api/openapi.json (OpenAPI 3.1 from the metadata: every module, field types, enums, required fields) and the
/api/docs page that renders it with nothing loaded from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import openapi_spec_validator
import pytest
from starlette.testclient import TestClient

from engine.loader import load
from engine.web.openapi import document

from .conftest import CRM_BUNDLE, TEST_BUNDLE, login


@pytest.fixture
def doc_and_client(make_app: Callable[..., Any]) -> tuple[dict[str, Any], TestClient]:
    """The document as a logged-in admin fetches it, and that client."""
    app = make_app()
    client = login(app, "boss", ("admin",))
    answer = client.get("/api/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    return answer.json(), client


def test_every_module_and_operation_is_described(doc_and_client: tuple[dict[str, Any], TestClient]) -> None:
    doc, _ = doc_and_client
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] == "Test App"
    assert {t["name"] for t in doc["tags"]} == {"account", "contact", "deal"}  # deal_line is a child table: no endpoints
    assert set(doc["paths"]["/api/account"]) == {"get", "post"}
    assert set(doc["paths"]["/api/account/{id}"]) == {"parameters", "get", "patch", "delete"}
    assert "/api/contact/{id}/actions/to_account" in doc["paths"]
    patch = doc["paths"]["/api/account/{id}"]["patch"]
    assert set(patch["responses"]) == {"200", "401", "403", "404", "409", "422"}
    assert doc["components"]["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/error"}


def test_field_types_enums_and_required(doc_and_client: tuple[dict[str, Any], TestClient]) -> None:
    schemas = doc_and_client[0]["components"]["schemas"]
    account = schemas["account"]["properties"]
    assert account["category"]["enum"] == ["key", "general", "new", None] and account["category"]["title"] == "Category"
    assert account["tags"]["type"] == "array" and account["tags"]["items"]["enum"] == ["vip", "partner", "risky"]
    assert account["employees"]["type"] == ["integer", "null"]
    assert account["founded"] == {"type": ["string", "null"], "format": "date", "title": "Founded"}
    assert account["updated_at"]["format"] == "date-time" and account["updated_at"]["readOnly"] is True
    assert account["parent"]["type"] == ["integer", "null"] and "parent__title" in account
    assert schemas["account.create"]["required"] == ["name"]
    assert schemas["account.update"]["required"] == ["version"]
    assert schemas["account.create"]["properties"]["employees"]["maximum"] == 10_000_000
    assert schemas["account.create"]["additionalProperties"] is False and "updated_at" not in schemas["account.create"]["properties"]
    assert schemas["deal"]["properties"]["lines"]["items"] == {"$ref": "#/components/schemas/deal_line.row"}
    assert schemas["deal_line.row_input"]["required"] == ["product"]
    stage = next(p for p in schemas["deal.list"]["properties"].values() if "items" in p)
    assert stage == {"type": "array", "items": {"$ref": "#/components/schemas/deal"}}


def test_list_parameters_offer_each_fields_operators(doc_and_client: tuple[dict[str, Any], TestClient]) -> None:
    params = {p["name"]: p for p in doc_and_client[0]["paths"]["/api/account"]["get"]["parameters"]}
    assert {"q", "sort", "limit", "cursor", "page", "fields", "count", "expand"} <= set(params)
    assert {"credit_limit__gte", "credit_limit__lte", "category__in", "name__contains", "founded__gte", "parent__isnull"} <= set(params)
    assert params["category"]["schema"]["enum"] == ["key", "general", "new"]
    assert params["category__in"]["schema"]["items"]["enum"] == ["key", "general", "new"] and params["category__in"]["explode"] is False
    assert "-updated_at" in params["sort"]["schema"]["enum"]
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}


def test_the_document_is_valid_openapi_3_1(doc_and_client: tuple[dict[str, Any], TestClient]) -> None:
    openapi_spec_validator.validate(doc_and_client[0])
    openapi_spec_validator.validate(document(load(CRM_BUNDLE).spec))


def test_crm_document_covers_every_module_with_its_options() -> None:
    spec = load(CRM_BUNDLE).spec
    doc = document(spec)
    for module in spec.modules.values():
        if module.child:
            continue
        assert f"/api/{module.name}" in doc["paths"] and f"/api/{module.name}/{{id}}" in doc["paths"]
        props = doc["components"]["schemas"][module.name]["properties"]
        for f in module.fields:
            assert f.name in props, (module.name, f.name)
            if f.type == "select" and f.options:
                assert props[f.name]["enum"][:-1] == [o.value for o in f.options]
        required = doc["components"]["schemas"][f"{module.name}.create"]["required"]
        assert set(required) <= {f.name for f in module.fields if f.required}


def test_docs_page_renders_the_document_offline(doc_and_client: tuple[dict[str, Any], TestClient]) -> None:
    _, client = doc_and_client
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'href="/api/openapi.json"' in html and 'href="/static/loom.css"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<script" not in html  # nothing fetched from elsewhere
    for name in ("account", "contact", "deal"):
        assert f'<section id="{name}">' in html
    account = html.split('<section id="account">')[1].split("</section>")[0]
    assert "<td>PATCH</td><td><code>/api/account/{id}</code></td>" in account
    assert "<td>POST</td><td><code>/api/account</code></td><td>Create an Account</td>" in account
    category = account.split("<td><code>category</code></td>")[1].split("</tr>")[0]
    assert "<td>Category</td><td>string | null</td>" in category and "<td>key, general, new</td>" in category
    assert "<code>=</code> <code>__ne=</code> <code>__in=</code>" in category
    name = account.split("<td><code>name</code></td>")[1].split("</tr>")[0]
    assert "<td>yes</td>" in name and "<code>__contains=</code>" in name


def test_document_and_docs_need_a_login(make_app: Callable[..., Any]) -> None:
    anonymous = TestClient(make_app())
    assert anonymous.get("/api/openapi.json").status_code == 401
    assert anonymous.get("/api/docs").status_code == 401


def test_the_served_document_is_the_bundles(doc_and_client: tuple[dict[str, Any], TestClient]) -> None:
    assert doc_and_client[0] == document(load(TEST_BUNDLE).spec)
