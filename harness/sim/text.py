"""Deterministic stand-in text: prompt token counts, answer lengths and answer tokens.

Nothing here is a language model. A request's *content key* (seed, model, prompt text, sampling options)
seeds a private RNG, so the same seed and the same request give the same tokens, whatever else the server is
doing. Output length distribution (before ``num_predict`` caps it)::

    prompt ≥ 400 tokens (an analysis/report prompt):  uniform 900–1200 tokens
    100–399 tokens:                                    uniform 400–700
    shorter prompts:                                   uniform 150–450
    then, with probability 0.08, × uniform 3–4          (the reports' occasional very long answer)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

SAMPLING_OPTIONS = ("temperature", "top_p", "top_k", "seed", "repeat_penalty", "min_p")
LONG_ANSWER_PROBABILITY = 0.08

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")

VOCABULARY: tuple[str, ...] = tuple(
    """the a of to and in is for on with that as by this from at are be it an or which throughput latency
    model agent agents GPU memory bandwidth tokens per second request requests benchmark benchmarks run runs
    configuration context offload layers decode prompt evaluation time first token concurrency parallel
    efficiency speedup baseline chimera analysis report results data performance mean median variance
    observed measured shows suggests higher lower increase decrease stable consistent contention queue server
    Ollama runtime async Rust Python cache kernel batch quantization weights load cold warm overhead
    recommendation finding summary section table figure trend across between under while when because however
    therefore overall significant marginal improvement regression""".split()  # noqa: SIM905
)
_PUNCTUATION = (".", ",", ".\n\n", ":", ";")


def count_prompt_tokens(text: str) -> int:
    """A simple deterministic tokenizer: words and punctuation marks, plus 1 for the template's BOS."""
    return len(_TOKEN_RE.findall(text)) + 1


def content_key(seed: int, model: str, prompt_text: str, options: Mapping[str, object]) -> bytes:
    """What makes "the same request" for determinism (num_predict/num_ctx/num_gpu only cap or time it)."""
    sampling = {k: options[k] for k in SAMPLING_OPTIONS if k in options}
    blob = json.dumps([seed, model, prompt_text, sampling], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).digest()


def natural_length(key: bytes, prompt_tokens: int) -> int:
    """The uncapped answer length for a request (see the module docstring)."""
    rng = random.Random(key + b"length")
    n = rng.randint(*length_range(prompt_tokens))
    if rng.random() < LONG_ANSWER_PROBABILITY:
        n = int(n * rng.uniform(*LONG_ANSWER_FACTOR))
    return n


LONG_ANSWER_FACTOR = (3.0, 4.0)


def length_range(prompt_tokens: int) -> tuple[int, int]:
    """The uniform range of an answer's length before the occasional long answer, by prompt size."""
    if prompt_tokens >= 400:
        return 900, 1200
    if prompt_tokens >= 100:
        return 400, 700
    return 150, 450


def expected_length(prompt_tokens: int) -> float:
    """The mean of :func:`natural_length` for a prompt of this size (what an ETA can plan with)."""
    low, high = length_range(prompt_tokens)
    long_mean = sum(LONG_ANSWER_FACTOR) / 2
    return (low + high) / 2 * (1 - LONG_ANSWER_PROBABILITY + LONG_ANSWER_PROBABILITY * long_mean)


@dataclass(frozen=True)
class Plan:
    """How many tokens a request generates and why it stops."""

    eval_count: int
    done_reason: str  # "stop" or "length", as Ollama reports


def plan_length(
    key: bytes,
    prompt_tokens: int,
    *,
    num_predict: int | None,
    num_ctx: int,
    forced_tokens: int | None,
) -> Plan:
    """Natural length (or ``--tokens``), capped by ``num_predict`` (−1: no cap, −2: fill the context)."""
    natural = forced_tokens if forced_tokens is not None else natural_length(key, prompt_tokens)
    cap: int | None = None
    if num_predict is not None:
        if num_predict == -2:
            cap = max(num_ctx - prompt_tokens, 0)
        elif num_predict >= 0:
            cap = num_predict
    if cap is not None and cap < natural:
        return Plan(cap, "length")
    return Plan(natural, "stop")


class TokenStream:
    """The answer's tokens in order; each token is one streamed chunk (a word with its leading space)."""

    def __init__(self, key: bytes) -> None:
        self._rng = random.Random(key + b"tokens")
        self._index = 0

    def next(self) -> tuple[int, str]:
        """(vocabulary id, text) of the next token."""
        rng = self._rng
        word_id = rng.randrange(len(VOCABULARY))
        text = VOCABULARY[word_id]
        text = text.capitalize() if self._index == 0 else " " + text
        if rng.random() < 0.08:
            text += _PUNCTUATION[rng.randrange(len(_PUNCTUATION))]
        self._index += 1
        return word_id, text
