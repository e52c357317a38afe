"""Whole-dataset labelling: the parquet lerobot reads, stride, subsets, sharding, inputs, errors."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from toy_reward_models import ToyProgressConfig, ToyProgressRewardModel, save_toy

from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset
from rewardkit.labelling import (
    LabellingError,
    ShardState,
    interpolate_outputs,
    label_dataset,
    label_one_episode,
    label_to_parquet,
    progress_parts_dir,
    read_progress_parquet,
    shard_episodes,
    strided_positions,
)
from rewardkit.labelling import labeller as labeller_module


def _toy(**config) -> ToyProgressRewardModel:
    return ToyProgressRewardModel(ToyProgressConfig(device="cpu", **config)).eval()


def _tree_digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture()
def own_copy(tiny_dataset, tmp_path):
    """A private copy of the tiny dataset (the default output goes next to the data)."""
    root, truths = tiny_dataset
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    return copy, truths


def test_label_cli_writes_lerobot_schema_next_to_the_dataset(own_copy, tmp_path, capsys):
    root, truths = own_copy
    before = _tree_digest(root)
    model_path = save_toy(tmp_path / "toy")
    assert main(["label", f"--dataset.root={root}", f"--model.path={model_path}"]) == 0
    out = root / "sarm_progress.parquet"
    assert f"progress: {out.resolve()}" in capsys.readouterr().out
    table = pq.read_table(out)
    # lerobot's RA-BC columns first, exactly; the toy's success probability rides along after them
    assert table.column_names == ["index", "episode_index", "frame_index", "progress_sparse", "success_prob"]
    assert [str(t) for t in table.schema.types] == ["int64", "int64", "int64", "float", "float"]
    assert table.schema.metadata[b"reward_model_path"] == model_path.encode()
    # one row per frame, global index matches the dataset's own index column, sorted
    ds = open_dataset(root=root)
    assert table.num_rows == sum(t.length for t in truths)
    data = pq.read_table(
        sorted((root / "data").rglob("*.parquet"))[0], columns=["index", "observation.state"]
    )
    np.testing.assert_array_equal(table.column("index").to_numpy(), data.column("index").to_numpy())
    state0 = np.array([s[0] for s in data.column("observation.state").to_pylist()], dtype=np.float32)
    np.testing.assert_allclose(table.column("progress_sparse").to_numpy(), np.clip(state0, 0, 1), atol=1e-6)
    for ep in ds.episodes():
        rows = table.column("episode_index").to_numpy() == ep.episode_index
        assert table.column("frame_index").to_numpy()[rows].tolist() == list(range(ep.length))
    # nothing of the dataset changed, only the new file was added, no temporary files left
    after = _tree_digest(root)
    assert {k: v for k, v in after.items() if k != "sarm_progress.parquet"} == before
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []


def test_output_flag_subset_and_dense_column(tiny_dataset, tmp_path):
    root, truths = tiny_dataset
    model_path = save_toy(tmp_path / "toy", dense=True)
    out = tmp_path / "out" / "p.parquet"
    argv = [
        "label",
        f"--dataset.root={root}",
        f"--model.path={model_path}",
        f"--output={out}",
        "--dataset.episodes=[2,0]",
    ]
    assert main(argv) == 0
    assert not (root / "sarm_progress.parquet").exists()
    episodes, metadata = read_progress_parquet(out)
    assert sorted(episodes) == [0, 2]
    for ep in (0, 2):
        assert len(episodes[ep]["progress"]) == truths[ep].length
        np.testing.assert_allclose(episodes[ep]["progress_dense"], episodes[ep]["progress"] ** 2, atol=1e-6)
    assert metadata["reward_model_path"] == model_path


@pytest.mark.parametrize("honours_stride", [True, False])
def test_stride_labels_every_nth_frame_and_interpolates(tiny_dataset, honours_stride):
    root, _ = tiny_dataset
    ds = open_dataset(root=root)
    full = label_dataset(_toy(), ds, stride=1, show_progress=False)
    model = _toy(honours_stride=honours_stride)
    strided = label_dataset(model, ds, stride=4, show_progress=False)
    for a, b in zip(full, strided, strict=True):
        positions = strided_positions(a.length, 4)
        np.testing.assert_array_equal(model.calls[a.episode_index].frame_indices, positions)
        # exact at the labelled frames, linear in between
        np.testing.assert_allclose(b.progress[positions], a.progress[positions], atol=1e-6)
        expected = np.interp(np.arange(a.length), positions, a.progress[positions])
        np.testing.assert_allclose(b.progress, expected, atol=1e-6)
        np.testing.assert_allclose(b.outputs["stage_probs"].sum(1), 1.0, atol=1e-5)


def test_strided_positions_and_interpolation_by_hand():
    np.testing.assert_array_equal(strided_positions(10, 4), [0, 4, 8, 9])
    np.testing.assert_array_equal(strided_positions(9, 4), [0, 4, 8])
    np.testing.assert_array_equal(strided_positions(1, 3), [0])
    with pytest.raises(ValueError, match="stride must be >= 1"):
        strided_positions(5, 0)
    out = interpolate_outputs(
        np.array([0, 2]),
        {"progress": np.array([0.0, 1.0]), "stage_probs": np.array([[1.0, 0.0], [0.0, 1.0]])},
        3,
    )
    np.testing.assert_allclose(out["progress"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out["stage_probs"], [[1, 0], [0.5, 0.5], [0, 1]])


def test_shard_split_is_balanced_disjoint_and_complete(tiny_dataset):
    root, _ = tiny_dataset
    episodes = open_dataset(root=root).episodes()  # lengths 20, 24, 16
    first, second = (shard_episodes(episodes, i, 2) for i in range(2))
    assert [e.episode_index for e in first] == [1]
    assert [e.episode_index for e in second] == [0, 2]
    with pytest.raises(ValueError, match="process_index 2 out of range"):
        shard_episodes(episodes, 2, 2)


def test_two_fake_processes_write_parts_and_only_main_merges(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    ds = open_dataset(root=root)
    out = tmp_path / "m.parquet"
    # process 1 labels its share into parts; without a barrier it stops there (a datatrove task)
    worker = ShardState(1, 2)
    assert label_to_parquet(_toy(), "toy", ds, out, shard=worker, show_progress=False) is None
    assert not out.exists()
    assert sorted(p.name for p in progress_parts_dir(out).glob("*.npz")) == ["0.npz", "2.npz"]
    # process 0 labels episode 1 and, past the barrier, merges every part
    met = []
    main_state = ShardState(0, 2, barrier=lambda: met.append(1))
    assert label_to_parquet(_toy(), "toy", ds, out, shard=main_state, show_progress=False) == out
    assert len(met) == 2 and not progress_parts_dir(out).exists()
    single = label_to_parquet(_toy(), "toy", ds, tmp_path / "s.parquet", show_progress=False)
    assert out.read_bytes() == single.read_bytes()  # byte-identical to one process


def test_label_dataset_gathers_shards(tiny_dataset):
    ds = open_dataset(root=tiny_dataset[0])
    sent: list = []
    worker = ShardState(1, 2, gather=lambda mine: sent.extend(mine) or mine + [])
    label_dataset(_toy(), ds, shard=worker, show_progress=False)
    assert sorted(e.episode_index for e in sent) == [0, 2]
    gathered = label_dataset(
        _toy(), ds, shard=ShardState(0, 2, gather=lambda mine: mine + sent), show_progress=False
    )
    single = label_dataset(_toy(), ds, show_progress=False)
    assert [e.episode_index for e in gathered] == [0, 1, 2]
    for a, b in zip(gathered, single, strict=True):
        np.testing.assert_array_equal(a.progress, b.progress)


def test_frames_model_reads_decoded_frames(tiny_dataset):
    root, truths = tiny_dataset
    ds = open_dataset(root=root)
    labels = label_dataset(_toy(source="frames"), ds, show_progress=False)
    for ep, truth in zip(labels, truths, strict=True):
        assert np.abs(ep.progress - truth.progress).max() < 0.15  # chroma subsampling blurs the square


class _FakeCache:
    def __init__(self, truths):
        self.truths = {t.episode_index: t for t in truths}
        self.texts = []

    def episode_features(self, episode_index, camera):
        progress = self.truths[episode_index].progress
        return np.stack([progress, 1 - progress], 1).astype(np.float16)

    def text_features(self, task):
        self.texts.append(task)
        return np.ones(2, dtype=np.float16)


def test_cache_model_gets_cached_features_and_the_cache_is_built_when_missing(tiny_dataset, monkeypatch):
    root, truths = tiny_dataset
    ds = open_dataset(root=root)
    opened = []

    def fake_open(dataset, encoder, cameras, *options):
        opened.append((encoder, list(cameras)))
        return _FakeCache(truths)

    monkeypatch.setattr(labeller_module, "open_feature_cache", fake_open)
    model = _toy(source="features", encoder="clip-random:vit-b-32")
    labels = label_dataset(model, ds, show_progress=False)
    assert opened == [("clip-random:vit-b-32", ["observation.images.top"])]
    for ep, truth in zip(labels, truths, strict=True):
        np.testing.assert_allclose(ep.progress, truth.progress, atol=1e-3)
    assert model.calls[0].frames is None and model.calls[0].text_features is not None


def test_malformed_model_output_names_the_episode(tiny_dataset):
    root, _ = tiny_dataset
    ds = open_dataset(root=root)
    model = _toy()
    inputs = labeller_module.episode_inputs(ds, model.required_inputs(), ds.episode(1))
    model.label_episode = lambda inputs: {"progress": np.zeros(3)}
    with pytest.raises(LabellingError, match=r"'progress' of shape \(3,\) for episode 1, expected \(24,\)"):
        label_one_episode(model, inputs)
    model.label_episode = lambda inputs: {"progress": np.full(24, 1.5)}
    with pytest.raises(LabellingError, match=r"outside \[0, 1\] for episode 1"):
        label_one_episode(model, inputs)


def test_cli_errors_and_never_uploads_unless_asked(tiny_dataset, tmp_path, capsys, monkeypatch):
    root, _ = tiny_dataset
    uploads = []
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file", lambda self, **kw: uploads.append(kw))
    assert main(["label", f"--dataset.root={root}"]) == 2
    assert "--model.path" in capsys.readouterr().err
    model_path = save_toy(tmp_path / "toy")
    out = tmp_path / "p.parquet"
    base = ["label", f"--dataset.root={root}", f"--model.path={model_path}", f"--output={out}"]
    assert main([*base, "--stride=0"]) == 2
    assert main(base) == 0 and uploads == []
    assert main([*base, "--push_to_hub=true"]) == 2  # no repo id to upload to
    assert main([*base, "--push_to_hub=true", "--dataset.repo_id=me/ds", "--overwrite=true"]) == 0
    assert uploads == [
        {
            "path_or_fileobj": str(out),
            "path_in_repo": "sarm_progress.parquet",
            "repo_id": "me/ds",
            "repo_type": "dataset",
        }
    ]


def test_label_never_replaces_an_earlier_parquet_unless_asked(own_copy, tmp_path, capsys):
    root, _ = own_copy
    model_path = save_toy(tmp_path / "toy")
    default = root / "sarm_progress.parquet"
    default.write_bytes(b"earlier labels")
    base = ["label", f"--dataset.root={root}", f"--model.path={model_path}"]
    assert main(base) == 2
    error = capsys.readouterr().err
    assert str(default) in error and "--overwrite=true" in error
    assert default.read_bytes() == b"earlier labels"
    assert main([*base, "--overwrite=true"]) == 0
    episodes, _ = read_progress_parquet(default)
    assert sorted(episodes) == [0, 1, 2]


def test_labeller_records_the_dataset_fingerprint(tiny_dataset, tmp_path):
    import json

    from rewardkit.labelling import dataset_fingerprint

    root, _ = tiny_dataset
    dataset = open_dataset(root=root, episodes=[1])
    out = label_to_parquet(_toy(), "toy", dataset, tmp_path / "p.parquet", show_progress=False)
    _, metadata = read_progress_parquet(out)
    recorded = json.loads(metadata["rewardkit"])["dataset"]
    # The whole dataset's layout, not the selection: a subset's file still fits the dataset.
    assert recorded == dataset_fingerprint(open_dataset(root=root))
    assert recorded["num_episodes"] == 3 and recorded["num_frames"] == 60


def test_extra_per_frame_outputs_become_columns_beside_the_progress(tiny_dataset, tmp_path):
    """A success probability and a raw VLM score (TOPReward's log P("True")) go to their own columns;
    the RA-BC columns are unchanged; under a stride the raw score is interpolated like the progress."""
    import pyarrow.parquet as pq

    root, _ = tiny_dataset
    dataset = open_dataset(root=root)
    out = label_to_parquet(_toy(log_prob=True), "toy", dataset, tmp_path / "p.parquet", show_progress=False)
    table = pq.read_table(out).to_pandas()
    assert {"progress_sparse", "success_prob", "log_prob"} <= set(table.columns)
    np.testing.assert_allclose(table["success_prob"], table["progress_sparse"], atol=1e-6)
    np.testing.assert_allclose(table["log_prob"], np.log(table["progress_sparse"] + 1e-3) - 1.0, atol=1e-5)
    assert (table["log_prob"] < 0).all()
    strided = label_to_parquet(
        _toy(log_prob=True), "toy", dataset, tmp_path / "s.parquet", stride=3, show_progress=False
    )
    at = pq.read_table(strided).to_pandas()
    labelled = (at["frame_index"] % 3 == 0).to_numpy()
    np.testing.assert_allclose(at["log_prob"][labelled], table["log_prob"][labelled], atol=1e-5)
    # a model without the extra output writes no such column
    plain = label_to_parquet(_toy(), "toy", dataset, tmp_path / "q.parquet", show_progress=False)
    assert "log_prob" not in pq.read_table(plain).column_names
