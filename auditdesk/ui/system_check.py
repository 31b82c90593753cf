"""Before the window opens: are the system libraries Qt's xcb plugin needs installed?

Without them Qt aborts with a message that names none of them. This check names
each missing library and the command that installs it, so the user can fix it.
It never installs anything itself.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

# Library (as the linker names it) -> Debian/Ubuntu package that provides it.
XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-image": "libxcb-image0",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0",
    "xcb-xkb": "libxcb-xkb1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}


def missing_xcb_packages(find_library=ctypes.util.find_library) -> list[str]:  # noqa: ANN001
    """Packages of the xcb libraries that are missing, when the window would use the xcb platform."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or (platform and not platform.startswith("xcb")):
        return []
    if not platform and os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return []
    return [package for library, package in XCB_LIBRARIES.items() if find_library(library) is None]


def xcb_message(packages: list[str]) -> str:
    return ("AuditDesk's window needs system libraries that are not installed: " + ", ".join(packages)
            + ".\nInstall them with:\n    sudo apt install " + " ".join(packages)
            + "\n(the command line, `auditdesk`, works without them).")
