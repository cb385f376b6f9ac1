"""``python -m cicd TASK``: the task collection without looking for a tasks.py.

The detached CI watcher starts itself this way, so it works from any directory.
"""

from cicd import __version__
from cicd.cli import CicdProgram
from cicd.tasks import ns

program = CicdProgram(namespace=ns, version=__version__, name="cicd", binary="cicd")

if __name__ == "__main__":
    program.run()
