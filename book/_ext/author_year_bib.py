"""Label the bibliography's entries by author and year, as the text cites them.

The chapters cite author-year ("Park et al., 2026"), but pybtex's styles label a reference
list [1], [2], ...; this registers a pybtex style, ``author_year``, that sorts entries as
``plain`` does and labels each "Park et al., 2026". ``book/bibliography.md`` uses it.
"""

from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    return " ".join(person.last_names).replace("{", "").replace("}", "")


def author_year_label(entry) -> str:
    """"May, 1976", "Ho and Jain, 2020" or "Park et al., 2026" for a pybtex entry."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    if not names:
        who = entry.fields.get("title", entry.key).replace("{", "").replace("}", "")
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            yield author_year_label(entry)


class AuthorYearStyle(PlainStyle):
    default_label_style = "author_year"


def setup(app):
    register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
