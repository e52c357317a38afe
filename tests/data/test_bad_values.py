"""Bad values are named where they are (issue 13.5): NaN/inf in a column, a corrupt episodes parquet."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rewardkit.data.dataset import DatasetError, open_dataset


def _poison_state(root, episode_index, frames, value=np.nan):
    path = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    episodes = table.column("episode_index").to_numpy()
    frame_index = table.column("frame_index").to_numpy()
    state = np.asarray(table.column("observation.state").to_pylist(), dtype=np.float32)
    for f in frames:
        state[(episodes == episode_index) & (frame_index == f), 0] = value
    column = pa.array(list(state), type=table.schema.field("observation.state").type)
    table = table.set_column(table.schema.get_field_index("observation.state"), "observation.state", column)
    pq.write_table(table, path)


def test_nan_and_inf_in_state_are_named_by_column_and_episode(tiny_dataset, tmp_path):
    source, _ = tiny_dataset
    root = tmp_path / "ds"
    shutil.copytree(source, root)
    dataset = open_dataset(root=root)
    dataset.check_finite(["observation.state", "action"])  # clean data passes
    _poison_state(root, 1, [3, 7])
    _poison_state(root, 2, [0], value=np.inf)
    with pytest.raises(DatasetError) as info:
        open_dataset(root=root).check_finite(["observation.state"])
    message = str(info.value)
    assert "column 'observation.state'" in message
    assert "episode 1: 2 frames" in message and "episode 2: 1 frames" in message
    assert "episode 0" not in message
    # only the chosen episodes are checked
    open_dataset(root=root, episodes=[0]).check_finite(["observation.state"])


def test_corrupt_episodes_parquet_names_the_metadata_folder(tiny_dataset, tmp_path):
    source, _ = tiny_dataset
    root = tmp_path / "ds"
    shutil.copytree(source, root)
    path = next((root / "meta" / "episodes").rglob("*.parquet"))
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = b"\x00" * 64  # corrupt, not truncated
    data[-12:-4] = b"garbage!"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"corrupt parquet file.*meta/episodes"):
        open_dataset(root=root).episodes()
