"""VLM backends: one method, `complete(parts) -> str`, where parts are text and (H, W, 3) uint8 images.

- `OpenAICompatibleBackend`: POST `{base_url}/chat/completions` (the OpenAI chat API that vLLM, SGLang,
  llama.cpp's server and others expose), images as base64 data URLs.
- `TransformersBackend`: a local `AutoModelForImageTextToText` (e.g. Qwen2.5-VL / Qwen3-VL), loaded
  lazily from safetensors weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from rewardkit.errors import RewardkitError

# The HTTP side is shared with the zero-shot progress model (rewardkit.models.vlm_progress); these names
# stay importable from here.
from rewardkit.openai_client import (  # noqa: F401
    BackendError,
    OpenAIClient,
    chat_request_body,
    check_key_transport,
    encode_image_data_url,
    image_to_pil,
    is_local_host,
)

logger = logging.getLogger(__name__)

Part = str | np.ndarray


class VLMBackend(Protocol):
    """Anything that answers a prompt made of text and images (H, W, 3) uint8, in order."""

    def complete(self, parts: Sequence[Part]) -> str: ...


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
        self.client = OpenAIClient(base_url, api_key, timeout_s, allow_insecure_http=allow_insecure_http)
        self.url = self.client.base_url + "/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.image_format = image_format
        self.max_image_side = max_image_side

    def request_body(self, parts: Sequence[Part]) -> dict[str, Any]:
        """The JSON body sent for `parts` (one user message, text and image_url items in order)."""
        return chat_request_body(
            self.model,
            list(parts),
            self.image_format,
            self.max_image_side,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )

    def complete(self, parts: Sequence[Part]) -> str:
        # No HTTP-level retries here: the annotator retries a failed episode itself and counts failures.
        answer = self.client.post("chat/completions", self.request_body(parts))
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise BackendError(f"{self.url} did not answer a chat completion: {str(answer)[:300]}") from e
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
            else {"type": "image", "image": image_to_pil(part, self.max_image_side)}
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
