"""Run the bad-input catalogue of test_faults.py and say what each case did, for the table in tests/README.md.

    python tests/fault_table.py now.json                              # this checkout
    PYTHONPATH=/path/to/old/src python tests/fault_table.py old.json  # another one (what it did before)
    python tests/fault_table.py --markdown old.json now.json          # the table

Not a test: it records behaviour (a traceback, exit 0, a clear line) instead of asserting it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ["OKAPI_HF_EVAL_DIR"] = str(Path(__file__).parent / "fixtures" / "okapi-eval")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def outcome(name: str, world: dict[str, str]) -> str:
    """What the command did, in a few words."""
    from okapi_hf.cli import main
    from test_faults import CASES

    case = CASES[name]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(case.argv.format(**world).split())
    except SystemExit as e:
        code = e.code
    except BaseException as e:  # what the user saw: a traceback
        return f"traceback ({type(e).__name__})"
    lines = [line for line in err.getvalue().splitlines() if line.startswith("okapi-hf")]
    if code == 0:
        return "accepted: exit 0, no error"
    if len(lines) == 1 and case.says in lines[0]:
        return f"one line naming it, exit {code}"
    if len(lines) == 1:
        message = lines[0].split("error: ", 1)[-1]
        return f"one line, exit {code}: {message[:90]}{'...' if len(message) > 90 else ''}"
    return f"exit {code}, {len(lines)} lines"


def record(path: str) -> None:
    from test_faults import CASES, make_world

    with tempfile.TemporaryDirectory() as root:
        world = make_world(Path(root))
        results = {name: outcome(name, world) for name in CASES}
    Path(path).write_text(json.dumps(results, indent=1, ensure_ascii=False))


def markdown(before: str, after: str) -> str:
    old, new = json.loads(Path(before).read_text()), json.loads(Path(after).read_text())
    rows = ["| command | case | before | now |", "|---|---|---|---|"]
    for name, now in new.items():
        command, _, case = name.partition(": ")
        rows.append(f"| {command} | {case} | {old.get(name, 'not tried')} | {now} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1] == "--markdown":
        print(markdown(sys.argv[2], sys.argv[3]))
    else:
        record(sys.argv[1])
