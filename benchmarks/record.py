"""Record a benchmark's ``--json`` figures, with when, how and where they were measured.

Runs ``python benchmarks/NAME.py --json ARGS...`` and writes
``benchmarks/results/NAME.json`` (or ``--out FILE``) as one JSON object::

    {"benchmark": NAME, "command": "python benchmarks/NAME.py --json ...",
     "date": "2026-12-01T23:10:00Z", "machine": "...", "load_before": [1, 5, 15 min],
     "load_after": [...], "wall_seconds": float, "result": {the benchmark's JSON object}}

The documentation's results pages (``docs/gen_results.py``, run by ``make docs``) are
generated from these files, so the figures on the site always name their command, date
and machine. The load averages are there because the machines this project runs on are
shared: absolute times move with the load, the same-run ratios much less.

Usage::

    python benchmarks/record.py env_throughput
    python benchmarks/record.py supply_chain_speed -- --batch 1024
    python benchmarks/record.py secure_aggregation --out benchmarks/results/secure_aggregation_32.json -- --ring-bits 32

:func:`run_info` gives the same ``date``/``command``/``machine`` keys to benchmarks that
write their own result files (``learning_curves.py --data``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

__all__ = ["cpu_name", "machine", "run_info", "record"]


def cpu_name(cpuinfo: str | None = None) -> str | None:
    """The processor as Linux names it: ``model name``, with family and model numbers
    (a virtual machine often shows a generic name, such as "Intel(R) Xeon(R)
    Processor", over different hosts: the numbers tell them apart). ``None`` where there
    is no ``/proc/cpuinfo`` (then :func:`machine` falls back to ``platform.processor()``).

    Why records carry it: a secure update's ratio to plaintext moves with the host as
    well as the load (integer tensor kernels, waking a process, first touches of memory
    and float matrix products do not speed up or slow down together).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if not name:
        return None
    numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model") if fields.get(k)]
    return f"{name} ({', '.join(numbers)})" if numbers else name


def machine() -> str:
    """One line naming the machine: OS, CPU count and model, Python and torch versions."""
    parts = [f"{platform.system()} {platform.machine()}", f"{os.cpu_count()} CPUs"]
    cpu = cpu_name() or platform.processor()
    if cpu:
        parts.append(cpu)
    parts.append(f"Python {platform.python_version()}")
    try:
        from importlib.metadata import version

        parts.append(f"torch {version('torch')}")
    except Exception:  # torch not installed: the line just omits it
        pass
    return ", ".join(parts)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_info(argv: list[str] | None = None) -> dict[str, Any]:
    """``{"date", "command", "machine", "load_before"}`` for the current process's run."""
    args = sys.argv if argv is None else argv
    script = Path(args[0])
    try:
        shown = script.resolve().relative_to(HERE.parent).as_posix()
    except ValueError:
        shown = script.name
    return {
        "date": _now(),
        "command": shlex.join(["python", shown, *args[1:]]),
        "machine": machine(),
        "load_before": _load(),
    }


def _last_json_object(text: str) -> dict[str, Any] | None:
    """The last JSON object in ``text`` that starts a line (one-line or indented)."""
    dec = json.JSONDecoder()
    found = None
    pos = 0
    for line in text.splitlines(keepends=True):
        if line.startswith("{"):
            try:
                obj, _ = dec.raw_decode(text, pos)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                found = obj
        pos += len(line)
    return found


def record(name: str, args: list[str], out: Path) -> dict[str, Any]:
    """Run benchmark ``name`` with ``--json`` and ``args``; write and return the record."""
    script = HERE / f"{name}.py"
    if not script.is_file():
        known = sorted(p.stem for p in HERE.glob("*.py") if p.stem != "record")
        raise SystemExit(f"record.py: no benchmark {name!r}; known: {', '.join(known)}")
    cmd = [sys.executable, str(script), "--json", *args]
    info = run_info([f"benchmarks/{name}.py", "--json", *args])
    t = time.perf_counter()
    # stdout holds the JSON; the benchmark's progress (stderr) shows as it runs
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"record.py: {shlex.join(cmd)} exited with {res.returncode}")
    result = _last_json_object(res.stdout)
    if result is None:
        raise SystemExit(f"record.py: {name} printed no JSON object with --json")
    data = {"benchmark": name, **info, "load_after": _load(), "wall_seconds": wall}
    data["result"] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    return data


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", help="benchmark script name without .py, e.g. env_throughput")
    ap.add_argument("--out", type=Path, help="result file (default benchmarks/results/NAME.json)")
    ap.epilog = "Everything after -- goes to the benchmark (its own flags)."
    argv = sys.argv[1:] if argv is None else list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    ns = ap.parse_args(argv[:cut])  # so --out may come before or after NAME
    extra = argv[cut + 1 :]
    out = ns.out or HERE / "results" / f"{ns.name}.json"
    data = record(ns.name, extra, out)
    print(
        f"wrote {out} ({data['wall_seconds']:.0f} s, load {data['load_before']} -> {data['load_after']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
