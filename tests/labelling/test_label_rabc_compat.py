"""lerobot's own RA-BC weighter reads our progress parquet unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_reward_models import ToyProgressConfig, ToyProgressRewardModel

from rewardkit.data.dataset import open_dataset
from rewardkit.labelling import label_to_parquet, read_progress_parquet


@pytest.mark.parametrize("head_mode", ["sparse", "dense"])
def test_lerobot_rabc_weights_reads_our_parquet(tiny_dataset, tmp_path, head_mode):
    from lerobot.rewards.sarm.rabc import RABCWeights
    from lerobot.utils.sample_weighting import SampleWeightingConfig, make_sample_weighter

    root, truths = tiny_dataset
    ds = open_dataset(root=root)
    model = ToyProgressRewardModel(ToyProgressConfig(device="cpu", dense=True)).eval()
    path = label_to_parquet(model, "toy/ckpt", ds, tmp_path / "sarm_progress.parquet", show_progress=False)
    ours, _ = read_progress_parquet(path)
    column = "progress" if head_mode == "sparse" else "progress_dense"

    chunk = 5
    weighter = RABCWeights(path, chunk_size=chunk, head_mode=head_mode, device=torch.device("cpu"))
    # every frame is there, with our value, in its episode
    assert len(weighter.progress_lookup) == sum(t.length for t in truths)
    for ep in ds.episodes():
        values = [weighter.progress_lookup[i] for i in range(ep.from_index, ep.to_index)]
        np.testing.assert_allclose(values, ours[ep.episode_index][column], atol=1e-7)
        assert weighter.episode_boundaries[ep.episode_index] == {"start": ep.from_index, "end": ep.to_index}

    # weights for a batch: the delta of each sample over `chunk` frames, clamped at the episode end
    ep1 = ds.episode(1)
    batch_index = torch.tensor([ep1.from_index, ep1.from_index + 3, ep1.to_index - 2, 0])
    weights, stats = weighter.compute_batch_weights({"index": batch_index})
    assert weights.shape == (4,) and torch.isfinite(weights).all()
    assert weights.sum().item() == pytest.approx(4.0, rel=1e-4)
    progress1 = ours[1][column]
    expected_delta = progress1[min(3 + chunk, ep1.length - 1)] - progress1[3]
    assert weighter._compute_delta(ep1.from_index + 3) == pytest.approx(float(expected_delta), abs=1e-6)

    # lerobot's factory finds the file by its default name next to the dataset root
    class _Policy:
        class config:  # noqa: N801 - mimics a policy's config attribute
            chunk_size = chunk

    made = make_sample_weighter(
        SampleWeightingConfig(head_mode=head_mode), _Policy(), torch.device("cpu"), dataset_root=str(tmp_path)
    )
    assert made.progress_lookup == weighter.progress_lookup
