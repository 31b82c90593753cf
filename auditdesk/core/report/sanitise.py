"""Turns untrusted text (model answers, probe questions, names) into safe report markup.

Everything that reaches reportlab's paragraph parser passes through `to_markup`:
invisible and direction-changing characters become visible placeholders, markup
is escaped so no tag in the text can change the document, read a file or make a
link, long words get break points, and characters no embedded font can draw
are counted so the report can say so.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field

# Invisible or layout-changing categories: controls, format characters (bidi
# overrides, zero-width joiners, BOM), lone surrogates, private use, unassigned.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
_KEEP = {"\n", "\t"}
_LINE_BREAKS = {"\r\n": "\n", "\r": "\n", "\u2028": "\n", "\u2029": "\n", "\x85": "\n"}

# A very long text is cut for display (the CSV keeps it whole); so are texts of
# many short lines, which would otherwise make one table row taller than a page.
MAX_LINES = 40


@dataclass
class GlyphTally:
    """What the sanitiser changed or could not draw, for the report's own note on it."""

    missing: Counter = field(default_factory=Counter)  # code point -> count, no font has it
    hidden: Counter = field(default_factory=Counter)  # code point -> count, shown as [U+XXXX]
    truncated: int = 0  # texts cut to their display limit

    @property
    def missing_total(self) -> int:
        return sum(self.missing.values())

    @property
    def hidden_total(self) -> int:
        return sum(self.hidden.values())


def placeholder(code: int) -> str:
    """The visible stand-in for an invisible character, e.g. `[U+202E]`."""
    return f"[U+{code:04X}]"


def clean_text(text: object, *, limit: int | None = None, tally: GlyphTally | None = None) -> tuple[str, int]:
    """Plain text with hidden characters made visible; returns (text, characters cut off)."""
    if text is None:
        return "", 0
    text = str(text)
    for old, new in _LINE_BREAKS.items():
        if old in text:
            text = text.replace(old, new)
    cut = 0
    if limit is not None and len(text) > limit:
        cut = len(text) - limit
        text = text[:limit]
        if tally is not None:
            tally.truncated += 1
    if text.isascii() and text.isprintable():
        return text, cut
    out = []
    for ch in text:
        if ch in _KEEP:
            out.append(" " if ch == "\t" else ch)
        elif unicodedata.category(ch) in _HIDDEN_CATEGORIES:
            out.append(placeholder(ord(ch)))
            if tally is not None:
                tally.hidden[ord(ch)] += 1
        else:
            out.append(ch)
    return "".join(out), cut


def escape(text: str) -> str:
    """XML-escape text for reportlab's paragraph parser."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def to_markup(
    text: object,
    fonts,
    tally: GlyphTally | None = None,
    *,
    limit: int | None = None,
    cut_note: str = "more characters not shown; the CSV export has the full text",
) -> str:
    """Safe reportlab paragraph markup for untrusted `text` (answers, questions, names).

    `fonts` is a `fonts.FontSet`; characters outside the body font are drawn
    with the fallback font, and characters no font has are counted in `tally`.
    """
    from auditdesk.core.report.fonts import BODY, FALLBACK

    plain, cut = clean_text(text, limit=limit, tally=tally)
    if limit is not None and plain.count("\n") > MAX_LINES:
        lines = plain.split("\n")
        kept = "\n".join(lines[:MAX_LINES])
        cut += len(plain) - len(kept)
        plain = kept
    # Long words need no help here: paragraph styles use splitLongWords, which
    # breaks a 20,000-character word at the column edge without changing the text.
    parts: list[str] = []
    if plain.isascii():
        parts.append(escape(plain))
    else:
        run: list[str] = []
        run_font = BODY
        for ch in plain:
            font = fonts.font_for(ch) if ch != "\n" else BODY
            if font is None:
                if tally is not None:
                    tally.missing[ord(ch)] += 1
                # A "missing glyph" box would hide which character it was; its code does not.
                ch, font = placeholder(ord(ch)), BODY
            if font != run_font and run:
                parts.append(_wrap(escape("".join(run)), run_font, BODY, FALLBACK))
                run = []
            run_font = font
            run.append(ch)
        if run:
            parts.append(_wrap(escape("".join(run)), run_font, BODY, FALLBACK))
    markup = "".join(parts).replace("\n", "<br/>")
    # Placeholders are made visibly different from the model's own words.
    if "[U+" in markup:
        import re

        markup = re.sub(r"\[U\+([0-9A-F]{4,6})\]", r'<font color="#B3261E">[U+\1]</font>', markup)
    if cut:
        markup += f' <font color="#6B7280"><i>[… {cut:,} {escape(cut_note)}]</i></font>'
    return markup


def _wrap(escaped: str, font: str, body: str, fallback: str) -> str:
    if font == body:
        return escaped
    return f'<font name="{fallback}">{escaped}</font>'


def label(text: object, limit: int = 60) -> str:
    """A short plain label (chart axis, bookmark title) from untrusted text."""
    plain, cut = clean_text(text, limit=limit)
    plain = " ".join(plain.split())
    return plain + ("…" if cut else "")
