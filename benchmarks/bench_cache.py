"""Cache build vs encoder throughput, and vs one epoch of lerobot 0.6.1's SARM processor, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_cache.py

A synthetic dataset (96x96 video, one camera) is encoded with `clip-random:vit-b-32` (CLIP ViT-B/32
shapes with random weights: the real model's compute, no download). Measured side by side:

- decode only: every frame decoded once, in order (`RewardDataset.iter_frames`);
- encoder only: `encode_images` on the frames already decoded in memory (resize + normalise + CLIP),
  and the CLIP model alone on prepared pixel tensors;
- cache build: `build_cache` from scratch (decoding in a thread overlapping encoding);
- lerobot's SARM processor (`SARMEncodingProcessorStep.__call__`, its CLIP loaded with the same random
  ViT-B/32 since weights cannot be downloaded here): a few real steps of batch 8 x 13 frames, and the
  time of one epoch (one sample per frame, 13 frames through CLIP each).

Targets: cache build close to the encoder's own time (overlap works) and shorter than one reference epoch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rewardkit.cache import BuildStats, build_cache  # noqa: E402
from rewardkit.data.dataset import open_dataset  # noqa: E402
from rewardkit.data.synthetic import make_synthetic_dataset  # noqa: E402
from rewardkit.encoders import HashTokenizer, make_encoder  # noqa: E402

CAMERA = "observation.images.top"
REFERENCE_FRAMES_PER_SAMPLE = 13  # lerobot SARM: 1 + n_obs_steps (8) observation frames + 4 rewind slots


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--episode_length", type=int, default=60)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument(
        "--batch_size", type=int, default=64, help="frames per encoder call in the cache build"
    )
    parser.add_argument("--reference_steps", type=int, default=1, help="lerobot SARM processor steps to time")
    parser.add_argument("--reference_batch", type=int, default=8)
    parser.add_argument("--dtype", default="float32", help="encoder dtype for the cache build (bfloat16 too)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    started = time.perf_counter()
    make_synthetic_dataset(
        work / "ds",
        num_episodes=args.episodes,
        episode_length=args.episode_length,
        image_size=args.image_size,
    )
    dataset = open_dataset(root=work / "ds")
    frames_total = sum(ep.length for ep in dataset.episodes())
    print(f"dataset: {args.episodes} episodes x {args.episode_length} frames = {frames_total} frames, "
          f"{args.image_size}x{args.image_size}, made in {time.perf_counter() - started:.1f} s")  # fmt: skip
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}")  # fmt: skip

    encoder = make_encoder("clip-random:vit-b-32", dtype=args.dtype)
    encoder.encode_images(np.zeros((4, args.image_size, args.image_size, 3), np.uint8))  # warm-up

    # 1. decode only
    started = time.perf_counter()
    decoded = [dataset.read_frames(ep.episode_index, CAMERA) for ep in dataset.episodes()]
    decode_s = time.perf_counter() - started
    frames = np.concatenate(decoded)

    # 2. encoder only, on frames already in memory; and the model alone on prepared pixels
    started = time.perf_counter()
    for i in range(0, len(frames), args.batch_size):
        encoder.encode_images(frames[i : i + args.batch_size])
    encode_s = time.perf_counter() - started
    # The model alone on prepared pixels: a couple of batches, scaled to all frames.
    model_frames = frames[: 2 * args.batch_size]
    pixels = [
        encoder.preprocess(model_frames[i : i + args.batch_size])
        for i in range(0, len(model_frames), args.batch_size)
    ]
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in pixels:
            encoder.model.get_image_features(pixel_values=batch)
    model_s = (time.perf_counter() - started) * frames_total / len(model_frames)

    # 3. the cache build, from scratch
    stats = BuildStats()
    build_cache(dataset, encoder, [CAMERA], cache_dir=work / "cache", batch_size=args.batch_size,
                progress=False, stats=stats)  # fmt: skip
    build_s = stats.total_s
    rerun = BuildStats()
    build_cache(dataset, encoder, [CAMERA], cache_dir=work / "cache", progress=False, stats=rerun)

    print(
        f"\n== rewardkit feature cache (clip-random:vit-b-32, dtype {args.dtype}, batch {args.batch_size}) =="
    )
    print(f"decode only:              {decode_s:7.2f} s  {frames_total / decode_s:8.1f} frames/s")
    print(f"encoder only (in memory): {encode_s:7.2f} s  {frames_total / encode_s:8.1f} frames/s")
    print(
        f"  of which CLIP model:    {model_s:7.2f} s  {frames_total / model_s:8.1f} frames/s (timed on {len(model_frames)})"
    )
    print(f"cache build:              {build_s:7.2f} s  {frames_total / build_s:8.1f} frames/s")
    print(f"  in the build: encode {stats.encode_s:.2f} s, decode (thread) {stats.decode_s:.2f} s, "
          f"waited for frames {stats.decode_wait_s:.2f} s, writes {stats.write_s:.2f} s")  # fmt: skip
    print(f"build / encoder only:            {build_s / encode_s:5.2f}x  (1.00 = decoding fully hidden)")
    print(f"build / (decode + encode) serial: {build_s / (decode_s + encode_s):5.2f}x")
    print(f"second run (no-op):       {rerun.total_s:7.3f} s, frames encoded: {rerun.frames}")

    # 4. the reference: lerobot 0.6.1's SARM processor, CLIP on 13 frames per sample at every step
    reference_step_s, reference_clip_per_frame = time_reference(dataset, frames, args)
    samples = frames_total  # one training sample per frame per epoch
    epoch_estimate = reference_clip_per_frame * REFERENCE_FRAMES_PER_SAMPLE * samples
    ours_per_frame = encode_s / frames_total
    print("\n== lerobot 0.6.1 SARM processor (CLIP per training step) ==")
    print(f"measured step (batch {args.reference_batch} x {REFERENCE_FRAMES_PER_SAMPLE} frames): "
          f"{reference_step_s:.2f} s  -> {reference_clip_per_frame * 1e3:.1f} ms per frame")  # fmt: skip
    print(f"one epoch = {samples} samples x {REFERENCE_FRAMES_PER_SAMPLE} frames x per-frame time: "
          f"{epoch_estimate:.1f} s (with our encoder's per-frame time: "
          f"{ours_per_frame * REFERENCE_FRAMES_PER_SAMPLE * samples:.1f} s)")  # fmt: skip
    print(f"cache build / one reference epoch: {build_s / epoch_estimate:.3f}  "
          f"({epoch_estimate / build_s:.1f}x shorter; target < 1)")  # fmt: skip


def time_reference(dataset, frames: np.ndarray, args) -> tuple[float, float]:
    """Seconds per step of lerobot's SARMEncodingProcessorStep, and its CLIP seconds per frame."""
    from lerobot.lerobot_types import TransitionKey
    from lerobot.rewards.sarm import processor_sarm
    from lerobot.rewards.sarm.configuration_sarm import SARMConfig
    from transformers import CLIPImageProcessor

    random_clip = make_encoder("clip-random:vit-b-32")  # same weights as ours, lerobot's code path

    class OfflineProcessor:
        """CLIPProcessor stand-in: CLIP's image processor (defaults = CLIP's) + a vocabulary-free tokenizer."""

        def __init__(self) -> None:
            self.image_processor = CLIPImageProcessor()
            hash_tokenizer: HashTokenizer = random_clip.tokenizer

            def tokenizer(texts, return_tensors="pt", padding=True, truncation=True):
                return hash_tokenizer(texts)

            self.tokenizer = tokenizer

        def __call__(self, images, return_tensors="pt"):
            return self.image_processor(images=images, return_tensors=return_tensors)

    # lerobot loads openai/clip-vit-base-patch32 from the hub; hand it the same model with random weights.
    with (
        mock.patch.object(
            processor_sarm, "CLIPModel", SimpleNamespace(from_pretrained=lambda *a, **k: random_clip.model)
        ),
        mock.patch.object(
            processor_sarm,
            "CLIPProcessor",
            SimpleNamespace(from_pretrained=lambda *a, **k: OfflineProcessor()),
        ),
    ):
        config = SARMConfig(device="cpu", image_key=CAMERA)
        step = processor_sarm.SARMEncodingProcessorStep(config=config, dataset_meta=None)
    step.eval()
    batch, window = args.reference_batch, REFERENCE_FRAMES_PER_SAMPLE
    rng = np.random.default_rng(0)
    state_dim = len(dataset.state_names)

    def transition(size: int = batch):
        picks = rng.integers(0, len(frames), size=(size, window))
        images = torch.from_numpy(frames[picks]).permute(0, 1, 4, 2, 3).float() / 255  # (B, T, C, H, W)
        return {
            TransitionKey.OBSERVATION: {
                CAMERA: images,
                config.state_key: torch.zeros(size, window, state_dim),
            },
            TransitionKey.COMPLEMENTARY_DATA: {
                "index": torch.from_numpy(picks[:, -1]),
                "episode_index": torch.zeros(size, dtype=torch.long),
                "task": ["push the block to the right"] * size,
            },
        }

    step(transition(1))  # warm-up on one sample (the timed steps are this benchmark's longest part)
    times = []
    for _ in range(args.reference_steps):
        item = transition()
        started = time.perf_counter()
        out = step(item)
        times.append(time.perf_counter() - started)
    features = out[TransitionKey.OBSERVATION]["video_features"]
    assert tuple(features.shape) == (batch, window, 512), features.shape
    step_s = float(np.median(times))
    return step_s, step_s / (batch * window)


if __name__ == "__main__":
    main()
