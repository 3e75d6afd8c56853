"""Point the theme's Colab button at the generated notebook in ``notebooks/``.

Colab cannot open MyST Markdown, so ``tools/make_colab.py`` writes an ``.ipynb``
copy of each chapter; this hook rewrites the launch URL from ``book/NAME.md``
to ``notebooks/NAME.ipynb``. It runs after the theme builds its buttons (priority 501).
"""

from __future__ import annotations

import re

_CHAPTER = re.compile(r"/blob/(?P<branch>[^/]+)/book/(?P<name>[^/]+)\.(md|ipynb)$")


def _rewrite(buttons) -> None:
    for button in buttons or []:
        if isinstance(button, dict):
            if "colab.research.google.com" in str(button.get("url", "")):
                button["url"] = _CHAPTER.sub(r"/blob/\g<branch>/notebooks/\g<name>.ipynb", button["url"])
            _rewrite(button.get("buttons"))


def rewrite_colab_url(app, pagename, templatename, context, doctree):
    _rewrite(context.get("header_buttons"))


def setup(app):
    app.connect("html-page-context", rewrite_colab_url, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
