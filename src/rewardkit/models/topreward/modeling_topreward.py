"""TOPReward for every frame at about the cost of one pass: one key/value cache over the video, the prompt
scored after each prefix from it.

lerobot's `TOPRewardModel` scores a prefix of frames 0..i with one forward pass over the whole prefix
(video + prompt), so labelling an episode at N anchors costs N passes over up to T frames. Qwen3-VL is a
causal decoder: the tokens of a prefix, and their (M-RoPE) positions, do not depend on what follows them.
So the video is encoded once (`ScoringPrefix`), and the prompt suffix of every prefix is scored from the
cached keys/values, many suffixes per forward pass (one batch row each, attending to its own cut of the
cache and to itself through a 4D attention mask; the cache is broadcast to the rows one layer at a time,
never grown). Rows rather than one packed row: a packed row's attention grows with the square of the pack,
which cost more than the whole pass when the prompt is long (the tiny test model's ~180-token byte-level prompt).
A pass holds suffixes of one length (an odd anchor's own pair would pad the prompt-only rows ~3x), ordered
by cut (`suffix_batches`). The header and the video go through the decoder in one pass from an empty cache,
so sdpa runs its causal kernel with no mask.

Cost at 15 anchors, compared with lerobot's per-prefix passes: the decoder sees the header and the video
once plus 15 prompt tails (and a padded pair for each odd anchor), lerobot's sees ~7.5 video lengths plus 15
tails; the vision tower encodes every frame once (lerobot: ~7.5 times), and the video processor runs once
per episode (lerobot: once per prefix). The gain is therefore bounded by the ratio of decoder tokens,
which `benchmarks/bench_vlm_label.py` prints: it approaches 7.5x when the video is much longer than the
prompt (Qwen3-VL: a ~40-token prompt, 72 tokens per 256x256 frame pair; 5.4x for 60-frame episodes) and
is ~2x with the tests' byte-level tokenizer (~190-token prompt, 19 tokens per 64x64 pair).

Where the frames nest, the result equals lerobot's per-prefix scores (the parity test checks it to 1e-3 in
float32 on a tiny random Qwen3-VL). What must hold:

- Same frames at the same resolution. lerobot's video processor resizes a prefix of L frames to a size
  chosen from the prefix's total pixel budget (`smart_resize`: t*h*w within the video processor's
  [shortest_edge, longest_edge]), so the resolution may change with L. We resize every frame once, to the
  resolution the processor gives a one-frame prefix. The two agree when that resolution is the same for
  every prefix length: 2*h*w >= shortest_edge and ceil(T/2)*2*h*w <= longest_edge (Qwen3-VL-8B's
  processor: 224x224 frames, up to ~500 frames per episode).
- Temporal patches of 2 frames. Qwen3-VL's video processor groups frames in pairs (one vision token grid
  and one "<t seconds>" timestamp per pair) and pads an odd-length video by repeating its last frame. The
  cache holds the pairs (0,1), (2,3), ...: an even prefix reuses them all; an odd prefix 2g+1 reuses pairs
  0..g-1 and brings its own last pair (2g, 2g) with its own timestamp in its suffix (a 2-frame vision
  encode, batched with the other suffixes). Nothing is resampled: `do_sample_frames=False`, frame indices
  0..L-1 at `fps`, as lerobot's labelling script feeds them.
- The prompt tokenizes at the video's edges (special tokens and the chat header): checked once per model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from huggingface_hub.constants import CONFIG_NAME
from lerobot.configs.rewards import RewardModelConfig
from lerobot.rewards.topreward.compute_rabc_weights import normalize_rewards

from rewardkit.errors import RewardkitError
from rewardkit.models.base import (
    CheckpointError,
    EpisodeInputs,
    FrameOutputs,
    ModelInputs,
    RewardKitModel,
    load_config,
    resolve_checkpoint,
)
from rewardkit.models.topreward.configuration_topreward import CachedTOPRewardConfig

# lerobot's `add_chat_template` path scores this answer after the generation prompt.
_TRUE_ANSWER = "True"


def check_qwen3_vl(vlm: str) -> None:
    """Refuse a VLM that is not a Qwen3-VL (the only family whose video prompt this scorer builds),
    naming the folder/id and the model_type found."""
    folder = Path(vlm).expanduser()
    if folder.is_dir():
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            raise CheckpointError(f"topreward: VLM folder {folder} has no {CONFIG_NAME}: not a model folder")
        try:
            model_type = json.loads(config_path.read_text()).get("model_type")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
            raise CheckpointError(f"topreward: corrupt {config_path}: {e}") from e
    else:
        from transformers import AutoConfig

        try:
            model_type = AutoConfig.from_pretrained(vlm, trust_remote_code=False).model_type
        except Exception as e:
            raise CheckpointError(
                f"topreward: cannot read the VLM '{vlm}' (not a local folder; hub lookup failed: {e})"
            ) from e
    if model_type != "qwen3_vl":
        raise CheckpointError(
            f"topreward: the VLM {vlm} is a '{model_type}' model, not a Qwen3-VL (model_type 'qwen3_vl'); "
            "give a Qwen3-VL id or folder (e.g. Qwen/Qwen3-VL-8B-Instruct)"
        )


def anchor_lengths(length: int, num_anchors: int | None) -> np.ndarray:
    """Prefix lengths scored for an episode of `length` frames: lerobot's evenly spaced anchors
    (`np.unique(linspace(1, T, N).round())`), or every length 1..T. Returns (A,) int64, sorted."""
    if num_anchors is None or num_anchors >= length:
        return np.arange(1, length + 1, dtype=np.int64)
    return np.unique(np.linspace(1, length, num_anchors).round().astype(np.int64))


def normalize_log_probs(log_probs: np.ndarray, mode: str) -> np.ndarray:
    """(A,) raw log-probabilities -> (A,) progress in [0, 1]: lerobot's per-episode min-max ("episode"),
    or the min-max over the anchors up to each one ("running", causal). A flat range gives 1.0."""
    if mode == "episode":
        return normalize_rewards(log_probs).astype(np.float64)
    values = np.asarray(log_probs, dtype=np.float64)
    low, high = np.minimum.accumulate(values), np.maximum.accumulate(values)
    span = high - low
    return np.where(span > 0, (values - low) / np.where(span > 0, span, 1.0), 1.0)


def suffix_batches(lengths: list[int], cuts: list[int], size: int) -> list[list[int]]:
    """Group suffixes (token counts `lengths`, cache cuts `cuts`) into forward passes: indices of at most
    `size` suffixes of one length each, ordered by cut.

    One length per pass: a batch is padded to its longest row, and an odd anchor's suffix (its own frame
    pair + the prompt) is several times an even anchor's (the prompt alone); mixed, the even rows would
    carry that padding through every layer. By cut: a batch reads the cache up to its furthest cut, so
    neighbouring cuts waste the fewest masked keys."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], cuts[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < size and lengths[batches[-1][0]] == lengths[i]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@dataclass
