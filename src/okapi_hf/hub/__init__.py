"""Cards and publishing: what goes to the Hugging Face Hub, and how it is described there.

- :mod:`okapi_hf.hub.cards`: dataset, model and Space cards rendered from ``hub_cards/``, and validated;
- :mod:`okapi_hf.hub.publishing`: ``okapi-hf publish`` (plan, check, upload in one commit);
- :mod:`okapi_hf.hub.plan` and :mod:`okapi_hf.hub.kinds`: which files go up, for each kind of folder;
- :mod:`okapi_hf.hub.card_changes`: scores and the repo id put into the card that goes up;
- :mod:`okapi_hf.hub.scan` and :mod:`okapi_hf.hub.filetypes`: the secrets and pickles nothing may carry.

The names below are imported on first use, so ``python -m okapi_hf.hub.cards`` runs that module
once (not a second copy beside one this package already imported).
"""

from __future__ import annotations

import importlib
from typing import Any

# Each public name, by the module that defines it.
_PUBLIC: dict[str, tuple[str, ...]] = {
    "publishing": ("publish", "PublishResult", "check_contents"),
    "kinds": ("plan_publish",),
    "plan": ("KINDS", "LeftOut", "PlannedFile", "PublishPlan"),
    "card_changes": ("add_eval_results",),
    "cards": (
        "render_dataset_card",
        "render_model_card",
        "render_space_card",
        "stage_history",
        "validate_card",
    ),
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
