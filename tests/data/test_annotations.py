"""Annotation I/O: LeRobot episode columns (metadata split over two files), proportions, CSV/JSON, keyframes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardkit.data.annotations import (
    Keyframes,
    SubtaskAnnotation,
    episode_lengths,
    export_annotations,
    failed_episodes,
    import_annotations,
    keyframe_failure_frame,
    load_progress_targets,
    read_annotations,
    read_keyframes,
    read_temporal_proportions,
    write_annotations,
    write_temporal_proportions,
)

LENGTHS = [20, 24, 16]  # the shared tiny_dataset fixture
A = SubtaskAnnotation


def split_episode_metadata(root: Path) -> None:
    """Move episodes 1 and 2 into meta/episodes/chunk-000/file-001.parquet (as a long recording would)."""
    path = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    first, second = table.slice(0, 1), table.slice(1)
    column = "meta/episodes/file_index"
    kind = table.schema.field(column).type
    second = second.set_column(
        second.column_names.index(column), column, pa.array([1] * second.num_rows, kind)
    )
    pq.write_table(first, path)
    pq.write_table(second, path.with_name("file-001.parquet"))


@pytest.fixture
def split_dataset(tiny_dataset, tmp_path):
    """A copy of the shared tiny dataset (10 fps) whose episode metadata spans two parquet files."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset[0], root)
    split_episode_metadata(root)
    return root


