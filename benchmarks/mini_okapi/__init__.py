"""Mini-Okapi (issue 17): does RLHF beat SFT on a real multilingual model? Helpers of ``benchmarks/mini_okapi.py``.

``sizes`` says how big each stage is, ``data`` writes the synthetic tasks, ``arms`` trains the arms through
okapi-hf's public training API, ``measure`` answers the held-out prompts, ``okapi_eval`` scores Okapi's
ARC/TruthfulQA items, ``report`` writes the table, chart and summary, and ``cli`` runs it all.
"""
