"""Every serialized document's version and the one JSON form the kit hashes.

Writers and readers of a document import its version from here, so a reader in another layer (verify reading a
report's verdicts) never imports the writer.
"""

from __future__ import annotations

import json
from typing import Any

RECORD_SCHEMA_VERSION = 1
ARTIFACT_SCHEMA_VERSION = 1
REPORT_SCHEMA_VERSION = 1
COMPARISON_SCHEMA_VERSION = 1
VERDICTS_SCHEMA_VERSION = 1


def canonical_json(body: Any) -> str:
    """Sorted keys, no insignificant white space: the form every hash of the kit is taken over."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
