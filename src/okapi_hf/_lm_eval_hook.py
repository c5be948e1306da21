"""Make ``lm_eval --model okapi-hf`` work: register okapi-hf's scorer when lm-eval loads its models.

lm-eval 0.4 discovers no model plugins, so ``okapi_hf_lm_eval.pth`` (installed next to the package)
imports this small module at interpreter start. It only adds an import hook: when ``lm_eval.models``
is first imported, the name ``okapi-hf`` is registered as a lazy placeholder for
:class:`okapi_hf.eval.scorer.FastMCLM`, so neither torch nor lm-eval is imported before they are asked for.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.abc import MetaPathFinder

WATCHED = "lm_eval.models"
MODEL_NAME = "okapi-hf"
TARGET = "okapi_hf.eval.scorer:FastMCLM"


def register(registry) -> None:
    """Add the placeholder unless the name is taken (the scorer module registers the class itself)."""
    if MODEL_NAME not in registry:
        registry.register(MODEL_NAME, target=TARGET)


class _Finder(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != WATCHED:
            return None
        sys.meta_path.remove(self)  # one shot: find the real module with the other finders
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module) -> None:
            exec_module(module)
            from lm_eval.api.registry import model_registry

            register(model_registry)

        spec.loader.exec_module = exec_and_register  # type: ignore[method-assign]
        return spec


def install() -> None:
    if WATCHED not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
