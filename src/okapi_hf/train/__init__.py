"""Training stages: SFT, the K-wise reward model, RLHF. Each is a trl-style ``XConfig`` + ``XTrainer``."""

from okapi_hf.train.utils import install_fast_tokenizer_fingerprints

# every stage maps datasets with a tokenizer; 250k-token vocabularies made each map's fingerprint ~28 s
install_fast_tokenizer_fingerprints()
