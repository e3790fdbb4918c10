"""``ecsop schema``: the JSON Schema of a ServiceRelease, for editors."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add(sub: Any) -> None:
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a ServiceRelease",
        description="Print the JSON Schema of a ServiceRelease document, for editors' "
        "YAML plugins (e.g. a '# yaml-language-server: $schema=...' comment).",
    )
    schema.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ecsop.spec import model

    print(json.dumps(model.json_schema(), indent=2))
    return 0
