import pytest

from rewardkit.io_utils import atomic_write, atomic_write_text


def test_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "report.json"
    assert atomic_write_text(target, "old") == target
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "progress.parquet"
    target.write_text("old")

    def broken(temporary):
        assert temporary.parent == tmp_path and temporary.suffix == ".parquet"  # writers infer the format
        temporary.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["progress.parquet"]
