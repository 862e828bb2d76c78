"""The SSDA903 return as the DfE's XML: read into the Header, Episodes and Missing tables.

A collection-year folder (``<authority>/<year>/``) may hold the year's XML return instead
of its CSV tables. :func:`read_xml_return` reads it into the same three frames
:func:`evalkit.data.ssda903.read_table` gives for the CSV tables (same columns, same
types), so everything after reading (the DfE rules, missing episodes, exposure) is the
one code path for both forms.

The structure followed
----------------------
That of the DfE's XML return as the DfE validator used by local authorities reads it
(data-to-insight/csc-validator-be-903, ``lac_validator/ingress.py``,
``read_xml_from_text``; its fixture ``tests/fake_data/fake_903.xml``)::

    <EXPSSDA903>
      <CHILD>
        <HEADER>
          <CHILDID/> <UPN/> <SEX/> <DOB/> <ETHNIC/> <UASC/> ... <MOTHER/> <MC_DOB/>
          <AREVIEW>...</AREVIEW>  <OC2>...</OC2>           (ignored here)
          <AMISSING> <MISSING/> <MIS_START/> <MIS_END/> </AMISSING>   (0 or more)
        </HEADER>
        <EPISODE> <DECOM/> <RNE/> <LS/> <CIN/> <PL/> ... <DEC/> <REC/> ... </EPISODE>   (0 or more)
      </CHILD>
      ...
    </EXPSSDA903>

CHILDID is the CSV tables' CHILD. A missing period (AMISSING) sits in the child's
HEADER and carries no date of birth of its own: its DOB is the HEADER's, as the validator
fills it. Element order inside HEADER and EPISODE does not matter; other elements are
ignored. Dates are written dd/mm/YYYY in the XML as in the CSV tables (the validator's
fixture, and its rules parse XML and CSV dates alike with ``%d/%m/%Y``), and are parsed
by the same strict parser: anything else is an error naming the file, line and element.

Parsed safely and as a stream
-----------------------------
The file is fed to expat (the parser ``xml.etree.ElementTree.iterparse`` is built on)
in 1 MiB chunks, with handlers that keep only the fields needed, so memory does not
grow with the file beyond the three tables. expat is used directly rather than through
iterparse because it reports line numbers (errors name the line) and lets a document
type declaration be refused outright: the DfE's return has none, and refusing any
``<!DOCTYPE>`` (and with it every ``<!ENTITY>``) closes entity-expansion and
external-entity attacks without the defusedxml package, which evalkit does not depend on.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import numpy as np
import pandas as pd

from ..errors import EvalkitError

#: Root elements accepted: the DfE's expanded return (EXPSSDA903), or a plain SSDA903.
ROOT_ELEMENT = re.compile(r"^(?:EXP)?SSDA903$")
#: HEADER fields read (XML name -> table column).
HEADER_FIELDS = {"CHILDID": "CHILD", "SEX": "SEX", "DOB": "DOB"}
EPISODE_FIELDS = ("DECOM", "DEC")
MISSING_FIELDS = ("MISSING", "MIS_START", "MIS_END")
XML_SUFFIXES = (".xml", ".xml.gz")
#: where each repeated record sits: its parent element, its depth, as messages show it
_PLACES = {"EPISODE": ("CHILD", 3, "<EXPSSDA903>/<CHILD>"),
           "AMISSING": ("HEADER", 4, "<EXPSSDA903>/<CHILD>/<HEADER>")}
_CHUNK = 1 << 20


class _Refused(Exception):
    """A document type declaration: raised inside expat, reported by :func:`_parse`."""


@dataclass
class _Child:
    line: int
    fields: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)   # (line, {field: text})
    episodes: list = field(default_factory=list)  # (line, {field: text})


@dataclass
class _Tables:
    """What the handlers collect: one list per table column, plus each row's line."""

    header: dict = field(default_factory=lambda: {"row": [], "CHILD": [], "SEX": [], "DOB": []})
    episodes: dict = field(default_factory=lambda: {"row": [], "CHILD": [], "DECOM": [], "DEC": []})
    missing: dict = field(default_factory=lambda: {"row": [], "CHILD": [], "DOB": [], "MISSING": [],
                                                   "MIS_START": [], "MIS_END": []})
    root: str | None = None


def is_xml(path: Path) -> bool:
    """Whether ``path`` is named as an XML return (.xml or .xml.gz)."""
    return path.name.lower().endswith(XML_SUFFIXES)


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def root_element(path: Path, label: str) -> str:
    """The name of the file's root element (parsing stops there), '' for an empty file."""
    tables = _Tables()
    _parse(path, label, tables, root_only=True)
    return tables.root or ""


def is_ssda903_xml(path: Path, label: str) -> bool:
    """Whether the XML file is an SSDA903 return, by its root element (as a CSV table is
    recognised by its columns; another XML file in the folder is ignored)."""
    return bool(ROOT_ELEMENT.match(root_element(path, label)))


