"""The OpenAPI 3.1 document of the REST API, generated from the metadata, and a small docs page built from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jinja2

from engine.fieldtypes import EMAIL_RE, FILE_REF, PHONE_RE, REGISTRY, URL_RE, stored_type
from engine.query import MAX_IN, MAX_LIMIT
from engine.runtime import Runtime
from engine.spec import Field, Module, Spec

Schema = dict[str, Any]
INT64_MAX = 2**63 - 1
INPUT_PATTERNS = {"email": EMAIL_RE, "phone": PHONE_RE, "url": URL_RE, "attachment": FILE_REF}  # what parsing accepts
ERRORS = {"401": "Not logged in, or the token is unknown, expired or revoked",
          "403": "The user's roles do not allow this (or a cookie session sent no CSRF token)",
          "404": "No such module or record, or the record is outside the user's scope",
          "409": "The record changed since the given version; `fields` holds the other user's changes",
          "422": "Invalid input; `fields` holds a message per field or parameter"}
ERROR_SCHEMA: Schema = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "fields"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}},
}
SECURITY_SCHEMES: Schema = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API token from `loom user token USERNAME`."},
    "cookie": {"type": "apiKey", "in": "cookie", "name": "loom_session",
               "description": "A browser session from /login; changes also need the X-CSRF-Token header."},
}


def document(spec: Spec) -> Schema:
    """The whole OpenAPI document: every module that is not a child table, its schemas and paths."""
    modules = [m for m in spec.modules.values() if not m.child]
    schemas: Schema = {"error": ERROR_SCHEMA}
    paths: Schema = {}
    for m in modules:
        schemas.update(module_schemas(spec, m))
        paths.update(module_paths(m))
    return {
        "openapi": "3.1.0",
        "info": {"title": spec.app.label("en"), "version": spec.app.version,
                 "description": "Generated from the application's metadata. Lists answer {items, next_cursor} "
                                "(plus total with count=true); errors answer {error: {code, message, fields}}."},
        "tags": [{"name": m.name, "description": m.plural("en")} for m in modules],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES,
                       "responses": {code: _error_response(text) for code, text in ERRORS.items()}},
        "security": [{"bearer": []}, {"cookie": []}],
    }


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_response(text: str) -> Schema:
    return {"description": text, "content": {"application/json": {"schema": _ref("error")}}}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# -- schemas ------------------------------------------------------------------------------------------

def field_schema(f: Field, writing: bool = False) -> Schema:
    """The JSON Schema of one field's value, from the registry, with the field's limits and label."""
    if f.type == "table":
        return {"type": "array", "items": _ref(f"{f.module}.{'row_input' if writing else 'row'}"), "title": f.label("en")}
    out = dict(REGISTRY[f.type].json_schema(f), title=f.label("en"))
    if f.help is not None:
        out["description"] = f.help("en")
    if not f.writable and f.name != "owner":
        out["readOnly"] = True
    if writing:
        out.update(_limits(f))
    return out


def _limits(f: Field) -> Schema:
    kind = stored_type(f)
    out: Schema = {}
    if kind in ("link", "user"):
        out.update(minimum=1, maximum=INT64_MAX)
    elif kind == "integer":
        out.update(minimum=int(f.min) if f.min is not None else -INT64_MAX, maximum=int(f.max) if f.max is not None else INT64_MAX)
    elif kind in ("decimal", "currency", "percent"):
        out.update({k: v for k, v in (("minimum", f.min), ("maximum", f.max)) if v is not None})
    if f.min_length:
        out["minLength"] = f.min_length
    if f.pattern or f.type in INPUT_PATTERNS:
        out["pattern"] = f.pattern or INPUT_PATTERNS[f.type].pattern
    return out


def _writable(m: Module) -> list[Field]:
    return [f for f in m.fields if f.writable or f.name == "owner"]


def _required(m: Module) -> list[str]:
    return [f.name for f in _writable(m) if f.required and f.default is None and f.visible_if is None and not f.hidden and not f.fetch]


def record_schema(m: Module) -> Schema:
    """A record as the API answers it (fields the reader may not read are left out, so only id is sure)."""
    props = {f.name: field_schema(f) for f in m.fields}
    for f in m.fields:
        if f.type in ("link", "user"):
            props[f.name + "__title"] = {"type": ["string", "null"], "readOnly": True,
                                         "description": f"Title of the {f.module or 'user'} (with expand=titles)"}
    return {"type": "object", "title": m.label("en"), "required": ["id"], "properties": props}


def input_schema(m: Module, update: bool) -> Schema:
    """The body of a create (required fields) or an update (`version` required, other fields optional)."""
    props = {f.name: field_schema(f, writing=True) for f in _writable(m)}
    if update:
        props["version"] = {"type": "integer", "minimum": 1, "maximum": INT64_MAX, "description": "The version you read"}
    return {"type": "object", "additionalProperties": False, "properties": props,
            "required": ["version"] if update else _required(m)}


def row_schemas(child: Module) -> Schema:
    """A child-table row, as answered and as sent (`id` keeps an existing row)."""
    own = [f for f in child.fields if not f.system]
    answered = {"id": field_schema(child.field("id")), **{f.name: field_schema(f) for f in own}}
    sent = {"id": {"type": ["integer", "null"], "minimum": 1, "maximum": INT64_MAX, "description": "An existing row's id"},
            **{f.name: field_schema(f, writing=True) for f in own if f.writable}}
    return {f"{child.name}.row": {"type": "object", "properties": answered},
            f"{child.name}.row_input": {"type": "object", "additionalProperties": False, "properties": sent,
                                        "required": [f.name for f in own if f.writable and f.required and f.default is None]}}


def module_schemas(spec: Spec, m: Module) -> Schema:
    """Every component schema of one module (and of its child tables)."""
    out = {
        m.name: record_schema(m),
        f"{m.name}.create": input_schema(m, update=False),
        f"{m.name}.update": input_schema(m, update=True),
        f"{m.name}.list": {"type": "object", "required": ["items", "next_cursor"], "additionalProperties": False, "properties": {
            "items": {"type": "array", "items": _ref(m.name)},
            "next_cursor": {"type": ["string", "null"], "description": "Pass as cursor (or page, in page mode) for the next page"},
            "total": {"type": "integer", "minimum": 0, "description": "Only with count=true"}}},
    }
    for f in m.tables:
        out.update(row_schemas(spec.module(f.module or "")))
    return out


# -- parameters ---------------------------------------------------------------------------------------

def _query(name: str, schema: Schema, description: str, **extra: Any) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


def _scalar(f: Field) -> Schema:
    schema = {k: v for k, v in REGISTRY[stored_type(f)].json_schema(f).items() if k in ("format", "enum")}
    kind = REGISTRY[stored_type(f)].json_schema(f)["type"]
    schema["type"] = next(t for t in kind if t != "null") if isinstance(kind, list) else kind
    if "enum" in schema:
        schema["enum"] = [v for v in schema["enum"] if v is not None]
    if stored_type(f) == "integer":
        schema.update(minimum=-INT64_MAX, maximum=INT64_MAX)
    elif stored_type(f) in ("link", "user"):
        schema.update(minimum=1, maximum=INT64_MAX)
    return schema


def operators(f: Field) -> tuple[str, ...]:
    """The filter operators a field offers in the query string."""
    if f.name == "id":
        return ("eq", "in", "gt", "gte", "lt", "lte")
    return REGISTRY[stored_type(f)].operators


def filter_parameters(m: Module) -> list[Schema]:
    """`field=value` and `field__op=value` for every stored field and operator its type offers."""
    out = []
    for f in m.stored_fields:
        for op in operators(f):
            key = f.name if op == "eq" else f"{f.name}__{op}"
            style = {"style": "form", "explode": False} if op == "in" else {}
            out.append(_query(key, _operand(f, op), f"{f.label('en')}: {op}", **style))
    return out


def _operand(f: Field, op: str) -> Schema:
    if op == "isnull":
        return {"type": "boolean"}
    if op in ("contains", "startswith") or f.type == "multiselect":
        return {"type": "string"}
    if op == "in":
        return {"type": "array", "items": _scalar(f), "maxItems": MAX_IN}
    return _scalar(f)


def list_parameters(m: Module) -> list[Schema]:
    """Paging, sorting, search, field choice and counting, then the filters."""
    sortable = [f.name for f in m.stored_fields]
    readable = [f.name for f in m.fields]
    return [
        _query("q", {"type": "string"}, "Quick search over the list's search fields"),
        _query("sort", {"type": "string", "enum": [p + n for n in sortable for p in ("", "-")]}, "Sort field; a leading - sorts descending"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, f"Rows per page (default {m.layout.list.page_size})"),
        _query("cursor", {"type": "string"}, "next_cursor of the previous page (keyset paging)"),
        _query("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}, "Page number (offset paging) instead of a cursor"),
        _query("fields", {"type": "array", "items": {"type": "string", "enum": readable}}, "Fields to answer (id always)",
               style="form", explode=False),
        _query("count", {"type": "boolean"}, "Also answer the total number of matching records"),
        EXPAND,
        *filter_parameters(m),
    ]


EXPAND = _query("expand", {"type": "string", "enum": ["titles"]}, "titles: add <field>__title next to each link")
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX}}


# -- paths --------------------------------------------------------------------------------------------

def _operation(m: Module, verb: str, summary: str, ok: tuple[str, Schema], errors: tuple[str, ...], **extra: Any) -> Schema:
    responses = {ok[0]: ok[1]} | {code: {"$ref": f"#/components/responses/{code}"} for code in errors}
    return {"tags": [m.name], "operationId": f"{verb}_{m.name}", "summary": summary, "responses": responses, **extra}


def _body(schema: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def module_paths(m: Module) -> Schema:
    """List and create at /api/<module>; read, update and delete at /api/<module>/{id}; its record actions."""
    label = m.label("en")
    a = "an" if label[:1].lower() in "aeiou" else "a"
    record = _json(_ref(m.name), label)
    out = {
        f"/api/{m.name}": {
            "get": _operation(m, "list", f"List {m.plural('en')}", ("200", _json(_ref(f"{m.name}.list"), "One page")),
                              ("401", "403", "422"), parameters=list_parameters(m)),
            "post": _operation(m, "create", f"Create {a} {label}", ("201", record), ("401", "403", "422"),
                               parameters=[EXPAND], requestBody=_body(f"{m.name}.create")),
        },
        f"/api/{m.name}/{{id}}": {
            "parameters": [ID],
            "get": _operation(m, "get", f"Read {a} {label}", ("200", record), ("401", "403", "404", "422"), parameters=[EXPAND]),
            "patch": _operation(m, "update", f"Change {a} {label} (send the version you read)", ("200", record),
                                ("401", "403", "404", "409", "422"), parameters=[EXPAND], requestBody=_body(f"{m.name}.update")),
            "delete": _operation(m, "delete", f"Move {a} {label} to the recycle bin", ("204", {"description": "Deleted"}),
                                 ("401", "403", "404")),
        },
    }
    for action in m.actions:
        out[f"/api/{m.name}/{{id}}/actions/{action.name}"] = {"parameters": [ID], "post": action_operation(m, action.name, action.label("en"))}
    return out


def action_operation(m: Module, name: str, label: str) -> Schema:
    """A record action (served by engine.web.action_routes): parameters in, the record after it out."""
    answer = {"type": "object", "required": ["record", "created", "message"], "properties": {
        "record": {"type": "object"}, "created": {"type": "object", "additionalProperties": {"type": "integer"}},
        "message": {"type": "string"}}}
    body = {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
    operation = _operation(m, f"action_{name}", label, ("200", _json(answer, "Done")), ("401", "403", "404", "409", "422"), requestBody=body)
    return operation


# -- caching and the docs page ------------------------------------------------------------------------

@dataclass(frozen=True)
class Published:
    """The document of one runtime, built once: as data and as the JSON bytes served."""

    rt: Runtime
    document: Schema
    body: bytes


def published(state: Any, rt: Runtime) -> Published:
    """The document of `rt`, cached on `state` (app.state) until the runtime is replaced."""
    cached: Published | None = getattr(state, "loom_openapi", None)
    if cached is None or cached.rt is not rt:
        doc = document(rt.spec)
        cached = Published(rt, doc, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())
        state.loom_openapi = cached
    return cached


DOCS = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ info.title }} · REST API</title><link rel="stylesheet" href="{{ css }}"></head>
<body><main class="api-docs">
<h1>{{ info.title }} · REST API</h1>
<p>Version {{ info.version }} · <a href="{{ spec_url }}">OpenAPI {{ openapi }} document</a></p>
<p>Send <code>Authorization: Bearer TOKEN</code> (<code>loom user token USERNAME</code>), or use a browser session with the
<code>X-CSRF-Token</code> header on changes. Lists answer <code>{"items": [...], "next_cursor": ...}</code> and take
<code>field=value</code>, <code>field__gte=</code>, <code>__lte</code>, <code>__in=a,b</code>, <code>__contains</code>, <code>q=</code>,
<code>sort=-field</code>, <code>limit</code>, <code>cursor</code> or <code>page</code>, <code>fields=a,b</code>, <code>count=true</code>.
Errors answer <code>{"error": {"code", "message", "fields"}}</code>.</p>
<nav><ul>{% for tag in tags %}<li><a href="#{{ tag.name }}">{{ tag.description }}</a></li>{% endfor %}</ul></nav>
{% for tag in tags %}<section id="{{ tag.name }}"><h2>{{ tag.description }} <code>{{ tag.name }}</code></h2>
<table><thead><tr><th>Method</th><th>Path</th><th>What it does</th></tr></thead><tbody>
{% for op in tag.operations %}<tr><td>{{ op.method }}</td><td><code>{{ op.path }}</code></td><td>{{ op.summary }}</td></tr>{% endfor %}
</tbody></table>
<table><thead><tr><th>Field</th><th>Label</th><th>Type</th><th>Required</th><th>Values</th><th>Filters</th></tr></thead><tbody>
{% for f in tag.fields %}<tr><td><code>{{ f.name }}</code></td><td>{{ f.title }}</td><td>{{ f.type }}{% if f.read_only %} (read only){% endif %}</td>
<td>{% if f.required %}yes{% endif %}</td><td>{{ f.choices }}</td><td>{% for p in f.filters %}<code>{{ p }}</code> {% endfor %}</td></tr>{% endfor %}
</tbody></table></section>{% endfor %}
</main></body></html>""")


