"""Terminal output shared by the command groups: one console, one progress bar style, one user error."""
from __future__ import annotations

import sys

from rich.console import Console

console = Console()


class UserError(ValueError):
    """Bad input from the user: printed as one line, exit code 2."""


def progress_bar():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    class Rate(TextColumn):
        def __init__(self):
            super().__init__("")

        def render(self, task):
            from rich.text import Text
            return Text(f"{task.speed or 0:,.0f}/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                    disable=not console.is_terminal and not sys.stderr.isatty())
