import sys
from pathlib import Path

# The toy reward model of the labelling tests (registered on import).
sys.path.insert(0, str(Path(__file__).parents[1] / "labelling"))
import toy_reward_models  # noqa: E402, F401
