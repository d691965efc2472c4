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
