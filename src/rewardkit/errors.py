"""The one base of every error rewardkit raises for bad user input.

`rewardkit` (the CLI) prints a `RewardkitError` as one line and exits 2; any other exception is a bug (ours
or a dependency's) and shows its traceback. It subclasses `ValueError` so code that caught the
`ValueError`s rewardkit raised before keeps working. This module imports nothing, so the pure layers
(targets) can raise it too.
"""


class RewardkitError(ValueError):
    """Bad input from the user (a flag, a file, a dataset, a checkpoint); the message says what to do."""
