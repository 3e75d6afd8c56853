"""Generate the Colab / student notebooks from the book's MyST chapters.

    python tools/make_colab.py          # write notebooks/*.ipynb and notebooks/student/*.ipynb
    python tools/make_colab.py --check  # exit 1 if any committed copy is out of date

Each chapter listed in ``_toc.yml`` that is an executable MyST notebook gets:
- ``notebooks/NAME.ipynb``: outputs empty, Colab metadata that asks for a GPU runtime only
  when the chapter can train a model (:func:`trains`), a first cell that installs the
  library only when running inside Colab, and a second cell, a note that links to the
  chapter in the online book;
- ``notebooks/student/NAME.ipynb``: the same without the ``{solution}`` blocks, and with an
  empty ``answer`` cell after each exercise that has no code stub.

Colab shows Markdown, not MyST, so :func:`convert` rewrites every Markdown cell and no MyST
syntax is left in either edition:
- ``{cite}`key``` (or ``{cite}`a,b```) becomes an author-year citation, "(Park et al., 2026)",
  read from ``references.bib`` (:func:`bibliography`) and linked to the online book's
  bibliography page; adjacent citations share one pair of parentheses; ``{cite:t}`` gives
  "Park et al. (2026)";
- ``{ref}``, ``{numref}``, ``{doc}`` and ``{term}`` become links into the online book; a reference
  to an exercise reads "Exercise N.k" and is plain text when that exercise is in the same
  notebook; a label that no page defines is left as plain text;
- a glued value, ``{glue:text}`name```, is filled in only by the book build (the library's
  ``glue`` does nothing in Colab), so it becomes the glued name as inline code, `` `name` ``,
  and the note at the top of the notebook says that the code cells compute these values and
  that the online book shows them filled in;
- ``{exercise}`` blocks become cells headed "**Exercise N.k**" (N the chapter number in the file
  name, k counting the chapter's exercises), tagged ``exercise`` (cell metadata); each fenced
  ``python`` block inside an exercise (a code exercise's stub, which ends in a call to
  ``physmis_edu.checks.check``) becomes a code cell tagged ``exercise-stub``, in both editions;
  a ``{solution}`` becomes a Markdown cell headed "**Solution N.k**" with each of its fenced
  ``python`` blocks as a separate code cell, all tagged ``solution``; the student edition
  drops solutions entirely, and puts an empty code cell tagged ``answer`` after each exercise
  that has no stub, for the student's own code;
- admonitions (``{note}``, ``{warning}``, ``{admonition} Title`` ...) become quotes,
  "> **Note.** ..."; ``{math}`` becomes ``$$ ... $$``; ``{glossary}`` becomes bold terms with
  their definitions; any other directive keeps its content (under its argument in bold);
  ``(label)=`` targets and ``%`` comments are dropped.

``BOOK_URL`` is the online book's address that these links use: ``html.baseurl`` in
``_config.yml`` when it is set, otherwise the GitHub Pages site of ``repository.url`` (for
``https://github.com/OWNER/NAME``, ``https://owner.github.io/NAME/``), where the book is
published. Both are read from ``_config.yml``, so setting the real repository there moves
every link; ``book/NAME.md`` is at ``BOOK_URL + "book/NAME.html"`` (Jupyter Book 1.x).

The output is deterministic (fixed cell ids, no tool versions), so a test can
compare the committed copies with a fresh rendering.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks"

INSTALL_CELL = """\
# Colab only: install the companion library (elsewhere it is installed already).
import sys
if "google.colab" in sys.modules:
    %pip install -q "physmis_edu @ git+{url}@{branch}"
"""


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _book_url(cfg: dict) -> str:
    """The online book's address, ending in ``/`` (see the module docstring)."""
    base = (cfg.get("html") or {}).get("baseurl")
    if not base:
        url = cfg["repository"]["url"]
        gh = re.fullmatch(r"https?://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", url)
        base = f"https://{gh[1].lower()}.github.io/{gh[2]}" if gh else url
    return base.rstrip("/") + "/"


BOOK_URL = _book_url(_config())


def chapters() -> list[Path]:
    """Executable chapters in ``_toc.yml`` order (pages without a jupytext header are skipped)."""
    paths = [ROOT / f"{page}.md" for page in _pages()]
    return [p for p in paths if p.exists() and _is_notebook(p.read_text())]


