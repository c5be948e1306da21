"""lm-eval hooks for the okapi_hellaswag_* tasks: the protocol of :mod:`okapi_hf.eval.protocol`, bound to hellaswag.

lm-eval resolves ``!function utils.X`` next to each task YAML, hence one such file per benchmark.
"""

from functools import partial

from okapi_hf.eval import protocol
from okapi_hf.eval.shots import OkapiTask  # noqa: F401 (named by the task YAML)

protocol.install_excepthook()  # a bad data file ends the lm_eval CLI with one message, not a traceback

load_hellaswag = partial(protocol.load_for_lm_eval, "hellaswag")
process_hellaswag = partial(protocol.process_docs, "hellaswag")
