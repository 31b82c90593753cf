"""The embedded Unicode fonts of the report and the question "can we draw this character?".

DejaVu Sans (Latin, Greek, Cyrillic, Arabic, many symbols) is the body font;
WenQuanYi Micro Hei is the fallback for CJK. Fonts are loaded only from the
bundled `resources/fonts` folder, never from a path found in the text.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.paths import resource_path

BODY = "AuditDesk-Sans"
BOLD = "AuditDesk-Sans-Bold"
ITALIC = "AuditDesk-Sans-Oblique"
MONO = "AuditDesk-Mono"
FALLBACK = "AuditDesk-CJK"

_FILES = {
    BODY: ("DejaVuSans.ttf", 0),
    BOLD: ("DejaVuSans-Bold.ttf", 0),
    ITALIC: ("DejaVuSans-Oblique.ttf", 0),
    MONO: ("DejaVuSansMono.ttf", 0),
    FALLBACK: ("wqy-microhei.ttc", 0),
}

_lock = threading.Lock()
_registered: "FontSet | None" = None


@dataclass(frozen=True)
class FontSet:
    """Registered font names plus the code points each can draw."""

    body_chars: frozenset[int]
    fallback_chars: frozenset[int]
    mono_chars: frozenset[int]

    def font_for(self, ch: str) -> str | None:
        """The font that draws `ch` (body preferred), or None when no embedded font has it."""
        code = ord(ch)
        if code in self.body_chars:
            return BODY
        if code in self.fallback_chars:
            return FALLBACK
        return None


def register_fonts() -> FontSet:
    """Register the bundled fonts with reportlab once per process and return their coverage."""
    global _registered
    with _lock:
        if _registered is not None:
            return _registered
        from reportlab.lib.fonts import addMapping
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        fonts = {}
        for name, (filename, index) in _FILES.items():
            path = resource_path("fonts", filename)
            if not path.is_file():
                raise AuditDeskError(
                    f"the report font {filename} is missing from AuditDesk's resources; reinstall AuditDesk."
                )
            font = TTFont(name, str(path), subfontIndex=index)
            pdfmetrics.registerFont(font)
            fonts[name] = font
        # Lets <b>/<i> inside paragraphs pick the right embedded face.
        addMapping(BODY, 0, 0, BODY)
        addMapping(BODY, 1, 0, BOLD)
        addMapping(BODY, 0, 1, ITALIC)
        addMapping(BODY, 1, 1, BOLD)
        _registered = FontSet(
            body_chars=frozenset(fonts[BODY].face.charToGlyph),
            fallback_chars=frozenset(fonts[FALLBACK].face.charToGlyph),
            mono_chars=frozenset(fonts[MONO].face.charToGlyph),
        )
        return _registered
