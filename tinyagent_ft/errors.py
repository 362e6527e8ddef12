"""The one base class of input problems a user can fix (a bad file, record, option or config value).

Every such error is worded as one line naming where the problem is (file, line, field); the CLI prints
it as ``error: ...`` and exits 2, never with a traceback."""
from __future__ import annotations


class InputError(ValueError):
    """Bad input, in one line that names the file, line and field where known."""
