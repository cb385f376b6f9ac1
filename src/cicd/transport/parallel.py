"""Run one action on every host of an environment at once (threads: it is all I/O).

Two ways to wait for the hosts, named by what they return:
:func:`failures_by_host` lets every host finish and returns each one's failure (a
deploy decides per host what to undo); :func:`results_by_host` returns each one's
result, or raises the first failure once all have finished (a read that needs
every host).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cicd.core.errors import CicdError

H = TypeVar("H", bound=Hashable)
T = TypeVar("T")


def failures_by_host(
    action: Callable[[H], object], hosts: Sequence[H]
) -> dict[H, BaseException | None]:
    """Run ``action`` on every host at once; return each host's failure (or None).

    A :class:`~cicd.core.errors.CicdError` is a host's failure, reported; anything else
    is a bug and is raised.
    """
    if len(hosts) == 1:
        try:
            action(hosts[0])
            return {hosts[0]: None}
        except CicdError as error:
            return {hosts[0]: error}
    outcome: dict[H, BaseException | None] = {}
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        futures = {host: pool.submit(action, host) for host in hosts}
        for host, future in futures.items():
            failure = future.exception()
            if failure is not None and not isinstance(failure, CicdError):
                raise failure
            outcome[host] = failure
    return outcome


def results_by_host(action: Callable[[H], T], hosts: Sequence[H]) -> dict[H, T]:
    """Run ``action`` on every host at once and return the results.

    Raises:
        CicdError: The first host's failure, after every host finished.
    """
    results: dict[H, T] = {}

    def keep(host: H) -> None:
        results[host] = action(host)

    errors = failures_by_host(keep, hosts)
    for error in errors.values():
        if error is not None:
            raise error
    return results
