"""Spreadsheet files for the import tests: built with openpyxl, or by hand as raw OOXML parts."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from typing import Any

from openpyxl import Workbook

CONTENT_TYPES = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                 '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                 '<Default Extension="xml" ContentType="application/xml"/>'
                 '<Override PartName="/xl/workbook.xml" ContentType="{main}"/>'
                 '<Override PartName="/xl/worksheets/sheet1.xml" '
                 'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                 '</Types>')
MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
MACRO_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
RELS = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        '</Relationships>')
WORKBOOK = ('<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
WB_RELS = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
           '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
           'Target="worksheets/sheet1.xml"/></Relationships>')
SHEET_HEAD = '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'


def xlsx(rows: Iterable[Iterable[Any]]) -> bytes:
    """An .xlsx with one sheet holding `rows`."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(rows: Iterable[Iterable[Any]], encoding: str = "utf-8") -> bytes:
    """CSV text of `rows` in `encoding`."""
    import csv

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def raw_xlsx(sheet_xml: str | bytes, extra: dict[str, bytes | str] | None = None, level: int = 6, main: str = MAIN) -> bytes:
    """A hand-made workbook around one sheet's XML (for cached formula values and hostile files)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES.format(main=main))
        z.writestr("_rels/.rels", RELS)
        z.writestr("xl/workbook.xml", WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", WB_RELS)
        z.writestr("xl/worksheets/sheet1.xml", sheet_xml)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return out.getvalue()


def cell(ref: str, value: Any, formula: str | None = None) -> str:
    """One <c> element: inline strings, numbers, booleans; a formula with its cached value."""
    f = f"<f>{formula}</f>" if formula else ""
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b">{f}<v>{int(value)}</v></c>'
    if isinstance(value, (int, float)):
        return f'<c r="{ref}">{f}<v>{value}</v></c>'
    if formula:
        return f'<c r="{ref}" t="str">{f}<v>{value}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


def sheet(rows: list[list[Any]]) -> str:
    """Sheet XML for rows of values (a value may be (value, formula))."""
    out = [SHEET_HEAD]
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, value in enumerate(row):
            ref = f"{chr(65 + c)}{r}"
            cells.append(cell(ref, *value) if isinstance(value, tuple) else cell(ref, value) if value is not None else "")
        out.append(f'<row r="{r}">{"".join(cells)}</row>')
    out.append("</sheetData></worksheet>")
    return "".join(out)


# ---- hostile files: each must be refused with a clear 4xx, quickly, with little memory, nothing written ----------

HEADER_ROW = '<row r="1"><c r="A1" t="inlineStr"><is><t>Name</t></is></c></row>'
TAIL = "</sheetData></worksheet>"


def entity_bomb(encoding: str = "utf-8") -> bytes:
    """Billion laughs in the sheet XML (also UTF-16 encoded, which a byte search for '<!ENTITY' would miss)."""
    entities = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    body = (f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE worksheet [{entities}]>'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
            '<row r="1"><c r="A1" t="inlineStr"><is><t>Name</t></is></c></row>'
            '<row r="2"><c r="A2" t="inlineStr"><is><t>&lol9;</t></is></c></row>' + TAIL)
    return raw_xlsx(body.encode(encoding))


def zip_bomb(megabytes: int = 64) -> bytes:
    """A sheet part that inflates from a few hundred KB to `megabytes` MB of blanks."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES.format(main=MAIN))
        z.writestr("_rels/.rels", RELS)
        z.writestr("xl/workbook.xml", WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", WB_RELS)
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
            part.write((SHEET_HEAD + HEADER_ROW).encode())
            blank = b" " * (1 << 20)
            for _ in range(megabytes):
                part.write(blank)
            part.write(TAIL.encode())
    return out.getvalue()


def many_parts(count: int = 5_000) -> bytes:
    """A workbook of thousands of tiny parts."""
    return raw_xlsx(SHEET_HEAD + HEADER_ROW + TAIL, extra={f"xl/media/p{i}.bin": b"x" for i in range(count)})


def empty_rows(count: int = 1_048_576) -> bytes:
    """A header, then row elements down to Excel's last row, every one empty."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES.format(main=MAIN))
        z.writestr("_rels/.rels", RELS)
        z.writestr("xl/workbook.xml", WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", WB_RELS)
        with z.open("xl/worksheets/sheet1.xml", "w") as part:
            part.write((SHEET_HEAD + HEADER_ROW).encode())
            for start in range(2, count + 1, 65_536):
                part.write("".join(f'<row r="{r}"/>' for r in range(start, min(start + 65_536, count + 1))).encode())
            part.write(TAIL.encode())
    return out.getvalue()


def far_cell(ref: str = "BH1000000") -> bytes:
    """Two cells: a header and one far away, so that a reader allocating the whole range would need gigabytes."""
    row = "".join(ch for ch in ref if ch.isdigit())
    return raw_xlsx(SHEET_HEAD + HEADER_ROW + f'<row r="{row}"><c r="{ref}"><v>1</v></c></row>' + TAIL)


def wide_sheet(columns: int = 16_384) -> bytes:
    """A header row with a cell in every column Excel has."""
    from openpyxl.utils import get_column_letter

    cells = "".join(f'<c r="{get_column_letter(i)}1" t="inlineStr"><is><t>c{i}</t></is></c>' for i in range(1, columns + 1))
    return raw_xlsx(SHEET_HEAD + f'<row r="1">{cells}</row>' + TAIL)


def huge_cell(megabytes: int = 10) -> bytes:
    """A 10 MB text cell (random letters, so that it does not compress like a bomb)."""
    import base64
    import random

    text = base64.b64encode(random.Random(5).randbytes(megabytes * 750_000)).decode()
    return raw_xlsx(SHEET_HEAD + HEADER_ROW + f'<row r="2"><c r="A2" t="inlineStr"><is><t>{text}</t></is></c></row>' + TAIL)


def legacy_xls() -> bytes:
    """An OLE2 compound file (a legacy .xls, or an encrypted workbook) that will be named .xlsx."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff\x09\x00\x06\x00"
    return header + bytes(512 - len(header)) + b"\x00" * 4096


def encrypted_xlsx() -> bytes:
    """What Excel writes for a password-protected .xlsx: an OLE2 container holding EncryptionInfo and EncryptedPackage."""
    names = "".join(n.ljust(32, "\0") for n in ("EncryptionInfo", "EncryptedPackage")).encode("utf-16-le")
    return legacy_xls()[:512] + names + bytes(2048)


def zip_encrypted() -> bytes:
    """A zip whose parts carry the 'encrypted' flag (a password-protected zip renamed .xlsx)."""
    data = bytearray(xlsx([["Name"], ["a"]]))
    for marker in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.find(marker)
        while at >= 0:
            flag = at + (6 if marker == b"PK\x03\x04" else 8)
            data[flag] |= 0x1
            at = data.find(marker, at + 4)
    return bytes(data)


def truncated() -> bytes:
    """A real workbook cut in half (an interrupted download)."""
    whole = xlsx([["Name", "Notes"], *[[f"n{i}", "x" * 50] for i in range(200)]])
    return whole[: len(whole) // 2]


def macro_workbook() -> bytes:
    """An .xlsm: the macro-enabled content type and a vbaProject.bin part."""
    return raw_xlsx(SHEET_HEAD + HEADER_ROW + TAIL, extra={"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0" + bytes(100)}, main=MACRO_MAIN)


def huge_csv_cell(megabytes: int = 10) -> bytes:
    """A CSV whose second row holds one 10 MB cell."""
    return b"Name,Notes\nBig," + b"x" * (megabytes * 1_000_000) + b"\n"


def csv_empty_lines(count: int = 1_048_576) -> bytes:
    """A CSV header followed by a million empty lines."""
    return b"Name,Notes\n" + b",\n" * count


def binary_as_csv() -> bytes:
    """Binary bytes with a .csv name."""
    return bytes(range(256)) * 64