def meta_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((root / "meta").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


SPARSE = {2: A(["reach", "place"], [0, 6], [6, 15]), 0: A(["reach"], [0], [11])}
DENSE = {1: A(["a", "b", "c"], [0, 4, 9], [3, 9, 13]), 2: A(["a", "c"], [2, 5], [5, 5])}


def test_episode_metadata_really_spans_two_files(split_dataset):
    files = sorted((split_dataset / "meta" / "episodes").rglob("*.parquet"))
    assert [pq.read_table(f)["episode_index"].to_pylist() for f in files] == [[0], [1, 2]]
    assert episode_lengths(split_dataset) == dict(enumerate(LENGTHS))


def test_write_read_round_trip_puts_each_episode_in_its_own_row(split_dataset):
    before = {f: pq.read_table(f) for f in sorted((split_dataset / "meta" / "episodes").rglob("*.parquet"))}
    write_annotations(split_dataset, "sparse", SPARSE)
    write_annotations(split_dataset, "dense", DENSE)
    assert read_annotations(split_dataset, "sparse") == dict(sorted(SPARSE.items()))
    assert read_annotations(split_dataset, "dense") == dict(sorted(DENSE.items()))
    assert read_annotations(split_dataset, "dense", episodes=[2]) == {2: DENSE[2]}
    for path, old in before.items():
        new = pq.read_table(path)
        # every original column is untouched, only the ten subtask columns were added
        assert new.select(old.column_names).equals(old)
        added = sorted(set(new.column_names) - set(old.column_names))
        assert added == sorted(
            f"{s}_subtask_{x}"
            for s in ("sparse", "dense")
            for x in ("names", "start_frames", "end_frames", "start_times", "end_times")
        )
    second = pq.read_table(split_dataset / "meta" / "episodes" / "chunk-000" / "file-001.parquet").to_pylist()
    assert [row["sparse_subtask_names"] for row in second] == [None, ["reach", "place"]]
    assert second[1]["sparse_subtask_end_times"] == [0.6, 1.5]
    assert second[0]["dense_subtask_start_frames"] == [0, 4, 9]


def test_lerobot_reads_what_we_write(split_dataset):
    from lerobot.datasets.io_utils import load_episodes
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.rewards.sarm.modeling_sarm import SARMRewardModel
    from lerobot.rewards.sarm.processor_sarm import SARMEncodingProcessorStep

    write_annotations(split_dataset, "dense", DENSE)
    write_temporal_proportions(split_dataset, "dense", {"a": 0.5, "b": 0.3, "c": 0.2})
    frame = load_episodes(split_dataset).to_pandas()
    columns = ["dense_subtask_names", "dense_subtask_start_frames", "dense_subtask_end_frames"]
    for episode_index, annotation in DENSE.items():
        row = frame.loc[episode_index, columns]
        assert SARMEncodingProcessorStep._annotations_are_usable(*row)
        assert list(row.iloc[0]) == list(annotation.names)
        assert list(row.iloc[1]) == list(annotation.start_frames)
    assert not SARMEncodingProcessorStep._annotations_are_usable(*frame.loc[0, columns])
    names, proportions = SARMRewardModel._load_proportions_from_json(
        None, split_dataset / "meta" / "temporal_proportions_dense.json", "dense"
    )
    assert names == ["a", "b", "c"] and proportions == [0.5, 0.3, 0.2]
    dataset = LeRobotDataset("rewardkit/split", root=split_dataset)
    assert dataset.meta.total_episodes == 3 and int(dataset[len(dataset) - 1]["episode_index"]) == 2


def test_rewriting_keeps_other_episodes_and_none_removes(split_dataset):
    write_annotations(split_dataset, "sparse", SPARSE)
    write_annotations(split_dataset, "sparse", {0: A(["place"], [2], [3]), 2: None})
    assert read_annotations(split_dataset, "sparse") == {0: A(["place"], [2], [3])}
    assert not list(split_dataset.rglob("*.tmp"))


BAD = [
    ({1: A(["a", "b"], [0, 4], [6, 9])}, "episode 1.*overlap"),
    ({1: A(["a", "b"], [5, 0], [9, 4])}, "episode 1.*out of order"),
    ({2: A(["a"], [0], [30])}, "episode 2.*within the episode"),
    ({2: A(["a"], [float("nan")], [4])}, "episode 2.*nan"),
    ({2: A(["a", "b"], [0], [4])}, "episode 2.*1 start"),
    ({2: A(["zzz"], [0], [4])}, "episode 2.*unknown subtask name"),
    ({9: A(["a"], [0], [4])}, "episode 9 is not in the dataset"),
]


@pytest.mark.parametrize("annotations, message", BAD)
def test_bad_annotations_name_the_episode_and_write_nothing(split_dataset, annotations, message):
    write_annotations(split_dataset, "sparse", {0: A(["a"], [0], [5])})  # a good one, also pending
    digest = meta_digest(split_dataset)
    with pytest.raises(ValueError, match=message):
        write_annotations(
            split_dataset, "sparse", {0: A(["b"], [0], [5]), **annotations}, known_names=["a", "b"]
        )
    assert meta_digest(split_dataset) == digest


def test_read_rejects_bad_rows_naming_the_episode(split_dataset):
    path = split_dataset / "meta" / "episodes" / "chunk-000" / "file-001.parquet"
    table = pq.read_table(path)
    values = {"names": [None, ["a"]], "start_frames": [None, [0]], "end_frames": [None, [40]]}
    for suffix, column in values.items():
        kind = pa.list_(pa.string()) if suffix == "names" else pa.list_(pa.int64())
        table = table.append_column(f"dense_subtask_{suffix}", pa.array(column, kind))
    pq.write_table(table, path)
    with pytest.raises(ValueError, match="episode 2 \\(16 frames\\)"):
        read_annotations(split_dataset, "dense")


def test_legacy_sparse_columns_are_read(split_dataset):
    path = split_dataset / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    for other in (path.with_name("file-001.parquet"),):
        table = pq.read_table(other)
        for suffix in ("names", "start_times", "end_times"):
            kind = pa.list_(pa.string()) if suffix == "names" else pa.list_(pa.float64())
            table = table.append_column(f"subtask_{suffix}", pa.array([None, None], kind))
        pq.write_table(table, other)
    table = pq.read_table(path)
    table = table.append_column("subtask_names", pa.array([["x", "y"]], pa.list_(pa.string())))
    table = table.append_column("subtask_start_times", pa.array([[0.0, 0.4]], pa.list_(pa.float64())))
    table = table.append_column("subtask_end_times", pa.array([[0.4, 1.1]], pa.list_(pa.float64())))
    pq.write_table(table, path)
    assert read_annotations(split_dataset, "sparse") == {0: A(["x", "y"], [0, 4], [4, 11])}


def test_temporal_proportions_round_trip_and_errors(split_dataset):
    proportions = {"reach": 0.25, "grasp": 0.5, "place": 0.25}
    path = write_temporal_proportions(split_dataset, "sparse", proportions)
    assert path.name == "temporal_proportions_sparse.json"
    assert list(read_temporal_proportions(split_dataset, "sparse").items()) == list(proportions.items())
    with pytest.raises(ValueError, match="'grasp'"):
        write_temporal_proportions(split_dataset, "sparse", {"reach": 0.5, "grasp": float("nan")})
    with pytest.raises(FileNotFoundError, match="dense"):
        read_temporal_proportions(split_dataset, "dense")


# ------------------------------------------------------------------ exchange files
@pytest.mark.parametrize("suffix", [".csv", ".json"])
@pytest.mark.parametrize("unit", ["frames", "seconds"])
def test_exchange_round_trip_is_lossless(tmp_path, suffix, unit):
    annotations = {"sparse": dict(sorted(SPARSE.items())), "dense": dict(sorted(DENSE.items()))}
    path = export_annotations(tmp_path / f"ann{suffix}", annotations, fps=30, unit=unit)
    back = import_annotations(
        path, fps=30, unit=unit if suffix == ".csv" else None, lengths=dict(enumerate(LENGTHS))
    )
    assert back == annotations


@settings(max_examples=40, deadline=None)
@given(
    fps=st.sampled_from([10, 15, 24, 30, 50]),
    frames=st.lists(st.integers(0, 5000), min_size=2, max_size=8, unique=True),
)
def test_seconds_round_trip_is_lossless_for_any_frames(fps, frames, tmp_path_factory):
    frames = sorted(frames)
    annotation = A([f"s{i}" for i in range(len(frames) - 1)], frames[:-1], frames[1:])
    path = tmp_path_factory.mktemp("rt") / "a.csv"
    export_annotations(path, {"dense": {5: annotation}}, fps=fps, unit="seconds")
    assert import_annotations(path, fps=fps, unit="seconds")["dense"][5] == annotation


def test_import_errors_name_the_episode(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("episode,scheme,name,start,end\n2,sparse,a,0,4\n2,sparse,b,3,8\n")
    with pytest.raises(ValueError, match="episode 2.*overlap"):
        import_annotations(bad, fps=10)
    bad.write_text("episode,scheme,name,start,end\n1,dense,a,0,nan\n")
    with pytest.raises(ValueError, match="episode 1.*nan"):
        import_annotations(bad, fps=10)
    bad.write_text("episode,scheme,name,start,end\n1,dense,a,0,30\n")
    with pytest.raises(ValueError, match="episode 1.*within the episode"):
        import_annotations(bad, fps=10, lengths={1: 14})
    with pytest.raises(ValueError, match="episode 1.*unknown subtask name"):
        import_annotations(bad, fps=10, known_names={"dense": ["b"]})
    bad.write_text("episode,scheme,name,start,end\n1,coarse,a,0,3\n")
    with pytest.raises(ValueError, match="episode 1: scheme"):
        import_annotations(bad, fps=10)
    bad.write_text("episode,name,start,end\n1,a,0,3\n")
    with pytest.raises(ValueError, match="missing column"):
        import_annotations(bad, fps=10)


# ------------------------------------------------------------------ keyframes and failures
def test_keyframes_file_formats_and_failure(tmp_path):
    path = tmp_path / "keyframes.json"
    path.write_text(
        json.dumps(
            {
                "unit": "seconds",
                "episodes": {"0": {"0.5": 0.5, "1.0": 1.0}, "2": [[0.2, 0.5], [1.0, 1.0], [1.4, 0.2]]},
                "failed": [1],
            }
        )
    )
    keyframes = read_keyframes(path, fps=10, lengths=dict(enumerate(LENGTHS)))
    assert keyframes.episodes == {0: [(5, 0.5), (10, 1.0)], 2: [(2, 0.5), (10, 1.0), (14, 0.2)]}
    assert failed_episodes(keyframes=keyframes, explicit=[0]) == {0: None, 1: None, 2: 14}
    assert keyframe_failure_frame([(2, 0.5), (6, 0.1), (8, 1.0)]) is None
    assert keyframe_failure_frame([(2, 0.5), (5, 0.5), (6, 0.1)]) == 6


def test_keyframes_in_dataset_folder(split_dataset):
    (split_dataset / "meta" / "keyframes.json").write_text(json.dumps({"episodes": {"1": {"3": 0.5}}}))
    assert read_keyframes(split_dataset).episodes == {1: [(3, 0.5)]}


@pytest.mark.parametrize(
    "episodes, message",
    [
        ({"1": {"3": 1.5}}, "episode 1: reward 1.5"),
        ({"2": {"3": "NaN"}}, "episode 2: reward nan"),
        ({"2": {"16": 0.5}}, "episode 2: keyframe at frame 16 is outside"),
        ({"0": [[1, 0.5], [1, 0.6]]}, "episode 0: two keyframes"),
        ({"7": {"1": 0.5}}, "episode 7 is not in"),
    ],
)
def test_bad_keyframes_name_the_episode(tmp_path, episodes, message):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"episodes": episodes}))
    with pytest.raises(ValueError, match=message):
        read_keyframes(path, lengths=dict(enumerate(LENGTHS)))


