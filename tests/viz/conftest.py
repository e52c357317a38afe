import sys
from pathlib import Path

# The toy model lives beside the labelling tests; share it rather than copy it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labelling"))
import toy_reward_models  # noqa: E402, F401
