"""Training stages: SFT, the K-wise reward model, RLHF. Each is a trl-style ``XConfig`` + ``XTrainer``."""