def _pages() -> list[str]:
    """Every page of ``_toc.yml``, notebook or not, as ``book/NAME``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [entry["file"] for entry in part.get("chapters", [])]
    return pages


def _is_notebook(text: str) -> bool:
    """A MyST notebook starts with a YAML header that has a ``jupytext`` key."""
    return text.startswith("---") and "jupytext:" in text.split("---", 2)[1]


def _repository() -> tuple[str, str]:
    repo = _config().get("repository", {})
    return repo["url"].rstrip("/"), repo.get("branch", "main")


# A chapter trains when one of its code cells fits a model or builds store runs.
_TRAINS = re.compile(r"\.fit\(|\bbuild\(")


def trains(nb) -> bool:
    """Whether a chapter's code can train a model (and so should ask Colab for a GPU)."""
    return any(c.cell_type == "code" and _TRAINS.search(c.source) for c in nb.cells)


# --- references.bib ---------------------------------------------------------------------------

# An entry runs from ``@type{key,`` to a ``}`` alone at the start of a line (the file's style).
_BIB_ENTRY = re.compile(r"^@\w+\s*\{\s*([^,\s]+)\s*,(.*?)^\}", re.S | re.M)
# A field value in braces may nest braces two deep (``{{Anonymous authors}}``, ``{\L}ukasz``).
_BRACED = r"\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}"
_BIB_FIELD = re.compile(rf"(\w+)\s*=\s*({_BRACED}|\"[^\"]*\"|\d+)")
# LaTeX accents and letters that occur in names, e.g. ``C{\'e}dric``, ``{\L}ukasz``.
_ACCENT = re.compile(r"\\(['\"`^~=.]|[cvuH](?=[\s{]))\s*\{?([A-Za-z])\}?")
_ACCENTS = {"'": "\u0301", '"': "\u0308", "`": "\u0300", "^": "\u0302", "~": "\u0303",
            "=": "\u0304", ".": "\u0307", "c": "\u0327", "v": "\u030c", "u": "\u0306",
            "H": "\u030b"}
_LETTER = re.compile(r"\\(ss|aa|AA|ae|AE|oe|OE|[LlOoi])(?![A-Za-z])\s?")
_LETTERS = {"ss": "ß", "aa": "å", "AA": "Å", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ",
            "L": "Ł", "l": "ł", "O": "Ø", "o": "ø", "i": "ı"}


def _plain(tex: str) -> str:
    """Readable text for a BibTeX value: accents resolved, braces and commands dropped."""
    text = _ACCENT.sub(lambda m: m[2] + _ACCENTS[m[1]], tex)
    text = _LETTER.sub(lambda m: _LETTERS[m[1]], text)
    text = re.sub(r"\\[A-Za-z]+\s*|[{}\\]", "", text)
    return unicodedata.normalize("NFC", " ".join(text.split()))


def _names(authors: str) -> list[str]:
    """The names of a BibTeX author list, split on ``and`` outside braces."""
    names, depth, start = [], 0, 0
    for m in re.finditer(r"[{}]|\s+and\s+", authors):
        if m[0] in "{}":
            depth += 1 if m[0] == "{" else -1
        elif depth == 0:
            names.append(authors[start:m.start()])
            start = m.end()
    return names + [authors[start:]]


def _surname(name: str) -> str:
    """``Park, Core Francisco`` or ``Core Francisco Park`` -> ``Park``; ``{A team}`` whole."""
    name = name.strip()
    if re.fullmatch(_BRACED, name) or ("," not in name and " " not in name):
        return _plain(name)
    if "," in name:
        return _plain(name.split(",", 1)[0])
    return _plain(name.rsplit(" ", 1)[1])


def _authors(value: str) -> str:
    """Authors as an author-year citation shows them: one, two, or the first et al."""
    surnames = [_surname(n) for n in _names(value)]
    if len(surnames) > 2:
        return f"{surnames[0]} et al."
    return " and ".join(surnames)


