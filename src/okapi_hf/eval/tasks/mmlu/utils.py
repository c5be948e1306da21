"""lm-eval hooks for the okapi_mmlu_* tasks: the protocol of :mod:`okapi_hf.eval.protocol`, bound to mmlu.

lm-eval resolves ``!function utils.X`` next to each task YAML, hence one such file per benchmark.
"""

from functools import partial

from okapi_hf.eval import protocol
from okapi_hf.eval.shots import MMLUSampler, OkapiTask  # noqa: F401 (named by the task YAML)

protocol.install_excepthook()  # a bad data file ends the lm_eval CLI with one message, not a traceback

load_mmlu = partial(protocol.load_for_lm_eval, "mmlu")
process_mmlu = partial(protocol.process_docs, "mmlu")
