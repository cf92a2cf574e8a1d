"""CSV that spreadsheets open as data, never as formulas (OWASP "CSV injection").

Every CSV Shipboard writes goes through :func:`dict_writer`: a cell that is text beginning with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a single quote, which
Excel, LibreOffice and Google Sheets show but do not evaluate. Finding titles, metric names and
tags are written by whoever wrote the scanned code or the benchmark, so any of them may be hostile.
Numbers stay numbers: only ``str`` cells are touched, so ``-3.5`` written from a float is intact.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable, Mapping
from typing import IO, Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """The cell as a spreadsheet must show it: formula-like text gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _SafeDictWriter(csv.DictWriter):  # type: ignore[type-arg] # not subscriptable at run time
    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: neutralise(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)


def dict_writer(
    out: IO[str], fieldnames: Collection[str], *, extrasaction: str = "raise"
) -> csv.DictWriter[str]:
    """A ``csv.DictWriter`` whose every cell is neutralised (see the module's docstring)."""
    return _SafeDictWriter(out, fieldnames=fieldnames, extrasaction=extrasaction)  # type: ignore[arg-type]