def bibliography(path: Path = ROOT / "references.bib") -> dict[str, tuple[str, str]]:
    """``key -> (authors, year)`` for every entry of a BibTeX file, e.g. ``("Ho et al.", "2020")``.

    A few regular expressions are enough for this file's plain style (no ``@string`` macros,
    one entry closed by a ``}`` at the start of a line); an entry without an author or a year
    is skipped, and citing it falls back to its key.
    """
    entries = {}
    for key, body in _BIB_ENTRY.findall(path.read_text(encoding="utf-8")):
        fields = {name.lower(): value for name, value in _BIB_FIELD.findall(body)}
        fields = {k: v[1:-1] if v[0] in '{"' else v for k, v in fields.items()}
        year = fields.get("year") or fields.get("date", "")[:4]
        if fields.get("author") and year:
            entries[key] = (_authors(fields["author"]), _plain(year))
    return entries


# --- fenced blocks ----------------------------------------------------------------------------

# A fence opens with three or more backticks, tildes or colons (MyST's colon fence) at the start
# of a line; ``{name} argument`` after it makes it a directive.
_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>[^`\n]*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):(?P<value>.*)$")


@dataclass
class _Block:
    """A fenced block: a directive when ``name`` is set, else plain code."""

    raw: str       # the whole block, fences included
    info: str      # what follows the opening fence
    body: str      # the lines between the fences
    name: str | None = None
    arg: str = ""
    options: dict = field(default_factory=dict)
    content: str = ""


def _blocks(text: str) -> list[str | _Block]:
    """``text`` as runs of prose (``str``) and fenced blocks, in order.

    A block closes at the first line of at least as many of the same fence characters, as in
    CommonMark and MyST; a block left open runs to the end of the text.
    """
    lines = text.splitlines(keepends=True)
    parts, prose, i = [], [], 0
    while i < len(lines):
        opened = _FENCE.match(lines[i].rstrip("\n"))
        if not opened:
            prose.append(lines[i])
            i += 1
            continue
        fence = opened["fence"]
        close = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        if prose:
            parts.append("".join(prose))
            prose = []
        parts.append(_block("".join(lines[i:j + 1]), opened["info"], "".join(lines[i + 1:j])))
        i = j + 1
    return parts + (["".join(prose)] if prose else [])


def _block(raw: str, info: str, body: str) -> _Block:
    """A fenced block, with a directive's name, argument, options and content filled in."""
    block = _Block(raw, info, body)
    directive = _DIRECTIVE.match(info.strip())
    if directive:
        block.name, block.arg = directive["name"], directive["arg"].strip()
        block.options, block.content = _options(body)
    return block


def _options(body: str) -> tuple[dict, str]:
    """A directive's options (``:key: value`` lines or a ``---`` YAML block) and content."""
    lines = body.splitlines(keepends=True)
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            options = yaml.safe_load("".join(lines[1:end])) or {}
            return (options if isinstance(options, dict) else {}), "".join(lines[end + 1:])
    options, i = {}, 0
    while i < len(lines) and _OPTION.match(lines[i]):
        opt = _OPTION.match(lines[i])
        options[opt["key"]] = opt["value"].strip()
        i += 1
    return options, "".join(lines[i:])


# --- what the book's pages define -------------------------------------------------------------

@dataclass
class _Target:
    """Where a label points and how a reference to it reads when it gives no text."""

    page: str          # book/NAME
    text: str          # a section's heading, "Exercise 2.3", or the label itself
    number: str = ""   # an exercise's number, "2.3"


@dataclass
class Book:
    """What the references of one chapter may point to, read from every page of the book."""

    labels: dict[str, _Target] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)    # page -> its first heading
    glossary: str = "book/glossary"
    bibliography: str = "book/bibliography"
    cites: dict[str, tuple[str, str]] = field(default_factory=dict)


# Directives whose body is not Markdown: a scan for labels and exercises skips them.
_VERBATIM = {"code-cell", "code", "code-block", "sourcecode", "math", "raw", "glossary",
             "bibliography", "toctree", "tableofcontents", "list-table", "csv-table"}
# ``(label)=`` on its own line names the heading that follows.
_SECTION = re.compile(r"^\((?P<label>[^)\s]+)\)=[ \t]*\n(?:[ \t]*\n)*#+[ \t]+(?P<title>.+)$", re.M)
_HEADING = re.compile(r"^#[ \t]+(?P<title>.+)$", re.M)


def _chapter_number(page: str) -> int | None:
    """N of ``book/chNN_name``; None for a page that is not a numbered chapter."""
    m = re.match(r"ch(\d+)", posixpath.basename(page))
    return int(m[1]) if m else None


def _exercise_number(chapter: int | None, k: int) -> str:
    return f"{chapter}.{k}" if chapter is not None else str(k)


def book() -> Book:
    """Labels, page titles and the glossary and bibliography pages of every page in the book."""
    found = Book(cites=bibliography())
    for page in _pages():
        path = ROOT / f"{page}.md"
        if path.exists():
            _scan(_body(path.read_text(encoding="utf-8")), page, found, [0])
    return found


def _body(text: str) -> str:
    """A page without its YAML header."""
    if text.startswith("---"):
        parts = text.split("---", 2)
        return parts[2] if len(parts) == 3 else text
    return text


def _scan(text: str, page: str, found: Book, exercises: list[int]) -> None:
    """Record the targets that ``text`` of ``page`` defines; ``exercises`` counts exercises.

    It walks the blocks in the same order as :func:`convert`, so both number exercises alike.
    """
    for part in _blocks(text):
        if isinstance(part, str):
            for m in _SECTION.finditer(part):
                found.labels[m["label"]] = _Target(page, m["title"].strip())
            heading = _HEADING.search(part)
            if heading and page not in found.titles:
                found.titles[page] = heading["title"].strip()
            continue
        figure = (part.options.get("mystnb") or {}).get("figure") \
            if part.name == "code-cell" else None
        if isinstance(figure, dict) and figure.get("name"):
            # A code cell's image, numbered per chapter in reading order like the book's.
            k = 1 + sum(t.page == page and t.text.startswith("Figure ")
                        for t in found.labels.values())
            number = _exercise_number(_chapter_number(page), k)
            found.labels[figure["name"]] = _Target(page, f"Figure {number}", number)
        if part.name == "exercise":
            exercises[0] += 1
            number = _exercise_number(_chapter_number(page), exercises[0])
            if "label" in part.options:
                found.labels[part.options["label"]] = _Target(page, f"Exercise {number}", number)
        elif "label" in part.options and part.name:
            found.labels[part.options["label"]] = _Target(page, part.options["label"])
        if part.name == "glossary":
            found.glossary = page
        if part.name == "bibliography":
            found.bibliography = page
        if part.name and part.name not in _VERBATIM:
            _scan(part.content, page, found, exercises)


# --- converting Markdown ----------------------------------------------------------------------

@dataclass
class _Cell:
    """A notebook cell in the making."""

    kind: str               # "markdown" or "code"
    source: str
    tags: tuple = ()
    start: bool = False     # begins a new cell even after Markdown with the same tags


@dataclass
class _Chapter:
    """The state of one chapter's conversion."""

    page: str
    book: Book
    student: bool = False
    exercises: int = 0

    @property
    def number(self) -> int | None:
        return _chapter_number(self.page)


def convert(text: str, page: str, found: Book, student: bool = False) -> list[_Cell]:
    """Plain Markdown (and code) cells for one Markdown cell ``text`` of ``page``, alone.

    For a whole chapter use :func:`render`: it numbers the exercises across the cells.
    """
    return _convert(text, _Chapter(page, found, student))


def _convert(text: str, ch: _Chapter, code: tuple | None = None) -> list[_Cell]:
    """Cells for MyST ``text``; ``code``: the tags of the code cells that its ``python`` fences
    become (in an exercise or a solution), or None to leave fences in the Markdown."""
    cells = []
    for part in _blocks(text):
        if isinstance(part, str):
            cells.append(_Cell("markdown", _prose(part, ch)))
        elif part.name is None:
            cells.append(_fence(part, part.info.strip(), part.body, code))
        else:
            cells += _directive(part, ch, code)
    return _merge(cells)


def _merge(cells: list[_Cell]) -> list[_Cell]:
    """Join neighbouring Markdown with the same tags into one cell; drop empty Markdown."""
    out = []
    for cell in cells:
        if cell.kind == "markdown":
            cell = replace(cell, source=re.sub(r"\n{3,}", "\n\n", cell.source).strip("\n"))
            if not cell.source.strip():
                continue
        prev = out[-1] if out else None
        if (prev and cell.kind == prev.kind == "markdown" and cell.tags == prev.tags
                and not cell.start):
            out[-1] = replace(prev, source=f"{prev.source}\n\n{cell.source}")
        else:
            out.append(cell)
    return out


# ``(label)=`` targets and ``%`` comments are MyST syntax with nothing to show.
_TARGET_OR_COMMENT = re.compile(r"^(?:\([^)\s]+\)=|%.*)[ \t]*(?:\n|$)", re.M)


def _prose(text: str, ch: _Chapter) -> str:
    return _inline(_TARGET_OR_COMMENT.sub("", text), ch)


_PYTHON = {"python", "python3", "py", "ipython", "ipython3"}


def _fence(block: _Block, language: str, body: str, code: tuple | None) -> _Cell:
    """A code block: a code cell when it is Python inside an exercise or a solution, else kept
    as Markdown."""
    if code is not None and language.split(" ")[0] in _PYTHON:
        return _Cell("code", body.strip("\n"), code, start=True)
    if block.name is None:
        return _Cell("markdown", block.raw)
    return _Cell("markdown", f"```{language}\n{body.rstrip()}\n```")


def _directive(block: _Block, ch: _Chapter, code: tuple | None) -> list[_Cell]:
    name = block.name
    if name in _ADMONITIONS:
        return _admonition(block, ch)
    if name in ("code", "code-block", "sourcecode", "code-cell"):
        language = "python" if name == "code-cell" else block.arg
        return [_fence(block, language, block.content, code)]
    if name.startswith("glue"):
        return _glue_block(block, ch)
    handler = _HANDLERS.get(name, _generic)
    return handler(block, ch)


def _headed(title: str, cells: list[_Cell], tags: tuple) -> list[_Cell]:
    """``cells`` under a bold title, the title starting a new cell, all of them tagged;
    a code cell that has tags of its own keeps them."""
    head = _Cell("markdown", title, tags, start=True)
    return _merge([head] + [c if c.kind == "code" and c.tags else replace(c, tags=tags)
                            for c in cells])


def _exercise(block: _Block, ch: _Chapter) -> list[_Cell]:
    """"**Exercise N.k**" (and the exercise's title, if it has one) above its text, its
    ``python`` fences as code cells tagged ``exercise-stub``; in the student edition an
    exercise without one is followed by an empty code cell tagged ``answer``."""
    ch.exercises += 1
    number = _exercise_number(ch.number, ch.exercises)
    title = f"**Exercise {number}" + (f" ({_inline(block.arg, ch)})**" if block.arg else "**")
    cells = _headed(title, _convert(block.content, ch, code=("exercise-stub",)),
                    ("exercise",))
    if ch.student and not any(c.kind == "code" for c in cells):
        cells.append(_Cell("code", "", ("answer",), start=True))
    return cells


def _solution(block: _Block, ch: _Chapter) -> list[_Cell]:
    """"**Solution N.k**", numbered as the exercise it names, its code as code cells; nothing
    in the student edition."""
    if ch.student:
        return []
    target = ch.book.labels.get(block.arg)
    # A solution that names no known exercise belongs to the one just before it.
    number = target.number if target and target.number else \
        _exercise_number(ch.number, ch.exercises)
    cells = _convert(block.content, ch, code=("solution",))
    return _headed(f"**Solution {number}**", cells, ("solution",))


_ADMONITIONS = {"note": "Note", "warning": "Warning", "tip": "Tip", "important": "Important",
                "hint": "Hint", "caution": "Caution", "attention": "Attention",
                "danger": "Danger", "error": "Error", "seealso": "See also",
                "admonition": "Note", "dropdown": "Note", "margin": "Aside",
                "sidebar": "Aside", "topic": "Topic"}
# A line that starts a plain paragraph can carry the quote's title in front of it.
_PARAGRAPH = re.compile(r"^(?![#>|\s]|[-*+][ \t]|\d+[.)][ \t]|`{3}|~{3}|:{3}|\$\$)\S")


