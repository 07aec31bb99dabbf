"""What every package of the toolkit shares: the error contract (:mod:`ntklc.errors`).

The toolkit's code lives in ``rmt``, ``ntk``, ``solvers``, ``nets`` and ``validation``; this
package sits below them all, so that each can raise the same errors.
"""

from ntklc.errors import DataNotFoundError, InputError, RunError

__all__ = ["DataNotFoundError", "InputError", "RunError"]
