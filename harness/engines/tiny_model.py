"""A deterministic tiny GGUF model for tests and CI: llama architecture, a real vocabulary, seeded random weights.

Nothing about it is a language model worth reading; it exists so a real engine loads real weights, tokenizes
real prompts with a real tokenizer and decodes real tokens on any CPU in seconds. The vocabulary (tokens, scores,
types, special ids) is copied from one of the ``ggml-vocab-*.gguf`` files llama.cpp vendors; the weights come
from numpy's PCG64 with a fixed seed. Same vocabulary file, seed, shape and ``gguf`` version give the same bytes
on every machine, so the file's sha256 is the model digest the records carry.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from harness.digests import sha256_file
from harness.errors import BadInputError

DEFAULT_VOCAB = "ggml-vocab-llama-spm.gguf"
TOKENIZER_PREFIX = "tokenizer."


@dataclass(frozen=True)
class TinyShape:
    """The model's size: about 4 MB with the 32 000-token llama-spm vocabulary."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 4
    n_ff: int = 128
    context_length: int = 8192
    seed: int = 20240601


@dataclass(frozen=True)
class TinyModel:
    path: Path
    sha256: str
    vocab_file: str
    shape: TinyShape
    size_bytes: int


def _vocab_fields(vocab: Path) -> list[tuple[str, Any, gguf.GGUFValueType, gguf.GGUFValueType | None]]:
    try:
        reader = gguf.GGUFReader(vocab)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read vocabulary {vocab}: {exc}", hint="pass a ggml-vocab-*.gguf file") from None
    fields = []
    for key, field in reader.fields.items():
        if not key.startswith(TOKENIZER_PREFIX):
            continue
        main = field.types[0]
        sub = field.types[1] if main == gguf.GGUFValueType.ARRAY else None
        fields.append((key, field.contents(), main, sub))
    if not any(key == "tokenizer.ggml.tokens" for key, *_ in fields):
        raise BadInputError(f"{vocab} has no tokenizer.ggml.tokens", hint="pass a ggml-vocab-*.gguf file")
    return fields


def _tensors(shape: TinyShape, n_vocab: int) -> list[tuple[str, np.ndarray]]:
    """Every llama tensor in a fixed order, drawn from one seeded generator (numpy shape = ggml ne reversed)."""
    rng = np.random.default_rng(shape.seed)
    head_dim = shape.n_embd // shape.n_head
    kv = head_dim * shape.n_head_kv

    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    out = [("token_embd.weight", weight(n_vocab, shape.n_embd))]
    for i in range(shape.n_layer):
        out += [
            (f"blk.{i}.attn_norm.weight", ones(shape.n_embd)),
            (f"blk.{i}.attn_q.weight", weight(shape.n_embd, shape.n_embd)),
            (f"blk.{i}.attn_k.weight", weight(kv, shape.n_embd)),
            (f"blk.{i}.attn_v.weight", weight(kv, shape.n_embd)),
            (f"blk.{i}.attn_output.weight", weight(shape.n_embd, shape.n_embd)),
            (f"blk.{i}.ffn_norm.weight", ones(shape.n_embd)),
            (f"blk.{i}.ffn_gate.weight", weight(shape.n_ff, shape.n_embd)),
            (f"blk.{i}.ffn_up.weight", weight(shape.n_ff, shape.n_embd)),
            (f"blk.{i}.ffn_down.weight", weight(shape.n_embd, shape.n_ff)),
        ]
    out.append(("output_norm.weight", ones(shape.n_embd)))
    return out  # no output.weight: llama.cpp ties it to token_embd


def write_tiny_model(vocab: Path, dest: Path, shape: TinyShape = TinyShape()) -> TinyModel:
    """Write the model to ``dest`` (atomically) and return its digest."""
    fields = _vocab_fields(vocab)
    tokens = next(value for key, value, *_ in fields if key == "tokenizer.ggml.tokens")
    if shape.n_embd % shape.n_head or shape.n_head % shape.n_head_kv:
        raise BadInputError("n_embd must divide by n_head and n_head by n_head_kv", hint="fix the tiny shape")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, "llama")
        writer.add_name(f"chimeraforge-tiny-{shape.n_layer}x{shape.n_embd}-seed{shape.seed}")
        writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
        writer.add_context_length(shape.context_length)
        writer.add_embedding_length(shape.n_embd)
        writer.add_block_count(shape.n_layer)
        writer.add_feed_forward_length(shape.n_ff)
        writer.add_head_count(shape.n_head)
        writer.add_head_count_kv(shape.n_head_kv)
        writer.add_rope_dimension_count(shape.n_embd // shape.n_head)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_vocab_size(len(tokens))
        for key, value, main, sub in fields:
            writer.add_key_value(key, value, main, sub_type=sub)
        for name, array in _tensors(shape, len(tokens)):
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.chmod(0o644)  # the server container runs as a non-root user
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return TinyModel(dest, sha256_file(dest), vocab.name, shape, dest.stat().st_size)


def describe(model: TinyModel) -> dict[str, object]:
    return {"path": str(model.path), "sha256": model.sha256, "vocab": model.vocab_file, **asdict(model.shape)}
