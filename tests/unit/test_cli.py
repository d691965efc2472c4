"""`repro --help`: argparse's own listing names every command with a one-line summary, without importing
the library's heavy dependencies."""
import re
import subprocess
import sys

from repro import cli
from tests.conftest import REPO

# The commands the module docstring documents (`    repro <name> ...` lines).
DOCUMENTED = set(re.findall(r"^    repro ([a-z-]+)", cli.__doc__, re.M))


def test_the_module_documents_the_commands_it_dispatches():
    parser_commands = set(cli._parser()._subparsers._group_actions[0].choices)
    assert DOCUMENTED == parser_commands and len(DOCUMENTED) == 13


def test_help_lists_every_command_with_a_summary_and_stays_light():
    probe = ("import sys; from repro import cli\n"
             "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('HEAVY', sorted(m for m in ('torch', 'yaml', 'numpy', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120).stdout
    usage = re.search(r"usage: repro \[-h\]\s+\{([a-z,-]+)\}", out)
    assert usage and set(usage.group(1).split(",")) == DOCUMENTED, out
    listed = dict(re.findall(r"^    ([a-z-]+)\s+(\S.*)$", out, re.M))
    assert DOCUMENTED <= set(listed), sorted(DOCUMENTED - set(listed))
    assert out.strip().endswith("HEAVY []"), out


def test_a_smoke_evaluate_published_stage_writes_its_not_run_record_without_torch(tmp_path):
    """The smoke profile has no published checkpoint: its two evaluate_published stages only write why, and
    stay out of torch, pycocotools and mlflow (their import was most of those stages' time)."""
    probe = ("import sys; from stages import evaluate\n"
             f"evaluate.main(['--config', '256x192', '--source', 'published', '--metrics-dir', {str(tmp_path)!r}])\n"
             "print('HEAVY', sorted(m for m in ('torch', 'mlflow', 'pycocotools') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("HEAVY []"), done.stdout + done.stderr
    record = (tmp_path / "published_256x192.json").read_text()
    assert '"status": "not_run"' in record and "no published checkpoint" in record
