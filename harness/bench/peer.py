"""Measurement 5: a maintained LLM benchmark client, AIPerf, measured against the same ground truth.

AIPerf is installed into its own virtualenv (``benchmarks/.peer-venv``, git-ignored) from the pinned, hashed
``benchmarks/peer-requirements.txt``, never into the kit's lock. No tokenizer can come from the Hub here, and
its ``builtin`` tokenizer downloads tiktoken's table on first use; so the bench writes a byte-level tokenizer
(one token per byte, no merges) with the ``tokenizers`` package AIPerf already depends on, and AIPerf counts
output tokens from the server's ``usage`` (``--use-server-token-count``): the tokenizer only shapes prompts.
AIPerf then runs one request at a time against the simulator's OpenAI endpoint; its per-request TTFT and
per-user token rate are compared with the simulator's logs exactly as our agents' are.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bench.fidelity import CallError, ServerRequest, TruthError, peer_call_error
from harness.bench.procs import MODEL, SimProcess
from harness.errors import BenchError
from harness.progress import Progress

NAME = "aiperf"
VERSION = "0.13.0"
REQUIREMENTS = Path("benchmarks/peer-requirements.txt")
VENV = Path("benchmarks/.peer-venv")
TOKENIZER_DIR = "chimeraforge-byte-tokenizer"
_STAMP = ".requirements.sha256"
OPENAI_PATH = "/v1/chat/completions"


_TOKENIZER_SCRIPT = """
import json, sys
from pathlib import Path
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
tok.save(str(out / "tokenizer.json"))
config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1000000}
(out / "tokenizer_config.json").write_text(json.dumps(config))
"""


@dataclass(frozen=True)
class Peer:
    """An installed peer: its executable and the offline tokenizer it is given."""

    aiperf: Path
    tokenizer: Path
    setup_s: float


def ensure_peer(repo_root: Path, python: str, progress: Progress) -> Peer:
    """Create (first use) or reuse the peer virtualenv; the stamp holds the requirements' sha256."""
    start = time.monotonic()
    requirements = repo_root / REQUIREMENTS
    venv = repo_root / VENV
    if not requirements.is_file():
        raise BenchError(f"{REQUIREMENTS} is missing", hint="restore it from the repository")
    want = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / _STAMP
    if not (stamp.is_file() and stamp.read_text().strip() == want and (venv / "bin" / "aiperf").is_file()):
        progress(f"peer: installing {NAME} {VERSION} into {VENV} (first use; hashed requirements)")
        shutil.rmtree(venv, ignore_errors=True)
        _check([python, "-m", "venv", str(venv)], "creating the peer virtualenv")
        _check(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--require-hashes", "--only-binary=:all:", "-r", str(requirements)],
            f"installing {NAME} from {REQUIREMENTS}",
        )  # fmt: skip
        stamp.write_text(want + "\n")
    tokenizer = venv / TOKENIZER_DIR
    if not (tokenizer / "tokenizer.json").is_file():
        _check([str(venv / "bin" / "python"), "-c", _TOKENIZER_SCRIPT, str(tokenizer)], "writing the byte tokenizer")
    return Peer(venv / "bin" / "aiperf", tokenizer, time.monotonic() - start)


def _check(argv: Sequence[str], what: str) -> None:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        raise BenchError(f"{what} failed: {(done.stderr or done.stdout).strip()[-600:]}")


def run_peer(peer: Peer, sim: SimProcess, *, requests: int, timeout_s: float = 240.0) -> list[dict[str, Any]]:
    """One AIPerf profile, one request at a time, streaming; returns its per-request records."""
    out = Path(tempfile.mkdtemp(prefix="cfk-bench-aiperf-"))
    argv = [
        str(peer.aiperf), "profile", "--model", MODEL, "--url", sim.url, "--endpoint-type", "chat", "--streaming",
        "--tokenizer", str(peer.tokenizer), "--use-server-token-count", "--concurrency", "1",
        "--request-count", str(requests), "--synthetic-input-tokens-mean", "20", "--ui-type", "none",
        "--artifact-dir", str(out), "--server-metrics", "false", "--workers-max", "1",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=out)
        path = out / "profile_export.jsonl"
        if done.returncode != 0 or not path.is_file():
            raise BenchError(f"aiperf exited {done.returncode}: {(done.stdout + done.stderr).strip()[-600:]}")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except subprocess.TimeoutExpired:
        raise BenchError(f"aiperf ran longer than {timeout_s:.0f} s") from None
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _metric(record: dict[str, Any], name: str) -> float | None:
    value = (record.get("metrics") or {}).get(name, {}).get("value")
    return float(value) if isinstance(value, int | float) else None


def peer_errors(
    records: Sequence[dict[str, Any]],
    requests: Sequence[ServerRequest],
    emitted: dict[int, list[int]],
    nominal_tps: float,
    *,
    wall_minus_monotonic_ns: int,
) -> list[CallError]:
    """Pair AIPerf's records (one at a time, in start order) with the server's OpenAI requests.

    AIPerf stamps wall-clock ns derived from ``perf_counter`` (CLOCK_MONOTONIC on Linux); shifted by the
    host's wall − monotonic offset, each request's arrival must lie inside that record's start and end.
    """
    served = sorted((r for r in requests if r.path == OPENAI_PATH), key=lambda r: r.arrival_ns)
    ordered = sorted(records, key=lambda r: int(r["metadata"]["request_start_ns"]))
    if len(served) != len(ordered):
        raise TruthError(f"aiperf reported {len(ordered)} requests, the simulator served {len(served)}")
    out = []
    slack_ns = 2_000_000  # the offset is read once by the bench, AIPerf reads its own: allow 2 ms between them
    for record, request in zip(ordered, served, strict=True):
        meta = record["metadata"]
        start = int(meta["request_start_ns"]) - wall_minus_monotonic_ns
        end = int(meta["request_end_ns"]) - wall_minus_monotonic_ns
        if not start - slack_ns <= request.arrival_ns <= end + slack_ns:
            raise TruthError(f"aiperf request {meta.get('x_request_id')} does not line up with server request "
                             f"{request.request_id}")  # fmt: skip
        ttft = _metric(record, "time_to_first_token")
        tokens = _metric(record, "output_sequence_length")
        if ttft is None or tokens is None:
            raise TruthError(f"aiperf request {meta.get('x_request_id')} has no TTFT or output length")
        tps = _metric(record, "output_token_throughput_per_user")
        out.append(peer_call_error(ttft, tps, int(tokens), request, emitted.get(request.request_id, []), nominal_tps))
    return out
