"""Wire shapes: the JSON objects Ollama 0.12.10 sends for ``/api/generate``, ``/api/chat`` and its
OpenAI-compatible ``/v1/chat/completions``. The generation engine is shape-agnostic; a format turns tokens and
final timings into bytes. Chunk objects carry only Ollama's own fields; the ``simulated`` marker goes on final
and non-streaming objects only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def dumps(obj: object) -> bytes:
    """Compact JSON like Go's encoding/json."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339_ns(unix_ns: int | None = None) -> str:
    """``2025-11-23T10:38:00.123456789Z``, the nanosecond UTC timestamp form Ollama writes."""
    ns = time.time_ns() if unix_ns is None else unix_ns
    seconds, frac = divmod(ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


@dataclass(frozen=True)
class Timings:
    """The final timing fields, in ns of real elapsed server time."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int
    done_reason: str

    def fields(self) -> dict[str, Any]:
        return {
            "done_reason": self.done_reason,
            "total_duration": self.total_duration,
            "load_duration": self.load_duration,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }


class Format:
    """How one endpoint frames a generation."""

    stream_content_type = "application/x-ndjson"

    def __init__(self, model: str, simulated: dict[str, Any], request_id: int) -> None:
        self.model = model
        self.simulated = simulated
        self.request_id = request_id

    def chunk(self, text: str) -> bytes:
        raise NotImplementedError

    def final_chunks(self, timings: Timings, context: list[int]) -> list[bytes]:
        raise NotImplementedError

    def whole(self, text: str, timings: Timings, context: list[int]) -> dict[str, Any]:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message}

    def control(self, done_reason: str) -> dict[str, Any]:
        """The answer to a load/unload request (empty prompt)."""
        raise NotImplementedError


class GenerateFormat(Format):
    def chunk(self, text: str) -> bytes:
        return dumps({"model": self.model, "created_at": rfc3339_ns(), "response": text, "done": False}) + b"\n"

    def final_chunks(self, timings: Timings, context: list[int]) -> list[bytes]:
        return [dumps(self.whole("", timings, context)) + b"\n"]

    def whole(self, text: str, timings: Timings, context: list[int]) -> dict[str, Any]:
        return {
            "model": self.model,
            "created_at": rfc3339_ns(),
            "response": text,
            "done": True,
            "done_reason": timings.done_reason,
            "context": context,
            **{k: v for k, v in timings.fields().items() if k != "done_reason"},
            "simulated": self.simulated,
        }

    def control(self, done_reason: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "created_at": rfc3339_ns(),
            "response": "",
            "done": True,
            "done_reason": done_reason,
            "simulated": self.simulated,
        }


class ChatFormat(Format):
    def chunk(self, text: str) -> bytes:
        return (
            dumps(
                {
                    "model": self.model,
                    "created_at": rfc3339_ns(),
                    "message": {"role": "assistant", "content": text},
                    "done": False,
                }
            )
            + b"\n"
        )

    def final_chunks(self, timings: Timings, context: list[int]) -> list[bytes]:
        return [dumps(self.whole("", timings, context)) + b"\n"]

    def whole(self, text: str, timings: Timings, context: list[int]) -> dict[str, Any]:
        return {
            "model": self.model,
            "created_at": rfc3339_ns(),
            "message": {"role": "assistant", "content": text},
            "done": True,
            **timings.fields(),
            "simulated": self.simulated,
        }

    def control(self, done_reason: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "created_at": rfc3339_ns(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": done_reason,
            "simulated": self.simulated,
        }


class OpenAIChatFormat(Format):
    """``/v1/chat/completions``: SSE ``data: {...}`` events ending with ``data: [DONE]``."""

    stream_content_type = "text/event-stream"

    def __init__(self, model: str, simulated: dict[str, Any], request_id: int, *, include_usage: bool) -> None:
        super().__init__(model, simulated, request_id)
        self.include_usage = include_usage
        self.created = int(time.time())
        self.id = f"chatcmpl-{request_id}"

    def _base(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_ollama",
        }

    @staticmethod
    def _event(obj: object) -> bytes:
        return b"data: " + dumps(obj) + b"\n\n"

    def chunk(self, text: str) -> bytes:
        obj = self._base("chat.completion.chunk")
        obj["choices"] = [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]
        return self._event(obj)

    @staticmethod
    def _usage(timings: Timings) -> dict[str, int]:
        return {
            "prompt_tokens": timings.prompt_eval_count,
            "completion_tokens": timings.eval_count,
            "total_tokens": timings.prompt_eval_count + timings.eval_count,
        }

    def final_chunks(self, timings: Timings, context: list[int]) -> list[bytes]:
        finish = self._base("chat.completion.chunk")
        finish["choices"] = [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": timings.done_reason}
        ]
        events = [finish]
        if self.include_usage:
            usage = self._base("chat.completion.chunk")
            usage["choices"] = []
            usage["usage"] = self._usage(timings)
            events.append(usage)
        events[-1]["simulated"] = self.simulated
        return [*(self._event(e) for e in events), b"data: [DONE]\n\n"]

    def whole(self, text: str, timings: Timings, context: list[int]) -> dict[str, Any]:
        obj = self._base("chat.completion")
        obj["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": timings.done_reason,
            }
        ]
        obj["usage"] = self._usage(timings)
        obj["simulated"] = self.simulated
        return obj

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def control(self, done_reason: str) -> dict[str, Any]:
        return self.whole("", Timings(0, 0, 0, 0, 0, 0, done_reason), [])
