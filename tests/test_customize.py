"""The customization layer: revisions applied with their migration in one transaction, listed, rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from engine import customize, records
from engine.access import SystemAccess
from engine.cli import main
from engine.errors import MetadataError, MigrationRefused
from engine.migrate import ensure_schema, plan
from engine.migration_ops import HideColumn
from engine.runtime import Runtime, Settings, make_engine, open_runtime

from .conftest import login

VIP = {"modules": {"contact": {"fields": [{"name": "vip_level", "type": "integer", "label": {"en": "VIP level", "zh": "VIP 等级"}}]}}}


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings on the test bundle and a fresh database."""
    return Settings(metadata=Path(__file__).parent / "bundle", db_url=db_url, files=tmp_path / "files")


@pytest.fixture
def opened(settings: Settings) -> Iterator[list[Runtime]]:
    """Runtimes opened by a test, disposed at the end."""
    made: list[Runtime] = []
    yield made
    for rt in made:
        rt.db.dispose()


def fresh(settings: Settings, opened: list[Runtime]) -> Runtime:
    """A runtime with the newest revision's layer, as a restarted worker would build it."""
    rt = open_runtime(settings, db=make_engine(settings.db_url))
    opened.append(rt)
    return rt


def contact_columns(rt: Runtime) -> set[str]:
    """The live columns of the contact table."""
    return {c["name"] for c in sa.inspect(rt.db).get_columns("contact")}


def test_a_layer_adds_a_field_and_stores_a_revision_with_its_diff(settings: Settings, opened: list[Runtime]) -> None:
    ensure_schema(fresh(settings, opened))
    done = customize.apply_layer(settings, VIP, "alice", "VIP levels")
    assert (done.id, done.author, done.message, done.rolled_back_from) == (1, "alice", "VIP levels", None)
    assert "+++ b/modules/contact.yaml" in done.diff and "+- name: vip_level" in done.diff.replace("  ", "")
    assert "account.yaml" not in done.diff
    rt = fresh(settings, opened)
    assert rt.revision == 1 and "vip_level" in rt.spec.module("contact").by_name
    assert "vip_level" in contact_columns(rt)
    created = records.create(rt, SystemAccess(), "contact", {"full_name": "Ada", "vip_level": "3"})
    assert created["vip_level"] == 3
    assert [(r.id, r.author, r.layer) for r in customize.revisions(rt.db)] == [(1, "alice", VIP)]
    assert customize.current_layer(rt.db) == (1, VIP)
    assert plan(rt).ops == ()


@pytest.mark.parametrize("layer", [
    {"modules": {"contact": {"fields": [{"name": "vip_level", "type": "strng"}]}}},
    {"modules": [{"name": "contact"}]},
    {"modulez": {}},
])
def test_an_invalid_layer_raises_and_writes_nothing(settings: Settings, opened: list[Runtime], layer: dict[str, Any]) -> None:
    ensure_schema(fresh(settings, opened))
    with pytest.raises(MetadataError):
        customize.apply_layer(settings, layer, "alice")
    rt = fresh(settings, opened)
    assert customize.revisions(rt.db) == [] and "vip_level" not in contact_columns(rt)


def test_rollback_hides_the_added_column_and_rolling_back_the_rollback_restores_the_values(settings: Settings, opened: list[Runtime]) -> None:
    ensure_schema(fresh(settings, opened))
    first = customize.apply_layer(settings, VIP, "alice")
    rt = fresh(settings, opened)
    ada = records.create(rt, SystemAccess(), "contact", {"full_name": "Ada", "vip_level": 5})["id"]
    undo = customize.rollback(rt, first.id, "bob")
    assert (undo.id, undo.layer, undo.rolled_back_from, undo.author) == (2, {}, first.id, "bob")
    assert "-- name: vip_level" in undo.diff.replace("  ", "")
    rt = fresh(settings, opened)
    assert "vip_level" not in rt.spec.module("contact").by_name and "vip_level" in contact_columns(rt)
    assert [type(op) for op in plan(rt).ops] == [HideColumn]
    assert "vip_level" not in records.get(rt, SystemAccess(), "contact", ada)
    redo = customize.rollback(settings, undo.id, "carol")
    assert redo.layer == VIP
    rt = fresh(settings, opened)
    assert records.get(rt, SystemAccess(), "contact", ada)["vip_level"] == 5
    assert [r.id for r in customize.revisions(rt.db)] == [3, 2, 1]


def test_a_layer_whose_migration_is_refused_writes_nothing(settings: Settings, opened: list[Runtime]) -> None:
    rt = fresh(settings, opened)
    ensure_schema(rt)
    ids = [records.create(rt, SystemAccess(), "contact", {"full_name": n, "phone": p})["id"] for n, p in (("a", "123"), ("b", "+86 1"))]
    to_integer = {"modules": {"contact": {"fields": [{"name": "phone", "type": "integer"}]}}}
    preview = customize.preview(settings, to_integer)
    assert preview.plan.refusals == (f"contact.phone: 1 row cannot become integer (ids {ids[1]})",)
    with pytest.raises(MigrationRefused, match=f"ids {ids[1]}"):
        customize.apply_layer(settings, to_integer, "alice")
    rt = fresh(settings, opened)
    assert customize.revisions(rt.db) == []
    assert isinstance(sa.inspect(rt.db).get_columns("contact")[2]["type"], sa.String)


