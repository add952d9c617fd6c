"""Text content of the HTML that ActivityPub servers put in `summary` and field values.

Mastodon renders profile text as HTML: a URL becomes
`<a …><span class="invisible">https://</span><span class="ellipsis">first 30
characters</span><span class="invisible">the rest</span></a>`, so one long
string is split over several elements. Inline elements are joined with
nothing between them (the split string comes back whole); line breaks and
block elements (`<br>`, `<p>`, …) become newlines, so a proof at the end of
one paragraph is not glued to the first word of the next. Entities are
unescaped. Stdlib only.
"""

from __future__ import annotations

from html.parser import HTMLParser

_BREAKS = {"br"}
_BLOCKS = {
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "dd",
    "dt",
    "dl",
}
_SKIP = {"script", "style", "template"}


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BREAKS or tag in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKS or tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML fragment: tags removed, entities unescaped, breaks as newlines."""
    parser = _TextParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; never let odd markup raise
        return html
    lines = "".join(parser.parts).replace("\r\n", "\n").split("\n")
    return "\n".join(line.strip() for line in lines if line.strip())
