"""The headline run, timed: ``python train.py --algo secure_maddpg --env supply_chain``.

Runs the README's first command as a user runs it (a subprocess, into a fresh run folder),
times it from start to exit, and prints the run's own end-of-run report
(``report.json``): the paper's Table 5 on the 20 evaluation seeds for the secure policy,
the pre-trained policy it started from, and the myopic and random benchmarks (mean ± 95%
CI over episodes), and the measured cost of a secure update against the plaintext one.
The myopic benchmark is the same-run baseline the secure policy has to beat.

Usage::

    python benchmarks/headline_run.py                  # the headline command, as is
    python benchmarks/record.py headline_run           # ... kept in benchmarks/results/
    python benchmarks/headline_run.py --json -- --steps 2000 --set pretrain_steps=500

Arguments after ``--`` go to ``train.py`` unchanged (after its ``--algo``, ``--env`` and
``--out``). ``--keep DIR`` writes the run folder there instead of a temporary one.

``--json`` prints one object with the keys ``command``, ``finished_in_s`` (wall time of
the command, process start to exit), ``rows`` (``secure 2PC``, ``pre-trained``,
``myopic``, ``random`` → the report's columns, each with its ``_ci95``), ``cost``
(``secure_update_s``, ``plain_update_s``, ``ratio_to_plain``, ``mb_per_update``,
``rounds_per_update``, ``updates``), ``pretrained_step`` (the pre-training snapshot the
secure phase started from; None without pre-training), ``ncr_secure_minus_myopic`` and
``beats_myopic`` (the secure total NCR's 95% interval lies above the myopic one's).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HEADLINE = ["--algo", "secure_maddpg", "--env", "supply_chain"]


def run(run_dir: Path, extra: list[str]) -> dict[str, Any]:
    """Run the headline command into ``run_dir``; its report, cost and wall time."""
    cmd = [sys.executable, str(ROOT / "train.py"), *HEADLINE, "--out", str(run_dir), *extra]
    t0 = time.monotonic()
    # train.py's progress goes to this script's stderr, so stdout stays the JSON
    proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the headline command failed (exit {proc.returncode}): {shlex.join(cmd)}")
    report_path = run_dir / "report.json"
    if not report_path.is_file():
        raise SystemExit(f"{report_path} was not written: no end-of-run report to read")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    rows, cost = report["rows"], report["cost"]
    sec, myo = rows["secure 2PC"], rows["myopic"]
    return {
        "command": shlex.join(["python", "train.py", *HEADLINE, *extra]),
        "finished_in_s": wall,
        "rows": rows,
        "cost": cost,
        "pretrained_step": report.get("pretrained_step"),
        "ncr_secure_minus_myopic": sec["total_ncr"] - myo["total_ncr"],
        "beats_myopic": sec["total_ncr"] - sec["total_ncr_ci95"]
        > myo["total_ncr"] + myo["total_ncr_ci95"],
    }


def main() -> None:
    """Run the headline command and print its figures (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, default=None, help="run folder to write and keep")
    p.add_argument("--json", action="store_true")
    p.add_argument("train_args", nargs="*", help="after --: more train.py arguments")
    args = p.parse_args()
    if args.keep is not None:
        if args.keep.exists():
            p.error(f"--keep {args.keep} exists; give a new folder")
        res = run(args.keep, args.train_args)
    else:
        with tempfile.TemporaryDirectory(prefix="headline-") as tmp:
            res = run(Path(tmp) / "run", args.train_args)
    if args.json:
        print(json.dumps(res, sort_keys=True))
        return
    rows = res["rows"]
    print(f"{res['command']}: finished in {res['finished_in_s']:.0f} s")
    for name, r in rows.items():
        print(f"  {name:12s} total NCR {r['total_ncr']:8,.0f} ± {r['total_ncr_ci95']:,.0f}")
    if res["pretrained_step"] is not None:
        print(f"  pre-trained: the snapshot of simulated step {res['pretrained_step']:,}")
    c = res["cost"]
    print(
        f"  secure update {c['secure_update_s']:.2f} s = {c['ratio_to_plain']:.0f}× plaintext; "
        f"beats myopic: {res['beats_myopic']} ({res['ncr_secure_minus_myopic']:+,.0f} NCR)"
    )


if __name__ == "__main__":
    main()