def test_failed_episodes_from_a_column(split_dataset):
    for path, flags in zip(
        sorted((split_dataset / "meta" / "episodes").rglob("*.parquet")), [[True], [False, None]], strict=True
    ):
        table = pq.read_table(path)
        pq.write_table(table.append_column("success", pa.array(flags, pa.bool_())), path)
    assert failed_episodes(split_dataset, column="success", success_column=True) == {1: None}
    assert failed_episodes(split_dataset, column="success") == {0: None}
    with pytest.raises(ValueError, match="no column 'failed'"):
        failed_episodes(split_dataset, column="failed")


def test_failure_frames_from_a_column_a_mapping_and_keyframes(split_dataset):
    # episode 0: failed at frame 0 (a failure from the start), 1: no failure (null), 2: negative = none
    for path, frames in zip(
        sorted((split_dataset / "meta" / "episodes").rglob("*.parquet")), [[0], [None, -1]], strict=True
    ):
        table = pq.read_table(path)
        pq.write_table(table.append_column("failed_at", pa.array(frames, pa.int64())), path)
    assert failed_episodes(split_dataset, frame_column="failed_at") == {0: 0}
    assert failed_episodes(split_dataset, explicit={2: 0, 1: None}) == {1: None, 2: 0}
    # a keyframe drop gives a frame where none is given; a frame given by the user wins
    keyframes = Keyframes(episodes={1: [(2, 0.5), (6, 0.1)], 2: [(3, 0.8), (9, 0.2)]})
    assert failed_episodes(split_dataset, explicit={1: None, 2: 4}, keyframes=keyframes) == {1: 6, 2: 4}
    with pytest.raises(ValueError, match="no column 'failed_frame'"):
        failed_episodes(split_dataset, frame_column="failed_frame")
    with pytest.raises(ValueError, match="episode 2: failure frame -3"):
        failed_episodes(split_dataset, explicit={2: -3})