def docs_html(doc: Schema, css: str, spec_url: str) -> str:
    """The docs page: each module's endpoints and fields, read from the OpenAPI document."""
    tags = [{"name": t["name"], "description": t["description"], "operations": _operations(doc, t["name"]), "fields": _fields(doc, t["name"])}
            for t in doc["tags"]]
    return DOCS.render(info=doc["info"], openapi=doc["openapi"], tags=tags, css=css, spec_url=spec_url)


def _operations(doc: Schema, tag: str) -> list[dict[str, str]]:
    return [{"method": method.upper(), "path": path, "summary": op["summary"]}
            for path, item in doc["paths"].items() for method, op in item.items()
            if method != "parameters" and tag in op["tags"]]


def _fields(doc: Schema, name: str) -> list[dict[str, Any]]:
    schemas = doc["components"]["schemas"]
    required = set(schemas[f"{name}.create"]["required"])
    filters: dict[str, list[str]] = {}
    for p in doc["paths"][f"/api/{name}"]["get"]["parameters"]:
        field, _, op = p["name"].partition("__")
        if field in schemas[name]["properties"]:
            filters.setdefault(field, []).append("=" if not op else f"__{op}=")
    return [{"name": key, "title": prop.get("title", ""), "type": _type_text(prop), "read_only": prop.get("readOnly", False),
             "required": key in required, "filters": filters.get(key, []),
             "choices": ", ".join(str(v) for v in prop.get("enum", prop.get("items", {}).get("enum", [])) if v)}
            for key, prop in schemas[name]["properties"].items() if not key.endswith("__title")]


def _type_text(prop: Schema) -> str:
    kind = prop.get("type", "object")
    text = " | ".join(kind) if isinstance(kind, list) else str(kind)
    return text + (f" ({prop['format']})" if "format" in prop else "")
