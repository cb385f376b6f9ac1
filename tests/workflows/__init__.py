"""The workflow files, run by nektos/act under a self-hosted runner's contract."""
