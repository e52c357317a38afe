"""`rewardkit eval` end to end, and the HTML report in headless Chromium."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from toy_reward_models import save_toy

from rewardkit.cli import main
from rewardkit.data.dataset import open_dataset
from rewardkit.evaluation import (
    ELAPSED_BASELINE,
    TIME_BASELINE_NOTE,
    EpisodeTruth,
    evaluate_dataset,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def eval_run(two_camera_dataset, tmp_path_factory):
    """`rewardkit eval` of two toy models on the 2-camera dataset (episode 3 failed)."""
    root, truths = two_camera_dataset
    tmp = tmp_path_factory.mktemp("eval")
    state_model = save_toy(tmp / "state")
    frames_model = save_toy(tmp / "frames", source="frames", cameras=["observation.images.wrist"])
    out = tmp / "report"
    argv = [
        "eval",
        f"--dataset.root={root}",
        f"--models=[{state_model},{frames_model}]",
        "--names=[state,frames]",
        "--failed_episodes=[3]",
        f"--output_dir={out}",
        "--episode_plots=1",
    ]
    assert main(argv) == 0
    return out, truths


def test_eval_json_has_every_number_and_both_baselines(eval_run, capsys):
    out, truths = eval_run
    data = json.loads((out / "eval.json").read_text())
    assert list(data["models"]) == ["state", "frames", ELAPSED_BASELINE, "baseline: constant 0.5"]
    assert data["note"] == TIME_BASELINE_NOTE
    for name in ("state", "frames"):
        s = data["models"][name]["summary"]
        assert s["num_episodes"] == 4 and s["num_failed"] == 1
        assert s["voc_success_mean"] > 0.9
        # the toy models follow the square, which falls back in the failed episode
        assert s["final_progress_auroc"] == 1.0
        assert len(data["models"][name]["episodes"]) == 4
    assert data["models"][ELAPSED_BASELINE]["summary"]["voc_success_mean"] == pytest.approx(1.0)
    assert data["models"][ELAPSED_BASELINE]["summary"]["final_progress_auroc"] == 0.5
    assert data["models"]["state"]["summary"]["mae_success"] < 0.1
    # overview + 1 episode plot per model: the failed episode first
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == sorted(
        [f"{m}_overview.png" for m in ("state", "frames")]
        + [f"{m}_episode_{i}.png" for m in ("state", "frames") for i in (3,)]
    )


def test_report_html_is_self_contained(eval_run):
    out, _ = eval_run
    page = (out / "report.html").read_text()
    assert "perfect VOC" in page and "failure AUROC" in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_evaluate_dataset_takes_ground_truth_and_predictions_directly(two_camera_dataset, tmp_path):
    """The function API the demo uses: simulator ground truth and precomputed predictions."""
    root, truths = two_camera_dataset
    ds = open_dataset(root=root)
    gt = {
        t.episode_index: EpisodeTruth(t.episode_index, t.length, not t.failed, t.progress, task=t.task)
        for t in truths
    }
    exact = {t.episode_index: {"progress": t.progress} for t in truths}
    report = evaluate_dataset({"oracle": exact}, ds, gt, tmp_path, episode_plots=1, show_progress=False)
    s = report.results["oracle"]["summary"]
    assert s["mae"] == 0.0 and s["mae_failure"] == 0.0 and s["final_progress_auroc"] == 1.0
    assert report.results[ELAPSED_BASELINE]["summary"]["mae_failure"] > 0.1
    assert ds.selected_episodes is None  # the selection is restored


def test_eval_cli_bad_input(two_camera_dataset, tmp_path, capsys):
    root, _ = two_camera_dataset
    assert main(["eval", f"--dataset.root={root}"]) == 2
    assert "--models" in capsys.readouterr().err
    path = save_toy(tmp_path / "m")
    assert main(["eval", f"--dataset.root={root}", f"--models=[{path}]", "--names=[a,b]"]) == 2
    assert "--names has 2 entries for 1 models" in capsys.readouterr().err


def test_eval_never_replaces_an_earlier_report_unless_asked(two_camera_dataset, tmp_path, capsys):
    root, _ = two_camera_dataset
    model = save_toy(tmp_path / "m")
    out = tmp_path / "report"
    base = ["eval", f"--dataset.root={root}", f"--models=[{model}]", "--names=[toy]", f"--output_dir={out}"]
    assert main([*base, "--dataset.episodes=[0,1]", "--episode_plots=1"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main([*base, "--episode_plots=1"]) == 2  # another selection: the same report files
    error = capsys.readouterr().err
    assert str(out / "eval.json") in error and "--overwrite=true" in error
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert main([*base, "--episode_plots=1", "--overwrite=true"]) == 0
    assert json.loads((out / "eval.json").read_text())["models"]["toy"]["summary"]["num_episodes"] == 4


# ---- headless Chromium -------------------------------------------------------------------------
async def _inspect_in_chromium(page: Path, timeout: float = 60.0) -> dict:
    """Open `page` in headless Chromium through the DevTools protocol; collect console errors and images."""
    import aiohttp

    profile = tempfile.mkdtemp(prefix="rk-chromium-")
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        port_file = Path(profile) / "DevToolsActivePort"
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            targets = []
            while not targets:
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium opened no page")
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = [t for t in await r.json() if t["type"] == "page"]
            async with http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 10_000))
                errors: list[str] = []

                async def call(method: str, **params) -> dict:
                    my_id = next(ids)
                    await ws.send_json({"id": my_id, "method": method, "params": params})
                    while True:
                        message = await asyncio.wait_for(ws.receive_json(), deadline - time.monotonic())
                        _collect(message, errors)
                        if message.get("id") == my_id:
                            return message.get("result", {})
                        if message.get("method") == "Page.loadEventFired":
                            loaded.append(True)

                loaded: list[bool] = []
                for domain in ("Runtime", "Log", "Page"):
                    await call(f"{domain}.enable")
                await call("Page.navigate", url=page.resolve().as_uri())
                while not loaded:
                    message = await asyncio.wait_for(ws.receive_json(), deadline - time.monotonic())
                    _collect(message, errors)
                    if message.get("method") == "Page.loadEventFired":
                        loaded.append(True)
                script = "JSON.stringify(Array.from(document.images).map(i => [i.complete, i.naturalWidth]))"
                result = await call("Runtime.evaluate", expression=script, returnByValue=True)
                await asyncio.sleep(0.3)  # let late console messages arrive
                try:
                    while True:
                        _collect(await asyncio.wait_for(ws.receive_json(), 0.2), errors)
                except TimeoutError:
                    pass
                return {"errors": errors, "images": json.loads(result["result"]["value"])}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _collect(message: dict, errors: list[str]) -> None:
    method = message.get("method")
    params = message.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        errors.append(str(params.get("args")))
    elif method == "Runtime.exceptionThrown":
        errors.append(str(params.get("exceptionDetails")))
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        errors.append(str(params["entry"].get("text")))


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (the project's test set-up installs it)"
)
def test_report_opens_in_headless_chromium_without_errors_and_images_load(eval_run):
    pytest.importorskip("aiohttp", reason="aiohttp (a lerobot dependency) talks to Chromium's DevTools")
    out, _ = eval_run
    seen = asyncio.run(asyncio.wait_for(_inspect_in_chromium(out / "report.html"), 90))
    assert seen["errors"] == []
    assert len(seen["images"]) == 4
    assert all(complete and width > 0 for complete, width in seen["images"])


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (the project's test set-up installs it)"
)
def test_chromium_check_catches_a_broken_image(tmp_path):
    """The check above can fail: a page with a broken image and a console error is caught."""
    pytest.importorskip("aiohttp")
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
        '<img src="data:image/png;base64,AAAA"><script>console.error("boom")</script></body></html>'
    )
    seen = asyncio.run(asyncio.wait_for(_inspect_in_chromium(page), 90))
    assert any("boom" in e for e in seen["errors"])
    assert seen["images"][0][1] == 0
