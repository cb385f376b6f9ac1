"""Run one action on every host of an environment at once (threads: it is all I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from cicd.core.errors import CicdError

if TYPE_CHECKING:
    from cicd.host.target import Target

T = TypeVar("T")


def each(
    action: Callable[[Target], object], hosts: Sequence[Target]
) -> dict[Target, BaseException | None]:
    """Run ``action`` on every host at once; return each host's error (or None).

    A :class:`~cicd.core.errors.CicdError` is a host's failure, reported; anything else
    is a bug and is raised.
    """
    if len(hosts) == 1:
        try:
            action(hosts[0])
            return {hosts[0]: None}
        except CicdError as error:
            return {hosts[0]: error}
    outcome: dict[Target, BaseException | None] = {}
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        futures = {host: pool.submit(action, host) for host in hosts}
        for host, future in futures.items():
            failure = future.exception()
            if failure is not None and not isinstance(failure, CicdError):
                raise failure
            outcome[host] = failure
    return outcome


def collect(action: Callable[[Target], T], hosts: Sequence[Target]) -> dict[Target, T]:
    """Run ``action`` on every host at once and return the results.

    Raises:
        CicdError: The first host's failure, after every host finished.
    """
    results: dict[Target, T] = {}

    def keep(host: Target) -> None:
        results[host] = action(host)

    errors = each(keep, hosts)
    for error in errors.values():
        if error is not None:
            raise error
    return results
