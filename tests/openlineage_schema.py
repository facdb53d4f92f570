"""The OpenLineage 2-0-2 RunEvent schema check (``schema_errors``), for the export and CLI tests.

Events are validated against ``fixtures/openlineage-2-0-2.schema.json``, each facet also against
its own definition (found by its ``_schemaURL``), with the ``date-time`` and ``uri`` formats
checked.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlparse

from jsonschema import Draft202012Validator, FormatChecker
from paths import FIXTURES

SCHEMA = json.loads((FIXTURES / "openlineage-2-0-2.schema.json").read_text())
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339: a date, a 'T', a time and an offset."""
    if not isinstance(value, str):
        return True
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value and parsed.tzinfo is not None


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    """An absolute URI: it has a scheme."""
    return not isinstance(value, str) or bool(urlparse(value).scheme)


def schema_errors(event: dict[str, Any]) -> list[str]:
    """Every violation of the RunEvent schema and of each facet's own schema (by _schemaURL)."""
    messages = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(SCHEMA, format_checker=FORMATS).iter_errors(event)
    ]
    for where, facet in _facets(event):
        name = facet["_schemaURL"].split("#/$defs/")[-1].split(":")[-1]
        if name not in SCHEMA["$defs"]:
            messages.append(f"{where}: no schema for facet {facet['_schemaURL']}")
            continue
        sub = {"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]}
        validator = Draft202012Validator(sub, format_checker=FORMATS)
        messages += [f"{where}: {e.message}" for e in validator.iter_errors(facet)]
    return messages


def _facets(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"run.{k}", v) for k, v in event["run"].get("facets", {}).items()]
    found += [(f"job.{k}", v) for k, v in event["job"].get("facets", {}).items()]
    for side, key in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for dataset in event.get(side, []):
            for group in ("facets", key):
                found += [(f"{side}.{k}", v) for k, v in dataset.get(group, {}).items()]
    return found
