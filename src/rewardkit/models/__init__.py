"""Reward models: the shared base (`base.py`) and one folder per model."""
