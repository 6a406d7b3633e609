"""Is a file what it claims to be? A check per format, reading no more than it must.

`validate(path, "csv")` returns what the file holds ("1,461 rows, 6 columns")
or raises `Invalid` saying why it is not a CSV file. Every check looks at the
magic bytes first and then parses enough to know the file is whole: a CSV file
is read row by row, a gzip stream decompressed to its end, a zip archive's CRCs
checked, an xlsx workbook's sheet list read, a parquet file's footer parsed. A
page of HTML where data was expected (a login or an error page served with
200) is named as such, whatever the format. Each check imports its parser when
it runs: a run that downloads nothing (a 304) imports none of them.
"""

from __future__ import annotations

import codecs
import json
from collections import Counter
from pathlib import Path

import _common as common

if common.TYPE_CHECKING:
    from typing import Any

EXTENSIONS = {"csv": ".csv", "json": ".json", "gzip": ".gz", "zip": ".zip",
              "parquet": ".parquet", "xlsx": ".xlsx"}


class Invalid(Exception):
    """The payload does not match the declared format."""


def validate(path: Path, format: str, encoding: str = "utf-8") -> str:
    """What the payload holds ("1,461 rows, 6 columns"); Invalid if it is not `format`.

    `encoding` is that of a CSV file; the other formats say their own.
    """
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        raise Invalid("empty body (0 bytes)")
    if looks_like_html(head):
        raise Invalid(f"an HTML page, not {format} (starts {head[:40]!r})")
    return CHECKS[format](path, head, encoding)


def looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
        start.startswith(b"<") and b"<html" in start)


