"""VLM backends: one method, `complete(parts) -> str`, where parts are text and (H, W, 3) uint8 images.

- `OpenAICompatibleBackend`: POST `{base_url}/chat/completions` (the OpenAI chat API that vLLM, SGLang,
  llama.cpp's server and others expose), images as base64 data URLs.
- `TransformersBackend`: a local `AutoModelForImageTextToText` (e.g. Qwen2.5-VL / Qwen3-VL), loaded
  lazily from safetensors weights.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from rewardkit.errors import RewardkitError

logger = logging.getLogger(__name__)

Part = str | np.ndarray


class BackendError(RewardkitError, RuntimeError):
    """The model could not be reached or its reply was not a chat completion."""


class VLMBackend(Protocol):
    """Anything that answers a prompt made of text and images (H, W, 3) uint8, in order."""

    def complete(self, parts: Sequence[Part]) -> str: ...


def _to_pil(image: np.ndarray, max_side: int | None):
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
    _to_pil(image, max_side).save(buffer, format="JPEG" if kind in ("jpeg", "jpg") else kind.upper())
    mime = "jpeg" if kind in ("jpeg", "jpg") else kind
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


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


class OpenAICompatibleBackend:
    """Chat completions over HTTP (OpenAI's API shape).

    Args:
        base_url: the API root, e.g. `http://localhost:8000/v1` (`/chat/completions` is appended).
        model: the served model name.
        api_key: sent as a bearer token when given.
        timeout_s: seconds to wait for one reply.
        max_tokens, temperature: generation settings sent with the request.
        image_format, max_image_side: how frames are encoded.
        allow_insecure_http: send the API key over plain `http://` to a host other than this machine
            (refused by default: anyone on the path could read the key).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        max_tokens: int = 2048,
        temperature: float = 0.0,
        image_format: str = "jpeg",
        max_image_side: int | None = 512,
        allow_insecure_http: bool = False,
    ) -> None:
        check_key_transport(base_url, api_key, allow_insecure_http)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.image_format = image_format
        self.max_image_side = max_image_side

    def request_body(self, parts: Sequence[Part]) -> dict[str, Any]:
        """The JSON body sent for `parts` (one user message, text and image_url items in order)."""
        content: list[dict[str, Any]] = []
        for part in parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            else:
                url = encode_image_data_url(part, self.image_format, self.max_image_side)
                content.append({"type": "image_url", "image_url": {"url": url}})
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def complete(self, parts: Sequence[Part]) -> str:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = httpx.post(
                self.url, json=self.request_body(parts), headers=headers, timeout=self.timeout_s
            )
        except httpx.HTTPError as e:
            raise BackendError(f"cannot reach {self.url}: {e}") from e
        if response.status_code != 200:
            raise BackendError(f"{self.url} answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise BackendError(f"{self.url} did not answer a chat completion: {response.text[:300]}") from e
        if isinstance(content, list):  # some servers return content parts
            content = "".join(item.get("text", "") for item in content if isinstance(item, dict))
        if not isinstance(content, str):
            raise BackendError(f"{self.url} answered no text: {content!r}")
        return content


class TransformersBackend:
    """A local transformers vision-language model (image-text-to-text with a chat template).

    Args:
        model_id: hub id or local folder of the model (weights loaded as safetensors).
        device: torch device for the model ("auto": cuda when available).
        max_new_tokens: generation length.
        model, processor: already-built objects to use instead of loading `model_id`.
    """

    def __init__(
        self,
        model_id: str | None = None,
        device: str = "auto",
        max_new_tokens: int = 2048,
        max_image_side: int | None = 512,
        model: Any = None,
        processor: Any = None,
    ) -> None:
        if model_id is None and (model is None or processor is None):
            raise RewardkitError("TransformersBackend needs a model_id, or both a model and a processor")
        self.model_id = model_id
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.max_image_side = max_image_side
        self.model = model
        self.processor = processor

    def _load(self) -> None:
        if self.model is not None and self.processor is not None:
            return
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        logger.info("loading %s on %s", self.model_id, device)
        self.processor = AutoProcessor.from_pretrained(self.model_id)
        self.model = AutoModelForImageTextToText.from_pretrained(
            self.model_id, torch_dtype="auto", use_safetensors=True
        ).to(device)
        self.model.eval()

    def complete(self, parts: Sequence[Part]) -> str:
        self._load()
        content = [
            {"type": "text", "text": part}
            if isinstance(part, str)
            else {"type": "image", "image": _to_pil(part, self.max_image_side)}
            for part in parts
        ]
        inputs = self.processor.apply_chat_template(
            [{"role": "user", "content": content}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        inputs = inputs.to(self.model.device)
        output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0]


# Backend name -> class, for the CLI's `--backend=`.
BACKENDS: dict[str, type] = {"openai": OpenAICompatibleBackend, "transformers": TransformersBackend}


def make_backend(
    backend: str,
    model: str,
    base_url: str = "http://localhost:8000/v1",
    api_key: str | None = None,
    timeout_s: float = 300.0,
    max_new_tokens: int = 2048,
    device: str = "auto",
    allow_insecure_http: bool = False,
) -> VLMBackend:
    """Build the backend named `backend` (a key of `BACKENDS`) for `model` (served name or model id)."""
    if backend not in BACKENDS:
        raise RewardkitError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if not model:
        what = "the served model name" if backend == "openai" else "the model id or folder"
        raise RewardkitError(f"give {what} with --model=NAME")
    if backend == "openai":
        return OpenAICompatibleBackend(
            base_url,
            model,
            api_key=api_key,
            timeout_s=timeout_s,
            max_tokens=max_new_tokens,
            allow_insecure_http=allow_insecure_http,
        )
    return TransformersBackend(model, device=device, max_new_tokens=max_new_tokens)
