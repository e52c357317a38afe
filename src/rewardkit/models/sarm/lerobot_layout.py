"""lerobot's SARM layer layout: what centred windows and lerobot checkpoints need.

Every frame of a window gives one token per stream (each camera, the task text, the state and, in the
subtask model, the one-hot stage prior padded to the hidden size). Tokens are laid out stream-major
((N + 2 [+ 1]) * T tokens) with causal attention over that flattened order and a learned bias
(`first_pos`) on the cameras' tokens of the window's first frame, exactly as `lerobot.rewards.sarm`, so
lerobot checkpoints load with the same parameter names. A frame's hidden state therefore depends on where
its window starts: every window is computed on its own (see `sliding.py` for the causal architecture that
avoids this).

Because the subtask model reads the stage prior as tokens, its trunk runs once per head; the stage model's
trunk runs once for every head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

if TYPE_CHECKING:
    from rewardkit.models.sarm.configuration_sarm import SARMConfig


class LerobotTransformer(nn.Module):
    """One SARM transformer (stage or subtask model) in lerobot's layout.

    Args:
        head_sizes: output size of each head ("sparse", "dense").
        stage_prior: the subtask model: it reads each head's one-hot stage prior as an extra stream.
    """

    def __init__(
        self,
        hidden_dim: int,
        image_dim: int,
        text_dim: int,
        state_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
        num_cameras: int,
        head_sizes: dict[str, int],
        stage_prior: bool,
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_cameras = num_cameras
        self.stage_prior = stage_prior
        self.lang_proj = nn.Linear(text_dim, hidden_dim)
        self.visual_proj = nn.Linear(image_dim, hidden_dim)
        self.state_proj = nn.Linear(state_dim, hidden_dim)
        layer = nn.TransformerEncoderLayer(hidden_dim, num_heads, 4 * hidden_dim, dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.first_pos = nn.Parameter(torch.zeros(1, hidden_dim))
        streams = num_cameras + 2 + int(stage_prior)
        self.fusion_backbone = nn.Sequential(
            nn.LayerNorm(streams * hidden_dim), nn.Linear(streams * hidden_dim, hidden_dim), nn.ReLU()
        )
        self.heads = nn.ModuleDict({name: nn.Linear(hidden_dim, size) for name, size in head_sizes.items()})
        self._causal_masks: dict[tuple[int, str], Tensor] = {}

    @classmethod
    def from_config(
        cls, config: SARMConfig, head_sizes: dict[str, int], prior_classes: dict[str, int] | None = None
    ) -> LerobotTransformer:
        """The stage model (`prior_classes` None) or the subtask model of `config`."""
        return cls(
            hidden_dim=config.hidden_dim,
            image_dim=config.image_dim,
            text_dim=config.text_dim,
            state_dim=config.max_state_dim,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            dropout=config.dropout,
            num_cameras=len(config.cameras) if config.cameras else 1,
            head_sizes=head_sizes,
            stage_prior=prior_classes is not None,
        )

    def forward(
        self,
        image: Tensor,
        text: Tensor,
        state: Tensor,
        padding: Tensor | None,
        schemes: list[str],
        priors: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Per-frame outputs of each head in `schemes`: scheme -> (B, T, head size).

        image (B, N, T, D_img), text (B, D_txt), state (B, T, S), padding (B, T) True where padded (or
        None); priors (subtask model): scheme -> one-hot stage (B, T, K).
        """
        if priors is None:  # the stage model: one trunk pass serves every head
            fused = self.fused_windows(image, text, state, padding)
            return {scheme: self.heads[scheme](fused) for scheme in schemes}
        return {
            scheme: self.heads[scheme](self.fused_windows(image, text, state, padding, priors[scheme]))
            for scheme in schemes
        }

    def fused_windows(
        self, image: Tensor, text: Tensor, state: Tensor, padding: Tensor | None, prior: Tensor | None = None
    ) -> Tensor:
        """Per-frame fused features (B, T, H); arguments as `forward`, prior (B, T, K) one head's prior."""
        batch, cameras, frames, _ = image.shape
        hidden = self.hidden_dim
        streams = [self.visual_proj(image)]
        streams.append(self.lang_proj(text)[:, None, None, :].expand(batch, 1, frames, hidden))
        streams.append(self.state_proj(state)[:, None])
        if self.stage_prior:
            assert prior is not None, "the subtask model needs the stage prior"
            classes = prior.shape[-1]
            prior = prior.to(streams[0].dtype)
            if classes < hidden:
                prior = F.pad(prior, (0, hidden - classes))
            streams.append(prior[..., :hidden][:, None])
        tokens = torch.cat(streams, dim=1)  # (B, streams, T, H)
        first = torch.zeros_like(tokens[:1, :, :1])
        first[:, :cameras] = self.first_pos.to(tokens.dtype)
        tokens = tokens + F.pad(first, (0, 0, 0, frames - 1))
        num_streams = tokens.shape[1]
        tokens = tokens.reshape(batch, num_streams * frames, hidden)
        key_padding = None
        if padding is not None:
            key_padding = padding[:, None, :].expand(batch, num_streams, frames).reshape(batch, -1)
        encoded = self.transformer(
            tokens,
            mask=self._causal_mask(tokens.shape[1], tokens.device),
            src_key_padding_mask=key_padding,
            is_causal=True,
        )
        fused = encoded.reshape(batch, num_streams, frames, hidden).transpose(1, 2).reshape(batch, frames, -1)
        return self.fusion_backbone(fused)

    def _causal_mask(self, size: int, device: torch.device) -> Tensor:
        key = (size, str(device))
        if key not in self._causal_masks:
            self._causal_masks[key] = torch.triu(torch.ones(size, size, dtype=torch.bool, device=device), 1)
        return self._causal_masks[key]
