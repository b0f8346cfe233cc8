"""Self-contained HTML pages: skeleton, CSS, tables and embedded matplotlib figures.

Every string is escaped with `html.escape` unless it is wrapped in `Html`, which marks
markup this module or its callers built themselves. Strings read from run directories
and ledgers are untrusted input and must never be wrapped in `Html` unescaped.
Figures are PNG images drawn with matplotlib's Agg backend and embedded as
``data:image/png;base64`` URIs, so a page needs no other file and loads nothing from
the network.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1d2330;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d8dce3;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #d8dce3;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{background:#fdecec}tr.pass td{background:#fff}
.verdict{display:inline-block;padding:.35rem .8rem;border-radius:.3rem;font-weight:600;
color:#fff}.verdict.pass{background:#1f7a3d}.verdict.fail{background:#b3261e}
.verdict.unusable{background:#6b5b00}.muted{color:#5b6475;font-size:.9rem}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #e3e6eb}
figcaption{color:#5b6475;font-size:.88rem;max-width:60rem}code{font-size:.9em}
"""

MISSING = "–"


class Html(str):
    """Markup built by fedrisk itself, inserted into a page without escaping."""

    __slots__ = ()


def esc(value: object) -> Html:
    """Return ``value`` as text that is safe inside HTML (``Html`` passes through).

    Parameters
    ----------
    value : object
        Any value; it is converted with `str` and escaped, quotes included.

    Returns
    -------
    Html
        The escaped text.
    """
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def number(value: object, digits: int = 4) -> str:
    """Format a finite number with ``digits`` decimals, anything else as a dash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING
    return f"{float(value):.{digits}f}" if math.isfinite(float(value)) else MISSING


def tag(name: str, content: object = "", **attributes: str) -> Html:
    """Return ``<name attributes>content</name>`` with content and attributes escaped.

    Parameters
    ----------
    name : str
        The element name (fedrisk's own, never input).
    content : object (default: "")
        Escaped unless it is `Html`.
    **attributes : str
        Attribute values, escaped; a trailing underscore is dropped (``class_``).
    """
    attrs = "".join(f' {key.rstrip("_")}="{esc(value)}"' for key, value in attributes.items())
    return Html(f"<{name}{attrs}>{esc(content)}</{name}>")


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
) -> Html:
    """Return an HTML table; every cell is escaped unless it is `Html`.

    Parameters
    ----------
    headers : Sequence[str]
        Column titles.
    rows : Iterable[Sequence[object]]
        One sequence of cells per row.
    numeric : Sequence[int] (default: ())
        Indices of right-aligned numeric columns.
    row_classes : Sequence[str] | None (default: None)
        A CSS class per row (``fail`` highlights a row).
    """
    head = "".join(tag("th", title, scope="col") for title in headers)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(
            tag("td", cell, class_="num") if column in numeric else tag("td", cell)
            for column, cell in enumerate(row)
        )
        css = row_classes[index] if row_classes is not None else ""
        body.append(f'<tr class="{esc(css)}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def figure(fig: Figure, *, alt: str, caption: str) -> Html:
    """Render a matplotlib figure as an embedded PNG with a caption.

    Parameters
    ----------
    fig : Figure
        A figure made with `matplotlib.figure.Figure` (no pyplot state).
    alt : str
        The image's alternative text.
    caption : str
        What the figure shows and where its numbers come from.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    image = f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'
    return Html(f"<figure>{image}{tag('figcaption', caption)}</figure>")


def section(title: str, *parts: object) -> Html:
    """Return an ``<h2>`` section; each part is escaped unless it is `Html`."""
    return Html(tag("section", Html(tag("h2", title) + "".join(esc(part) for part in parts))))


def page(title: str, *parts: object) -> str:
    """Return a complete, self-contained HTML document.

    Parameters
    ----------
    title : str
        The document title (escaped).
    *parts : object
        The body, in order; each is escaped unless it is `Html`.

    Returns
    -------
    str
        The document, with inline CSS and no external resources.
    """
    body = "".join(esc(part) for part in parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
