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


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        fresh = atomic_write_text(tmp_path / "fresh.json", "{}")
        assert fresh.stat().st_mode & 0o777 == 0o644  # mkstemp alone gives 600
        kept = tmp_path / "episodes.parquet"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write_text(kept, "new")
        assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "new"
    finally:
        os.umask(old)


def test_check_overwrite_refuses_an_existing_output_unless_asked(tmp_path):
    from rewardkit.errors import RewardkitError
    from rewardkit.io_utils import check_overwrite

    target = tmp_path / "eval.json"
    assert check_overwrite(target, overwrite=False) == target  # nothing there yet
    target.write_text("{}")
    with pytest.raises(RewardkitError, match=r"eval.json already exists; pass --overwrite=true"):
        check_overwrite(target, overwrite=False)
    assert check_overwrite(target, overwrite=True) == target


def test_failed_folder_write_keeps_the_old_folder_and_removes_the_temporary(tmp_path):
    from rewardkit.io_utils import atomic_write_folder

    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "old.txt").write_text("old")

    def broken(folder):
        folder.mkdir()
        (folder / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_folder(target, broken)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]
