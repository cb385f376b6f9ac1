"""Command line of the test infrastructure, runnable before the project is installed.

From the repository root, with the standard library only::

    PYTHONPATH=. python3 -m tools.testinfra up --extra chromium  # packages, dockerd
    PYTHONPATH=. python3 -m tools.testinfra down                 # stop that dockerd
    PYTHONPATH=. python3 -m tools.testinfra swarm-up             # two-node swarm, netns
    PYTHONPATH=. python3 -m tools.testinfra swarm-down           # tear it all down
    PYTHONPATH=. python3 -m tools.testinfra local-env --dir DIR  # the stand-ins
    PYTHONPATH=. python3 -m tools.testinfra local-env-stop --dir DIR

By hand, ``CICD_DEV_TASKS=1 invoke infra.up`` and ``infra.down`` do the same as up and
down. ``swarm-up`` needs the packages ``up`` installs (not its dockerd): it starts a
containerd and a dockerd in each of the network namespaces ``cicd-swarm1`` (manager,
10.231.0.1, and the registry on 10.231.0.1:5000) and ``cicd-swarm2`` (worker,
10.231.0.2), sockets ``STATE_DIR/swarm/node1/docker.sock`` and ``node2/docker.sock``
(:mod:`tools.testinfra.swarm`); it does nothing when that swarm is already healthy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.testinfra import docker, provision, standins, swarm


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tools.testinfra ACTION``.

    ``up``/``down [--state-dir DIR]`` provision this machine, ``swarm-up``/
    ``swarm-down [--state-dir DIR]`` the two-node swarm. ``local-env --dir
    DIR`` starts the infra checks' stand-ins and prints ``export`` lines for
    ``eval`` (progress on stderr); ``local-env-stop --dir DIR`` stops them.
    ``http-standin --dir DIR`` is the HTTP stand-in's own process.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tools.testinfra", description=__doc__
    )
    needs_dir = ["local-env", "local-env-stop", "http-standin"]
    actions = ["up", "down", "swarm-up", "swarm-down", *needs_dir]
    parser.add_argument("action", choices=actions)
    parser.add_argument("--state-dir", type=Path, default=docker.DEFAULT_STATE_DIR)
    parser.add_argument(
        "--extra", action="append", default=[], help="another package to install"
    )
    parser.add_argument("--dir", type=Path, help="the stand-ins' directory")
    prefix = standins.LOCAL_ENV_PREFIX
    parser.add_argument(
        "--prefix",
        default=prefix,
        help=f"prefix of the exported names (default {prefix}; '' for none)",
    )
    parser.add_argument("--sample-dir", type=Path, default=standins.APP_SAMPLE_DIR)
    args = parser.parse_args(argv)
    if args.action in needs_dir and args.dir is None:
        parser.error(f"{args.action} needs --dir DIR")
    # local-env's stdout is eval'ed: everything else goes to stderr.
    out = sys.stderr if args.action.startswith("local-env") else sys.stdout

    def say(line: str) -> None:
        print(f"==> {line}", file=out, flush=True)

    try:
        if args.action == "up":
            provision.up(args.state_dir, extra_packages=args.extra, say=say)
        elif args.action == "down":
            provision.down(args.state_dir, say=say)
        elif args.action == "swarm-up":
            swarm.up(args.state_dir, say=say)
        elif args.action == "swarm-down":
            swarm.down(args.state_dir, say=say)
        elif args.action == "local-env":
            variables = standins.local_env(args.dir, sample=args.sample_dir, say=say)
            exports = standins.export_lines(variables, args.prefix)
            env_file = args.dir.resolve() / "env.sh"
            env_file.touch(mode=0o600)
            env_file.write_text(exports)
            say(f"local-env: {len(variables)} variables; also in {env_file}")
            print(exports, end="", flush=True)
        elif args.action == "local-env-stop":
            stopped = standins.stop_local_env(args.dir)
            say(f"local-env: stopped {', '.join(stopped) or 'nothing (none running)'}")
        else:
            standins.serve_standin(args.dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"==> error: {error}", file=out, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
