"""The flags of a tiny ACT trained for two steps through `rewardkit train-policy` (lerobot's training loop)."""

TINY_ACT_TRAIN_FLAGS = [
    "--policy.type=act",
    "--dataset.repo_id=local/tiny",
    "--policy.device=cpu",
    "--policy.pretrained_backbone_weights=null",
    "--policy.dim_model=32",
    "--policy.n_heads=2",
    "--policy.dim_feedforward=64",
    "--policy.n_encoder_layers=1",
    "--policy.n_decoder_layers=1",
    "--policy.n_vae_encoder_layers=1",
    "--policy.chunk_size=5",
    "--policy.n_action_steps=5",
    "--batch_size=4",
    "--steps=2",
    "--num_workers=0",
    "--save_checkpoint=false",
]
