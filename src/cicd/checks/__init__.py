"""Whether an app answers.

HTTP health checks and readiness polling, probes through the runner, the browser that
renders a page, and the traffic generator that proves a switch drops nothing.
"""
