"""Loading bundles: schema and cross-reference errors with file and line, overlays, customizations, YAML safety."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import MetadataError
from engine.loader import load
from engine.yamlfile import load_text

from .conftest import TEST_BUNDLE


def _problems(root: Path) -> list[str]:
    with pytest.raises(MetadataError) as caught:
        load(root)
    return [str(p) for p in caught.value.problems]


def test_test_bundle_loads() -> None:
    spec = load(TEST_BUNDLE).spec
    assert set(spec.modules) == {"account", "contact", "deal", "deal_line"}
    account = spec.module("account")
    assert account.field("code").type == "autonumber"
    assert {"id", "owner", "version", "created_at"} <= set(account.by_name)
    assert account.field("category").option("key").label("zh") == "重要客户"


def test_schema_errors_name_file_line_and_path(bundle_copy: Path) -> None:
    path = bundle_copy / "modules" / "contact.yaml"
    text = path.read_text().replace("type: phone", "type: phon")
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "type: phon" in t)
    found = _problems(bundle_copy)
    assert any(p.startswith(f"{path}:{line}: fields[2].type:") and "'phon'" in p for p in found), found


def test_every_problem_is_reported_at_once(bundle_copy: Path) -> None:
    deal = bundle_copy / "modules" / "deal.yaml"
    deal.write_text(deal.read_text().replace("module: account, label: {en: Account", "module: acount, label: {en: Account")
                    .replace("sort: -amount", "sort: -amont"))
    contact = bundle_copy / "modules" / "contact.yaml"
    contact.write_text(contact.read_text().replace("columns: [full_name, account, phone]", "columns: [full_name, account, fone]"))
    found = _problems(bundle_copy)
    assert any("deal.yaml" in p and "unknown module 'acount'" in p for p in found), found
    assert any("deal.yaml" in p and "layout.list.sort" in p for p in found), found
    assert any("contact.yaml" in p and "unknown field 'fone'" in p for p in found), found


def test_expression_syntax_error_has_line(bundle_copy: Path) -> None:
    deal = bundle_copy / "modules" / "deal.yaml"
    text = deal.read_text().replace("expr: \"sum_of(lines, 'amount')\"", "expr: \"sum_of(lines, 'amount'\"")
    deal.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "sum_of(lines, 'amount'\"" in t)
    found = _problems(bundle_copy)
    assert any(f"deal.yaml:{line}:" in p and "syntax error" in p for p in found), found


def test_unknown_names_in_expressions_and_reserved_words(bundle_copy: Path) -> None:
    deal = bundle_copy / "modules" / "deal.yaml"
    deal.write_text(deal.read_text().replace("(amount or 0) * (probability or 0)", "(amout or 0) * (probability or 0)")
                    .replace("- {name: title, type: text", "- {name: select, type: text, label: X}\n  - {name: title, type: text"))
    found = _problems(bundle_copy)
    assert any("unknown name 'amout'" in p for p in found), found
    assert any("'select' is an SQL reserved word" in p for p in found), found


def test_overlong_identifier_rejected(bundle_copy: Path) -> None:
    contact = bundle_copy / "modules" / "contact.yaml"
    contact.write_text(contact.read_text().replace("name: phone,", f"name: {'p' * 60},"))
    assert any("fields[2].name" in p for p in _problems(bundle_copy))


def test_yaml_alias_bomb_rejected() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(MetadataError) as caught:
        load_text("\n".join(lines), "bomb.yaml")
    assert "alias bomb" in str(caught.value)


def test_json_modules_load_too(bundle_copy: Path) -> None:
    import json

    import yaml

    src = bundle_copy / "modules" / "contact.yaml"
    (bundle_copy / "modules" / "contact.json").write_text(json.dumps(yaml.safe_load(src.read_text()), indent=1))
    src.unlink()
    assert "contact" in load(bundle_copy).spec.modules


def test_overlay_extends_base(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(TEST_BUNDLE, base)
    overlay = tmp_path / "logistics"
    (overlay / "modules").mkdir(parents=True)
    (overlay / "app.yaml").write_text("name: logistics\nextends: ../base\nlabel: {en: Logistics CRM, zh: 物流客户管理}\n")
    (overlay / "modules" / "account.yaml").write_text(
        "name: account\nextends: true\nfields:\n  - {name: route, type: text, label: {en: Route, zh: 线路}}\n"
        "  - {name: name, type: text, max_length: 200}\n")
    (overlay / "modules" / "shipment.yaml").write_text(
        "name: shipment\nfields:\n  - {name: waybill, type: text, required: true}\n  - {name: account, type: link, module: account}\n")
    spec = load(overlay).spec
    account = spec.module("account")
    assert account.field("route").label("zh") == "线路"
    assert account.field("name").max_length == 200 and account.field("name").required
    assert spec.app.label("en") == "Logistics CRM"
    assert "shipment" in spec.modules and "deal" in spec.modules


def test_customization_layer_merges_last(tmp_path: Path) -> None:
    layer = {"modules": {"contact": {"fields": [{"name": "wechat", "type": "text", "label": {"en": "WeChat", "zh": "微信"}}]}}}
    loaded = load(TEST_BUNDLE, layer, "customizations (rev 3)")
    assert loaded.spec.module("contact").field("wechat").label("zh") == "微信"
    origin = loaded.bundle.docs["modules"]["contact"].where("fields[4].name")
    assert origin[2] == "customizations (rev 3)"


def test_invalid_customization_is_reported() -> None:
    layer = {"modules": {"contact": {"fields": [{"name": "bad", "type": "nope"}]}}}
    with pytest.raises(MetadataError) as caught:
        load(TEST_BUNDLE, layer, "customizations (rev 9)")
    assert any(p.file == "customizations (rev 9)" for p in caught.value.problems)


def _loom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_check_exit_codes(bundle_copy: Path) -> None:
    assert _loom("check", "--metadata", str(TEST_BUNDLE)).returncode == 0
    contact = bundle_copy / "modules" / "contact.yaml"
    contact.write_text(contact.read_text().replace("module: account", "module: nowhere"))
    done = _loom("check", "--metadata", str(bundle_copy))
    assert done.returncode == 2
    assert "contact.yaml:" in done.stderr and "unknown module 'nowhere'" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_schema_and_metadata_show(tmp_path: Path) -> None:
    import json

    schemas = json.loads(_loom("schema").stdout)
    assert set(schemas) == {"app", "module", "workflow", "report"}
    assert schemas["module"]["$schema"].endswith("2020-12/schema")
    shown = _loom("metadata", "show", "deal", "--metadata", str(TEST_BUNDLE), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert shown.returncode == 0
    assert "present_value" in shown.stdout and "deal.yaml:" in shown.stdout


def _described(node: object, path: str = "") -> list[str]:
    missing: list[str] = []
    if isinstance(node, dict):
        for key in ("properties",):
            for name, sub in node.get(key, {}).items():
                if isinstance(sub, dict) and "description" not in sub:
                    missing.append(f"{path}.{name}")
        for k, v in node.items():
            missing += _described(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            missing += _described(v, f"{path}[{i}]")
    return missing


@pytest.mark.parametrize("kind", ["app", "module", "workflow", "report"])
def test_every_schema_property_has_a_description(kind: str) -> None:
    from engine.schema import schema

    assert _described(schema(kind)) == []
