"""docs/http-api.md lists exactly the operations of the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

from ysync.server import create_app
from ysync.server.openapi import document

DOC = Path(__file__).parent.parent / "docs" / "http-api.md"


def test_the_page_lists_every_operation_of_the_openapi_document_and_no_other() -> None:
    spec = document(create_app().router.routes)
    operations = {
        f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops
    }
    listed = set(re.findall(r"^\| `([A-Z]+ /[^`]*)`", DOC.read_text(), flags=re.MULTILINE))
    assert listed == operations, {
        "missing from docs/http-api.md": sorted(operations - listed),
        "not in the OpenAPI document": sorted(listed - operations),
    }