def test_load_progress_targets_holds_or_drops_at_the_failure_frame(split_dataset):
    held = load_progress_targets(split_dataset, failed={1: 4}, start=0.0, end=1.0, failure_target="hold")
    dropped = load_progress_targets(split_dataset, failed={1: 4}, start=0.0, end=1.0)
    np.testing.assert_allclose(held[1][4:], 4 / (LENGTHS[1] - 1), atol=1e-6)
    np.testing.assert_allclose(dropped[1][4:], 0.0, atol=1e-6)
    np.testing.assert_allclose(held[1][:4], dropped[1][:4], atol=1e-6)
    np.testing.assert_allclose(held[0], dropped[0], atol=1e-6)  # successes unchanged


def test_stage_tau_from_annotation_uses_scheme_order():
    stage, tau = A(["b", "d"], [0, 5], [4, 9]).stage_tau(10, ["a", "b", "c", "d"])
    assert stage.tolist() == [1] * 5 + [3] * 5
    np.testing.assert_allclose(tau[:5], [0, 0.25, 0.5, 0.75, 1])


def test_files_written_by_hf_datasets_keep_their_feature_schema_in_step(split_dataset):
    import datasets
    from lerobot.datasets.io_utils import load_episodes

    for path in sorted((split_dataset / "meta" / "episodes").rglob("*.parquet")):
        datasets.Dataset.from_parquet(str(path)).to_parquet(str(path))  # embeds b"huggingface" features
    write_annotations(split_dataset, "sparse", SPARSE)
    features = json.loads(
        pq.read_schema(split_dataset / "meta" / "episodes" / "chunk-000" / "file-001.parquet").metadata[
            b"huggingface"
        ]
    )
    assert "sparse_subtask_end_times" in features["info"]["features"]
    assert load_episodes(split_dataset)["sparse_subtask_names"] == [["reach"], None, ["reach", "place"]]


def test_load_progress_targets_combines_keyframes_failures_and_linear(split_dataset):
    from rewardkit.data.annotations import load_progress_targets
    from rewardkit.data.targets import keyframe_progress, linear_progress

    (split_dataset / "meta" / "keyframes.json").write_text(
        json.dumps({"episodes": {"0": {"5": 0.5, "10": 1.0}, "2": {"4": 0.6, "8": 0.1}}})
    )
    targets = load_progress_targets(split_dataset, keyframes=split_dataset, failed={1: 12})
    np.testing.assert_allclose(targets[0], keyframe_progress(20, {5: 0.5, 10: 1.0}))
    expected_1 = np.minimum(linear_progress(24), 0.9)
    expected_1[12:] = 0
    np.testing.assert_allclose(targets[1], expected_1)
    np.testing.assert_allclose(targets[2], keyframe_progress(16, {4: 0.6, 8: 0.1}))  # the drop is the failure
    assert max(t.max() for t in (targets[1], targets[2])) < 1
    with pytest.raises(ValueError, match="episode 1: failure frame must be a frame of the episode"):
        load_progress_targets(split_dataset, failed={1: 40})
