"""Episode shards: 1 worker and 2 workers give the same cache and the same parquet (accelerate's barrier
simulated with threads, datatrove's local executor for real), a killed worker is rerun and changes nothing,
two builders at once never corrupt the cache."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch
from toy_reward_models import ToyProgressConfig, ToyProgressRewardModel, save_toy

from rewardkit.cache import FeatureCache, build_cache, merge_cache
from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset
from rewardkit.distributed import ShardState
from rewardkit.encoders import make_encoder
from rewardkit.errors import RewardkitError
from rewardkit.labelling import label_shard, label_to_parquet, merge_progress_parts, progress_parts_dir

TOP = "observation.images.top"
WRIST = "observation.images.wrist"
ENCODER = "clip-random:tiny"


class BatchSensitive:
    """An encoder whose features depend on the batch (+1e-3 * batch length, as real kernels' can): any
    change of batch boundaries between 1 and 2 workers would show. Raises after `fail_after` batches."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.fail_after, self.batches = inner, fail_after, 0
        for name in ("spec", "feature_dim", "image_size", "device", "dtype"):
            setattr(self, name, getattr(inner, name))

    def encode_images(self, frames):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("worker killed (simulated)")
        self.batches += 1
        return self.inner.encode_images(frames) + 1e-3 * len(frames)

    def encode_texts(self, texts):
        return self.inner.encode_texts(texts)


@pytest.fixture(scope="module")
def encoder():
    return make_encoder(ENCODER)


@pytest.fixture(scope="module")
def two_cams(two_camera_dataset):
    return open_dataset(root=two_camera_dataset[0])


def _arrays(cache: FeatureCache) -> dict:
    out = {camera: np.asarray(cache.image_features(camera)).copy() for camera in cache.cameras}
    out["texts"] = np.stack([cache.text_features(t) for t in cache.tasks])
    return out


def _same_cache(a: FeatureCache, b: FeatureCache) -> None:
    assert a.manifest == b.manifest and a.tasks == b.tasks and a.is_complete and b.is_complete
    left, right = _arrays(a), _arrays(b)
    assert left.keys() == right.keys()
    for name in left:
        np.testing.assert_array_equal(left[name], right[name])
    for camera in a.cameras:  # the features files themselves, byte for byte
        name = camera.replace("/", "_")
        assert (a.path / "images" / f"{name}.npy").read_bytes() == (
            b.path / "images" / f"{name}.npy"
        ).read_bytes()


def _in_threads(num: int, work) -> list:
    """Run work(ShardState) for ranks 0..num-1 at once, meeting at a real barrier (as accelerate's)."""
    barrier = threading.Barrier(num)
    results, errors = [None] * num, []

    def run(rank):
        try:
            results[rank] = work(ShardState(rank, num, barrier=barrier.wait))
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(num)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_cache_one_and_two_accelerate_workers_are_identical(two_cams, encoder, tmp_path):
    single = build_cache(two_cams, BatchSensitive(encoder), [TOP, WRIST], cache_dir=tmp_path / "one",
                         batch_size=8, progress=False)  # fmt: skip
    results = _in_threads(2, lambda shard: build_cache(
        two_cams, BatchSensitive(encoder), [TOP, WRIST], cache_dir=tmp_path / "two", batch_size=8,
        progress=False, shard=shard))  # fmt: skip
    assert results[0].path == results[1].path and not (results[0].path / "parts").exists()  # all merged
    _same_cache(single, results[1])


def test_cache_worker_killed_mid_shard_is_rerun_unchanged(two_cams, encoder, tmp_path):
    reference = build_cache(two_cams, BatchSensitive(encoder), [TOP], cache_dir=tmp_path / "ref", batch_size=8,
                            progress=False)  # fmt: skip
    cache_dir = tmp_path / "sharded"
    # datatrove-style tasks (no barrier): rank 0 gets episodes 0, 3 (18 + 24 frames: 3 batches each)
    with pytest.raises(KeyboardInterrupt):
        build_cache(two_cams, BatchSensitive(encoder, fail_after=4), [TOP], cache_dir=cache_dir, batch_size=8,
                    progress=False, shard=ShardState(0, 2))  # fmt: skip
    build_cache(two_cams, BatchSensitive(encoder), [TOP], cache_dir=cache_dir, batch_size=8, progress=False,
                shard=ShardState(1, 2))  # fmt: skip
    (folder,) = cache_dir.iterdir()
    with pytest.raises(RewardkitError, match=r"missing 'observation.images.top': episodes \[3\]"):
        merge_cache(folder, [TOP], two_cams.episode_indices)
    rerun = BatchSensitive(encoder)
    build_cache(
        two_cams, rerun, [TOP], cache_dir=cache_dir, batch_size=8, progress=False, shard=ShardState(0, 2)
    )
    assert rerun.batches == 3  # only episode 3: episode 0's part was kept
    _same_cache(reference, merge_cache(folder, [TOP], two_cams.episode_indices, two_cams.root))


def test_two_builders_at_once_never_corrupt_the_cache(two_cams, encoder, tmp_path, two_camera_dataset):
    reference = build_cache(two_cams, encoder, [TOP, WRIST], cache_dir=tmp_path / "ref", batch_size=8,
                            progress=False)  # fmt: skip
    script = textwrap.dedent(f"""
        import torch; torch.set_num_threads(1)
        from rewardkit.cache import build_cache
        from rewardkit.data.dataset import open_dataset
        from rewardkit.encoders import make_encoder
        dataset = open_dataset(root={str(two_camera_dataset[0])!r})
        build_cache(dataset, make_encoder({ENCODER!r}), [{TOP!r}, {WRIST!r}], cache_dir={str(tmp_path / "shared")!r},
                    batch_size=8, progress=False)
    """)
    builders = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [b.wait(timeout=300) for b in builders] == [0, 0]
    (folder,) = (tmp_path / "shared").iterdir()
    _same_cache(reference, FeatureCache.open(folder))


def _toy(**config):
    return ToyProgressRewardModel(ToyProgressConfig(device="cpu", **config)).eval()


def test_label_one_and_two_accelerate_workers_write_the_same_bytes(tiny_dataset, tmp_path):
    ds = open_dataset(root=tiny_dataset[0])
    single = label_to_parquet(_toy(), "toy", ds, tmp_path / "one.parquet", show_progress=False)
    out = tmp_path / "two.parquet"
    written = _in_threads(2, lambda shard: label_to_parquet(_toy(), "toy", ds, out, shard=shard,
                                                            show_progress=False))  # fmt: skip
    assert written == [out, None] and not progress_parts_dir(out).exists()
    assert out.read_bytes() == single.read_bytes()


class _KilledAfter(ToyProgressRewardModel):
    """The toy model, killed (KeyboardInterrupt) when asked for a second episode."""

    def label_episode(self, inputs):
        self.episodes_seen = getattr(self, "episodes_seen", 0) + 1
        if self.episodes_seen > 1:
            raise KeyboardInterrupt("worker killed (simulated)")
        return super().label_episode(inputs)


def test_label_worker_killed_mid_shard_is_rerun_unchanged(tiny_dataset, tmp_path):
    ds = open_dataset(root=tiny_dataset[0])
    single = label_to_parquet(_toy(), "toy", ds, tmp_path / "one.parquet", show_progress=False)
    out = tmp_path / "two.parquet"
    killed = _KilledAfter(ToyProgressConfig(device="cpu")).eval()
    with pytest.raises(KeyboardInterrupt):  # rank 1 has episodes 0 and 2: killed in episode 2
        label_shard(killed, "toy", ds, out, shard=ShardState(1, 2), show_progress=False)
    assert sorted(p.name for p in progress_parts_dir(out).glob("*.npz")) == ["0.npz"]
    assert label_shard(_toy(), "toy", ds, out, shard=ShardState(0, 2), show_progress=False) == [1]
    with pytest.raises(RewardkitError, match=r"no part for episode\(s\) \[2\]"):
        merge_progress_parts(out, ds)
    assert label_shard(_toy(), "toy", ds, out, shard=ShardState(1, 2), show_progress=False) == [2]
    assert merge_progress_parts(out, ds).read_bytes() == single.read_bytes()
    # parts of another run (here another stride) are never mixed in
    label_shard(_toy(), "toy", ds, out, shard=ShardState(0, 2), show_progress=False)
    with pytest.raises(RewardkitError, match="another labelling run"):
        label_shard(_toy(), "toy", ds, out, stride=2, shard=ShardState(1, 2), show_progress=False)


def test_datatrove_local_executor_cache_and_label_match_one_process(
    two_camera_dataset, tiny_dataset, tmp_path
):
    root = two_camera_dataset[0]
    common = [f"--dataset.root={root}", f"--encoder={ENCODER}", "--batch_size=8", "--progress_bar=false",
              "--device=cpu"]  # fmt: skip
    assert main(["cache", *common, f"--cache_dir={tmp_path / 'one'}"]) == 0
    # two worker processes (datatrove's pool), then its merge task
    assert main(["cache", *common, f"--cache_dir={tmp_path / 'two'}", "--distributed.executor=local",
                 "--distributed.workers=2", f"--distributed.logging_dir={tmp_path / 'logs'}"]) == 0  # fmt: skip
    (one,), (two,) = (
        (tmp_path / "one").iterdir(),
        [p for p in (tmp_path / "two").iterdir() if p.name[0] != "."],
    )
    _same_cache(FeatureCache.open(one), FeatureCache.open(two))

    # labelling a cache-reading model: cache stages (2 tasks + merge), then 2 labelling tasks + merge
    ds_root = tiny_dataset[0]
    model = save_toy(tmp_path / "toy", source="features", encoder=ENCODER, cameras=[TOP])
    args = [f"--dataset.root={ds_root}", f"--model.path={model}", "--model.device=cpu"]
    assert (
        main(["label", *args, f"--output={tmp_path / 'one.parquet'}", f"--cache_dir={tmp_path / 'c1'}"]) == 0
    )
    # tasks run in turn in this process (local_workers=1): the toy model type is registered only here
    assert main(["label", *args, f"--output={tmp_path / 'two.parquet'}", f"--cache_dir={tmp_path / 'c2'}",
                 "--distributed.executor=local", "--distributed.workers=2", "--distributed.local_workers=1",
                 f"--distributed.logging_dir={tmp_path / 'logs2'}"]) == 0  # fmt: skip
    assert (tmp_path / "two.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    assert sorted(p.name for p in (tmp_path / "logs2").iterdir()) == [
        "cache",
        "cache_merge",
        "label",
        "label_merge",
    ]


def test_gpu_paths_are_no_ops_on_a_cpu(tiny_dataset):
    from rewardkit.cache.build import _pinned
    from rewardkit.labelling.labeller import _pinned_copy

    frames = np.zeros((2, 4, 4, 3), np.uint8)
    assert _pinned(frames, "cpu") is frames  # a CPU encoder gets the decoded array itself
    if not torch.cuda.is_available():
        assert _pinned(frames, "cuda") is frames
    else:  # pragma: no cover - only with a GPU
        assert _pinned(frames, "cuda").is_pinned()
    features = np.arange(12, dtype=np.float16).reshape(3, 4)
    copy = _pinned_copy(features[::1]) if torch.cuda.is_available() else features
    np.testing.assert_array_equal(copy, features)
