"""The lineage lookups are index lookups (EXPLAIN on both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import lineage_nb as ln

QUERIES = {
    "events of a record": (
        'SELECT id FROM lineage_record_event WHERE "table" = :t AND pk = :p ORDER BY id',
        {"t": "sample", "p": "1"},
        "ix_lineage_record_event_record",
    ),
    "records of a run": (
        "SELECT id FROM lineage_record_event WHERE run_id = :r",
        {"r": 1},
        "ix_lineage_record_event_run_id",
    ),
    "runs of a transform": (
        "SELECT id FROM lineage_run WHERE transform_id = :t",
        {"t": 1},
        "ix_lineage_run_transform_id",
    ),
    "inputs of a record": (
        'SELECT run_id FROM lineage_run_input WHERE "table" = :t AND pk = :p',
        {"t": "sample", "p": "1"},
        "ix_lineage_run_input_record",
    ),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_lookup_uses_index(db: ln.Database, name: str) -> None:
    """EXPLAIN shows the named index for each lineage lookup."""
    sql, params, index = QUERIES[name]
    with db.engine.connect() as connection:
        if db.dialect == "sqlite":
            plan = connection.execute(text("EXPLAIN QUERY PLAN " + sql), params).all()
            detail = " ".join(str(row[-1]) for row in plan)
        else:
            connection.execute(text("SET enable_seqscan = off"))  # tiny tables: force the choice
            plan = connection.execute(text("EXPLAIN " + sql), params).all()
            detail = " ".join(str(row[0]) for row in plan)
    assert index in detail, detail
