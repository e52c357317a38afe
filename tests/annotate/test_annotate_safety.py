"""The annotator leaves the dataset whole (#13.7, #13.8): validate first and write once, stop on a dead
server, keep the API key off plain HTTP, never mix two stage sets, keep file modes, refuse to overwrite."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from rewardkit.annotate import BackendError, BackendUnavailable, OpenAICompatibleBackend, annotate_dataset
from rewardkit.cli import main
from rewardkit.data.annotations import (
    SubtaskAnnotation,
    read_annotations,
    read_temporal_proportions,
    temporal_proportions_path,
    write_annotations,
    write_temporal_proportions,
)
from rewardkit.data.dataset import open_dataset

NAMES = ["reach", "grasp", "place"]


def meta_digest(root):
    digest = hashlib.sha256()
    for path in sorted((root / "meta").rglob("*")):
        if path.is_file():
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def episode_files(root):
    return sorted((root / "meta" / "episodes").glob("*/*.parquet"))


def vlm_args(root, server, *extra):
    return ["annotate", "vlm", f"--dataset.root={root}", f"--names={','.join(NAMES)}",
            f"--base_url={server.base_url}", "--model=fake", *extra]  # fmt: skip


def test_vlm_with_new_names_refuses_before_asking_and_names_the_real_episode(
    dataset_copy, chat_server, answer_for, capsys
):
    # Episode 2 was annotated with other stage names; annotating episode 0 with NAMES would mix them.
    write_annotations(dataset_copy, "sparse", {2: SubtaskAnnotation(["approach", "lift"], [0, 6], [6, 15])})
    write_temporal_proportions(dataset_copy, "sparse", {"approach": 0.4, "lift": 0.6})
    before = meta_digest(dataset_copy)
    with chat_server(lambda n, prompt, body: (200, answer_for(prompt, NAMES))) as server:
        assert main(vlm_args(dataset_copy, server, "--episodes=[0]")) == 2
        err = capsys.readouterr().err
        assert "episode(s) [2]" in err and "['approach', 'lift']" in err and "--overwrite=true" in err
        assert "entry" not in err
        assert server.requests == []  # refused before the first request
        assert meta_digest(dataset_copy) == before

        # --overwrite=true: episode 2's old annotation goes, and the output says so
        assert main(vlm_args(dataset_copy, server, "--episodes=[0]", "--overwrite=true")) == 0
    out = capsys.readouterr().out
    assert "removed the annotations of episode(s) [2]" in out
    assert sorted(read_annotations(dataset_copy, "sparse")) == [0]
    assert list(read_temporal_proportions(dataset_copy, "sparse")) == NAMES


def test_vlm_writes_once_after_every_answer(dataset_copy, chat_server, answer_for, monkeypatch):
    import rewardkit.data.annotations as annotations_module

    calls = []
    real = annotations_module.write_annotations
    monkeypatch.setattr(
        annotations_module, "write_annotations", lambda *a, **k: calls.append(a[2]) or real(*a, **k)
    )
    with chat_server(lambda n, prompt, body: (200, answer_for(prompt, NAMES))) as server:
        assert main(vlm_args(dataset_copy, server)) == 0
    assert len(calls) == 1 and sorted(calls[0]) == [0, 1, 2]
    assert sorted(read_annotations(dataset_copy, "sparse")) == [0, 1, 2]


def test_failing_server_stops_after_consecutive_failures_and_writes_nothing(
    dataset_copy, chat_server, capsys
):
    before = meta_digest(dataset_copy)
    with chat_server(lambda n, prompt, body: (500, "overloaded")) as server:
        assert main(vlm_args(dataset_copy, server, "--max_retries=2")) == 2
        assert len(server.requests) == 3  # not 3 episodes x 3 attempts
    err = capsys.readouterr().err
    assert "failed 3 requests in a row" in err and "HTTP 500" in err and "nothing was written" in err
    assert meta_digest(dataset_copy) == before


def test_server_dying_midway_keeps_the_answers_obtained_and_says_so(
    dataset_copy, chat_server, answer_for, capsys
):
    def script(number, prompt, body):
        return (200, answer_for(prompt, NAMES)) if number == 1 else (503, "gone")

    with chat_server(script) as server:
        assert main(vlm_args(dataset_copy, server, "--max_consecutive_failures=2")) == 2
        assert len(server.requests) == 3
    err = capsys.readouterr().err
    assert "failed 2 requests in a row" in err and "the 1 annotated before the stop were written" in err
    assert sorted(read_annotations(dataset_copy, "sparse")) == [0]
    assert list(read_temporal_proportions(dataset_copy, "sparse")) == NAMES


def test_consecutive_failures_reset_on_an_answer(dataset_copy):
    """Failures separated by answers do not stop the run (library call, a scripted backend)."""

    class Flaky:
        def __init__(self):
            self.calls = 0

        def complete(self, parts):
            self.calls += 1
            if self.calls % 2 == 1:
                raise BackendError("timed out")
            return "no json here"

    dataset = open_dataset(root=dataset_copy)
    backend = Flaky()
    result = annotate_dataset(
        dataset, backend, NAMES, max_retries=1, max_consecutive_failures=2, progress=False
    )
    assert backend.calls == 6 and result.failed == (0, 1, 2) and result.update is None
    with pytest.raises(BackendUnavailable, match="failed 1 request in a row; last: timed out"):
        annotate_dataset(dataset, Flaky(), NAMES, max_retries=1, max_consecutive_failures=1, progress=False)


def test_api_key_is_never_sent_over_plain_http_to_another_host(dataset_copy, monkeypatch, capsys):
    monkeypatch.setenv("RK_TEST_KEY", "secret")
    args = ["annotate", "vlm", f"--dataset.root={dataset_copy}", "--names=a,b", "--model=m",
            "--base_url=http://vlm.example.com/v1", "--api_key_env=RK_TEST_KEY"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "refusing to send the API key over plain http:// to vlm.example.com" in err
    assert "--allow_insecure_http=true" in err and "secret" not in err
    # allowed when asked, over https, to this machine, or with no key at all
    OpenAICompatibleBackend("http://vlm.example.com/v1", "m", api_key="k", allow_insecure_http=True)
    OpenAICompatibleBackend("https://vlm.example.com/v1", "m", api_key="k")
    for local in ("http://localhost:8000/v1", "http://127.0.0.1:8000/v1", "http://[::1]:8000/v1"):
        OpenAICompatibleBackend(local, "m", api_key="k")
    OpenAICompatibleBackend("http://vlm.example.com/v1", "m", api_key=None)


def test_import_with_new_stage_names_refuses_or_replaces_and_says_which(dataset_copy, tmp_path, capsys):
    old = tmp_path / "old.csv"
    old.write_text("episode,scheme,name,start,end\n1,sparse,reach,0,10\n1,sparse,place,10,23\n")
    assert main(["annotate", "import", f"--dataset.root={dataset_copy}", f"--file={old}"]) == 0
    assert list(read_temporal_proportions(dataset_copy, "sparse")) == ["reach", "place"]
    capsys.readouterr()
    new = tmp_path / "new.csv"
    new.write_text("episode,scheme,name,start,end\n0,sparse,approach,0,8\n0,sparse,lift,8,19\n")
    before = meta_digest(dataset_copy)
    assert main(["annotate", "import", f"--dataset.root={dataset_copy}", f"--file={new}"]) == 2
    err = capsys.readouterr().err
    assert "episode(s) [1]" in err and "['place', 'reach']" in err and "--overwrite=true" in err
    assert meta_digest(dataset_copy) == before

    assert (
        main(["annotate", "import", f"--dataset.root={dataset_copy}", f"--file={new}", "--overwrite=true"])
        == 0
    )
    assert "sparse: removed the annotations of episode(s) [1]" in capsys.readouterr().out
    assert sorted(read_annotations(dataset_copy, "sparse")) == [0]
    assert list(read_temporal_proportions(dataset_copy, "sparse")) == ["approach", "lift"]


def test_non_utf8_csv_names_the_file(dataset_copy, tmp_path, capsys):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("episode,scheme,name,start,end\n0,sparse,préhension,0,19\n".encode("latin-1"))
    before = meta_digest(dataset_copy)
    assert main(["annotate", "import", f"--dataset.root={dataset_copy}", f"--file={bad}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rewardkit: error:") and str(bad) in err and "not UTF-8" in err
    assert meta_digest(dataset_copy) == before
    # a UTF-8 file with a byte-order mark (as spreadsheets save it) imports
    good = tmp_path / "bom.csv"
    good.write_bytes("episode,scheme,name,start,end\n0,sparse,préhension,0,19\n".encode("utf-8-sig"))
    assert main(["annotate", "import", f"--dataset.root={dataset_copy}", f"--file={good}"]) == 0
    assert read_annotations(dataset_copy, "sparse")[0].names == ("préhension",)


def test_import_keeps_the_dataset_modes_and_outputs_follow_the_umask(dataset_copy, tmp_path):
    for path in episode_files(dataset_copy):
        os.chmod(path, 0o644)
    csv_file = tmp_path / "ann.csv"
    csv_file.write_text("episode,scheme,name,start,end\n0,sparse,reach,0,8\n0,sparse,place,8,19\n")
    previous = os.umask(0o022)
    try:
        assert main(["annotate", "import", f"--dataset.root={dataset_copy}", f"--file={csv_file}"]) == 0
        assert (
            main(["annotate", "export", f"--dataset.root={dataset_copy}", f"--output={tmp_path / 'o.csv'}"])
            == 0
        )
        os.umask(0o077)  # a replaced file keeps its own mode, whatever the umask
        assert main(["annotate", "import", f"--dataset.root={dataset_copy}", f"--file={csv_file}"]) == 0
    finally:
        os.umask(previous)
    for path in episode_files(dataset_copy):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE(temporal_proportions_path(dataset_copy, "sparse").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "o.csv").stat().st_mode) == 0o644


def test_export_and_show_refuse_to_overwrite_without_the_flag(dataset_copy, tmp_path, capsys):
    write_annotations(dataset_copy, "sparse", {0: SubtaskAnnotation(["reach"], [0], [19])})
    output = tmp_path / "ann.csv"
    export = ["annotate", "export", f"--dataset.root={dataset_copy}", f"--output={output}"]
    assert main(export) == 0
    output.write_text("mine\n")
    capsys.readouterr()
    assert main(export) == 2
    err = capsys.readouterr().err
    assert f"{output} already exists" in err and "--overwrite=true" in err
    assert output.read_text() == "mine\n"
    assert main([*export, "--overwrite=true"]) == 0
    assert output.read_text().startswith("episode,scheme,name,start,end")

    show = ["annotate", "show", f"--dataset.root={dataset_copy}", f"--output_dir={tmp_path / 'png'}",
            "--num_frames=2"]  # fmt: skip
    assert main(show) == 0
    png = tmp_path / "png" / "episode_000000.png"
    png.write_bytes(b"mine")
    assert main(show) == 2 and png.read_bytes() == b"mine"
    assert main([*show, "--overwrite=true"]) == 0 and png.read_bytes()[:4] == b"\x89PNG"
