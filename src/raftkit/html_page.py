"""The pieces every self-contained raftkit HTML page shares: escaping, base style, sorting script.

The evaluation report (:mod:`raftkit.evaluate.render`) and the run viewer
(:mod:`raftkit.run_viewer`) are single files meant to be mailed, archived and opened offline, so
they carry their CSS and script inline. This module imports nothing of raftkit (floor 1).

Every report on data the simulator wrote says so at its top, in the same words:
:func:`simulated_markdown` and :func:`simulated_html`.
"""

from __future__ import annotations

from html import escape

__all__ = [
    "BASE_CSS",
    "SIMULATED_NOTE",
    "SORTABLE_TABLE_JS",
    "escape_html",
    "html_document",
    "simulated_html",
    "simulated_markdown",
]

#: Why a report says SIMULATED (some response came from raftkit's simulator).
SIMULATED_NOTE = (
    "responses came from raftkit's built-in simulator, not a real model: placeholder data, "
    "not for training a model or for judging one."
)

# A font stack with a CJK fallback: Chinese text must not fall back to boxes.
BASE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC",sans-serif;
margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:1px solid #d0d7de}h3{margin-bottom:.3rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;vertical-align:top;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{background:#f6f8fa}th.sortable{cursor:pointer;user-select:none}
th.sortable::after{content:" \\2195";color:#8c959f}
th.asc::after{content:" \\2191"}th.desc::after{content:" \\2193"}
.muted{color:#57606a}svg text{font-size:12px;fill:#1f2328}
.scroll{overflow-x:auto}
"""

# Sorts a table.sortable by the clicked th.sortable: each cell's data-v attribute is the key,
# numbers numerically (empty or n/a last), text by locale.
SORTABLE_TABLE_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th.sortable").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th.sortable").forEach(function (h) {
        h.classList.remove("asc", "desc");
      });
      th.classList.add(asc ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        var nx = parseFloat(x), ny = parseFloat(y);
        var r;
        if (!isNaN(nx) || !isNaN(ny)) {
          if (isNaN(nx)) return 1;
          if (isNaN(ny)) return -1;
          r = nx - ny;
        } else {
          r = String(x).localeCompare(String(y));
        }
        return asc ? r : -r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def simulated_markdown() -> str:
    """The first line of a Markdown report on simulated data."""
    return f"> **SIMULATED** — {SIMULATED_NOTE}"


def simulated_html() -> str:
    """The banner at the top of an HTML report on simulated data (styled inline)."""
    return (
        '<div class="simulated" role="alert" style="background:#ffebe9;border:2px solid '
        '#cf222e;border-radius:6px;padding:.7rem 1rem;margin:1rem 0;font-size:1.05rem">'
        f'<b style="color:#cf222e;letter-spacing:.05em">SIMULATED</b> — {SIMULATED_NOTE}</div>'
    )


def escape_html(text: object) -> str:
    """``text`` as HTML text or attribute value: ``& < > " '`` escaped."""
    return escape(str(text), quote=True)


def html_document(title: str, body: str, *, css: str = "", script: str = "") -> str:
    """A whole page: UTF-8, :data:`BASE_CSS` plus ``css``, ``body``, then ``script`` inline.

    ``title`` is escaped here; ``body``, ``css`` and ``script`` are inserted as they are.
    """
    tail = f"<script>{script}</script>" if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape_html(title)}</title>"
        f"<style>{BASE_CSS}{css}</style></head><body>{body}{tail}</body></html>\n"
    )
