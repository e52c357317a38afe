"""`rewardkit annotate import|export|show|vlm` end to end on a copy of the tiny dataset."""

from __future__ import annotations

import hashlib
import json

import pytest

from rewardkit.cli import main
from rewardkit.data.annotations import (
    SubtaskAnnotation,
    read_annotations,
    read_temporal_proportions,
    write_annotations,
)

NAMES = ["reach", "grasp", "place"]


def meta_digest(root):
    digest = hashlib.sha256()
    for path in sorted((root / "meta").rglob("*")):
        if path.is_file():
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def test_import_export_round_trip_and_proportions(dataset_copy, tmp_path, capsys):
    csv_file = tmp_path / "ann.csv"
    csv_file.write_text(
        "episode,scheme,name,start,end\n"
        "0,sparse,reach,0,0.8\n0,sparse,place,0.8,1.9\n"
        "2,sparse,reach,0,0.5\n2,sparse,place,0.5,1.5\n"
        "1,dense,a,0,1.0\n1,dense,b,1.0,2.3\n"
    )
    assert (
        main(["annotate", "import", f"--dataset.root={dataset_copy}", f"--file={csv_file}", "--unit=seconds"])
        == 0
    )
    out = capsys.readouterr().out
    assert "sparse temporal proportions:" in out and "dense temporal proportions:" in out
    assert read_annotations(dataset_copy, "sparse") == {
        0: SubtaskAnnotation(["reach", "place"], [0, 8], [8, 19]),
        2: SubtaskAnnotation(["reach", "place"], [0, 5], [5, 15]),
    }
    proportions = read_temporal_proportions(dataset_copy, "sparse")
    # formula (1): reach (8/20 + 5/16) / 2, place (11/20 + 10/16) / 2, normalised
    reach, place = (8 / 20 + 5 / 16) / 2, (11 / 20 + 10 / 16) / 2
    assert list(proportions) == ["reach", "place"]
    assert proportions["reach"] == pytest.approx(reach / (reach + place))
    assert list(read_temporal_proportions(dataset_copy, "dense")) == ["a", "b"]

    exported = tmp_path / "out.json"
    assert main(["annotate", "export", f"--dataset.root={dataset_copy}", f"--output={exported}"]) == 0
    data = json.loads(exported.read_text())
    assert data["unit"] == "frames" and len(data["annotations"]) == 6
    # re-import of the export into a fresh copy gives the same annotations
    again = tmp_path / "again.csv"
    assert (
        main(
            [
                "annotate",
                "export",
                f"--dataset.root={dataset_copy}",
                f"--output={again}",
                "--scheme=dense",
                "--unit=seconds",
            ]
        )
        == 0
    )
    assert again.read_text().splitlines()[1] == "1,dense,a,0.0,1.0"


def test_bad_import_names_the_episode_and_writes_nothing(dataset_copy, tmp_path, capsys):
    write_annotations(dataset_copy, "sparse", {1: SubtaskAnnotation(["reach"], [0], [5])})
    before = meta_digest(dataset_copy)
    cases = {
        "0,sparse,reach,0,8\n0,sparse,place,6,19\n": "episode 0.*overlap",
        "2,sparse,reach,0,8\n2,sparse,place,8,30\n": "episode 2.*within the episode",
        "1,sparse,reach,0,8\n1,sparse,lift,8,9\n": "episode 1.*unknown subtask name",
        "1,sparse,reach,0,nan\n": "episode 1.*nan",
        "5,sparse,reach,0,3\n": "episode 5 is not in the dataset",
    }
    for rows, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text("episode,scheme,name,start,end\n" + rows)
        code = main(
            [
                "annotate",
                "import",
                f"--dataset.root={dataset_copy}",
                f"--file={bad}",
                "--sparse_names=reach,place",
            ]
        )
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("rewardkit: error:")
        import re

        assert re.search(message, err), (message, err)
        assert meta_digest(dataset_copy) == before


def test_show_writes_one_png_per_annotated_episode(dataset_copy, tmp_path, capsys):
    write_annotations(
        dataset_copy,
        "sparse",
        {
            0: SubtaskAnnotation(["reach", "place"], [0, 8], [8, 19]),
            2: SubtaskAnnotation(["reach"], [2], [10]),
        },
    )
    write_annotations(dataset_copy, "dense", {0: SubtaskAnnotation(["a"], [0], [19])})
    out_dir = tmp_path / "pngs"
    assert (
        main(
            [
                "annotate",
                "show",
                f"--dataset.root={dataset_copy}",
                f"--output_dir={out_dir}",
                "--num_frames=3",
            ]
        )
        == 0
    )
    pngs = sorted(p.name for p in out_dir.iterdir())
    assert pngs == ["episode_000000.png", "episode_000002.png"]
    assert (out_dir / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vlm_end_to_end_against_a_fake_openai_server_with_a_retry(
    dataset_copy, chat_server, answer_for, capsys
):
    prompts = []

    def script(number, prompt, body):
        prompts.append(prompt)
        if number == 1:  # malformed: wrong order, must be retried
            return 200, json.dumps(
                {
                    "subtasks": [
                        {"name": "place", "start": 0, "end": 1},
                        {"name": "reach", "start": 1, "end": 2},
                        {"name": "grasp", "start": 2, "end": 2.3},
                    ]
                }
            )
        return 200, answer_for(prompt, NAMES)

    with chat_server(script) as server:
        args = [
            "annotate",
            "vlm",
            f"--dataset.root={dataset_copy}",
            f"--names={','.join(NAMES)}",
            "--head=dense",
            f"--base_url={server.base_url}",
            "--model=fake-vlm",
            "--sample_fps=4",
        ]
        assert main(args) == 0
        assert len(server.requests) == 4  # 3 episodes, one retry
        assert "could not be used: subtasks must be" in prompts[1]
        body = server.requests[0]["body"]
        images = [p for p in body["messages"][0]["content"] if p["type"] == "image_url"]
        assert len(images) == 9  # 20 frames at 10 fps, sampled at 4 per second: 0, 2 (2.5), 5, ..., 19
        assert all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images)
        annotations = read_annotations(dataset_copy, "dense")
        assert sorted(annotations) == [0, 1, 2]
        assert annotations[1].names == tuple(NAMES) and annotations[1].end_frames[-1] == 23
        assert list(read_temporal_proportions(dataset_copy, "dense")) == NAMES

        # --skip_existing: nothing left to ask
        assert main([*args, "--skip_existing=true"]) == 0
        assert len(server.requests) == 4


def test_vlm_episode_that_never_gets_a_valid_answer_is_reported(
    dataset_copy, chat_server, answer_for, capsys
):
    def script(number, prompt, body):
        if "1.50 s (the time of its last frame)" in prompt:  # episode 2 (16 frames): always malformed
            return 200, "I cannot tell."
        return 200, answer_for(prompt, NAMES)

    with chat_server(script) as server:
        code = main(
            [
                "annotate",
                "vlm",
                f"--dataset.root={dataset_copy}",
                f"--names={','.join(NAMES)}",
                f"--base_url={server.base_url}",
                "--model=fake",
                "--max_retries=1",
                "--episodes=[1,2]",
            ]
        )
    assert code == 1
    assert sorted(read_annotations(dataset_copy, "sparse")) == [1]
    assert len(server.requests) == 3


def test_annotate_usage_and_unknown_subcommand(capsys):
    assert main(["annotate", "--help"]) == 0
    assert "usage: rewardkit annotate" in capsys.readouterr().out
    assert main(["annotate", "frobnicate"]) == 2
    assert "unknown annotate subcommand 'frobnicate'" in capsys.readouterr().err
