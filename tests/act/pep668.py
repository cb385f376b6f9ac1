"""A PEP 668 "externally managed" system Python, as on Debian or Ubuntu runners.

The harness writes this file as ``python``, ``python3``, ``pip`` and ``pip3`` in a
directory put first on a job's PATH, each with a shebang naming the real base
interpreter (``-IS``: isolated, no site, so nothing of the test run leaks in).
``pip install`` or ``pip uninstall`` with this interpreter, directly or through
``python -m pip``, prints pip's ``externally-managed-environment`` error and exits 1,
as pip does when the interpreter's stdlib holds an ``EXTERNALLY-MANAGED`` file.
Anything else (``python3 -m venv DIR``, ``python3 script.py``...) execs the real
interpreter. A venv's own ``bin/python`` and ``bin/pip`` are not this file: inside
a venv pip works normally.

Unlike pip, ``--break-system-packages`` is refused too: the harness never lets a job
write the machine's Python. ``--target``, ``--prefix`` and ``--root`` are allowed, as
pip allows them.
"""

from __future__ import annotations

import os
import sys

ERROR = """\
error: externally-managed-environment

\u00d7 This environment is externally managed
\u2570\u2500> To install Python packages system-wide, try apt install
    python3-xyz, where xyz is the package you are trying to
    install.

    If you wish to install a non-Debian-packaged Python package,
    create a virtual environment using python3 -m venv path/to/venv.
    Then use path/to/venv/bin/python path/to/venv/bin/pip. Make
    sure you have python3-full installed.

    See /usr/share/doc/python3.11/README.venv for more information.

note: If you believe this is a mistake, please contact your Python installation or \
OS distribution provider. You can override this, at the risk of breaking your Python \
installation or OS, by passing --break-system-packages.
hint: See PEP 668 for the detailed specification.
"""

#: pip's general options that take a value (``pip --log FILE install ...``).
PIP_OPTIONS_WITH_VALUE = frozenset(
    {
        "--log",
        "--log-file",
        "--cache-dir",
        "--proxy",
        "--retries",
        "--timeout",
        "--exists-action",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--python",
        "--keyring-provider",
        "--use-feature",
        "--use-deprecated",
    }
)
#: Python options that take a value (``python -W ignore -m pip ...``).
PYTHON_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})
#: Options that make pip install somewhere else than the interpreter's site.
ELSEWHERE = ("--target", "-t", "--prefix", "--root")


def pip_arguments(program: str, args: list[str]) -> list[str] | None:
    """The arguments pip would get from ``program ARGS``, or None when not pip."""
    name = os.path.basename(program)
    if name.startswith("pip"):
        return list(args)
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m" and index + 1 < len(args):
            return list(args[index + 2 :]) if args[index + 1] == "pip" else None
        if arg.startswith("-m") and len(arg) > 2:
            return list(args[index + 1 :]) if arg[2:] == "pip" else None
        if arg in PYTHON_OPTIONS_WITH_VALUE:
            index += 2
            continue
        if arg == "-c" or arg == "-" or not arg.startswith("-"):
            return None  # a command, stdin or a script: not pip
        index += 1
    return None


def pip_subcommand(args: list[str]) -> str:
    """pip's subcommand in ``args`` (its general options skipped), or ''."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in PIP_OPTIONS_WITH_VALUE:
            index += 2
            continue
        if not arg.startswith("-"):
            return arg
        index += 1
    return ""


def refused(program: str, args: list[str]) -> bool:
    """Whether the system Python refuses ``program ARGS`` (PEP 668)."""
    pip = pip_arguments(program, args)
    if pip is None or pip_subcommand(pip) not in ("install", "uninstall"):
        return False
    return not any(
        arg == option or arg.startswith(option + "=")
        for arg in pip
        for option in ELSEWHERE
    )


def main() -> None:
    """Refuse a system-wide pip, else exec the real interpreter."""
    program, args = sys.argv[0], sys.argv[1:]
    if refused(program, args):
        sys.stderr.write(ERROR)
        sys.exit(1)
    real = sys.executable
    if os.path.basename(program).startswith("pip"):
        args = ["-m", "pip", *args]
    os.execv(real, [real, *args])


if __name__ == "__main__":
    main()
