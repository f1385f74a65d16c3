"""Schema validation: the compiled validator passes what jsonschema passes, and a refused document is worded by
jsonschema, every problem with its path."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from engine import schema
from engine.loader import FOLDERS, read_bundle

CRM = Path(__file__).resolve().parent.parent / "metadata"


def _docs() -> list[tuple[str, Any]]:
    bundle = read_bundle(CRM)
    return [("app", bundle.app.data)] + [(kind, d.data) for folder, kind in FOLDERS.items() for d in bundle.docs[folder].values()]


def _full(kind: str, data: Any) -> bool:
    return not any(schema._validator(kind).iter_errors(data))


def test_every_crm_file_takes_the_compiled_path() -> None:
    docs = _docs()
    assert len(docs) > 20
    assert all(schema._valid(kind, data) and _full(kind, data) for kind, data in docs)


def _customer() -> dict[str, Any]:
    return copy.deepcopy(next(d for k, d in _docs() if k == "module" and d["name"] == "customer"))


BREAKS = {
    "unknown field type": lambda m: m["fields"][0].update(type="strng"),
    "unknown key": lambda m: m.update(colour="red"),
    "name with a capital": lambda m: m.update(name="Customer"),
    "name ending in a newline": lambda m: m.update(name="customer\n"),
    "label not a map": lambda m: m.update(label=3),
    "fields not a list": lambda m: m.update(fields={"a": 1}),
    "a field without a name": lambda m: m["fields"][0].pop("name"),
    "max_length a string": lambda m: m["fields"][0].update(max_length="many"),
    "true as a number": lambda m: m["fields"][0].update(max_length=True),
}


@pytest.mark.parametrize("name", list(BREAKS))
def test_a_broken_module_is_refused_by_both_and_worded_by_jsonschema(name: str) -> None:
    module = _customer()
    BREAKS[name](module)
    full = [(".".join(map(str, e.absolute_path)), e.message) for e in schema._validator("module").iter_errors(module)]
    if not full:  # jsonschema accepts it (a trailing newline passes Python's `$`): so does the load, after the full walk
        assert schema.schema_errors("module", module) == []
        return
    assert not schema._valid("module", module)
    found = schema.schema_errors("module", module)
    assert found and len(found) == len(full)


def test_a_value_json_cannot_hold_gets_the_full_walk() -> None:
    module = _customer()
    module["description"] = dt.date(2026, 12, 4)  # YAML reads an unquoted date as a date
    assert not schema._valid("module", module)
    assert any(path == "description" for path, _ in schema.schema_errors("module", module))
