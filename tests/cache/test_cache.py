"""Feature cache: build, read memory-mapped, no-op rerun, resume after a kill, cameras, texts, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardkit.cache import BuildStats, FeatureCache, build_cache
from rewardkit.data.dataset import DatasetError, open_dataset
from rewardkit.encoders import FrozenEncoder, make_encoder

TOP = "observation.images.top"
WRIST = "observation.images.wrist"


class Recording(FrozenEncoder):
    """Delegates to an encoder, counting frames encoded; raises after `fail_after` batches if set."""

    def __init__(self, inner: FrozenEncoder, fail_after: int | None = None) -> None:
        self.inner, self.fail_after = inner, fail_after
        self.spec, self.feature_dim, self.image_size = inner.spec, inner.feature_dim, inner.image_size
        self.device, self.dtype = inner.device, inner.dtype
        self.image_batches, self.frames, self.texts = 0, 0, 0

    def encode_images(self, frames):
        if self.fail_after is not None and self.image_batches >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.image_batches += 1
        self.frames += len(frames)
        return self.inner.encode_images(frames)

    def encode_texts(self, texts):
        self.texts += len(texts)
        return self.inner.encode_texts(texts)


class BatchSensitive(Recording):
    """Features that depend on the batch they are encoded in (as real kernels' do, by up to 5e-4): each
    row gets + 1e-3 * batch length, so any change of batch boundaries shows in the cache."""

    def encode_images(self, frames):
        return super().encode_images(frames) + 1e-3 * len(frames)


@pytest.fixture(scope="module")
def encoder():
    return make_encoder("clip-random:tiny")


@pytest.fixture(scope="module")
def tiny(tiny_dataset):
    return open_dataset(root=tiny_dataset[0])


@pytest.fixture(scope="module")
def built(tiny, encoder, tmp_path_factory):
    """An uninterrupted build of the tiny dataset (batch 8), and the encoder calls it made."""
    recording = Recording(encoder)
    cache = build_cache(
        tiny, recording, [TOP], cache_dir=tmp_path_factory.mktemp("cache"), batch_size=8, progress=False
    )
    return cache, recording


def test_features_match_direct_encoding(built, tiny, encoder):
    cache, recording = built
    assert cache.is_complete and cache.cameras == [TOP] and cache.episode_indices == [0, 1, 2]
    assert cache.encoder_spec == "clip-random:tiny" and cache.feature_dim == 64
    assert recording.frames == sum(ep.length for ep in tiny.episodes())  # each frame encoded once
    everything = cache.image_features(TOP)
    assert everything.shape == (60, 64) and everything.dtype == np.float16
    for ep in tiny.episodes():
        direct = encoder.encode_images(tiny.read_frames(ep.episode_index, TOP)).numpy()
        cached = cache.episode_features(ep.episode_index, TOP)
        assert cached.shape == (ep.length, 64)
        np.testing.assert_allclose(cached.astype(np.float32), direct, rtol=2e-3, atol=2e-3)
        np.testing.assert_array_equal(cached, everything[ep.from_index : ep.to_index])  # global frame index
    task = tiny.episode(0).task
    assert cache.tasks == [task]
    expected = encoder.encode_texts([task])[0].numpy()
    np.testing.assert_allclose(cache.text_features(task), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match="no text features"):
        cache.text_features("an unseen task")


def test_reading_is_memory_mapped_and_read_only(built):
    cache = FeatureCache.open(built[0].path)
    features = cache.image_features(TOP)
    assert isinstance(features, np.memmap) and features.mode == "r"
    assert isinstance(cache.episode_features(1, TOP).base, np.memmap) or np.shares_memory(
        cache.episode_features(1, TOP), features
    )
    with pytest.raises(ValueError):
        features[0, 0] = 1.0
    with pytest.raises(DatasetError, match="not in feature cache"):
        cache.image_features(WRIST)


def test_second_run_encodes_nothing(built, tiny, encoder):
    cache, _ = built
    again = Recording(encoder)
    stats = BuildStats()
    reopened = build_cache(
        tiny, again, [TOP], cache_dir=cache.path.parent, batch_size=8, progress=False, stats=stats
    )
    assert reopened.path == cache.path
    assert again.image_batches == 0 and again.texts == 0 and stats.frames == 0
    found = FeatureCache.for_dataset(tiny, "clip-random:tiny", [TOP], cache_dir=cache.path.parent)
    assert found is not None and found.path == cache.path
    assert (
        FeatureCache.for_dataset(tiny, "clip-random:tiny", [TOP], image_size=224, cache_dir=cache.path.parent)
        is None
    )
    assert FeatureCache.for_dataset(tiny, "clip-random:vit-b-32", [TOP], cache_dir=cache.path.parent) is None
    # features encoded in another compute dtype are other features: the dtype is part of the key
    assert found.encoder_dtype == "float32"
    assert FeatureCache.for_dataset(tiny, "clip-random:tiny", [TOP], cache_dir=cache.path.parent,
                                    encoder_dtype="float32").path == cache.path  # fmt: skip
    assert (
        FeatureCache.for_dataset(
            tiny, "clip-random:tiny", [TOP], cache_dir=cache.path.parent, encoder_dtype=torch.bfloat16
        )
        is None
    )


def test_resume_after_kill_matches_uninterrupted_build(tiny, encoder, tmp_path):
    reference = build_cache(
        tiny, BatchSensitive(encoder), [TOP], cache_dir=tmp_path / "whole", batch_size=8, progress=False
    )
    # Batches of 8 pinned to each episode's start (episodes of 20, 24, 16 frames: 8+8+4, 8+8+8, 8+8):
    # after 4 batches episode 0 is done, episode 1 is a third written.
    tmp_path = tmp_path / "resumed"
    killed = BatchSensitive(encoder, fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        build_cache(tiny, killed, [TOP], cache_dir=tmp_path, batch_size=8, progress=False)
    partial = FeatureCache.open(next(tmp_path.iterdir()))
    assert not partial.is_complete
    assert partial.finished_episodes(TOP) == {0}
    assert FeatureCache.for_dataset(tiny, "clip-random:tiny", [TOP], cache_dir=tmp_path) is None
    with pytest.raises(DatasetError, match="not encoded"):
        partial.episode_features(1, TOP)

    resumed = BatchSensitive(encoder)
    cache = build_cache(tiny, resumed, [TOP], cache_dir=tmp_path, batch_size=8, progress=False)
    assert resumed.frames == 24 + 16  # episode 0 not encoded again
    assert cache.is_complete and cache.episode_indices == [0, 1, 2]
    # the same batches were encoded: bit for bit the uninterrupted cache
    np.testing.assert_array_equal(cache.image_features(TOP), reference.image_features(TOP))


def test_failed_build_leaves_no_cache_folder_but_a_killed_one_stays_resumable(tiny, encoder, tmp_path):
    class Broken(Recording):
        def encode_images(self, frames):
            raise RuntimeError("CUDA out of memory (simulated)")

    with pytest.raises(RuntimeError, match="simulated"):
        build_cache(tiny, Broken(encoder), [TOP], cache_dir=tmp_path, batch_size=8, progress=False)
    assert list(tmp_path.iterdir()) == []
    # a build that finished episodes keeps them to resume (killed after episode 0's 3 batches and 1 more)
    with pytest.raises(KeyboardInterrupt):
        build_cache(tiny, Recording(encoder, fail_after=4), [TOP], cache_dir=tmp_path, batch_size=8,
                    progress=False)  # fmt: skip
    (kept,) = tmp_path.iterdir()
    assert FeatureCache.open(kept).finished_episodes(TOP) == {0}
    # a later failure in an existing folder leaves it as it was
    with pytest.raises(RuntimeError, match="simulated"):
        build_cache(tiny, Broken(encoder), [TOP], cache_dir=tmp_path, batch_size=8, progress=False)
    assert FeatureCache.open(kept).finished_episodes(TOP) == {0}


def test_missing_camera_names_camera_and_dataset(tiny, encoder, tmp_path):
    with pytest.raises(DatasetError, match=r"camera 'observation.images.side' not in dataset .*ds"):
        build_cache(tiny, encoder, ["observation.images.side"], cache_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # nothing written


def test_two_cameras_two_tasks_and_episode_subsets(two_camera_dataset, encoder, tmp_path):
    dataset = open_dataset(root=two_camera_dataset[0])
    recording = Recording(encoder)
    cache = build_cache(dataset, recording, [TOP, WRIST], cache_dir=tmp_path, episodes=[0, 1], progress=False)
    assert cache.cameras == [TOP, WRIST] and cache.episode_indices == [0, 1]
    assert sorted(cache.tasks) == sorted({dataset.episode(0).task, dataset.episode(1).task})
    for camera in (TOP, WRIST):
        direct = encoder.encode_images(dataset.read_frames(1, camera)).numpy()
        np.testing.assert_allclose(
            cache.episode_features(1, camera).astype(np.float32), direct, rtol=2e-3, atol=2e-3
        )
    assert not np.allclose(cache.episode_features(0, TOP), cache.episode_features(0, WRIST))
    assert (
        FeatureCache.for_dataset(dataset, "clip-random:tiny", [TOP, WRIST], cache_dir=tmp_path) is None
    )  # 2, 3 missing

    more = Recording(encoder)
    cache = build_cache(dataset, more, [TOP, WRIST], cache_dir=tmp_path, texts=["do nothing"], progress=False)
    assert more.frames == 2 * (20 + 24)  # only episodes 2 and 3, both cameras
    assert more.texts == 1  # only the new text: the tasks were encoded already
    assert cache.episode_indices == [0, 1, 2, 3] and "do nothing" in cache.tasks
    found = FeatureCache.for_dataset(dataset, "clip-random:tiny", [WRIST], cache_dir=tmp_path)
    assert found is not None and found.path == cache.path
    torch.testing.assert_close(
        torch.from_numpy(cache.text_features("do nothing")), encoder.encode_texts(["do nothing"])[0]
    )


def test_default_location_is_outside_the_dataset(tiny, encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path / "features"))
    cache = build_cache(tiny, encoder, [TOP], episodes=[2], progress=False)
    assert cache.path.parent == tmp_path / "features"
    assert tiny.root not in cache.path.parents


def test_cli_prints_cache_path(tiny_dataset, tmp_path, capsys):
    from rewardkit.cli import main

    args = [
        "cache", f"--dataset.root={tiny_dataset[0]}", "--encoder=clip-random:tiny", f"--cameras=[{TOP}]",
        "--batch_size=16", f"--cache_dir={tmp_path}", "--dataset.episodes=[0]", "--progress_bar=false",
    ]  # fmt: skip
    assert main(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("feature cache: ")
    cache = FeatureCache.open(line.split(": ", 1)[1])
    assert cache.episode_indices == [0] and cache.is_complete
    assert main([*args[:3], "--cameras=[observation.images.side]", f"--cache_dir={tmp_path}"]) == 2
    assert "observation.images.side" in capsys.readouterr().err


def test_changed_videos_get_a_new_cache_and_pickling_is_cheap(tiny_dataset, encoder, tmp_path):
    import os
    import pickle
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset[0], root)
    dataset = open_dataset(root=root)
    cache = build_cache(
        dataset, encoder, [TOP], cache_dir=tmp_path / "features", episodes=[2], progress=False
    )
    cache.episode_features(2, TOP)  # opens the memory map
    assert len(pickle.dumps(cache)) < 20_000  # the features are not copied into the pickle
    assert np.array_equal(
        pickle.loads(pickle.dumps(cache)).episode_features(2, TOP), cache.episode_features(2, TOP)
    )

    # Same name, same shape, other video content (here: another modification time): never the old features.
    video = next((root / "videos").rglob("*.mp4"))
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    dataset = open_dataset(root=root)
    assert (
        FeatureCache.for_dataset(dataset, "clip-random:tiny", [TOP], cache_dir=tmp_path / "features") is None
    )
    rebuilt = build_cache(
        dataset, encoder, [TOP], cache_dir=tmp_path / "features", episodes=[2], progress=False
    )
    assert rebuilt.path != cache.path
