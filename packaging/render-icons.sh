#!/usr/bin/env bash
# Render the app icon (resources/icons/auditdesk.svg) into the hicolor PNG sizes.
# The PNGs are committed, so building the bundle never needs this; rerun it after
# changing the SVG. Needs rsvg-convert (Debian: apt-get install librsvg2-bin).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP_ID="io.github.auditdesk.AuditDesk"
SVG="$ROOT/resources/icons/auditdesk.svg"
for size in 16 32 48 64 128 256 512; do
    out="$ROOT/packaging/icons/hicolor/${size}x${size}/apps/$APP_ID.png"
    mkdir -p "$(dirname "$out")"
    rsvg-convert --width "$size" --height "$size" "$SVG" --output "$out"
done
mkdir -p "$ROOT/packaging/icons/hicolor/scalable/apps"
cp "$SVG" "$ROOT/packaging/icons/hicolor/scalable/apps/$APP_ID.svg"
echo "icons written under packaging/icons/hicolor/"
