"""One measured Python process, as the benchmark scripts run each variant."""

from __future__ import annotations

import json
import subprocess
import time


def timed_process(label: str, command: list[str], env: dict, cwd: str | None = None) -> dict:
    """Run ``command``; the JSON object its last line of output prints, with ``process``, the
    process's wall time in seconds, added. A failure raises with the end of its stderr."""
    start = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=cwd)
    if out.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - start
    return result
