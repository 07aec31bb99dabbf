"""The error contract: which exceptions mean "bad input" and which mean "a bug in ntklc".

* :class:`InputError`: the caller's input cannot be used: a value out of range, an unknown
  name, options that contradict each other, a size the machine cannot hold, a file that is not
  what it should be. It is a ``ValueError``, so ``except ValueError`` keeps catching it.
* :class:`DataNotFoundError`: a data set or a file that is not there (also a
  ``FileNotFoundError``).
* :class:`RunError`: a long run could not finish although its input was fine: a worker
  process died, a task of a sweep failed (also a ``RuntimeError``).

The ``ntklc`` command turns the first two into one line on stderr and exit code 2, a
:class:`RunError` into one line and exit code 1. Every other exception that escapes a command
is a bug in ntklc: exit code 1, one line that asks for a report, and the traceback only with
``ntklc --debug`` or ``NTKLC_DEBUG=1``.
"""

__all__ = ["DataNotFoundError", "InputError", "RunError"]


class InputError(ValueError):
    """The input cannot be used; the message says which input and why."""


class DataNotFoundError(InputError, FileNotFoundError):
    """A data set or a file that is not where it was looked for; the message says where."""


class RunError(RuntimeError):
    """A run stopped before its end for a reason outside its input; the message says why and
    what to do (a rerun resumes cached runs)."""