def _admonition(block: _Block, ch: _Chapter) -> list[_Cell]:
    """An admonition as a Markdown quote whose first line is its bold title."""
    title = _inline(block.arg, ch) or _ADMONITIONS[block.name]
    title = f"**{title}**" if title[-1] in ".?!:" else f"**{title}.**"
    cells = _convert(block.content, ch) or [_Cell("markdown", "")]
    first = next((i for i, c in enumerate(cells) if c.kind == "markdown"), None)
    if first is None:
        cells.insert(0, _Cell("markdown", ""))
        first = 0
    lines = cells[first].source.split("\n")
    if lines[0] and _PARAGRAPH.match(lines[0]):
        lines[0] = f"{title} {lines[0]}"
    else:
        lines = [title, ""] + lines if lines != [""] else [title]
    cells[first] = replace(cells[first], source="\n".join(lines))
    return [replace(c, source=_quote(c.source)) if c.kind == "markdown" else c for c in cells]


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.split("\n"))


def _math(block: _Block, ch: _Chapter) -> list[_Cell]:
    """Display math; blank lines separate equations, as in Sphinx's ``math`` directive."""
    equations = [e.strip() for e in re.split(r"\n[ \t]*\n", block.content) if e.strip()]
    return [_Cell("markdown", "\n\n".join(f"$$\n{e}\n$$" for e in equations))]


