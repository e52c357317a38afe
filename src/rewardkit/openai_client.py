"""One HTTP client for OpenAI-compatible servers (vLLM, SGLang, llama.cpp's server, hosted APIs).

Used by the subtask annotator (`rewardkit.annotate.backends`) and the zero-shot progress model
(`rewardkit.models.vlm_progress`), so that both send the API key the same way, refuse it over plain
http:// to another machine, retry the same failures and count the same usage.

- `OpenAIClient.post(endpoint, body)`: POST JSON to `{base_url}/{endpoint}`; retries with exponential
  back-off on connection errors, timeouts, HTTP 429 and 5xx (a `Retry-After` header is honoured, capped at
  `max_backoff_s`); any other answer, or the last failure, is a `BackendError` naming the URL.
- `encode_image_data_url`: an (H, W, 3) uint8 frame as a base64 data URL for the chat API's `image_url`.
- `check_key_transport`: the one rule for where the key may go.

The key lives only in the client's request headers: it is never logged, never in an error message and
never in `repr(client)`.
"""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)

# Answers worth asking again: the server is busy (429) or failing for now (5xx).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class BackendError(RewardkitError, RuntimeError):
    """The model could not be reached or its reply was not what the API promises."""


def image_to_pil(image: np.ndarray, max_side: int | None):
    """An (H, W, 3) uint8 array as a PIL image, shrunk so its long side <= max_side (None: as is)."""
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise RewardkitError(f"images must be (H, W, 3) uint8, got {array.shape} {array.dtype}")
    picture = Image.fromarray(array)
    if max_side is not None and max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side))
    return picture


def encode_image_data_url(image: np.ndarray, image_format: str = "jpeg", max_side: int | None = 512) -> str:
    """An (H, W, 3) uint8 frame as a `data:image/...;base64,` URL (resized so its long side <= max_side)."""
    buffer = io.BytesIO()
    kind = image_format.lower()
    image_to_pil(image, max_side).save(buffer, format="JPEG" if kind in ("jpeg", "jpg") else kind.upper())
    mime = "jpeg" if kind in ("jpeg", "jpg") else kind
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def chat_request_body(
    model: str,
    parts: list[str | np.ndarray],
    image_format: str = "jpeg",
    max_image_side: int | None = 512,
    **settings: Any,
) -> dict[str, Any]:
    """The chat-completions body for one user message made of `parts` (text, and (H, W, 3) uint8 frames
    sent as data URLs), in order; `settings` (max_tokens, temperature, ...) are added as they are."""
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, str):
            content.append({"type": "text", "text": part})
        else:
            url = encode_image_data_url(part, image_format, max_image_side)
            content.append({"type": "image_url", "image_url": {"url": url}})
    return {"model": model, "messages": [{"role": "user", "content": content}], **settings}


def is_local_host(host: str | None) -> bool:
    """Whether `host` is this machine (localhost, a loopback address)."""
    import ipaddress

    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_key_transport(base_url: str, api_key: str | None, allow_insecure_http: bool = False) -> None:
    """Refuse to send `api_key` over plain HTTP to another machine unless `allow_insecure_http`."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RewardkitError(f"--base_url must be an http:// or https:// URL, got {base_url!r}")
    if api_key and parts.scheme == "http" and not is_local_host(parts.hostname) and not allow_insecure_http:
        raise RewardkitError(
            f"refusing to send the API key over plain http:// to {parts.hostname} (anyone on the way can "
            "read it): use an https:// --base_url, unset the key's variable (--api_key_env) if the server "
            "needs none, or pass --allow_insecure_http=true"
        )


@dataclass
class Usage:
    """What a client has cost so far: HTTP requests sent (retries included) and tokens (from the answers'
    `usage` field, when the server gives one)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header (seconds, or an HTTP date) in seconds from now; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIClient:
    """POST JSON to an OpenAI-compatible server, with retries and usage counting; safe to share between
    threads (one `httpx.Client`, a lock around the counters).

    Args:
        base_url: the API root, e.g. `http://localhost:8000/v1`.
        api_key: sent as a bearer token when given (never logged or shown).
        timeout_s: seconds to wait for one answer.
        max_retries: extra attempts after a connection error, a timeout, HTTP 429 or 5xx.
        backoff_s: wait before the first retry; doubles each retry (a `Retry-After` header wins).
        max_backoff_s: the longest wait between two attempts.
        allow_insecure_http: send the key over plain `http://` to a host other than this machine.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        max_retries: int = 0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        allow_insecure_http: bool = False,
    ) -> None:
        check_key_transport(base_url, api_key, allow_insecure_http)
        if max_retries < 0 or timeout_s <= 0 or backoff_s < 0 or max_backoff_s < 0:
            raise RewardkitError(
                f"need max_retries >= 0, timeout_s > 0 and back-offs >= 0, got {max_retries}, {timeout_s}, "
                f"{backoff_s}, {max_backoff_s}"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._lock = threading.Lock()
        self._http: Any = None
        self.usage = Usage()

    def __repr__(self) -> str:
        return f"OpenAIClient({self.base_url!r}, key={'set' if self._headers else 'none'})"

    def _client(self) -> Any:
        import httpx

        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout_s, headers=self._headers)
            return self._http

    def close(self) -> None:
        """Close the connection pool (a later `post` opens a new one)."""
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        wait = retry_after_seconds(retry_after)
        if wait is None:
            wait = self.backoff_s * (2**attempt)
        return min(wait, self.max_backoff_s)

    def post(self, endpoint: str, body: dict[str, Any], context: str = "") -> dict[str, Any]:
        """POST `body` to `{base_url}/{endpoint}` and return the JSON answer (a dict).

        `context` (e.g. "episode 3") is added to error messages. Retries as the class says; raises
        `BackendError` naming the URL, the attempts and the last problem.
        """
        import httpx

        url = f"{self.base_url}/{endpoint.lstrip('/')}"
        where = f" ({context})" if context else ""
        attempts = self.max_retries + 1
        problem = ""
        for attempt in range(attempts):
            retry_after = None
            with self._lock:
                self.usage.requests += 1
            try:
                response = self._client().post(url, json=body)
            except httpx.HTTPError as e:
                problem = f"cannot reach {url}: {str(e) or type(e).__name__}"
            else:
                if response.status_code == 200:
                    try:
                        answer = response.json()
                    except ValueError as e:
                        raise BackendError(f"{url} did not answer JSON{where}: {response.text[:300]}") from e
                    if not isinstance(answer, dict):
                        raise BackendError(
                            f"{url} did not answer a JSON object{where}: {response.text[:300]}"
                        )
                    self._count_tokens(answer)
                    return answer
                problem = f"{url} answered HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUSES:
                    raise BackendError(problem + where)
                retry_after = response.headers.get("Retry-After")
            if attempt + 1 < attempts:
                wait = self._wait(attempt, retry_after)
                logger.warning(
                    "%s%s; retrying in %.1f s (%d/%d)", problem, where, wait, attempt + 1, attempts
                )
                time.sleep(wait)
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        raise BackendError(f"{problem}{where}{tried}")

    def _count_tokens(self, answer: dict[str, Any]) -> None:
        usage = answer.get("usage")
        if not isinstance(usage, dict):
            return
        with self._lock:
            for name in ("prompt_tokens", "completion_tokens"):
                value = usage.get(name)
                if isinstance(value, int):
                    setattr(self.usage, name, getattr(self.usage, name) + value)
