import toy_reward_models  # noqa: F401  (registers the toy model type)