def _glossary(block: _Block, ch: _Chapter) -> list[_Cell]:
    """A glossary as paragraphs "**Term**: definition"."""
    entries: list[list[str]] = []
    for line in block.content.splitlines():
        if line.strip() and not line[0].isspace():
            entries.append([f"**{line.strip()}**:"])
        elif line.strip() and entries:
            entries[-1].append(line.strip())
    text = "\n\n".join(" ".join(entry) for entry in entries)
    return [_Cell("markdown", _inline(text, ch))]


def _bibliography(block: _Block, ch: _Chapter) -> list[_Cell]:
    url = f"{BOOK_URL}{ch.book.bibliography}.html"
    return [_Cell("markdown", f"The references are listed in the [online book]({url}).")]


def _figure(block: _Block, ch: _Chapter) -> list[_Cell]:
    """An image from the repository (relative paths do not resolve in Colab) and its caption."""
    src = block.arg
    if not re.match(r"https?://", src):
        url, branch = _repository()
        path = posixpath.normpath(posixpath.join(posixpath.dirname(ch.page), src))
        src = f"{url}/raw/{branch}/{path.lstrip('/')}"
    alt = block.options.get("alt", "")
    return _merge([_Cell("markdown", f"![{alt}]({src})")] + _convert(block.content, ch))


