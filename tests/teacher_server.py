"""A real OpenAI-compatible teacher for the tests: a threaded HTTP server on loopback, scripted per test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from mentee.server.teachers.base import STANDALONE_PROMPT


class TeacherHandler(BaseHTTPRequestHandler):
    """Answers ``answers[last user message]`` (else ``answer``); a rewrite request gets ``rewrites[...]``, a
    paraphrase request ``paraphrases[question]``, a question asked at a temperature above 0 ``sampled[question]``
    when set. ``mode``: "ok", "slow" (sleeps ``delay_s`` first), "error" (HTTP 500), "garbage" (200 with an HTML
    page) or "wrong-json" (200 with JSON that is no chat completion)."""

    mode: ClassVar[str] = "ok"
    delay_s: ClassVar[float] = 2.0
    answer: ClassVar[str] = "Lima"
    answers: ClassVar[dict[str, str]] = {}
    rewrites: ClassVar[dict[str, str]] = {}
    paraphrases: ClassVar[dict[str, str]] = {}
    sampled: ClassVar[dict[str, str]] = {}
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body)
        if self.mode == "slow":
            time.sleep(self.delay_s)
        if self.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        if self.mode in ("garbage", "wrong-json"):  # a proxy's error page, or JSON of some other API, with a 200
            page = b"<html><body>502 Bad Gateway</body></html>" if self.mode == "garbage" else b'{"detail": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        messages = body.get("messages", [])
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if messages and messages[0]["role"] == "system" and messages[0]["content"] == STANDALONE_PROMPT:
            question = last.rsplit("Last question: ", 1)[-1]
            content = self.rewrites.get(question, "I don't know.")
        elif messages and messages[0]["content"].startswith("Rewrite the question"):
            content = self.paraphrases.get(last, "I don't know.")
        elif body.get("temperature") and last in self.sampled:
            content = self.sampled[last]
        else:
            content = self.answers.get(last, self.answer)
        payload = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def running_teacher(**script: Any) -> Iterator[tuple[str, type[TeacherHandler]]]:
    """A teacher server on a free loopback port: its base URL and its (scriptable) handler class."""
    handler = type(
        "Handler",
        (TeacherHandler,),
        {"received": [], "answers": {}, "rewrites": {}, "paraphrases": {}, "sampled": {}, **script},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
