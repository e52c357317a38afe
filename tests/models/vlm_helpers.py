"""A tiny, randomly initialised Qwen3-VL saved as a hub-style folder, for the VLM reward models' tests
(Robometer, TOPReward): the real weights are never downloaded in a test.

`make_tiny_qwen3_vl(folder)` writes what `AutoConfig`, `AutoTokenizer`, `AutoProcessor` and
`Qwen3VLForConditionalGeneration.from_pretrained` read from a folder, built offline:
- a byte-level BPE tokenizer (every byte is a token, no merges: any text tokenizes) with Qwen's special
  tokens (`<|im_start|>`, `<|vision_start|>`, `<|image_pad|>`, ...), built with the `tokenizers` library;
- a chat template with Qwen3-VL's layout for text, image and video parts (`add_vision_id` numbers the
  pictures, as Qwen's own template does);
- Qwen3-VL's image and video processors (patch 16, merge 2, as the real model);
- a Qwen3-VL with 2 text layers of width 32 and a 1-layer vision tower of width 32 (seeded: the same
  folder content for the same seed).
"""

from __future__ import annotations

from pathlib import Path

import torch

# Qwen's special tokens, in Qwen's order (ids follow the byte vocabulary).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen3-VL's chat-template layout for text / image / video parts, without tools and thinking.
CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) -%}{%- set video_count = namespace(value=0) -%}"
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' or 'image' in content -%}"
    "{%- set image_count.value = image_count.value + 1 -%}"
    "{%- if add_vision_id -%}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content['type'] == 'video' or 'video' in content -%}"
    "{%- set video_count.value = video_count.value + 1 -%}"
    "{%- if add_vision_id -%}Video {{ video_count.value }}: {% endif -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content -%}{{ content['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def as_qwen_tokenizer(tokenizer):
    """A `tokenizers.Tokenizer` as a transformers fast tokenizer with Qwen's special tokens and chat
    template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
    )


def tiny_tokenizer():
    """A byte-level BPE tokenizer (256 byte tokens, no merges) with Qwen's special tokens, as a
    transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return as_qwen_tokenizer(tokenizer)


def tiny_qwen3_vl_config(tokenizer, hidden: int = 32, text_layers: int = 2, vision_layers: int = 1):
    """A Qwen3-VL config of the given widths whose special-token ids are `tokenizer`'s."""
    from transformers import Qwen3VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=text_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=hidden // 4,
            max_position_embeddings=4096,
            # Qwen3-VL's interleaved M-RoPE sections (t, h, w) must sum to head_dim / 2.
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=vision_layers,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_heads=2,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            out_hidden_size=hidden,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def make_tiny_qwen3_vl(
    folder: Path, seed: int = 0, save_weights: bool = True, tokenizer: str = "byte", **widths
) -> Path:
    """Write a tiny random Qwen3-VL (config, weights, tokenizer, processor, chat template) into `folder`.

    Args:
        folder: where to write (created).
        seed: torch seed for the random weights.
        save_weights: also write model.safetensors (False: config and processor only, for models that
            build their own backbone from the config, like Robometer).
        tokenizer: "byte" (`tiny_tokenizer`: one token per byte, the tests' default) or "subword"
            (`subword_tokenizer`: about Qwen's token count on English prompts, for benchmarks).
        widths: `tiny_qwen3_vl_config` overrides (hidden, text_layers, vision_layers).

    Returns `folder`.
    """
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    builders = {"byte": tiny_tokenizer, "subword": subword_tokenizer}
    if tokenizer not in builders:
        raise ValueError(f"tokenizer must be one of {sorted(builders)}, got {tokenizer!r}")
    tokenizer = builders[tokenizer]()
    config = tiny_qwen3_vl_config(tokenizer, **widths)
    common = dict(patch_size=16, merge_size=2, temporal_patch_size=2)
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common, min_pixels=32 * 32, max_pixels=128 * 128),
        video_processor=Qwen3VLVideoProcessor(**common),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(folder)
    if save_weights:
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(config).eval()
        model.save_pretrained(folder)
    else:
        config.save_pretrained(folder)
    return folder


# A few KB of plain English with the words of robot tasks and of TOPReward's prompt, to train the subword
# tokenizer below: a real Qwen tokenizer (151k entries) holds every common English word as one token, and a
# small BPE trained on text like this gets close to that on such words (and splits rare ones, as Qwen does).
SUBWORD_CORPUS = """
The above video shows a robot manipulation trajectory that completes the following task. Decide whether
the robot completes the task. The answer is True or False. Is the task completed? The answer is: True.
A robot arm picks up the red cube and places it in the blue bowl. The robot pushes the block to the right.
The gripper opens, moves down, closes around the object, lifts it, and moves it to the target location.
Pick up the cube. Put the cup on the plate. Open the drawer and put the bowl inside. Close the top drawer
of the cabinet. Turn on the stove and put the moka pot on it. Put both the alphabet soup and the tomato
sauce in the basket. Stack the green block on the yellow block. Push the plate to the front of the stove.
Put the black bowl on the wooden cabinet. Pick up the ketchup and place it in the basket. Wipe the table
with the sponge. Fold the towel in half. Insert the peg into the hole. Hang the mug on the rack.
The video shows the robot at each step of the episode. Each frame is a picture from the camera on top of
the table. The task is done when the object is at its goal and the gripper has let it go. A failed
episode ends before the object reaches the goal, or the object falls from the gripper on the way.
You are a helpful assistant. The user asks a question about a video, and the assistant answers it with
one word. Read the instruction, look at the frames, and tell whether the robot has finished the task.
Progress is the share of the task that is done: zero at the start, one at the end, and in between it
grows as the robot gets closer to the goal. A reward model gives a number for every frame of the video.
The model reads the task text and the images, and writes the answer after the prompt. The robot is in a
kitchen with a table, a sink, a stove, a cabinet with two drawers, a basket, bowls, plates, cups and a
few small objects: a cube, a block, a ball, a can, a bottle, a box of cream cheese, a bag of chips.
Move the arm to the left, then to the right, then up and down. Rotate the wrist and open the gripper.
The first frame shows the scene before the robot moves; the last frame shows the end of the episode.
This is a trajectory of a robot that follows an instruction given in natural language by a person.
The following task is written in English: put the object in the container and close the lid.
Seconds, frames, steps and episodes: the video runs at two frames per second and lasts ten seconds.
The user speaks first and the assistant second. That statement is not true; this statement is true.
Push the button, then push the door. Do not push the cup off the table. The user did not say why.
"""


def subword_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE trained (offline, seconds) on `SUBWORD_CORPUS` with Qwen2's pre-tokenizer (its
    regex: words with their leading space, single digits, punctuation runs) and Qwen's special tokens, as
    a transformers fast tokenizer. English prompts tokenize to about Qwen's token count (one token per
    common word), unlike `tiny_tokenizer`'s one token per byte."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tokenizer.train_from_iterator(SUBWORD_CORPUS.splitlines(), trainer=trainer)
    return as_qwen_tokenizer(tokenizer)