def _glue_block(block: _Block, ch: _Chapter) -> list[_Cell]:
    """A glued figure or value: a pointer to the code that makes it, then its caption."""
    note = f"*(`{_glue_name(block.arg)}` is computed by the code above; the online book " \
           f"shows it here.)*"
    return _merge([_Cell("markdown", note)] + _convert(block.content, ch))


def _dropped(block: _Block, ch: _Chapter) -> list[_Cell]:
    return []


def _raw(block: _Block, ch: _Chapter) -> list[_Cell]:
    """Raw HTML shows in Colab's Markdown; raw LaTeX and the like have no place there."""
    return [_Cell("markdown", block.content)] if block.arg.lower() == "html" else []


def _generic(block: _Block, ch: _Chapter) -> list[_Cell]:
    """Any other directive: its content, under its argument in bold when it has one."""
    head = [_Cell("markdown", f"**{_inline(block.arg, ch)}**")] if block.arg else []
    return _merge(head + _convert(block.content, ch))


_HANDLERS = {"exercise": _exercise, "solution": _solution, "math": _math,
             "glossary": _glossary, "bibliography": _bibliography, "figure": _figure,
             "image": _figure, "raw": _raw, "toctree": _dropped,
             "tableofcontents": _dropped, "index": _dropped}


# --- roles ------------------------------------------------------------------------------------

_CITE = r"\{cite(?::[a-z]+)?\}`[^`]+`"
# Inline code spans come first so that a role written inside one is left alone; neighbouring
# citations are matched as one run so that they share a pair of parentheses.
_INLINE = re.compile(
    r"(?P<code>(?P<ticks>`+)[^\n]*?(?P=ticks))"
    rf"|(?P<cites>{_CITE}(?:[ \t]*{_CITE})*)"
    r"|\{(?P<role>[A-Za-z][\w:.+-]*)\}`(?P<body>[^`]*)`"
)
_ROLE_CITE = re.compile(r"\{cite(?::([a-z]+))?\}`([^`]+)`")
_TITLED = re.compile(r"(?P<title>.*?)\s*<(?P<target>[^<>]+)>", re.S)
# Roles whose text is code (Sphinx's cross-references to Python objects, keys, files).
_CODE_ROLES = {"code", "kbd", "file", "samp", "command", "program", "envvar", "option", "func",
               "class", "meth", "mod", "attr", "obj", "data", "exc", "any", "literal"}


