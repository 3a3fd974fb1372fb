"""Every serialized document's version and the one JSON form the kit hashes.

Writers and readers of a document import its version from here, so a reader in another layer (verify reading a
report's verdicts) never imports the writer.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

RECORD_SCHEMA_VERSION = 1
ARTIFACT_SCHEMA_VERSION = 1
REPORT_SCHEMA_VERSION = 1
COMPARISON_SCHEMA_VERSION = 1
VERDICTS_SCHEMA_VERSION = 2
"""2: two judging regimes named in every verdict, identity and bands (1 had one rule for both)."""


def canonical_json(body: Any) -> str:
    """Sorted keys, no insignificant white space: the form every hash of the kit is taken over."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------------------------------------ verdicts.json

Regime = Literal["recomputation", "re-measurement"]
RECOMPUTATION_VERDICTS = ("matches", "differs", "not_in_the_data")
REMEASUREMENT_VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "not_comparable")
REHEARSAL_PREFIX = "rehearsal_"
"""A run against the simulator keeps its judgement, but the verdict itself says so: ``rehearsal_inconclusive``."""
Verdict = Literal[
    "matches",
    "differs",
    "not_in_the_data",
    "reproduced",
    "not_reproduced",
    "inconclusive",
    "not_comparable",
    "rehearsal_reproduced",
    "rehearsal_not_reproduced",
    "rehearsal_inconclusive",
    "rehearsal_not_comparable",
]


class ClaimVerdict(BaseModel):
    """One claim judged: what was published, what the data gives, the rule that compared them, and why.

    ``published_*`` describe the claim (value as printed, its statistic and identity, its source); ``measured*``
    what the data gives for the same statistic and identity; ``band_low``/``band_high`` the equality (recomputation:
    half a unit of the printed last digit) or equivalence band (re-measurement: the spec's tolerance).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_id: str
    statement: str
    regime: Regime
    rehearsal: bool
    metric: str
    statistic: str
    over: str
    where: dict[str, str]
    unit: str
    source: str
    comparability: str
    published: float
    published_text: str
    published_identity: str
    measured: float | None
    measured_identity: str
    n: int
    n_runs: int
    runs_per_group_min: int | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    ci_method: str
    difference: float | None
    band_low: float | None
    band_high: float | None
    tolerance_why: str
    verdict: Verdict
    reason: str
