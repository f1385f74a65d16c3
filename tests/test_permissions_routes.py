"""Enumerating the app's routes for the permission and security tests, so a new endpoint is covered automatically.

Path parameters are filled from the seeded data: {module} and {id} with the module and record under
test, and the other names with a value that exists where one can be found (an action, a child table,
a report) or a harmless placeholder otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.convertors import IntegerConvertor
from starlette.routing import Route

from engine.spec import Module, Spec

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Call:
    """One request to make: method, filled path, and the route it came from."""

    method: str
    path: str
    route: Route

    @property
    def is_api(self) -> bool:
        """Whether it is a JSON API route."""
        return self.path.startswith("/api/")


def module_params(spec: Spec, module: Module, record_id: int | None) -> dict[str, Any]:
    """Values for the path parameters that name things of `module`."""
    reports = sorted(spec.reports)
    return {
        "module": module.name, "id": record_id if record_id is not None else 1,
        "action": module.actions[0].name if module.actions else "none",
        "table": module.tables[0].name if module.tables else "none",
        "name": reports[0] if reports else module.name, "report": reports[0] if reports else module.name,
        "format": "csv", "code": "en", "what": "roles",
    }


def fill(route: Route, values: Mapping[str, Any]) -> str:
    """The route's path with its parameters filled (integers default to 1, strings to 'x')."""
    filled = {}
    for name, convertor in route.param_convertors.items():
        default = 1 if isinstance(convertor, IntegerConvertor) else "x"
        filled[name] = values.get(name, default)
    return route.path_format.format(**filled)


def routes(app: Any) -> list[Route]:
    """Every plain route of the app (mounted static files aside)."""
    return [r for r in app.routes if isinstance(r, Route)]


def calls(app: Any, methods: frozenset[str], values: Callable[[Route], Mapping[str, Any]]) -> Iterator[Call]:
    """One call per route and method among `methods`."""
    for route in routes(app):
        for method in sorted((route.methods or set()) & methods):
            yield Call(method, fill(route, values(route)), route)


def module_routes(app: Any) -> list[Route]:
    """Routes parameterized by a module."""
    return [r for r in routes(app) if "module" in r.param_convertors]


def test_routes_are_enumerated_with_every_parameter_filled(make_app: Callable[..., Any]) -> None:
    app = make_app()
    spec = app.state.runtime.spec
    found = list(calls(app, frozenset({"GET"}) | UNSAFE, lambda r: module_params(spec, spec.module("account"), 7)))
    assert len(found) >= 10
    assert all("{" not in c.path for c in found)
    assert any(c.method == "GET" and c.path == "/login" for c in found)
    assert any(c.method == "POST" and c.path == "/logout" for c in found)
