"""Grep-level check: no SQL in lineage_nb is built with f-strings, ``%`` or ``.format`` on values.

Every value must reach the database as a bound parameter (SQLAlchemy expressions, ``text()``
with ``:name`` binds, or psycopg ``%s`` placeholders with a parameter tuple; identifiers through
``psycopg.sql.Identifier``). The check parses each module and flags:

- ``execute``/``exec_driver_sql``/``executescript``/``executemany``/``text`` called with an
  f-string, a ``%``-formatted string or a ``.format()`` call;
- any f-string, ``%``-formatted or ``.format()``-ed string that starts like a SQL statement
  (upper-case keywords, as all SQL in this code base is written; ruff's S608 covers more).

Justified exceptions are listed in ``ALLOWED`` with the reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from paths import ROOT

PACKAGE = ROOT / "lineage_nb"

SQL_START = re.compile(
    r"^\s*(SELECT|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|PRAGMA|CREATE\s|ALTER\s|DROP\s|"
    r"GRANT\s|REVOKE\s|TRUNCATE\s|WITH\s+\w+\s+AS|SET\s+\w+\s*=|BEGIN|COMMIT|ROLLBACK|VACUUM)",
)
EXECUTORS = {"execute", "exec_driver_sql", "executescript", "executemany", "text"}

#: (path relative to lineage_nb/, start of the SQL text) -> why it is safe.
_TRIGGER_DDL = (
    "capture trigger DDL: only the tracked tables' own identifiers, quoted by the module's _ident "
    "and _literal; CREATE/DROP TRIGGER take no bound parameters, and no data value is spliced"
)

ALLOWED: dict[tuple[str, str], str] = {
    ("lineage/capture/_postgresql.py", "CREATE OR REPLACE TRIGGER lineage_nb_"): _TRIGGER_DDL,
    ("lineage/capture/_sqlite.py", "CREATE TRIGGER "): _TRIGGER_DDL,
    ("lineage/capture/_sqlite.py", "DROP TRIGGER "): _TRIGGER_DDL,
    ("lineage/capture/_sqlite.py", "SELECT "): _TRIGGER_DDL + " (a trigger's sub-select)",
    ("lineage/capture/_sqlite.py", "INSERT INTO "): _TRIGGER_DDL + " (a trigger's event insert)",
    ("lineage/capture/_postgresql.py", "SELECT "): (
        "replay selects (current rows as JSON, past rows typed back): only the tracked table's own "
        "identifiers, quoted by _ident; the keys and rows are the bound parameters :keys, "
        ":ln_rows and :ln_changed"
    ),
    **{
        ("security/postgres.py", start): (
            "team-database DDL assembled once, at import, from the module's own constants "
            "(_guard, _EVENT_TRIGGER_LIST, _row_security, _BY_SUPERUSER): no value from outside "
            "the module is spliced in"
        )
        for start in (
            "\nCREATE OR REPLACE FUNCTION public.",
            "DROP EVENT TRIGGER IF EXISTS ",
            "\nALTER TABLE public.",
        )
    },
    ("db.py", "PRAGMA busy_timeout = "): (
        "the value is the module constant SQLITE_BUSY_TIMEOUT_MS (an int), never user input; "
        "SQLite PRAGMAs take no bound parameters"
    ),
}


def _leading_text(node: ast.AST) -> str | None:
    """The literal text a string-building expression starts with (None if not a string build)."""
    if isinstance(node, ast.JoinedStr):
        first = node.values[0] if node.values else None
        return (
            first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            return node.left.value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    ):
        return node.func.value.value
    return None


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def violations(source: str, name: str = "<source>") -> list[str]:
    """Places in ``source`` where SQL text is built from values; empty when clean."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _call_name(node) in EXECUTORS and node.args:
            text = _leading_text(node.args[0])
            if text is not None and (name, text.strip()[:40]) not in _allowed_keys():
                found.append(f"{name}:{node.lineno}: {_call_name(node)}() of a built string")
                continue
        text = _leading_text(node)
        if text and SQL_START.match(text) and not _allowed(name, text):
            found.append(f"{name}:{getattr(node, 'lineno', '?')}: SQL built as {text[:40]!r}…")
    return sorted(set(found))


def _allowed_keys() -> set[tuple[str, str]]:
    return {(path, start.strip()[:40]) for path, start in ALLOWED}


def _allowed(name: str, text: str) -> bool:
    return any(path == name and text.startswith(start) for path, start in ALLOWED)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_sql_safety_package_has_no_built_sql() -> None:
    """No module of lineage_nb builds SQL text from values."""
    modules = _modules()
    assert len(modules) > 20
    problems = [
        problem
        for module in modules
        for problem in violations(
            module.read_text(encoding="utf-8"), str(module.relative_to(PACKAGE))
        )
    ]
    assert problems == []


def test_sql_safety_allow_list_is_used() -> None:
    """Each allowed exception still exists (stale entries are removed, not kept as loopholes)."""
    for path, start in ALLOWED:
        assert start in (PACKAGE / path).read_text(encoding="utf-8"), (path, start)


@pytest.mark.parametrize(
    "bad",
    [
        "conn.execute(f\"SELECT * FROM t WHERE name = '{name}'\")",
        'session.execute(text(f"DELETE FROM t WHERE id = {pk}"))',
        'cursor.execute("UPDATE t SET a = %s WHERE id = 1" % value)',
        'query = "SELECT * FROM {} WHERE x = 1".format(table)',
        'sql = f"INSERT INTO t VALUES ({v})"',
        'conn.exec_driver_sql("PRAGMA user_version = %d" % version)',
    ],
)
def test_sql_safety_detector_catches(bad: str) -> None:
    """The detector flags each way of splicing a value into SQL."""
    assert violations(bad) != []


@pytest.mark.parametrize(
    "good",
    [
        'conn.execute(text("SELECT * FROM t WHERE name = :name"), {"name": name})',
        'conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))',
        'message = f"Select one of {choices}"',
        "session.execute(select(T).where(T.name == name))",
        'conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))',
    ],
)
def test_sql_safety_detector_allows(good: str) -> None:
    """Bound parameters, composed identifiers and ordinary messages are not flagged."""
    assert violations(good) == []