def check_csv(path: Path, head: bytes, encoding: str) -> str:
    import csv

    if (line := first_nul(path)) is not None:
        raise Invalid(f"a NUL byte on line {line}: binary, not CSV")
    reading = encoding
    if codecs.lookup(encoding).name == "utf-8" and head.startswith(codecs.BOM_UTF8):
        reading = "utf-8-sig"  # drop the BOM from the first column's name
    try:
        with open(path, encoding=reading, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if not any(name.strip() for name in header):
                raise Invalid("no header row")
            widths = Counter(map(len, reader))  # the loop runs in C
    except UnicodeDecodeError as exc:
        raise Invalid(f"not {encoding} text ({exc.reason})") from None
    except csv.Error as exc:
        raise Invalid(f"not CSV: line {reader.line_num}: {exc}") from None
    rows = widths.total() - widths[0]  # blank lines are rows of no fields
    ragged = rows - widths[len(header)]
    if rows == 0:
        raise Invalid("a header and no rows")
    if ragged * 2 > rows:
        raise Invalid(f"{ragged} of {rows} rows do not have the header's {len(header)} fields")
    note = f" ({ragged} with another number of fields)" if ragged else ""
    return f"{common.counted(rows, 'row')}{note}, {common.counted(len(header), 'column')}"


def first_nul(path: Path) -> int | None:
    """The line of the first NUL byte in the file, if any."""
    lines = 1
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            if (at := block.find(b"\0")) >= 0:
                return lines + block.count(b"\n", 0, at)
            lines += block.count(b"\n")
    return None


def check_json(path: Path, head: bytes, encoding: str) -> str:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            value = json.load(handle)
    except UnicodeDecodeError as exc:
        raise Invalid(f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise Invalid(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise Invalid("JSON nested too deep to read") from None
    if isinstance(value, list):
        return f"a list of {common.counted(len(value), 'item')}"
    if isinstance(value, dict):
        return f"an object with {common.counted(len(value), 'key')}"
    return f"a single {type(value).__name__}"


def check_gzip(path: Path, head: bytes, encoding: str) -> str:
    import gzip
    import zlib

    magic(head, b"\x1f\x8b", "gzip")
    size = 0
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                size += len(block)
    except EOFError as exc:
        raise Invalid(f"truncated gzip: {exc}") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise Invalid(f"corrupt gzip: {exc}") from None
    return f"{common.size_text(size)} uncompressed"


def check_zip(path: Path, head: bytes, encoding: str) -> str:
    names = zip_members(path, head, "zip")
    return common.counted(len(names), "member")


def zip_members(path: Path, head: bytes, kind: str) -> list[str]:
    import zipfile
    import zlib

    if head.startswith(b"PK\x05\x06"):
        raise Invalid(f"an empty {kind} archive")
    magic(head, b"PK\x03\x04", kind)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise Invalid(f"corrupt {kind}: {exc}") from None
    if bad is not None:
        raise Invalid(f"corrupt {kind}: member {bad!r} fails its CRC check")
    return names


def check_xlsx(path: Path, head: bytes, encoding: str) -> str:
    import zipfile
    from xml.etree import ElementTree

    names = zip_members(path, head, "xlsx")
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        raise Invalid("a zip archive, but not a workbook (no xl/workbook.xml)")
    with zipfile.ZipFile(path) as archive:
        try:
            workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        except ElementTree.ParseError as exc:
            raise Invalid(f"corrupt xlsx: xl/workbook.xml: {exc}") from None
    sheets = [e.get("name", "?") for e in workbook.iter() if e.tag.endswith("}sheet")]
    if not sheets:
        raise Invalid("a workbook without sheets")
    return f"{common.counted(len(sheets), 'sheet')}: {', '.join(sheets)}"


def check_parquet(path: Path, head: bytes, encoding: str) -> str:
    """Magic at both ends, then the footer's FileMetaData parsed (Thrift compact)."""
    magic(head, b"PAR1", "parquet")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(size - 8, 0))
        tail = handle.read(8)
        footer_size = int.from_bytes(tail[:4], "little")
        if size < 12 or tail[4:] != b"PAR1" or not 0 < footer_size <= size - 12:
            raise Invalid("truncated parquet: no footer at the end")
        handle.seek(size - 8 - footer_size)
        footer = handle.read(footer_size)
    try:
        meta = CompactReader(footer).struct()
    except (IndexError, ValueError, RecursionError) as exc:
        raise Invalid(f"corrupt parquet footer: {exc}") from None
    if not isinstance(meta.get(2), list) or not isinstance(meta.get(3), int):
        raise Invalid("corrupt parquet footer: no schema or row count")
    columns = max(len(meta[2]) - 1, 0)  # the first schema element is the root
    return f"{common.counted(meta[3], 'row')}, {common.counted(columns, 'column')}"


def magic(head: bytes, expected: bytes, kind: str) -> None:
    if not head.startswith(expected):
        raise Invalid(f"not {kind}: starts {head[:8]!r}, not {expected!r}")


class CompactReader:
    """Just enough of Thrift's compact protocol to walk a parquet footer."""

    MAX_DEPTH = 64

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.depth = data, 0, 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        result = shift = 0
        while True:
            value = self.byte()
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def skip(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise ValueError("a field runs past the footer's end")
        self.pos += count
        return self.data[self.pos - count:self.pos]

    def value(self, kind: int) -> Any:
        if kind in (1, 2):
            return kind == 1
        readers = {3: self.byte, 4: self.zigzag, 5: self.zigzag, 6: self.zigzag,
                   7: lambda: self.skip(8), 8: lambda: self.skip(self.varint()),
                   9: self.list, 10: self.list, 11: self.map, 12: self.struct}
        if kind not in readers:
            raise ValueError(f"unknown field type {kind}")
        return readers[kind]()

    def nested(self, read: Any) -> Any:
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            raise ValueError("nested too deep")
        try:
            return read()
        finally:
            self.depth -= 1

    def struct(self) -> dict[int, Any]:
        def read() -> dict[int, Any]:
            fields: dict[int, Any] = {}
            last = 0
            while head := self.byte():
                delta, kind = head >> 4, head & 0x0F
                last = last + delta if delta else self.zigzag()
                fields[last] = self.value(kind)
            return fields
        return self.nested(read)

    def list(self) -> list[Any]:
        head = self.byte()
        count, kind = head >> 4, head & 0x0F
        if count == 15:
            count = self.varint()
        if count > len(self.data) - self.pos:
            raise ValueError("a list longer than the footer")
        # In a list a boolean is a whole byte (1 true, 2 or 0 false).
        read = self.byte if kind in (1, 2) else lambda: self.value(kind)
        return self.nested(lambda: [read() for _ in range(count)])

    def map(self) -> dict[Any, Any]:
        count = self.varint()
        if count == 0:
            return {}
        if count > len(self.data) - self.pos:
            raise ValueError("a map longer than the footer")
        kinds = self.byte()
        pairs = [(self.value(kinds >> 4), self.value(kinds & 0x0F)) for _ in range(count)]
        return {repr(key): value for key, value in pairs}


CHECKS = {"csv": check_csv, "json": check_json, "gzip": check_gzip, "zip": check_zip,
          "parquet": check_parquet, "xlsx": check_xlsx}
