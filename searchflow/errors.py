"""Errors a person can act on.

Every failure that is the user's to fix (bad input, a server that does not answer, a missing table)
is raised as :class:`SearchflowError`. The command line prints its message as one line and exits
non-zero; it never shows a traceback for these.
"""

from __future__ import annotations


class SearchflowError(Exception):
    """A problem the user can fix; ``str(err)`` is one line naming it and the way out."""

    exit_code = 1


class UsageError(SearchflowError):
    """Bad arguments or settings (exit code 2, like click's own usage errors)."""

    exit_code = 2


class ServiceUnavailable(SearchflowError):
    """A configured server (Postgres, Redis, Prefect) did not answer."""


class GateFailed(SearchflowError):
    """A quality gate did not pass; nothing downstream may run on the batch."""

    exit_code = 3