def _parse(path: Path, label: str, tables: _Tables, root_only: bool = False) -> None:
    """Stream the file through expat into ``tables`` (or stop at the root element)."""
    parser = expat.ParserCreate()
    parser.buffer_text = True
    stack: list[str] = []
    text: list[str] = []
    child: _Child | None = None
    record: dict | None = None  # the AMISSING or EPISODE being read

    class _Stop(Exception):
        pass

    def refuse(*_):
        raise _Refused

    def start(name, _attrs):
        nonlocal child, record
        stack.append(name)
        text.clear()
        depth = len(stack)
        if depth == 1:
            tables.root = name
            if root_only:
                raise _Stop
            return
        if depth == 2 and name == "CHILD":
            child = _Child(parser.CurrentLineNumber)
        elif name in _PLACES:
            # one misplaced would be silently lost: the periods it holds would count as none
            parent, level, expected = _PLACES[name]
            if child is None or depth != level or stack[-2] != parent:
                found = "/".join(f"<{n}>" for n in stack[:-1])
                raise EvalkitError(label, f"<{name}> inside {found}, but the DfE return holds it in {expected}",
                                   "export the return again, as the XML file the DfE collects",
                                   key=f"line {parser.CurrentLineNumber}")
            record = {}
            (child.episodes if name == "EPISODE" else child.missing).append((parser.CurrentLineNumber, record))

    def end(name):
        nonlocal child, record
        if child is not None:
            depth = len(stack)
            if depth == 4:
                parent = stack[2]
                if parent == "HEADER" and name in HEADER_FIELDS:
                    child.fields[HEADER_FIELDS[name]] = "".join(text).strip() or None
                elif parent == "EPISODE" and name in EPISODE_FIELDS:
                    assert record is not None  # start() opened it at this <EPISODE>
                    record[name] = "".join(text).strip() or None
            elif depth == 5:
                if stack[3] == "AMISSING" and name in MISSING_FIELDS:
                    assert record is not None  # start() opened it at this <AMISSING>
                    record[name] = "".join(text).strip() or None
            elif depth == 2:
                _add_child(child, tables, label)  # only a CHILD opens a record at depth 2
                child = None
        text.clear()
        stack.pop()

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        with _open(path) as handle:
            while True:
                chunk = handle.read(_CHUNK)
                parser.Parse(chunk, not chunk)
                if not chunk:
                    break
    except _Stop:
        return
    except _Refused:
        raise EvalkitError(label, "declares a document type (<!DOCTYPE> or <!ENTITY>), which an SSDA903 return "
                           "never has and evalkit does not expand", "export the return again without a DOCTYPE",
                           key=f"line {parser.CurrentLineNumber}") from None
    except expat.ExpatError as exc:
        if root_only and tables.root is None and exc.code == expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS]:
            return  # an empty file: no root element
        raise EvalkitError(label, f"is not well-formed XML ({expat.errors.messages[exc.code]})",
                           "export the return again, as the XML file the DfE collects", key=f"line {exc.lineno}") from None
    except (OSError, EOFError) as exc:
        raise EvalkitError(label, f"cannot be read ({exc.__class__.__name__})", "check the file is an XML return") from None


def _add_child(child: _Child, tables: _Tables, label: str) -> None:
    """A finished CHILD element: one Header row, its Episodes and Missing rows."""
    identifier = child.fields.get("CHILD")
    if identifier is None:
        raise EvalkitError(label, "<CHILD> has no <CHILDID> in its <HEADER>", "every child needs its identifier",
                           key=f"line {child.line}")
    dob = child.fields.get("DOB")
    for column, value in (("row", child.line), ("CHILD", identifier), ("SEX", child.fields.get("SEX")), ("DOB", dob)):
        tables.header[column].append(value)
    for line, record in child.episodes:
        for column, value in (("row", line), ("CHILD", identifier), ("DECOM", record.get("DECOM")),
                              ("DEC", record.get("DEC"))):
            tables.episodes[column].append(value)
    for line, record in child.missing:
        values = {"row": line, "CHILD": identifier, "DOB": dob, **{f: record.get(f) for f in MISSING_FIELDS}}
        for column, value in values.items():
            tables.missing[column].append(value)


#: each frame's date columns and, for messages, the element each one comes from
_DATES = {"header": {"DOB": "<HEADER>/<DOB>"},
          "episodes": {"DECOM": "<EPISODE>/<DECOM>", "DEC": "<EPISODE>/<DEC>"},
          "missing": {"DOB": "<HEADER>/<DOB>", "MIS_START": "<AMISSING>/<MIS_START>",
                      "MIS_END": "<AMISSING>/<MIS_END>"}}


def read_xml_return(path: Path, label: str, la: str, year: int) -> dict[str, pd.DataFrame]:
    """Read one XML return into its Header, Episodes and Missing frames.

    Returns
    -------
    dict
        ``{"header": df, "episodes": df, "missing": df}``, each with the columns
        :func:`evalkit.data.ssda903.read_table` gives (file, row, the table's read
        columns, LA, YEAR). ``row`` is the line of the row's element (CHILD, EPISODE or
        AMISSING) in the file, and messages say "line".
    """
    import pyarrow as pa

    from .ssda903 import parse_dates

    tables = _Tables()
    _parse(path, label, tables)
    if tables.root is None or not ROOT_ELEMENT.match(tables.root):
        raise EvalkitError(label, f"has root element <{tables.root or ''}>, not <EXPSSDA903>",
                           "give the SSDA903 XML return as the DfE collects it")
    frames = {}
    for kind in ("header", "episodes", "missing"):
        columns = getattr(tables, kind)
        rows = np.asarray(columns["row"], dtype=np.int64)
        n = len(rows)
        frame = pd.DataFrame({"file": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [label]), "row": rows})
        for name, values in columns.items():
            if name == "row":
                continue
            if name in _DATES[kind]:
                frame[name] = parse_dates(pa.array(values, type=pa.string()), label, name, rows,
                                          place="line", what=f"element {_DATES[kind][name]}")
            else:
                frame[name] = pd.array(values, dtype="object")
        frame["LA"] = la
        frame["YEAR"] = year
        frames[kind] = frame
    return frames
