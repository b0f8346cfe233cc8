"""The one exception raised when an institution's table fails validation."""

from __future__ import annotations

import os


class DataValidationError(ValueError):
    """A data file that cannot be used as it is, located down to the cell.

    The message is one line that names the file, the column and the 1-based data row
    (the header is not counted), says what is wrong and what to do about it, e.g.
    ``bank_a.csv, column 'income', row 7: value 'abc' is not a number (fix the cell or
    drop the row)``. The CLI prints it as is, without a traceback.

    Parameters
    ----------
    file : str | os.PathLike[str]
        The file as the user named it.
    reason : str
        What is wrong and what to do about it, as a plain sentence fragment.
    column : str | None (default: None)
        The offending column, when the problem is confined to one.
    row : int | None (default: None)
        The first offending data row, 1-based, header excluded.

    Attributes
    ----------
    file : str
        The file as the user named it.
    column : str | None
        The offending column, or ``None`` for file-level problems.
    row : int | None
        The first offending data row (1-based, header excluded), or ``None``.
    reason : str
        What is wrong and what to do about it.
    """

    file: str
    column: str | None
    row: int | None
    reason: str

    def __init__(
        self,
        file: str | os.PathLike[str],
        *,
        reason: str,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.file = os.fspath(file)
        self.column = column
        self.row = row
        self.reason = reason
        super().__init__(self._render())

    def _render(self) -> str:
        where = [self.file]
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        return f"{', '.join(where)}: {self.reason}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only construction defeats BaseException's default pickling, and Ray
        # pickles exceptions raised inside simulated clients.
        return (_rebuild, (self.file, self.reason, self.column, self.row))


def _rebuild(file: str, reason: str, column: str | None, row: int | None) -> DataValidationError:
    return DataValidationError(file, reason=reason, column=column, row=row)
