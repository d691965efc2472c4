"""The project's own error type and the one wrapper every command and stage runs under.

    sys.exit(errors.run_main(main, prog="repro"))   # `repro ...`, `python -m stages.X`, `python -m repro.engine.train`

Every error the project raises on purpose (bad params, data, checkpoint, download, metrics file) is a
`ReproError`; its message names the file and the key or entry. The wrapper prints it as
`<prog>: error: <message>` on stderr, without a traceback, and exits 2 (bad input, like argparse).
`--debug` anywhere on the command line, or REPRO_DEBUG=1, prints the traceback too. Anything else is a
bug and keeps its traceback.
"""
import os
import sys
import traceback

DEBUG_ENV = "REPRO_DEBUG"   # read here, not in repro.config with the other REPRO_*: config imports this module
DEBUG_FLAG = "--debug"
BAD_INPUT = 2


class ReproError(Exception):
    """Bad input or an unusable file, found by the project's own checks; the message says which and where."""

    exit_code = BAD_INPUT


class InputFileError(ReproError, ValueError):
    """A metrics, baseline or other results file that is missing a key, damaged or not a finite number."""


def debug_enabled(argv: list) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def run_main(main, argv=None, prog: str = "repro") -> int:
    """Call `main(argv)`; a ReproError becomes one line on stderr and exit code 2 (traceback with --debug).

    Args:
        main: the command's function; takes the argument list, returns an exit code or None.
        argv: arguments (default sys.argv[1:]); `--debug` is removed before `main` sees them.
        prog: the name the message starts with.

    Returns:
        The exit code: main's (0 for None), or the error's `exit_code`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        return main(argv) or 0
    except ReproError as e:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
