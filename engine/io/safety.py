"""Checks on an uploaded file before any parser reads it: its kind, its zip structure and sizes, no XML DTDs.

Importing this module defuses the standard library's XML parsers (defusedxml); Loom refuses to start
reading uploads without it.
"""

from __future__ import annotations

import warnings
import zipfile
import zlib
from collections.abc import Iterable

from engine.io.limits import FileRejected, Limits, Unsupported

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import defusedxml

        defusedxml.defuse_stdlib()
except ImportError as exc:  # pragma: no cover - the dependency is declared
    raise RuntimeError("defusedxml is required to read uploaded spreadsheets safely: pip install defusedxml") from exc

OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
XML_SUFFIXES = (".xml", ".rels", ".vml")
DTD_MARKS = tuple(mark.encode(codec) for mark in ("<!DOCTYPE", "<!ENTITY") for codec in ("ascii", "utf-16-le", "utf-16-be"))
ROW_MARKS = (b"<row", b":row")
MACRO_MARKS = (b"macroEnabled", b"vbaProject")
CHUNK = 1 << 20


def sniff(head: bytes, filename: str) -> str:
    """'xlsx' or 'csv' from the first bytes; legacy, encrypted and binary files are refused."""
    if head.startswith(OLE2):
        raise Unsupported("this is a legacy .xls workbook or a password-protected file: save it as .xlsx (without a password) or as .csv")
    if head.startswith(b"PK"):
        return "xlsx"
    if filename.lower().endswith((".xlsx", ".xlsm", ".xls")):
        raise FileRejected(f"'{filename}' is not a valid Excel workbook: save it again as .xlsx, or as .csv")
    if b"\x00" in head and not head.startswith(UTF16_BOMS):
        raise FileRejected("this is not a spreadsheet: upload an .xlsx workbook or a .csv file")
    return "csv"


def check_zip(path: str, limits: Limits) -> int:
    """Refuse zip bombs, encrypted or macro workbooks and XML with DTDs, reading every entry as a stream;
    returns how many bytes the workbook unpacks to."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_entries(infos, limits)
            _check_kind(zf, [i.filename for i in infos])
            total = 0
            for info in infos:
                total += _scan(zf, info, limits)
                if total > limits.max_unzipped:
                    raise FileRejected(f"the workbook unpacks to more than {limits.max_unzipped // 1_000_000} MB")
            return total
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError, ValueError):
        raise FileRejected("the file is damaged or incomplete (not a readable .xlsx workbook): save it again and retry") from None


def _check_entries(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_entries:
        raise FileRejected(f"the workbook has {len(infos)} parts (at most {limits.max_entries})")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise FileRejected("the workbook has duplicate parts")
    if any(i.flag_bits & 0x1 for i in infos):
        raise Unsupported("the workbook is encrypted: remove the password and save it again")
    if sum(i.file_size for i in infos) > limits.max_unzipped:
        raise FileRejected(f"the workbook unpacks to more than {limits.max_unzipped // 1_000_000} MB")
    for i in infos:
        if i.file_size > limits.max_entry:
            raise FileRejected(f"part {i.filename} is larger than {limits.max_entry // 1_000_000} MB")
        if i.file_size > 1_000_000 and i.file_size > limits.max_ratio * max(i.compress_size, 1):
            raise FileRejected(f"part {i.filename} is compressed more than {limits.max_ratio}:1 (a zip bomb?)")


def _check_kind(zf: zipfile.ZipFile, names: Iterable[str]) -> None:
    lowered = [n.lower() for n in names]
    types = zf.read("[Content_Types].xml") if "[Content_Types].xml" in names else b""
    if any(n.endswith("vbaproject.bin") for n in lowered) or any(m in types for m in MACRO_MARKS):
        raise Unsupported("this is a macro-enabled workbook (.xlsm): save it as a plain .xlsx workbook")
    if "xl/workbook.xml" not in lowered:
        raise FileRejected("this is not an Excel workbook (no xl/workbook.xml): upload an .xlsx workbook or a .csv file")


def _scan(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> int:
    """Stream one entry (the sizes in the zip headers are not trusted): XML parts must not declare a DTD, and
    a worksheet's rows are counted here, before a reader allocates them (empty rows count too)."""
    name = info.filename.lower()
    xml, sheet = name.endswith(XML_SUFFIXES), name.startswith("xl/worksheets/")
    seen, rows, tail = 0, 0, b""
    with zf.open(info) as stream:
        while chunk := stream.read(CHUNK):
            seen += len(chunk)
            if seen > limits.max_entry:
                raise FileRejected(f"part {info.filename} is larger than {limits.max_entry // 1_000_000} MB")
            if xml and any(mark in tail + chunk for mark in DTD_MARKS):
                raise FileRejected(f"part {info.filename} declares a DTD or entities, which are not allowed")
            if sheet:
                rows += sum((tail[-3:] + chunk).count(mark) for mark in ROW_MARKS)
                if rows > limits.max_rows + limits.header_scan:
                    raise FileRejected(f"a sheet has more than {limits.max_rows} rows (empty rows count too): "
                                       "delete the empty rows below the data, or split the file")
            tail = chunk[-32:]
    return seen