def test_a_field_that_becomes_required_is_checked_for_empty_values(settings: Settings, opened: list[Runtime]) -> None:
    rt = fresh(settings, opened)
    ensure_schema(rt)
    ada = records.create(rt, SystemAccess(), "contact", {"full_name": "Ada", "birthday": "1990-01-01"})
    bob = records.create(rt, SystemAccess(), "contact", {"full_name": "Bob"})
    required = {"modules": {"contact": {"fields": [{"name": "birthday", "type": "date", "required": True}]}}}
    with pytest.raises(MigrationRefused, match=rf"contact.birthday: 1 row is empty and cannot become required \(ids {bob['id']}\)"):
        customize.apply_layer(settings, required, "alice")
    records.update(rt, SystemAccess(), "contact", bob["id"], {"birthday": "1991-02-03"}, bob["version"])
    assert customize.apply_layer(settings, required, "alice").id == 1
    assert fresh(settings, opened).spec.module("contact").field("birthday").required
    assert ada["id"] != bob["id"]


def test_the_migration_and_the_revision_row_share_one_transaction(settings: Settings, opened: list[Runtime],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_schema(fresh(settings, opened))

    def broken(*_args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(customize, "_store", broken)
    with pytest.raises(RuntimeError):
        customize.apply_layer(settings, VIP, "alice")
    rt = fresh(settings, opened)
    assert "vip_level" not in contact_columns(rt)  # the ALTER TABLE was rolled back with the failed insert


def test_customize_command_applies_lists_shows_and_rolls_back(settings: Settings, opened: list[Runtime], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--metadata", str(settings.metadata), "--db", settings.db_url]
    layer = tmp_path / "vip.yaml"
    layer.write_text(yaml.safe_dump(VIP, allow_unicode=True), encoding="utf-8")
    assert main(["customize", "preview", str(layer), *common]) == 0
    out = capsys.readouterr().out
    assert "vip_level" in out and "CreateTable" in out
    assert main(["customize", "apply", str(layer), "--author", "dana", "-m", "VIP", *common]) == 0
    assert "revision 1 applied by dana" in capsys.readouterr().out
    assert main(["customize", "list", *common]) == 0
    assert "dana" in capsys.readouterr().out
    assert main(["customize", "show", "1", *common]) == 0
    assert "+++ b/modules/contact.yaml" in capsys.readouterr().out
    assert main(["customize", "rollback", "1", "--author", "erin", *common]) == 0
    assert "rolls back revision 1" in capsys.readouterr().out
    assert main(["customize", "show", "9", *common]) == 1
    rt = fresh(settings, opened)
    assert [r.author for r in customize.revisions(rt.db)] == ["erin", "dana"]


def test_bundle_export_and_import_move_a_layer_to_another_instance(settings: Settings, opened: list[Runtime], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--metadata", str(settings.metadata), "--db", settings.db_url]
    customize.apply_layer(settings, VIP, "alice")
    assert main(["bundle", "export", str(tmp_path / "layer.yaml"), "--layer", *common]) == 0
    assert yaml.safe_load((tmp_path / "layer.yaml").read_text(encoding="utf-8")) == VIP
    assert main(["bundle", "export", str(tmp_path / "effective"), *common]) == 0
    assert main(["check", "--metadata", str(tmp_path / "effective")]) == 0
    exported = yaml.safe_load((tmp_path / "effective" / "modules" / "contact.yaml").read_text(encoding="utf-8"))
    assert "vip_level" in [f["name"] for f in exported["fields"]]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["bundle", "import", str(tmp_path / "layer.yaml"), "--author", "bob", "--metadata", str(settings.metadata), "--db", other]) == 0
    capsys.readouterr()
    db = make_engine(other)
    try:
        assert customize.current_layer(db) == (1, VIP)
    finally:
        db.dispose()


def test_a_revision_applied_elsewhere_reaches_every_running_app_at_its_next_request(make_app: Any) -> None:
    one, two = make_app(), make_app()
    first, second = login(one, "ada", ("admin",)), login(two, "ada")
    assert second.post("/api/contact", json={"full_name": "Before", "vip_level": 2}).status_code == 422  # no such field yet
    customize.apply_layer(one.state.runtime, VIP, "ada", "VIP levels")  # as `loom customize` or an admin page would
    for client, app in ((first, one), (second, two)):
        made = client.post("/api/contact", json={"full_name": "After", "vip_level": 3})
        assert made.status_code == 201, made.text
        assert made.json()["vip_level"] == 3
        assert app.state.runtime.revision == 1
    customize.rollback(one.state.runtime, 1, "ada")
    assert "vip_level" not in second.get(f"/api/contact/{made.json()['id']}").json()
    assert two.state.runtime.revision == 2
