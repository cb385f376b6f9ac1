"""Builders for backups: read an archive back whole, extract it, swap data in.

Each returns a :class:`~cicd.commands.Command`; values reach the constant scripts
only as positional parameters. The scripts are POSIX ``sh`` (``dash`` on Debian):
no ``pipefail``, so a tool's failure is caught by its own exit status, never
through a pipe.
"""

from __future__ import annotations

from cicd.commands import Command, sh

#: Exit code of :func:`inspect` and :func:`extract` when the archive is missing.
MISSING = 3
#: Exit code of :func:`inspect` and :func:`extract` when tar cannot read it whole.
UNREADABLE = 4

# Counts the regular files of a ``tar -tv --numeric-owner`` listing (mode first,
# size third) and sums their sizes; printf keeps the sum an integer.
_COUNT = "awk '$1 ~ /^-/ {n++; s+=$3} END {printf \"%d %.0f\\n\", n, s}'"


def inspect(archive: str) -> Command:
    """Read an archive back whole: print ``SHA256 SIZE FILES DATA_BYTES``.

    ``tar -tz`` decompresses every member to list it, so gzip checks the stream
    to its end (CRC and length): a truncated or altered archive fails here, with
    tar's or gzip's own words on stderr. Exits :data:`MISSING` when there is no
    such file and :data:`UNREADABLE` when tar fails.
    """
    return sh(
        'f="$1"; [ -f "$f" ] || { echo "no such archive: $f" >&2; exit 3; }; '
        'size=$(wc -c < "$f") || exit 1; '
        'sum=$(sha256sum < "$f") || exit 1; '
        'listing=$(tar -tvzf "$f" --numeric-owner) || exit 4; '
        'printf "%s %s " "${sum%% *}" "$size"; '
        f'printf "%s\\n" "$listing" | {_COUNT}',
        archive,
    )


def extract(archive: str, into: str) -> Command:
    """Extract an archive into a fresh ``into``; print ``FILES DATA_BYTES`` found.

    ``into`` is removed first (a scratch directory a killed run left behind),
    and counted from the disk after extraction, so the figures say what was
    really written. Exits :data:`MISSING` or :data:`UNREADABLE` as :func:`inspect`.
    """
    return sh(
        'f="$1"; d="$2"; [ -f "$f" ] || { echo "no such archive: $f" >&2; exit 3; }; '
        'rm -rf -- "$d" && mkdir -p -- "$d" || exit 1; '
        'tar -xzf "$f" -C "$d" --no-same-owner || exit 4; '
        'listing=$(find "$d" -type f -printf "%s\\n") || exit 1; '
        "printf '%s\\n' \"$listing\" | "
        "awk 'NF {n++; s+=$1} END {printf \"%d %.0f\\n\", n, s}'",
        archive,
        into,
    )


def swap_in(live: str, staged: str, old: str, *members: str) -> Command:
    """Put each staged member in place of the live one, keeping the live one aside.

    For each member: ``live/m`` moves to ``old/m``, then ``staged/m`` to ``live/m``,
    each an atomic rename; ``staged`` is removed once empty. Run again after a
    kill at any point it does only what is left (a member no longer staged is
    done), so a restore is finished by running it again.
    """
    return sh(
        'live="$1"; staged="$2"; old="$3"; shift 3; mkdir -p -- "$old" || exit 1; '
        'for m; do [ -e "$staged/$m" ] || continue; '
        'if [ -e "$live/$m" ]; then rm -rf -- "$old/$m" && '
        'mv -T -- "$live/$m" "$old/$m" || exit 1; fi; '
        'mv -T -- "$staged/$m" "$live/$m" || exit 1; done; '
        # Emptied: gone, so only the data kept aside is left to clean up.
        'rmdir -- "$staged" 2>/dev/null; exit 0',
        live,
        staged,
        old,
        *members,
    )


def swap_back(live: str, old: str, *members: str) -> Command:
    """Undo :func:`swap_in`: each member kept aside in ``old`` goes back in place.

    The restored member it replaces is removed. Run again after a kill it does
    only what is left.
    """
    return sh(
        'live="$1"; old="$2"; shift 2; '
        'for m; do [ -e "$old/$m" ] || continue; '
        'rm -rf -- "$live/$m" && mv -T -- "$old/$m" "$live/$m" || exit 1; done',
        live,
        old,
        *members,
    )
