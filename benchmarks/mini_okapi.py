"""Mini-Okapi (issue 17): does RLHF beat SFT on a real multilingual model? One command, measured honestly.

From one base model and seed, six arms on synthetic checkable tasks in Vietnamese and Bengali: base; SFT;
SFT + K-wise reward model + PPO (Okapi's recipe, scaled down); SFT + GRPO (or RLOO) with the same reward
model; SFT + listwise DPO on the same rankings; SFT + PPO with the language-fidelity reward added. Each
answers held-out prompts; the report gives exact and correct answers, the reward model's score, language
fidelity and length per arm and language with bootstrap 95% intervals, the reward model's held-out
pairwise accuracy and Kendall tau, Okapi's ARC/TruthfulQA on a subset (with ``OKAPI_HF_EVAL_DIR``), and
the RL curves. Outputs under ``--out``: results.jsonl, rankings.jsonl, summary.json, table.md, chart.png,
run.log, and every arm under arms/.

    python benchmarks/mini_okapi.py --size toy     # tiny random models, about a minute: plumbing only
    python benchmarks/mini_okapi.py --size cpu     # Gemma 3 270M, LoRA: within 60 minutes on 2 CPU cores
    python benchmarks/mini_okapi.py --size gpu     # thousands of rows, 200 RL iterations, on one GPU

The helpers live in the ``mini_okapi`` package next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the mini_okapi package beside this file

from mini_okapi.cli import main

if __name__ == "__main__":
    sys.exit(main())
