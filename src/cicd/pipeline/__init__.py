"""The pipeline's operations.

Deploy, activation, rollback, repair, the CI watch and its verdicts, setup, status,
monitor and the plan that says what a command will do.
"""