def _inline(text: str, ch: _Chapter) -> str:
    """``text`` with every MyST role replaced by Markdown."""
    def sub(m: re.Match) -> str:
        if m["code"]:
            return m["code"]
        if m["cites"]:
            return _cites(m["cites"], ch)
        return _role(m["role"], m["body"], ch, text[max(0, m.start() - 16):m.start()])
    return _INLINE.sub(sub, text)


def _cites(run: str, ch: _Chapter) -> str:
    """One or more neighbouring citations: "(A, 2020; B and C, 2021)", or "A (2020)" for
    ``{cite:t}`` (textual) citations."""
    roles = [(variant, [k.strip() for k in keys.split(",") if k.strip()])
             for variant, keys in _ROLE_CITE.findall(run)]
    if all(variant in ("", "p", "ps") for variant, _ in roles):
        keys = [k for _, ks in roles for k in ks]
        return "(" + "; ".join(_cite(k, ch, textual=False) for k in keys) + ")"
    return " ".join("; ".join(_cite(k, ch, textual=variant.startswith("t")) for k in keys)
                    for variant, keys in roles)


def _cite(key: str, ch: _Chapter, textual: bool) -> str:
    """One citation, linked to the bibliography page (its entries have no stable anchors)."""
    entry = ch.book.cites.get(key)
    if entry is None:
        return key
    authors, year = entry
    text = f"{authors} ({year})" if textual else f"{authors}, {year}"
    return f"[{text}]({BOOK_URL}{ch.book.bibliography}.html)"


def _role(name: str, body: str, ch: _Chapter, before: str) -> str:
    titled = _TITLED.fullmatch(body)
    title, target = (titled["title"], titled["target"]) if titled else ("", body.strip())
    if name in ("ref", "numref"):
        return _ref(name, title, target, ch, before)
    if name == "doc":
        return _doc(title, target, ch)
    if name == "term":
        return _term(title, target, ch)
    if name.startswith("glue"):
        return f"`{_glue_name(body)}`"
    if name == "math":
        return f"${body}$"
    if name == "eq":
        return _eq(title, target, ch)
    if name in ("sub", "sup"):
        return f"<{name}>{body}</{name}>"
    if name in _CODE_ROLES or name.split(":")[-1] in _CODE_ROLES:
        return f"`{title or target.lstrip('~!')}`"
    return title or target


def _link(text: str, page: str, ch: _Chapter, anchor: str = "") -> str:
    """A link into the online book, or plain text when it points into this notebook."""
    if page == ch.page:
        return text
    return f"[{text}]({BOOK_URL}{page}.html{'#' + anchor if anchor else ''})"


def _ref(name: str, title: str, label: str, ch: _Chapter, before: str) -> str:
    target = ch.book.labels.get(label)
    if target is None:
        return title or label
    text = title or target.text
    if name == "numref":
        text = text.replace("%s", target.number).replace("{number}", target.number).strip()
    elif not title and target.number and re.search(r"exercise\s+$", before, re.I):
        text = target.number  # the prose says "exercise {ref}`label`" already
    return _link(text, target.page, ch, _docutils_id(label))


def _doc(title: str, target: str, ch: _Chapter) -> str:
    base = "" if target.startswith("/") else posixpath.dirname(ch.page)
    page = posixpath.normpath(posixpath.join(base, target.lstrip("/")))
    page = re.sub(r"\.(md|ipynb)$", "", page)
    return _link(title or ch.book.titles.get(page, page), page, ch)


def _term(title: str, term: str, ch: _Chapter) -> str:
    return _link(title or term, ch.book.glossary, ch, _sphinx_id(f"term-{term}"))


def _eq(title: str, label: str, ch: _Chapter) -> str:
    target = ch.book.labels.get(label)
    text = title or "the equation"
    return _link(text, target.page, ch, f"equation-{label}") if target else text


