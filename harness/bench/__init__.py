"""``harness bench``: how far the kit's own measurements are from the truth, and what the kit itself costs.

Each measurement has its module: :mod:`.clients` (TTFT and throughput error of every agent against the
simulator's ground truth), :mod:`.efficiency` (multi-agent efficiency against known true values),
:mod:`.overhead` (per-run stack overhead, whole-report time) and :mod:`.peer` (a maintained benchmark client
measured the same way). :mod:`.fidelity` holds the pure error arithmetic, :mod:`.results` the results file,
:mod:`.table` the Markdown summary, :mod:`.runner` the sequence. A driver: nothing in the kit imports it.
"""
