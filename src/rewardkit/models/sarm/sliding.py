"""The sliding causal SARM transformer: one pass per frame-gap phase labels every frame of an episode.

Why: with lerobot's layout (stream-major tokens, causal attention over the window's flattened tokens, a
learned bias on the window's first frame) a frame's hidden state depends on where its window starts, so
every window must be computed on its own: labelling T frames runs the transformers over T windows of
n_obs_steps + 1 frames, and an online step recomputes the whole window for one new frame.

Here every frame is a group of tokens (one per camera, the task text, the state; a learned type embedding
each), or with `frame_tokens="fused"` a single token (a linear layer over the cameras' features
concatenated, plus the text and state projections and one embedding): the same banded attention over
frames, with a third of the per-token compute for one camera. Layer l attends, from each token of frame
t, to every token of frames t - d (d = 0..b_l, counted in window positions, i.e. frame-gap steps) and
nothing else; order enters only through a learned bias per head and distance d. There is no absolute
position. The bands add up to n_obs_steps, so the last frame of a window sees exactly the window (its
receptive field is n_obs_steps frame gaps), and a frame's hidden state at any layer is the same whichever
window it is computed in, provided the frames before it are. Hence:

- labelling: the frames of one phase (t = p, p + g, p + 2g, ...) form one sequence; one pass over it gives
  every frame's output, equal to computing each frame's window on its own (`frames_before` below handles
  the episode start, where windows repeat the first frame);
- online: a new frame needs only its own tokens through each layer plus each layer's cached keys and values
  of the frames 1..b_l gaps before it (`SlidingHistory`).

The episode start: a window reaching before frame 0 repeats frame 0 (`window_indices` clamps). A repeated
frame-0 token attends only to copies of frame 0 (identical keys and values), so whatever the distance bias
does to the attention weights its output is frame 0's own: at every layer the copies have the state of
frame 0 computed alone. That state is computed once per episode and stands for the frames before every
phase's first frame. Later frames attend to those copies at their own distances (the bias does NOT cancel
there: k copies weigh differently from one), exactly as a window computed alone does, which is what the
one-pass == every-window test checks.

The subtask (tau) model is conditioned on the stage prior at its head (the fused features of the frame and
the one-hot stage), so a frame's tau depends on its own stage only; stage and tau models are independent
passes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from rewardkit.errors import RewardkitError

if TYPE_CHECKING:
    from rewardkit.models.sarm.configuration_sarm import SARMConfig


FRAME_TOKENS = ("separate", "fused")


def spread_bands(n_obs_steps: int, num_layers: int) -> list[int]:
    """Per-layer attention bands (in frame gaps) adding up to `n_obs_steps`, the remainder on the top
    layers: (8, 8) -> [1] * 8; (8, 4) -> [2] * 4; (2, 4) -> [0, 0, 1, 1]."""
    base, extra = divmod(n_obs_steps, num_layers)
    return [base + int(layer >= num_layers - extra) for layer in range(num_layers)]


class BandedLayer(nn.Module):
    """A post-norm transformer encoder layer (as `nn.TransformerEncoderLayer`: ReLU, 4x feed-forward)
    whose attention is banded over frames.

    x (P, L, M, H): P sequences of L frames of M tokens. A token of frame i attends to every token of
    frames i - band .. i. `prefix` (keys, values), each (P or 1, band, M, H), are this layer's keys and
    values of the `band` frames before frame 0 (oldest first); None masks them out (a window's first frames
    see less). `missing` (P or 1, L, band + 1) bool marks keys at distance d that do not exist (before the
    start of a frame's own sample when samples are packed end to end; default: before frame 0, when no
    prefix is given). Returns the output and this layer's (keys, values) of x, each (P, L, M, H), which is
    what a later frame needs of this one.

    The keys of distance d are a shifted slice of [prefix, keys] (a view; its backward is a cheap add,
    where a gather's is a scatter-add that dominated the small model's backward).
    """

    def __init__(self, hidden_dim: int, num_heads: int, dropout: float, band: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.band = band
        self.in_proj = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.out_proj = nn.Linear(hidden_dim, hidden_dim)
        self.linear1 = nn.Linear(hidden_dim, 4 * hidden_dim)
        self.linear2 = nn.Linear(4 * hidden_dim, hidden_dim)
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.dropout = dropout
        # learned bias per head and frame distance 0..band (the only source of order)
        self.distance_bias = nn.Parameter(torch.zeros(num_heads, band + 1))

    def forward(
        self, x: Tensor, prefix: tuple[Tensor, Tensor] | None, missing: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        sequences, length, tokens, hidden = x.shape
        heads = self.num_heads
        head_dim = hidden // heads
        band = self.band
        training = self.training and self.dropout > 0
        q, k, v = self.in_proj(x).chunk(3, dim=-1)  # (P, L, M, H) each
        own = (k, v)
        if band:
            if prefix is None:
                pad = k.new_zeros(sequences, band, tokens, hidden)
                k_table, v_table = torch.cat([pad, k], dim=1), torch.cat([pad, v], dim=1)
                if missing is None:
                    missing = missing_keys(torch.arange(length, device=x.device), band)[None]
            else:
                k_table = torch.cat([prefix[0].expand(sequences, -1, -1, -1), k], dim=1)
                v_table = torch.cat([prefix[1].expand(sequences, -1, -1, -1), v], dim=1)
            # (P, L, b+1, M, H): frame i's keys at distance d = 0..band
            k = torch.stack([k_table[:, band - d : band - d + length] for d in range(band + 1)], dim=2)
            v = torch.stack([v_table[:, band - d : band - d + length] for d in range(band + 1)], dim=2)
        else:
            k, v = k[:, :, None], v[:, :, None]
        keys = (band + 1) * tokens
        # (P L, heads, 1, K) bias of each key: its frame's distance bias, -inf where the key does not exist
        bias = self.distance_bias.to(q.dtype).repeat_interleave(tokens, dim=1)[None, None]  # (1, 1, heads, K)
        if band and missing is not None:
            hidden_keys = missing.repeat_interleave(tokens, dim=-1)[:, :, None]  # (P|1, L, 1, K)
            bias = bias.masked_fill(hidden_keys, float("-inf"))
        bias = bias.expand(sequences, length, heads, keys).reshape(-1, heads, 1, keys)
        attended = F.scaled_dot_product_attention(
            q.reshape(-1, tokens, heads, head_dim).transpose(1, 2),
            k.reshape(-1, keys, heads, head_dim).transpose(1, 2),
            v.reshape(-1, keys, heads, head_dim).transpose(1, 2),
            attn_mask=bias,
            dropout_p=self.dropout if training else 0.0,
            scale=1.0 / math.sqrt(head_dim),
        )  # (P L, heads, M, hd)
        attended = attended.transpose(1, 2).reshape(sequences, length, tokens, hidden)
        x = self.norm1(x + fast_dropout(self.out_proj(attended), self.dropout, training))
        feed = self.linear2(fast_dropout(F.relu(self.linear1(x)), self.dropout, training))
        return self.norm2(x + fast_dropout(feed, self.dropout, training)), own


def missing_keys(positions: Tensor, band: int) -> Tensor:
    """(..., band + 1) bool: True where a frame at `positions` (..., its index inside its own sample) has
    no key frame at distance d = 0..band (d > position)."""
    return positions[..., None] < torch.arange(band + 1, device=positions.device)


def fast_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout with the keep mask drawn from 16 random bits per element (four per int64 drawn), p rounded
    to a multiple of 1/65536: torch's CPU dropout draws one Bernoulli sample per element, which took 12%
    of the small model's training step. Plain `F.dropout` off the CPU (its kernels are fused there)."""
    if not training or p <= 0:
        return x
    if x.device.type != "cpu" or x.numel() % 4:
        return F.dropout(x, p, True)
    dropped = round(p * 65536)
    bits = torch.empty(x.numel() // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    keep = bits.view(torch.int16).view(x.shape) >= dropped - 32768
    return torch.where(keep, x * (65536 / (65536 - dropped)), 0.0)


class SlidingTransformer(nn.Module):
    """One sliding SARM transformer (stage or subtask model): tokens, banded layers, fusion, heads.

    Args:
        bands: per-layer attention band in frame gaps (adds up to n_obs_steps).
        head_sizes: output size of each head ("sparse", "dense").
        prior_classes: for the subtask model, the stage count of each head; its head then reads the fused
            frame features and the one-hot stage (None: plain linear heads, the stage model).
        frame_tokens: "separate": a frame is num_cameras + 2 tokens (each camera, the text, the state, each
            with a learned type embedding); "fused": ONE token per frame, a linear layer over the
            concatenated camera features (so cameras keep their identity) plus the text and state
            projections and one learned embedding. Every per-token cost (projections, attention,
            feed-forward) drops by that factor; the fusion backbone reads H instead of M * H.
    """

    def __init__(
        self,
        hidden_dim: int,
        image_dim: int,
        text_dim: int,
        state_dim: int,
        num_heads: int,
        dropout: float,
        num_cameras: int,
        bands: list[int],
        head_sizes: dict[str, int],
        prior_classes: dict[str, int] | None = None,
        frame_tokens: str = "separate",
    ) -> None:
        super().__init__()
        if frame_tokens not in FRAME_TOKENS:
            raise RewardkitError(f"frame_tokens must be one of {FRAME_TOKENS}, got '{frame_tokens}'")
        self.hidden_dim = hidden_dim
        self.num_cameras = num_cameras
        self.bands = list(bands)
        self.frame_tokens = frame_tokens
        fused = frame_tokens == "fused"
        self.lang_proj = nn.Linear(text_dim, hidden_dim)
        # fused: one weight block per camera (a linear layer over the concatenation, i.e. the sum of
        # per-camera projections); a shared projection summed over cameras would not tell them apart
        self.visual_proj = nn.Linear(image_dim * (num_cameras if fused else 1), hidden_dim)
        self.state_proj = nn.Linear(state_dim, hidden_dim)
        tokens = 1 if fused else num_cameras + 2  # one fused token, or cameras, text, state
        self.token_type = nn.Parameter(torch.randn(tokens, hidden_dim) * 0.02)
        self.layers = nn.ModuleList(BandedLayer(hidden_dim, num_heads, dropout, band) for band in bands)
        self.fusion_backbone = nn.Sequential(
            nn.LayerNorm(tokens * hidden_dim), nn.Linear(tokens * hidden_dim, hidden_dim), nn.ReLU()
        )
        self.prior_classes = prior_classes
        if prior_classes is None:
            self.heads = nn.ModuleDict(
                {name: nn.Linear(hidden_dim, size) for name, size in head_sizes.items()}
            )
        else:
            self.heads = nn.ModuleDict(
                {
                    name: nn.Sequential(
                        nn.Linear(hidden_dim + prior_classes[name], hidden_dim),
                        nn.ReLU(),
                        nn.Linear(hidden_dim, size),
                    )
                    for name, size in head_sizes.items()
                }
            )

    @classmethod
    def from_config(
        cls, config: SARMConfig, head_sizes: dict[str, int], prior_classes: dict[str, int] | None = None
    ) -> SlidingTransformer:
        """The stage model (`prior_classes` None) or the subtask model of `config` (bands resolved)."""
        return cls(
            hidden_dim=config.hidden_dim,
            image_dim=config.image_dim,
            text_dim=config.text_dim,
            state_dim=config.max_state_dim,
            num_heads=config.num_heads,
            dropout=config.dropout,
            num_cameras=len(config.cameras) if config.cameras else 1,
            bands=config.layer_bands,
            head_sizes=head_sizes,
            prior_classes=prior_classes,
            frame_tokens=config.frame_tokens or "separate",  # a resolved config has it pinned
        )

    # ---- pieces --------------------------------------------------------------------------------
    def tokens(self, image: Tensor, text: Tensor, state: Tensor) -> Tensor:
        """image (..., N, D_img), text (..., D_txt), state (..., S) -> tokens (..., M, H): M = N + 2
        ("separate") or 1 ("fused")."""
        if self.frame_tokens == "fused":
            if image.shape[-2] != self.num_cameras:
                raise RewardkitError(
                    f"this SARM reads {self.num_cameras} camera(s) fused into one token, got "
                    f"{image.shape[-2]}: pass the features of exactly the cameras it was built with"
                )
            fused = self.visual_proj(image.flatten(-2)) + self.lang_proj(text) + self.state_proj(state)
            return (fused + self.token_type[0].to(image.dtype))[..., None, :]
        parts = [
            self.visual_proj(image),
            self.lang_proj(text)[..., None, :],
            self.state_proj(state)[..., None, :],
        ]
        return torch.cat(parts, dim=-2) + self.token_type.to(image.dtype)

    def run_layers(
        self,
        x: Tensor,
        prefixes: list[tuple[Tensor, Tensor] | None] | None = None,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """x (P, L, M, H) -> output of the last layer (P, L, M, H) and each layer's (keys, values) of x.

        prefixes[l]: layer l's (keys, values), each (P or 1, band_l, M, H), of the frames before frame 0,
        or None. positions (P or 1, L): each frame's index inside its own sample, when several samples are
        packed end to end in one sequence (no prefixes then); default: the sequences are the samples.
        """
        keys_values = []
        missing: dict[int, Tensor] = {}
        for index, layer in enumerate(self.layers):
            if positions is not None and layer.band not in missing:
                missing[layer.band] = missing_keys(positions, layer.band)
            x, own = layer(x, None if prefixes is None else prefixes[index], missing.get(layer.band))
            keys_values.append(own)
        return x, keys_values

    def fuse(self, encoded: Tensor) -> Tensor:
        """(..., M, H) -> (..., H) per-frame features."""
        return self.fusion_backbone(encoded.flatten(-2))

    def head(self, fused: Tensor, scheme: str, prior: Tensor | None = None) -> Tensor:
        """(..., H) fused features [+ (..., C) one-hot stage] -> (..., head size)."""
        if self.prior_classes is None:
            return self.heads[scheme](fused)
        assert prior is not None, "the subtask model needs the stage prior"
        return self.heads[scheme](torch.cat([fused, prior.to(fused.dtype)], dim=-1))

    # ---- windows (training, per-window inference) -------------------------------------------------
    def fused_windows(
        self, image: Tensor, text: Tensor, state: Tensor, padding: Tensor | None = None
    ) -> Tensor:
        """image (B, N, T, D), text (B, D), state (B, T, S), padding (B, T) True where padded (or None)
        -> (B, T, H), zeros at padded positions.

        Frame i of a window sees frames max(0, i - n_obs_steps) .. i of it; the last frame of a full
        window sees the whole window. Padded frames only ever follow the valid ones and attention looks
        back, so they change nothing: with padding, only the valid frames are computed, packed end to end
        in one sequence (each attending within its own sample), which saves the padded share of the step.
        """
        batch, _, frames, _ = image.shape
        if padding is None or not bool(padding.any()):
            x = self.tokens(
                image.transpose(1, 2), text[:, None].expand(-1, frames, -1), state
            )  # (B, T, M, H)
            return self.fuse(self.run_layers(x)[0])
        valid = ~padding
        positions = torch.arange(frames, device=image.device).expand(batch, frames)[valid]  # (F,)
        x = self.tokens(
            image.transpose(1, 2)[valid], text[:, None].expand(-1, frames, -1)[valid], state[valid]
        )  # (F, M, H)
        fused = self.fuse(self.run_layers(x[None], positions=positions[None])[0][0])  # (F, H)
        return fused.new_zeros(batch, frames, fused.shape[-1]).index_put((valid,), fused)

    def forward(
        self,
        image: Tensor,
        text: Tensor,
        state: Tensor,
        padding: Tensor | None,
        schemes: list[str],
        priors: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Per-frame outputs of each head in `schemes` over windows: scheme -> (B, T, head size); the
        same interface as lerobot's layout (`LerobotTransformer.forward`). The trunk runs once for every
        head (the stage prior enters at the head)."""
        return self.outputs(self.fused_windows(image, text, state, padding), schemes, priors)

    def outputs(
        self, fused: Tensor, schemes: list[str], priors: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Fused features (..., H) [+ scheme -> one-hot stage (..., K)] -> scheme -> (..., head size)."""
        return {
            scheme: self.head(fused, scheme, None if priors is None else priors[scheme]) for scheme in schemes
        }

    # ---- whole episodes (labelling) ------------------------------------------------------------
    def fused_episode(
        self,
        image: Tensor,
        text: Tensor,
        state: Tensor,
        frame_gap: int,
        until: int,
        chunk_frames: int | None = None,
    ) -> Tensor:
        """Every frame's features of one episode, one pass per frame-gap phase (all phases batched).

        image (N, T, D), text (D,), state (T, S). Frames 0..until-1 are computed (each frame needs the
        frames one gap before it, so a prefix of the episode is all that frame `until - 1` needs).
        Returns (until, H), equal to each frame's own causal window of n_obs_steps + 1 frames
        `frame_gap` apart (clamped to frame 0) computed alone.

        chunk_frames: most frames per pass (None: all at once). The phases advance together, a chunk of
        positions at a time; each layer carries the keys and values of its last `band` positions into the
        next chunk (what the prefix of the first chunk, frame 0 alone, stands for), so the outputs do not
        change and the activations held at once are those of about `chunk_frames` frames (at least one
        position of every phase), whatever the episode length.
        """
        device = image.device
        phases = min(frame_gap, until)
        length = -(-until // frame_gap)
        frames = torch.arange(phases, device=device)[:, None] + frame_gap * torch.arange(
            length, device=device
        )
        valid = frames < until  # (P, L) frame of each phase position; past the end only follows valid ones
        index = frames.clamp_max(until - 1)

        def tokens(at: Tensor) -> Tensor:  # frames (...) -> their tokens (..., M, H)
            return self.tokens(image[:, at].movedim(0, -2), text.expand(*at.shape, -1), state[at])

        # the frames before the start: frame 0 computed alone, at every layer
        _, start = self.run_layers(tokens(index[:1, :1]))
        prefixes: list[tuple[Tensor, Tensor] | None] = [
            (k.expand(1, band, -1, -1), v.expand(1, band, -1, -1))
            for (k, v), band in zip(start, self.bands, strict=True)
        ]
        step = length if chunk_frames is None else max(1, chunk_frames // phases)
        out = None
        for begin in range(0, length, step):
            x = tokens(index[:, begin : begin + step])  # (P, C, M, H)
            for number, layer in enumerate(self.layers):
                x, (k, v) = layer(x, prefixes[number])
                if layer.band and begin + step < length:  # the next chunk's prefix: the last band positions
                    old = prefixes[number]
                    assert old is not None
                    k = torch.cat([old[0].expand(phases, -1, -1, -1), k], dim=1)[:, -layer.band :]
                    v = torch.cat([old[1].expand(phases, -1, -1, -1), v], dim=1)[:, -layer.band :]
                    prefixes[number] = (k, v)
            fused = self.fuse(x)  # (P, C, H)
            if out is None:
                out = fused.new_empty(until, fused.shape[-1])
            chunk_valid = valid[:, begin : begin + step]
            out[frames[:, begin : begin + step][chunk_valid]] = fused[chunk_valid]
        assert out is not None
        return out


class SlidingHistory:
    """Online state of one `SlidingTransformer`: each layer's keys and values of the recent frames.

    `step(tokens)` runs ONE new frame (tokens (M, H)) through every layer, attending to the cached keys
    and values of the frames 1..band gaps before it (frame 0 standing for any frame before the start, as
    the windows of a recorded episode are clamped), and returns its fused features (H,).
    """

    def __init__(self, model: SlidingTransformer, frame_gap: int) -> None:
        self.model = model
        self.frame_gap = frame_gap
        self.max_band = max(model.bands) if model.bands else 0
        self.size = max(1, frame_gap * self.max_band)
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self._ring: Tensor | None = None  # (size, layers, 2, M, H) keys/values of the last `size` frames
        self._first: Tensor | None = None  # (layers, 2, M, H) keys/values of frame 0

    def _cached(self, frame: int) -> Tensor:
        assert self._ring is not None and self._first is not None
        return self._first if frame <= 0 else self._ring[frame % self.size]

    @torch.no_grad()
    def step(self, tokens: Tensor) -> Tensor:
        model = self.model
        t = self.count
        prefixes: list[tuple[Tensor, Tensor] | None] | None = None  # frame 0 alone: its copies change nothing
        if t:
            prefixes = []
            for layer, band in enumerate(model.bands):
                if not band:
                    prefixes.append(None)
                    continue
                cached = torch.stack(
                    [self._cached(t - self.frame_gap * d)[layer] for d in range(band, 0, -1)], dim=1
                )  # (2, band, M, H), oldest first
                prefixes.append((cached[0:1], cached[1:2]))
        encoded, keys_values = model.run_layers(tokens[None, None], prefixes)
        cache = torch.stack([torch.stack([k[0, 0], v[0, 0]]) for k, v in keys_values])  # (layers, 2, M, H)
        if self._ring is None:
            self._ring = cache.new_zeros((self.size, *cache.shape))
        if t == 0:
            self._first = cache
        self._ring[t % self.size] = cache
        self.count += 1
        return model.fuse(encoded[0, 0])
