"""`python tests/bench_help.py SCRIPT...`: each benchmark script run as `SCRIPT --help`, one after
another in this one process, and what each did printed as JSON ({script: [exit code, stdout,
stderr]}).

One interpreter for all of them instead of one each: the imports they share (SQLAlchemy,
cryptography, aiohttp, the protocols) are paid once. Each script still runs as __main__ from its
own file with its own argv, and what one script added (sys.path entries, modules from bench/)
is taken away before the next, so a script that forgot an import or a path does not borrow it.
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
import traceback
from pathlib import Path


def run_help(script: Path) -> tuple[int, str, str]:
    """`script --help` as __main__: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    saved_modules = set(sys.modules)
    sys.argv = [str(script), "--help"]
    sys.path[0] = str(script.parent)  # as `python bench/SCRIPT` has it
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        for name in set(sys.modules) - saved_modules:
            if str(script.parent) in str(getattr(sys.modules[name], "__file__", None) or ""):
                del sys.modules[name]  # bench/'s own helpers: the next script imports its own
    return code, out.getvalue(), err.getvalue()


if __name__ == "__main__":
    print(json.dumps({Path(s).name: run_help(Path(s)) for s in sys.argv[1:]}))
