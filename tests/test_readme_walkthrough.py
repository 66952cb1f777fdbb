"""The README's fresh-clone walkthrough works as written, in a fresh shell.

The walkthrough is the fenced ``bash`` block that follows the line
``<!-- walkthrough -->`` in ``README.md``. This test copies the repository's tracked files
to a temporary folder, links the existing virtual environment there as ``.venv`` (so
``make setup``, which would build it, is skipped), and runs the block's commands in a new
``bash --noprofile --norc`` with a minimal ``PATH`` and ``set -euo pipefail``: a command
that fails, or a ``python`` that is not the venv's (the user forgot to activate), fails
the test. ``PYTHONPATH`` points at the copy's ``src`` so the code under test is this
checkout's, as the editable install of ``make setup`` would make it.

Until the README carries the block, the real-README test is skipped and the format is
checked on fixture READMEs (one that passes, one whose command fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- walkthrough -->"
SETUP = "make setup"


def walkthrough_commands(readme: str) -> list[str]:
    """The commands of the fenced bash block after :data:`MARKER` (comments and blank
    lines dropped, ``\\`` continuations joined). ValueError when there is no such block."""
    lines = readme.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == MARKER)
    except StopIteration:
        raise ValueError(f"README has no {MARKER!r} line") from None
    rest = lines[start + 1 :]
    opening = next((i for i, line in enumerate(rest) if line.strip()), None)
    if opening is None or rest[opening].strip() not in ("```bash", "```sh", "```console"):
        raise ValueError(f"the line after {MARKER!r} must open a ```bash block")
    commands, pending = [], ""
    for line in rest[opening + 1 :]:
        if line.strip() == "```":
            break
        text = line.strip()
        if text.startswith("$ "):
            text = text[2:]
        if not pending and (not text or text.startswith("#")):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        commands.append(pending + text)
        pending = ""
    else:
        raise ValueError(f"the block after {MARKER!r} is not closed with ```")
    if not commands:
        raise ValueError(f"the block after {MARKER!r} has no commands")
    return commands


def _venv() -> Path:
    """The virtual environment running these tests (the one ``make setup`` built)."""
    if (ROOT / ".venv" / "bin" / "activate").is_file():
        return ROOT / ".venv"
    prefix = Path(sys.prefix)
    if not (prefix / "bin" / "activate").is_file():
        pytest.skip("tests are not running in a virtual environment: nothing to activate")
    return prefix


def _copy_repo(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        target = dest / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, target)
    (dest / ".venv").symlink_to(_venv())
    return dest


def run_walkthrough(readme: str, repo: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the walkthrough of ``readme`` in ``repo`` in a fresh bash (see the docstring)."""
    commands = walkthrough_commands(readme)
    script = ["set -euo pipefail"]
    for cmd in commands:
        if cmd.strip() == SETUP and (repo / ".venv").exists():
            script.append(f"echo '+ {SETUP}  (skipped: .venv exists)'")
            continue
        script.append(f"echo {_quote('+ ' + cmd)}")
        script.append(cmd)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(repo)),
        "PYTHONPATH": str(repo / "src"),
        "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy",
        "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


FIXTURE = """# smpc_gym

{marker}
```bash
make setup
source .venv/bin/activate
python train.py --list
python train.py --algo tabular_q --env greedy_mouse --steps 2000 \\
    --set num_envs=4 --eval-every 1000 --eval-episodes 2 --out runs/first
python train.py plot runs/first
python train.py eval runs/first --episodes 2
```
"""


def test_block_format() -> None:
    cmds = walkthrough_commands(FIXTURE.format(marker=MARKER))
    assert cmds[0] == "make setup" and cmds[1] == "source .venv/bin/activate"
    assert cmds[3].startswith("python train.py --algo tabular_q") and "--out runs/first" in cmds[3]
    with pytest.raises(ValueError, match="no '<!-- walkthrough -->' line"):
        walkthrough_commands("# README\n```bash\nls\n```\n")
    with pytest.raises(ValueError, match="must open a ```bash block"):
        walkthrough_commands(f"{MARKER}\nsome text\n")
    with pytest.raises(ValueError, match="not closed"):
        walkthrough_commands(f"{MARKER}\n```bash\nls\n")


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    return _copy_repo(tmp_path_factory.mktemp("clone"))


def test_a_failing_or_unactivated_walkthrough_fails(repo_copy: Path) -> None:
    broken = FIXTURE.format(marker=MARKER).replace("--list", "--algo nope --env greedy_mouse")
    failed = run_walkthrough(broken, repo_copy)
    assert failed.returncode != 0 and "unknown algorithm 'nope'" in failed.stderr
    assert "+ python train.py --algo tabular_q" not in failed.stdout  # stopped there

    unactivated = FIXTURE.format(marker=MARKER).replace("source .venv/bin/activate\n", "")
    assert run_walkthrough(unactivated, repo_copy).returncode != 0  # bare python: no deps


def test_readme_walkthrough(repo_copy: Path) -> None:
    """The README's block; the fixture's until the README has one (same commands)."""
    readme = (ROOT / "README.md").read_text()
    fixture = MARKER not in readme
    done = run_walkthrough(FIXTURE.format(marker=MARKER) if fixture else readme, repo_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(skipped: .venv exists)" in done.stdout or SETUP not in readme
    if fixture:
        assert "tabular_q" in done.stdout  # --list
        assert (repo_copy / "runs/first/learning_curves.png").is_file()  # plot: into the run
        assert "mean_return" in done.stdout  # eval's table