def _glue_name(body: str) -> str:
    """The glued name of ``name``, ``name:format`` or ``page::name``."""
    return body.split("::")[-1].split(":")[0].strip()


def _docutils_id(label: str) -> str:
    """The HTML id docutils gives a label (lower case, runs of other characters as ``-``)."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _sphinx_id(text: str) -> str:
    """The HTML id Sphinx gives a glossary term (``sphinx.util.nodes._make_id``): case kept."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-zA-Z0-9._]+", "-", " ".join(text.split()))
    return re.sub(r"^[-0-9._]+|-+$", "", text)


# The first glued value of a chapter names an example in the note at the top.
_GLUED = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")


# --- notebooks --------------------------------------------------------------------------------

def _note(path: Path, found: Book, student: bool, glued: str | None) -> str:
    """The note under the install cell: where the chapter is online, what this copy lacks;
    ``glued``: the first glued name of the chapter, if it has any."""
    page = path.relative_to(ROOT).with_suffix("").as_posix()
    title = found.titles.get(page, path.stem)
    text = (f"> **About this notebook.** It is generated from the chapter "
            f"[{title}]({BOOK_URL}{page}.html) of the online book, "
            f"*{_config().get('title', 'the book')}*.")
    if glued:
        text += (f" Values that the text names in code font, like `{glued}`, are computed by "
                 "the code cells: run the cells above them, or read them in the online book.")
    if student:
        text += " This student edition leaves out the solutions to the exercises."
    return text


def _cells(nb, path: Path, found: Book, student: bool) -> list:
    """The notebook's cells: the chapter's code as it is, its Markdown converted."""
    ch = _Chapter(path.relative_to(ROOT).with_suffix("").as_posix(), found, student)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            cells.append(cell)
            continue
        for i, part in enumerate(_convert(cell.source, ch)):
            metadata = dict(cell.metadata) if i == 0 else {}
            if part.tags:
                metadata["tags"] = list(part.tags)
            new = nbformat.v4.new_code_cell if part.kind == "code" else \
                nbformat.v4.new_markdown_cell
            cells.append(new(part.source, metadata=metadata))
    return cells


def render(path: Path, student: bool = False, found: Book | None = None) -> str:
    """The ``.ipynb`` text for one chapter; ``found``: :func:`book`, read once for many."""
    found = found or book()
    nb = jupytext.read(path)
    gpu = trains(nb)
    url, branch = _repository()
    glued = _GLUED.search(path.read_text(encoding="utf-8"))
    cells = [nbformat.v4.new_code_cell(INSTALL_CELL.format(url=url, branch=branch)),
             nbformat.v4.new_markdown_cell(_note(path, found, student,
                                                 glued and _glue_name(glued[1])))]
    cells += _cells(nb, path, found, student)
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("jupytext", None)
    nb.cells = cells
    colab = {"provenance": [], "toc_visible": True}
    nb.metadata = {
        "colab": dict(colab, gpuType="T4") if gpu else colab,
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    if gpu:
        nb.metadata["accelerator"] = "GPU"
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nbformat.writes(nb) + "\n"


def targets(out: Path = OUT) -> dict[Path, str]:
    """Every generated file under ``out`` and its expected content."""
    found = book()
    expected = {}
    for path in chapters():
        expected[out / f"{path.stem}.ipynb"] = render(path, found=found)
        expected[out / "student" / f"{path.stem}.ipynb"] = render(path, True, found)
    return expected


def stale() -> list[Path]:
    """Generated files that are missing, out of date, or left over from a removed chapter."""
    expected = targets()
    bad = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    bad += [p for p in OUT.rglob("*.ipynb") if p not in expected]
    return sorted(bad)


def write(out: Path = OUT) -> list[Path]:
    """Write every notebook under ``out``, removing those of chapters that no longer exist."""
    expected = targets(out)
    for p in out.rglob("*.ipynb"):
        if p not in expected:
            p.unlink()
    for p, text in expected.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return sorted(expected)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="only report stale copies; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for p in bad:
            print(f"out of date: {p.relative_to(ROOT)}")
        if bad:
            print("run: python tools/make_colab.py")
        return 1 if bad else 0
    written = write()
    print(f"wrote {len(written)} notebooks under {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
