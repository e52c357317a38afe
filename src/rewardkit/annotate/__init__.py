"""Automatic subtask annotation by a vision-language model (VLM), behind pluggable backends.

`annotate_episode` samples an episode's frames, asks a backend for a timeline then JSON, validates the
answer (names from the list, in order, covering the episode, within bounds) and retries when it is
malformed; `annotate_dataset` runs it over a dataset's episodes and writes the answers once. Backends: `OpenAICompatibleBackend` (any server exposing `/v1/chat/completions`, such as
vLLM) and `TransformersBackend` (a local transformers image-text-to-text model).
"""

from rewardkit.annotate.annotator import (
    AnnotationError,
    AnswerError,
    annotate_episode,
    build_prompt,
    parse_answer,
    sample_frame_indices,
)
from rewardkit.annotate.backends import (
    BACKENDS,
    BackendError,
    OpenAICompatibleBackend,
    TransformersBackend,
    VLMBackend,
    encode_image_data_url,
    make_backend,
)
from rewardkit.annotate.dataset_run import BackendUnavailable, VlmRunResult, annotate_dataset

__all__ = [
    "BACKENDS",
    "AnnotationError",
    "AnswerError",
    "BackendError",
    "BackendUnavailable",
    "OpenAICompatibleBackend",
    "TransformersBackend",
    "VLMBackend",
    "VlmRunResult",
    "annotate_dataset",
    "annotate_episode",
    "build_prompt",
    "encode_image_data_url",
    "make_backend",
    "parse_answer",
    "sample_frame_indices",
]
