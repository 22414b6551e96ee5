"""Talking to a running mentee server over HTTP (what the UI, the benchmarks and the tests share)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import MenteeError

if TYPE_CHECKING:
    from ..core.config import Settings


def wait_until_healthy(
    url: str,
    *,
    timeout_s: float = 600.0,
    process: subprocess.Popen[str] | subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> float:
    """Poll ``{url}/health`` until it answers 200; the seconds it took. :class:`MenteeError` when ``process`` (the
    server, if started here) exits first or ``timeout_s`` passes, with the end of ``log_path`` when given."""
    import httpx

    started = time.monotonic()

    def tail() -> str:
        return log_path.read_text(errors="replace")[-3000:] if log_path is not None and log_path.is_file() else ""

    while time.monotonic() - started < timeout_s:
        if process is not None and process.poll() is not None:
            msg = f"the mentee server exited (code {process.returncode}) before it was healthy:\n{tail()}"
            raise MenteeError(msg)
        try:
            if httpx.get(f"{url.rstrip('/')}/health", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    msg = f"the mentee server at {url} was not healthy after {timeout_s:.0f} s:\n{tail()}"
    raise MenteeError(msg)


class MenteeClientError(MenteeError):
    """The mentee server refused a request (its message, the HTTP status and the error object it sent, e.g. the
    running round's ``round_id`` on a 409) or could not be reached."""

    def __init__(self, message: str, status: int | None = None, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error or {}

    @property
    def no_source(self) -> bool:
        """The server had no source able to answer (503: strict mode, or a student guess with nothing in it)."""
        return self.status == 503 and "no source could answer" in str(self)


class MenteeClient:
    """A mentee server's chat and admin routes over HTTP, with the server's own error messages on failure."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        admin_key: str | None = None,
        timeout_s: float = 120.0,
        http_client: Any = None,
    ) -> None:
        """``http_client``: an ``httpx.Client`` to send through (e.g. FastAPI's in-process test client)."""
        import httpx

        self.url = url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key or None
        self.admin_key = admin_key or None
        self._own_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(base_url=self.url, timeout=timeout_s)
        self.timeout_s = timeout_s
        self._model: str | None = None

    @classmethod
    def for_settings(
        cls, url: str, settings: Settings, *, timeout_s: float = 120.0, http_client: Any = None
    ) -> MenteeClient:
        """A client with the keys of ``settings`` (``MENTEE_API_KEY`` / ``MENTEE_ADMIN_KEY``)."""
        return cls(
            url,
            api_key=_secret(settings.api_key),
            admin_key=_secret(settings.admin_key),
            timeout_s=timeout_s,
            http_client=http_client,
        )

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # -- chat ------------------------------------------------------------------------------------------------

    def chat_stream(
        self, messages: list[dict[str, str]], *, memory: bool = True, teacher: bool = True, learn: bool = True
    ) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """The answer as it streams: ``(text so far, None)`` per piece, then ``(text, mentee info)`` once."""
        import openai

        client = openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key=self.api_key or "not-needed",
            timeout=self.timeout_s,
            max_retries=0,
            http_client=None if self._own_http else self._http,
        )
        text = ""
        try:
            stream = client.chat.completions.create(
                model=self._model_name(),
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                extra_body={"mentee": {"memory": memory, "teacher": teacher, "learn": learn}},
            )
            for chunk in stream:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    text += piece
                    yield text, None
                info = (chunk.model_extra or {}).get("mentee")
                if info is not None:
                    yield text, info
        except openai.APIStatusError as e:
            raise MenteeClientError(_openai_message(e), e.status_code) from e
        except openai.APIConnectionError as e:
            msg = f"cannot reach the mentee server at {self.url}: {e}"
            raise MenteeClientError(msg) from e
        except openai.APIError as e:  # the stream's error event: it failed after it opened
            status = e.body.get("status") if isinstance(e.body, dict) else None
            raise MenteeClientError(f"the server answered {status or 'an error'}: {e.message}", status) from e
        finally:
            if self._own_http:
                client.close()

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        memory: bool = True,
        teacher: bool = True,
        learn: bool = True,
        guided: bool = False,
    ) -> tuple[str, dict[str, Any], dict[str, int]]:
        """One whole answer: ``(text, mentee info, usage)``; usage counts the tokens of whoever answered.
        ``guided``: through the guided run's own memory (sent with the admin key)."""
        body = {
            "model": self._model_name(),
            "messages": messages,
            "mentee": {"memory": memory, "teacher": teacher, "learn": learn} | ({"guided": True} if guided else {}),
        }
        reply = self._call("POST", "/v1/chat/completions", admin=guided, json=body)
        usage = reply.get("usage") or {}
        text = reply["choices"][0]["message"].get("content") or ""
        return (
            text,
            dict(reply.get("mentee") or {}),
            {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")},
        )

    def _model_name(self) -> str:
        if self._model is None:  # asked once: a server's routed model does not change while it runs
            models = self._call("GET", "/v1/models", admin=False)["data"]
            self._model = str(models[0]["id"]) if models else "mentee"
        return self._model

    # -- admin -----------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health", admin=False))

    def about(self) -> dict[str, Any]:
        """The teacher connected, the student, the threshold and example questions (chat key)."""
        return dict(self._call("GET", "/v1/mentee/about", admin=False))

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/mentee/stats"))

    def memory_list(
        self,
        query: str | None = None,
        *,
        source: str | None = None,
        trust: str | None = None,
        learned: bool | None = None,
        disputed: bool | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Remembered items: nearest to ``query`` when given (filters then apply to those), else the newest."""
        params: dict[str, Any] = {"limit": limit}
        if query:
            params["q"] = query
        if source:
            params["source"] = source
        if trust:
            params["trust"] = trust
        if learned is not None:
            params["learned"] = "true" if learned else "false"
        if disputed is not None:
            params["disputed"] = "true" if disputed else "false"
        items = list(self._call("GET", "/v1/mentee/memory", params=params)["data"])
        if query:  # the server's search ranks by meaning only
            items = [
                item
                for item in items
                if (not source or item.get("source") == source)
                and (not trust or item.get("trust") == trust)
                and (learned is None or bool(item.get("learned_by")) == learned)
                and (disputed is None or bool(item.get("disputed_by")) == disputed)
            ]
        return items

    def memory_get(self, record_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/mentee/memory/{record_id}"))

    def correct(self, record_id: str, answer: str, *, by: str = "ui") -> dict[str, Any]:
        """Replace a remembered answer; it is then trusted as a person's."""
        return dict(self._call("PATCH", f"/v1/mentee/memory/{record_id}", json={"answer": answer, "by": by}))

    def remember(self, question: str, answer: str, *, by: str = "ui") -> dict[str, Any]:
        """Add a person's answer to a question."""
        return dict(self._call("POST", "/v1/mentee/memory", json={"question": question, "answer": answer, "by": by}))

    def forget(self, record_id: str) -> None:
        self._call("DELETE", f"/v1/mentee/memory/{record_id}")

    def train(self, *, guided: bool = False) -> dict[str, Any]:
        """Start a round (``guided``: on the guided run's items only); the job."""
        return dict(self._call("POST", "/v1/mentee/train", json={"guided": True} if guided else None))

    def clear_guided(self) -> int:
        """Forget the guided run's items; how many there were."""
        return int(self._call("DELETE", "/v1/mentee/guided/memory")["deleted"])

    def train_status(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/mentee/train/{job_id}"))

    def adapters(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/mentee/adapters"))

    def activate(self, version: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/mentee/adapters/{version}/activate"))

    def _call(self, method: str, path: str, *, admin: bool = True, **kwargs: Any) -> Any:
        import httpx

        key = self.admin_key if admin else self.api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            response = self._http.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        except httpx.HTTPError as e:
            msg = f"cannot reach the mentee server at {self.url}: {e}"
            raise MenteeClientError(msg) from e
        if response.status_code >= 400:
            error = _error_object(response)
            raise MenteeClientError(_http_message(response, error), response.status_code, error)
        return response.json() if response.content else None


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _error_object(response: Any) -> dict[str, Any]:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _http_message(response: Any, error: dict[str, Any]) -> str:
    message = error.get("message")
    return f"the server answered {response.status_code}: {message or response.text[:300] or response.reason_phrase}"


def _openai_message(error: Any) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") or (body.get("error") or {}).get("message") if body else None
    return f"the server answered {error.status_code}: {message or error.message}"
