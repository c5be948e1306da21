"""Training stages: SFT, the K-wise reward model, RLHF, listwise DPO. Each is a trl-style ``XConfig`` + ``XTrainer``.

- ``sft``, ``reward``, ``dpo``, ``ppo`` (+ ``ppo_config``, ``ppo_math``), ``rl``: the configs and trainers
  (``rl``: trl's RLOO and GRPO with Okapi's prompts and rewards, and their stage);
- ``ranking``: what the reward model and listwise DPO share: ranking rows, batches, losses, reports;
- ``rewards``: reward functions for RL (the reward model as a scorer, language fidelity);
- ``run_sft``, ``run_rm``, ``run_dpo``, ``run_rl``: one stage each, from a recipe to a saved folder;
- ``stage``: what every stage does around its trainer; ``stage_log``: the terminal and ``train.log``;
- ``recipes``: recipe files, their parsing, the default recipe of each stage, safe saving;
- ``pipeline``: a stage by name, or sft -> rm -> rl in one run; ``utils``: freezing layers, tokenizer checks.
"""

from okapi_hf.train.utils import install_fast_tokenizer_fingerprints

# every stage maps datasets with a tokenizer; 250k-token vocabularies made each map's fingerprint ~28 s
install_fast_tokenizer_fingerprints()
