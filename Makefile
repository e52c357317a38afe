# The two commands of the README. Each sets everything up first (scripts/setup.sh is idempotent).
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	HF_HUB_OFFLINE=1 MUJOCO_GL=egl .venv/bin/rewardkit demo

test: setup
	HF_HUB_OFFLINE=1 MUJOCO_GL=egl .venv/bin/python -m pytest -n 2 --dist loadfile -q

lint: setup
	.venv/bin/ruff check src tests benchmarks
