"""``python -m validation.cli``: the ``ntklc`` command."""

import sys

from validation.cli import main

sys.exit(main())
