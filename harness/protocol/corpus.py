"""The benchmark corpus the agents ingest: about a hundred synthetic benchmark files, made reproducibly.

The originals' agents read 101 files (28 CSV, 44 JSON, 29 Markdown) of the authors' own results. The kit ships
its own corpus of the same shape, generated here from a seed with a hash-based generator (not ``random``, whose
algorithms may change between Python versions) and committed under ``experiments/corpus/``; a test regenerates
it and compares bytes, and its sha256 goes into provenance. The Python and Rust agents summarise it by the
same documented rule (:func:`summarize`), so their prompts are identical byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

CORPUS_SEED = 108
COUNTS = {"csv": 28, "json": 44, "md": 29}
KINDS = {".csv": "csv", ".json": "json", ".md": "md"}
_MODELS = ("gemma3:latest", "gemma3:1b-it-qat", "gemma3:270m", "llama3.1:8b-instruct-q4_0")
_GPU = (40, 60, 80, 120, 999)
_CTX = (512, 1024, 2048, 4096)
_TEMPS = (0.2, 0.4, 0.6, 0.8, 1.0)


class _Stream:
    """Deterministic numbers from sha256(seed:label:counter): stable across Python versions and platforms."""

    def __init__(self, seed: int, label: str) -> None:
        self._prefix = f"{seed}:{label}:".encode()
        self._counter = 0

    def unit(self) -> float:
        digest = hashlib.sha256(self._prefix + str(self._counter).encode()).digest()
        self._counter += 1
        return int.from_bytes(digest[:8], "big") / 2**64

    def between(self, low: float, high: float) -> float:
        return low + (high - low) * self.unit()

    def pick(self, items: tuple[object, ...]) -> object:
        return items[int(self.unit() * len(items))]


def _config(rng: _Stream) -> tuple[str, int, int, float]:
    return (
        str(rng.pick(_MODELS)),
        int(str(rng.pick(_GPU))),
        int(str(rng.pick(_CTX))),
        float(str(rng.pick(_TEMPS))),
    )


def _csv(index: int, seed: int) -> tuple[str, str]:
    rng = _Stream(seed, f"csv{index}")
    model, gpu, ctx, _temp = _config(rng)
    name = f"csv/{model.split(':')[0]}_gpu{gpu}_ctx{ctx}_run{index:02d}.csv"
    rows = ["sample,elapsed_s,tokens,tokens_per_s,ttft_ms,gpu_util_pct,vram_used_mb,power_w"]
    base_tps = rng.between(70, 120)
    elapsed = 0.0
    for sample in range(1, 21):
        tps = base_tps * rng.between(0.96, 1.04)
        tokens = int(rng.between(600, 1400))
        elapsed += tokens / tps
        rows.append(
            f"{sample},{elapsed:.3f},{tokens},{tps:.2f},{rng.between(300, 1800):.1f},"
            f"{rng.between(85, 99):.1f},{rng.between(3000, 9000):.0f},{rng.between(80, 150):.1f}"
        )
    return name, "\n".join(rows) + "\n"


def _json(index: int, seed: int) -> tuple[str, str]:
    rng = _Stream(seed, f"json{index}")
    model, gpu, ctx, temp = _config(rng)
    name = f"json/benchmark_{index:02d}_{model.split(':')[0]}_gpu{gpu}_ctx{ctx}.json"
    calls = []
    for call in range(1, 4):
        tokens = int(rng.between(500, 1500))
        tps = rng.between(70, 120)
        calls.append(
            {
                "call": call,
                "eval_count": tokens,
                "eval_duration_ms": round(tokens / tps * 1000, 1),
                "prompt_eval_count": int(rng.between(200, 2000)),
                "load_duration_ms": round(rng.between(80, 4000), 1),
                "ttft_ms": round(rng.between(300, 2500), 1),
            }
        )
    body = {
        "benchmark": f"chimeraforge-synthetic-{index:02d}",
        "model": model,
        "options": {"num_gpu": gpu, "num_ctx": ctx, "temperature": temp},
        "calls": calls,
        "summary": {
            "tokens_total": sum(c["eval_count"] for c in calls),
            "throughput_tok_s": round(
                sum(c["eval_count"] for c in calls) / (sum(c["eval_duration_ms"] for c in calls) / 1000), 2
            ),
        },
    }
    return name, json.dumps(body, indent=2, sort_keys=True) + "\n"


def _markdown(index: int, seed: int) -> tuple[str, str]:
    rng = _Stream(seed, f"md{index}")
    model, gpu, ctx, temp = _config(rng)
    tps = rng.between(70, 120)
    ttft = rng.between(300, 2500)
    name = f"reports/note_{index:02d}_{model.split(':')[0]}.md"
    text = (
        f"# Benchmark note {index:02d}: {model}\n\n"
        f"Configuration: num_gpu={gpu}, num_ctx={ctx}, temperature={temp}.\n\n"
        "| metric | value |\n|---|---|\n"
        f"| throughput (tok/s) | {tps:.2f} |\n"
        f"| TTFT (ms) | {ttft:.1f} |\n"
        f"| runs | {int(rng.between(3, 10))} |\n\n"
        f"Observation: throughput varied by {rng.between(0.5, 6):.1f} % across runs; "
        f"the first run paid a cold model load of {rng.between(1.5, 6):.2f} s.\n"
    )
    return name, text


def generate(seed: int = CORPUS_SEED) -> dict[str, bytes]:
    """Every corpus file by relative path (POSIX separators)."""
    files: dict[str, bytes] = {}
    for maker, kind in ((_csv, "csv"), (_json, "json"), (_markdown, "md")):
        for index in range(1, COUNTS[kind] + 1):
            name, text = maker(index, seed)
            files[name] = text.encode("utf-8")
    return files


@dataclass(frozen=True)
class CorpusFile:
    path: str
    kind: str
    size_bytes: int
    lines: int


def describe(files: dict[str, bytes]) -> list[CorpusFile]:
    """Files sorted by path bytes, the order both languages use."""
    out = []
    for path in sorted(files, key=lambda p: p.encode("utf-8")):
        data = files[path]
        kind = KINDS.get(Path(path).suffix, "other")
        out.append(CorpusFile(path=path, kind=kind, size_bytes=len(data), lines=data.count(b"\n")))
    return out


def corpus_sha256(files: dict[str, bytes]) -> str:
    """sha256 over ``path NUL sha256(content) LF`` for each file in path order: independent of file times."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.encode("utf-8")):
        digest.update(path.encode("utf-8") + b"\0" + hashlib.sha256(files[path]).hexdigest().encode() + b"\n")
    return digest.hexdigest()


def summarize(entries: list[CorpusFile]) -> dict[str, str]:
    """The placeholders the prompts use. The rule is mirrored in the Rust agent; change both or neither."""
    counts = {kind: sum(1 for e in entries if e.kind == kind) for kind in ("csv", "json", "md")}
    lines = [f"- {e.path} ({e.kind}, {e.size_bytes} bytes, {e.lines} lines)" for e in entries]
    return {
        "file_count": str(len(entries)),
        "csv_count": str(counts["csv"]),
        "json_count": str(counts["json"]),
        "md_count": str(counts["md"]),
        "total_bytes": str(sum(e.size_bytes for e in entries)),
        "file_summary": "\n".join(lines),
    }


def render(template: str, values: dict[str, str]) -> str:
    """Replace ``{{name}}`` placeholders; an unknown placeholder is left as is so a typo is visible."""
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template