class ScoringPrefix:
    """The cached video prefix of one episode (or of an online episode so far).

    Args:
        cache: the VLM's key/value cache over `ids`.
        ids: (P,) token ids of the chat header and the frame pairs encoded so far.
        cuts: cuts[g] = number of tokens up to the end of the g-th pair (cuts[0]: the header alone).
        next_position: next_position[g] = the M-RoPE position of a token placed right after cuts[g].
        pair_grid: (1, 3) vision grid of one frame pair ([1, h/16, w/16]).
    """

    cache: Any
    ids: list[int]
    cuts: list[int]
    next_position: list[int]
    pair_grid: torch.Tensor | None = None


class CachedTOPRewardRewardModel(RewardKitModel):
    """TOPReward (zero-shot Qwen3-VL) with a prefix cache; `label_episode` returns "progress" (N,) and the raw
    "log_prob" (N,) of the scored token (interpolated between anchors)."""

    config_class: ClassVar[type[CachedTOPRewardConfig]] = CachedTOPRewardConfig
    name: ClassVar[str] = "rewardkit_topreward"

    def __init__(self, config: CachedTOPRewardConfig, **kwargs: Any):
        # kwargs: lerobot's factory passes dataset_stats / dataset_meta, which a zero-shot model ignores.
        super().__init__(config)
        self.config = config
        check_qwen3_vl(config.vlm)
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.processor = AutoProcessor.from_pretrained(config.vlm, trust_remote_code=False)
        options: dict[str, Any] = {"dtype": _torch_dtype(config.torch_dtype)}
        if config.attn_implementation is not None:
            options["attn_implementation"] = config.attn_implementation
        self.vlm = Qwen3VLForConditionalGeneration.from_pretrained(config.vlm, **options)
        self.vlm.to(config.device).eval()
        tokenizer = self.processor.tokenizer
        self._vision_start = self.processor.vision_start_token_id
        self._vision_end = self.processor.vision_end_token_id
        self._video_token = self.processor.video_token_id
        video = self.processor.video_processor
        self._temporal = int(video.temporal_patch_size)
        self._merge = int(video.merge_size)
        self._patch = int(video.patch_size)
        self._tokenizer = tokenizer
        self._timestamp_ids: dict[str, list[int]] = {}
        self._check_tokenization()

    # ---- the prompt ------------------------------------------------------------------------------
    def prompt_pieces(self, task: str) -> tuple[str, str]:
        """(text before the video, text after it) of lerobot's TOPReward prompt for `task`."""
        config = self.config
        suffix = config.prompt_suffix_template.format(instruction=task)
        video_part = {"type": "video", "video": None, "fps": config.fps}
        if config.add_chat_template:
            question = suffix.removesuffix(_TRUE_ANSWER).rstrip()
            messages = [
                {
                    "role": "user",
                    "content": [video_part, {"type": "text", "text": config.prompt_prefix + question}],
                }
            ]
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            text += _TRUE_ANSWER
        else:
            messages = [
                {"role": "user", "content": [video_part, {"type": "text", "text": config.prompt_prefix}]}
            ]
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
            eos = self._tokenizer.eos_token
            if eos is not None:
                text = text.split(eos)[0]
            text += suffix
        marker = f"{self.processor.vision_start_token}{self.processor.video_token}{self.processor.vision_end_token}"
        if text.count(marker) != 1:
            raise RewardkitError(
                f"topreward: the chat template of {config.vlm} does not put one video in the prompt"
            )
        header, tail = text.split(marker)
        return header, tail

    def _pair_ids(self, first: int, last: int, tokens_per_pair: int) -> list[int]:
        """Tokens of the frame pair (first, last): "<t seconds>" then the vision tokens (the processor's
        layout; t averages the pair's timestamps as `Qwen3VLProcessor._calculate_timestamps` does)."""
        fps = self.config.fps
        timestamp = (first / fps + last / fps) / 2
        label = f"<{timestamp:.1f} seconds>"
        text = self._timestamp_ids.get(label)
        if text is None:  # the same timestamps recur in every episode: tokenize each once
            text = self._timestamp_ids[label] = self._tokenizer(label, add_special_tokens=False)["input_ids"]
        return [*text, self._vision_start, *[self._video_token] * tokens_per_pair, self._vision_end]

    def _check_tokenization(self) -> None:
        # The cache is built from pieces tokenized apart; they must equal the whole prompt tokenized at once.
        header, tail = self.prompt_pieces("pick up the cube")
        pieces = self._tokenizer(header)["input_ids"] + self._pair_ids(0, 1, 2) + self._pair_ids(2, 2, 2)
        pieces += self._tokenizer(tail, add_special_tokens=False)["input_ids"]
        pad = self.processor.video_token
        layout = "".join(
            f"<{t:.1f} seconds>{self.processor.vision_start_token}{pad * 2}{self.processor.vision_end_token}"
            for t in ((0 / self.config.fps + 1 / self.config.fps) / 2, 2 / self.config.fps)
        )
        whole = self._tokenizer(header + layout + tail)["input_ids"]
        if whole != pieces:
            raise RewardkitError(
                f"topreward: the tokenizer of {self.config.vlm} merges tokens across the video's edges; the "
                "prefix cache cannot be used with it"
            )

    # ---- frames ----------------------------------------------------------------------------------
    def frame_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) every frame is resized to: the video processor's size for a one-frame prefix."""
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize

        size = self.processor.video_processor.size
        shortest = size["shortest_edge"] if isinstance(size, dict) else size.shortest_edge
        longest = size["longest_edge"] if isinstance(size, dict) else size.longest_edge
        return smart_resize(
            num_frames=1,
            height=height,
            width=width,
            temporal_factor=self._temporal,
            factor=self._patch * self._merge,
            min_pixels=shortest,
            max_pixels=longest,
        )

    def resize_frames(self, frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (T, 3, h, w) uint8, with the video processor's own resize."""
        from transformers.image_utils import SizeDict

        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()
        processor = self.processor.video_processor
        return processor.resize(
            video, size=SizeDict(height=size[0], width=size[1]), resample=processor.resample
        )

    def pixel_values(self, videos: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Videos of (t, 3, h, w) uint8 already resized -> (patches, grid_thw), as the processor makes them."""
        out = self.processor.video_processor(
            videos=videos, do_resize=False, do_sample_frames=False, return_tensors="pt"
        )
        return out["pixel_values_videos"], out["video_grid_thw"]

    # ---- the model -------------------------------------------------------------------------------
    @property
    def _device(self) -> torch.device:
        return next(self.vlm.parameters()).device

    def _positions(self, ids: list[int], grids: torch.Tensor | None, start: int) -> torch.Tensor:
        """(3, 1, len(ids)) M-RoPE positions of `ids` placed after `start` positions (Qwen3-VL's own
        `get_rope_index`, which is translation-equivariant: a piece's positions only shift with what
        precedes it)."""
        tensor = torch.tensor([ids], dtype=torch.long)
        types = (tensor == self._video_token).int() * 2
        positions, _ = self.vlm.model.get_rope_index(tensor, mm_token_type_ids=types, video_grid_thw=grids)
        return positions + start

    def start_prefix(self, header_ids: list[int], pair_grid: torch.Tensor) -> ScoringPrefix:
        """A prefix holding the chat header only; its pairs will have the vision grid `pair_grid` (1, 3)."""
        prefix = ScoringPrefix(cache=None, ids=[], cuts=[], next_position=[], pair_grid=pair_grid)
        self.extend_prefix(prefix, header_ids, None, None)
        return prefix

    @torch.no_grad()
    def extend_prefix(
        self,
        prefix: ScoringPrefix,
        ids: list[int],
        patches: torch.Tensor | None,
        grids: torch.Tensor | None,
        cuts: list[int] | None = None,
    ) -> None:
        """Append `ids` (with the vision `patches` of their pairs) to the cache. `cuts`: offsets in `ids`
        where a pair ends (default: only the end)."""
        start = prefix.next_position[-1] if prefix.next_position else 0
        positions = self._positions(ids, grids, start)
        device = self._device
        outputs = self.vlm.model(
            input_ids=torch.tensor([ids], device=device),
            position_ids=positions.to(device),
            past_key_values=prefix.cache,
            pixel_values_videos=None if patches is None else patches.to(device, self.vlm.dtype),
            video_grid_thw=None if grids is None else grids.to(device),
            use_cache=True,
        )
        prefix.cache = outputs.past_key_values
        base = len(prefix.ids)
        prefix.ids.extend(ids)
        for cut in cuts or [len(ids)]:
            prefix.cuts.append(base + cut)
            prefix.next_position.append(int(positions[:, 0, :cut].max()) + 1)

    @torch.no_grad()
    def score_suffixes(
        self, prefix: ScoringPrefix, suffixes: list[tuple[int, list[int], torch.Tensor | None]]
    ) -> np.ndarray:
        """Log-probability of each suffix's last token given the cached prefix up to its cut.

        Args:
            prefix: the cached video.
            suffixes: (cut index into `prefix.cuts`, suffix ids, patches of the suffix's own pair or None).

        Returns (S,) float64, in the order of `suffixes`. Suffixes are scored in batches of at most
        `suffix_batch_size` rows of one length (`suffix_batches`), every row attending to the cache up to
        its own cut (`_SharedPrefix`: the cache is read, never grown).
        """
        results = np.empty(len(suffixes), dtype=np.float64)
        positions: dict[tuple[bool, ...], torch.Tensor] = {}
        batches = suffix_batches(
            [len(ids) for _, ids, _ in suffixes],
            [prefix.cuts[cut_index] for cut_index, _, _ in suffixes],
            self.config.suffix_batch_size,
        )
        for rows in batches:
            results[rows] = self._score_batch(prefix, [suffixes[row] for row in rows], positions)
        return results

    def _score_batch(
        self,
        prefix: ScoringPrefix,
        batch: list[tuple[int, list[int], torch.Tensor | None]],
        positions: dict[tuple[bool, ...], torch.Tensor],
    ) -> list[float]:
        device, dtype = self._device, self.vlm.dtype
        lengths = [len(suffix) for _, suffix, _ in batch]
        width = max(lengths)
        cuts = torch.tensor([prefix.cuts[cut_index] for cut_index, _, _ in batch])
        # keys past the furthest cut are never attended: leave them out of the batch
        visible = int(cuts.max())
        if visible + width > self.config.max_input_length:
            raise RewardkitError(
                f"topreward: a prefix of {visible} tokens plus its prompt exceeds max_input_length "
                f"{self.config.max_input_length}; label shorter episodes, smaller frames, or raise it"
            )
        # right padding: a row's real tokens never see its pads (causal), and only real tokens are read
        ids = torch.full((len(batch), width), self._tokenizer.pad_token_id or 0, dtype=torch.long)
        position_ids = torch.zeros(3, len(batch), width, dtype=torch.long)
        patches, grids = [], []
        for row, (cut_index, suffix, pair_patches) in enumerate(batch):
            # M-RoPE positions depend on the token types only (text / video, all pairs of one grid), and
            # only shift with the cut (translation-equivariant): one computation per layout
            key = tuple(token == self._video_token for token in suffix)
            if key not in positions:
                grid = prefix.pair_grid if pair_patches is not None else None
                positions[key] = self._positions(suffix, grid, 0)[:, 0]
            ids[row, : len(suffix)] = torch.tensor(suffix)
            position_ids[:, row, : len(suffix)] = positions[key] + prefix.next_position[cut_index]
            if pair_patches is not None:
                patches.append(pair_patches)
                grids.append(prefix.pair_grid)
        allowed = torch.cat(
            [
                (torch.arange(visible)[None, :] < cuts[:, None])[:, None, :].expand(-1, width, -1),
                torch.ones(width, width, dtype=torch.bool).tril()[None].expand(len(batch), -1, -1),
            ],
            dim=2,
        )
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        outputs = self.vlm.model(
            input_ids=ids.to(device),
            position_ids=position_ids.to(device),
            attention_mask=mask[:, None].to(device),
            past_key_values=_SharedPrefix(prefix.cache, len(batch), visible),
            pixel_values_videos=torch.cat(patches).to(device, dtype) if patches else None,
            video_grid_thw=torch.cat(grids).to(device) if grids else None,
            use_cache=True,
        )
        rows = torch.arange(len(batch))
        last = torch.tensor(lengths) - 1
        hidden = outputs.last_hidden_state[rows.to(device), (last - 1).to(device)]
        log_probs = torch.log_softmax(self.vlm.lm_head(hidden).float(), dim=-1)
        targets = ids[rows, last].to(device)
        return log_probs.gather(1, targets[:, None])[:, 0].tolist()

    # ---- labelling -------------------------------------------------------------------------------
    def required_inputs(self) -> ModelInputs:
        return ModelInputs(cameras=[self.config.camera], encoder=None, state=False)

    @torch.no_grad()
    def score_prefix_lengths(self, frames: np.ndarray, task: str, lengths: np.ndarray) -> np.ndarray:
        """Raw TOPReward log-probabilities of the prefixes frames[:L] for each L in `lengths`.

        Args:
            frames: (T, H, W, 3) uint8.
            task: the instruction.
            lengths: (A,) prefix lengths in 1..T.

        Returns (A,) float64.
        """
        lengths = np.asarray(lengths, dtype=np.int64)
        last = int(lengths.max())
        video = self.resize_frames(frames[:last], self.frame_size(*frames.shape[1:3]))
        header, tail = self.prompt_pieces(task)
        header_ids = self._tokenizer(header)["input_ids"]
        tail_ids = self._tokenizer(tail, add_special_tokens=False)["input_ids"]
        patches, grid = self.pixel_values([video])
        per_pair = int(grid[0, 1] * grid[0, 2]) // self._merge**2
        pairs = int(grid[0, 0])
        pair_grid = torch.tensor([[1, int(grid[0, 1]), int(grid[0, 2])]])
        prefix = ScoringPrefix(cache=None, ids=[], cuts=[], next_position=[], pair_grid=pair_grid)
        # the header and the whole video in one pass from an empty cache: with no past, transformers' sdpa
        # runs the causal kernel without a mask (~3x faster on CPU than the explicit mask it builds once a
        # past exists, as it would after a header-only pass)
        ids = list(header_ids)
        cuts = [len(ids)]
        for g in range(pairs):
            ids += self._pair_ids(2 * g, min(2 * g + 1, last - 1), per_pair)
            cuts.append(len(ids))
        self.extend_prefix(prefix, ids, patches, grid, cuts)
        # an odd prefix 2g+1 < last brings its own pair (2g, 2g): one padded 2-frame video each
        odd = [int(n) for n in lengths if n % 2 == 1 and n != last]
        own = dict(zip(odd, self._split_pairs([video[n - 1 : n] for n in odd], per_pair), strict=True))
        suffixes = []
        for n in lengths.tolist():
            if n in own:
                suffixes.append((n // 2, self._pair_ids(n - 1, n - 1, per_pair) + tail_ids, own[n]))
            else:
                suffixes.append(((n + 1) // 2, tail_ids, None))
        return self.score_suffixes(prefix, suffixes)

    def _split_pairs(self, videos: list[torch.Tensor], per_pair: int) -> list[torch.Tensor]:
        if not videos:
            return []
        patches, _ = self.pixel_values(videos)
        return list(patches.split(per_pair * self._merge**2))

    @torch.no_grad()
    def label_episode(self, inputs: EpisodeInputs) -> FrameOutputs:
        """progress (N,) in [0, 1] and the raw log_prob (N,), at `inputs.frame_indices` (or every frame).

        The anchors (`num_anchors`) and the normalisation do not depend on the frames asked for: a subset
        is the same frames of a full pass."""
        if inputs.frames is None:
            raise RewardkitError("topreward reads raw frames: the labeller gave none")
        frames = np.asarray(inputs.frames(self.config.camera))
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) != inputs.length:
            raise RewardkitError(
                f"topreward: episode {inputs.episode_index} camera '{self.config.camera}' gave frames of "
                f"shape {frames.shape}, expected ({inputs.length}, H, W, 3)"
            )
        lengths = anchor_lengths(inputs.length, self.config.num_anchors)
        log_probs = self.score_prefix_lengths(frames, inputs.task, lengths)
        progress = normalize_log_probs(log_probs, self.config.normalize)
        wanted = (
            np.arange(inputs.length) if inputs.frame_indices is None else np.asarray(inputs.frame_indices)
        )
        at = lengths.astype(np.float64) - 1  # prefix L ends at frame L-1
        return {
            "progress": np.interp(wanted, at, progress).astype(np.float32),
            "log_prob": np.interp(wanted, at, log_probs).astype(np.float32),
        }

    def online(self, every: int = 1, **kwargs: Any):
        """One observation at a time (`TOPRewardOnline`): the video cache grows by one pair every second
        step and the prompt is scored every `every`-th step. Needs normalize='running' (causal)."""
        from rewardkit.models.topreward.online_topreward import TOPRewardOnline

        if kwargs:
            raise RewardkitError(f"topreward online: unknown options {sorted(kwargs)} (it takes 'every')")
        return TOPRewardOnline(self, every=every)

    # ---- save / load -----------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        """config.json only: the VLM is named by `config.vlm` and never changed."""
        self.config._save_pretrained(save_directory)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_name_or_path: str | Path,
        *,
        config: RewardModelConfig | None = None,
        revision: str | None = None,
        strict: bool = True,
        **kwargs: Any,
    ):
        """Rebuild from a folder holding config.json (the VLM id/folder and options)."""
        folder = resolve_checkpoint(pretrained_name_or_path, revision=revision)
        if config is None:
            config = load_config(folder)
        if not isinstance(config, CachedTOPRewardConfig):
            raise CheckpointError(
                f"{folder / CONFIG_NAME} is a '{config.type}' checkpoint, not 'rewardkit_topreward'"
            )
        model = cls(config)
        return model.eval()


class _SharedPrefix:
    """The cache as the suffix batch sees it: each layer's cached keys/values (batch 1, the first `visible`
    tokens) broadcast to the batch's rows, then each row's own. Nothing is stored, so the cache is left as
    it was; the broadcast copy lives for one layer's attention only (transformers' attention functions take
    keys with the queries' batch size)."""

    def __init__(self, cache: Any, rows: int, visible: int):
        self.cache, self.rows, self.visible = cache, rows, visible

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        layer = self.cache.layers[layer_idx]
        cached = (layer.keys[..., : self.visible, :], layer.values[..., : self.visible, :])
        return tuple(
            torch.cat([c.expand(self.rows, -1, -1, -1), new], dim=-2)
            for c, new in zip(cached, (key_states, value_states), strict=True)
        )

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.visible


def _torch_dtype(name: str) -> torch.dtype | str:
    if name == "auto":
        return "auto"
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise RewardkitError(f"topreward: unknown torch_dtype '{name}'")
    return dtype


def build_topreward(vlm: str | None = None, **options: Any) -> CachedTOPRewardRewardModel:
    """The named model "topreward[:<vlm>]" (`rewardkit.load`, `--model.type=topreward`): options are
    `CachedTOPRewardConfig` fields."""
    from dataclasses import fields

    known = {f.name for f in fields(CachedTOPRewardConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RewardkitError(f"topreward: unknown options {unknown} (known: {sorted(known)})")
    if vlm is not None:
        options["vlm"] = vlm
    return CachedTOPRewardRewardModel(CachedTOPRewardConfig(**options)).eval()
