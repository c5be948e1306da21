"""Train the arms through okapi-hf's public training API, each saved in its own folder.

Every stage is ``okapi_hf.train.pipeline.run_stage`` (what ``okapi-hf train STAGE`` runs) with a shipped
recipe and ``key=value`` overrides, on both languages at once, the same seed everywhere. SFT starts from
the base model; the reward model, PPO, GRPO/RLOO, DPO and PPO with the language reward all start from the
SFT output, and the RL arms share one reward model. A finished arm writes ``arm.json``; a rerun with the
same settings reuses it, so a killed run resumes at the arm it was training.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .sizes import Stage

MANIFEST = "arm.json"


@dataclass
class Trained:
    """A saved arm (or the reward model): its folder, what made it, and how long it took."""

    name: str
    path: Path
    seconds: float
    reused: bool
    manifest: dict


def manifest_for(name: str, stage: Stage | None, start: str, reward_model: str | None, langs: str) -> dict:
    """What defines an arm: a folder with an equal manifest is that arm, trained already."""
    return {
        "arm": name,
        "stage": stage.stage if stage else None,
        "recipe": stage.recipe if stage else None,
        "overrides": list(stage.overrides) if stage else [],
        "start_from": start,
        "reward_model": reward_model,
        "langs": langs,
    }


def train(
    name: str,
    stage: Stage,
    *,
    start: str,
    reward_model: str | None,
    dataset: Path,
    out: Path,
    langs: str,
    seed: int,
    identity: dict,
    log: Callable[[str], None],
) -> Trained:
    """One arm: reuse it if its manifest matches, else train it with ``run_stage`` and write the manifest.

    ``identity`` holds what else decides the result (size, data, the manifests of the stages it starts
    from), so an arm whose start model was retrained is retrained too.
    """
    from okapi_hf.train.pipeline import run_stage

    folder = out / "arms" / name if name != "rm" else out / "reward_model"
    wanted = manifest_for(name, stage, start, reward_model, langs) | {"seed": seed, "identity": identity}
    done = _read(folder / MANIFEST)
    if done is not None and {k: done.get(k) for k in wanted} == wanted:
        log(f"{name}: reusing {folder} (same settings, trained in {done['seconds']:.0f}s)")
        return Trained(name, folder, done["seconds"], True, done)
    overrides = [*stage.overrides, f"seed={seed}"]
    if reward_model is not None:
        overrides.append(f"reward_model_path={reward_model}")
    log(f"{name}: okapi-hf train {stage.stage} --recipe {stage.recipe} {' '.join(overrides)}")
    began = time.perf_counter()
    path = run_stage(
        stage.stage,
        overrides,
        recipe=stage.recipe,
        lang=langs,
        model_name_or_path=start,
        dataset_path=str(dataset),
        runs_dir=str(out / "runs"),
        run="mini_okapi",
        output_dir=str(folder),
    )
    seconds = time.perf_counter() - began
    manifest = wanted | {"seconds": seconds, "path": str(path)}
    (Path(path) / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    log(f"{name}: saved to {path} in {seconds:.0f}s")
    return Trained(name, Path(path), seconds, False, manifest)


def record_base(out: Path, model: str, langs: str) -> Trained:
    """The base arm is the start model itself; its folder holds a manifest that points at it."""
    folder = out / "arms" / "base"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = manifest_for("base", None, model, None, langs) | {"seconds": 0.0, "path": model}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return Trained("base", Path(model), 0.0, False, manifest)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# Per trainer, the logged keys that tell what RL did: reward, KL to the start policy, reply length.
CURVE_KEYS = {
    "reward": ("reward/score", "reward"),
    "kl": ("objective/kl", "kl"),
    "length": ("response_length", "completions/mean_length"),
    "loss": ("loss",),
}


def curves(path: Path) -> dict[str, list[float]]:
    """Training curves from an arm's ``trainer_state.json`` (empty when the stage logged none)."""
    state = _read(path / "trainer_state.json") or {}
    history = [h for h in state.get("log_history", []) if not any(k.startswith("eval_") for k in h)]
    found: dict[str, list[float]] = {}
    for name, keys in CURVE_KEYS.items():
        for key in keys:
            values = [float(h[key]) for h in history if isinstance(h.get(key), (int, float))]
            if values:
                found[name] = values
                break
    return found


def final_eval(path: Path) -> dict[str, float]:
    """The stage's own last evaluation (e.g. the reward model's ``eval_pairwise_accuracy``)."""
    state = _read(path / "trainer_state.json") or {}
    evals = [h for h in state.get("log_history", []) if any(k.startswith("eval_") for k in h)]
    return {k: float(v) for k, v in (evals[-1] if evals else {}).items() if isinstance(v, (int, float))}
