#!/usr/bin/env bash
# Build the self-contained Linux application folder dist/AuditDesk/ and smoke-test it.
#
# Runs from a fresh virtual environment under build/ so the bundle holds only
# what `pip install ".[models]"` brings, never a developer's extras. The smoke
# test runs the built executables, not the venv's Python: --version, a tiny
# headless audit, and the window opened offscreen and closed.
#
# Usage: packaging/build-linux.sh [--reuse-venv] [--skip-build]
#   --reuse-venv  keep build/venv if present (faster rebuilds while iterating)
#   --skip-build  only run the smoke test on an existing dist/AuditDesk
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

REUSE_VENV=0
SKIP_BUILD=0
for arg in "$@"; do
    case "$arg" in
        --reuse-venv) REUSE_VENV=1 ;;
        --skip-build) SKIP_BUILD=1 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/build/venv"
DIST="$ROOT/dist/AuditDesk"
APP_ID="io.github.auditdesk.AuditDesk"
# The CPU wheel; the exact pin keeps the bundle reproducible (and CUDA out of it).
TORCH_PIN="torch==2.13.0"

log() { printf '\n==> %s\n' "$*"; }

start_s=$(date +%s)

if [ "$SKIP_BUILD" = 0 ]; then
    if [ "$REUSE_VENV" = 0 ] || [ ! -x "$VENV/bin/python" ]; then
        log "fresh virtual environment in build/venv"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        # torch first and alone, so the resolver cannot pick a CUDA build later.
        "$VENV/bin/python" -m pip install --quiet "$TORCH_PIN"
    fi
    log "installing AuditDesk with its default models, and PyInstaller"
    # Not editable: the bundle must see the package as a wheel installs it.
    "$VENV/bin/python" -m pip install --quiet ".[models]" "$TORCH_PIN" "pyinstaller>=6.10"
    # A reused venv already has this version of AuditDesk; take the source as it is now.
    "$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps .

    log "PyInstaller"
    rm -rf "$DIST" "$ROOT/build/pyinstaller"
    "$VENV/bin/python" -m PyInstaller --noconfirm --clean \
        --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" \
        packaging/auditdesk.spec

    log "desktop integration files into dist/AuditDesk/share"
    mkdir -p "$DIST/share/applications" "$DIST/share/metainfo"
    cp "packaging/linux/$APP_ID.desktop" "$DIST/share/applications/"
    cp "packaging/linux/$APP_ID.metainfo.xml" "$DIST/share/metainfo/"
    cp -r packaging/icons "$DIST/share/icons"
fi

# The validators are Debian packages (desktop-file-utils, appstream); a machine
# without them skips this step rather than fail the build.
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "packaging/linux/$APP_ID.desktop"
    echo "desktop-file-validate: ok"
fi
if command -v appstreamcli >/dev/null; then
    appstreamcli validate --no-net "packaging/linux/$APP_ID.metainfo.xml"
fi

build_s=$(( $(date +%s) - start_s ))

smoke_start_s=$(date +%s)
log "smoke test of the built folder"
# Everything the smoke test writes stays in a temporary home, never the user's.
SMOKE_HOME="$(mktemp -d)"
trap 'rm -rf "$SMOKE_HOME"' EXIT
export AUDITDESK_HOME="$SMOKE_HOME/home"
export XDG_CONFIG_HOME="$SMOKE_HOME/config"
export HOME="$SMOKE_HOME"

"$DIST/auditdesk" --version
# Read once: `--help | grep -q` under pipefail can fail on SIGPIPE.
cli_help="$("$DIST/auditdesk" --help)"

if grep -qw selftest <<<"$cli_help"; then
    log "headless audit: auditdesk selftest"
    "$DIST/auditdesk" selftest
else
    echo "note: this build's CLI has no 'selftest' command; the bundle checks below run a tiny audit instead"
fi

# Checks only the frozen folder needs: bundled data found inside it, a tiny
# audit through the llama.cpp worker child of this executable, the default
# base model assembled offline from the bundled chunks, torch embeddings.
log "bundle checks: AUDITDESK_SMOKE=audit auditdesk"
AUDITDESK_SMOKE=audit "$DIST/auditdesk"

if grep -qw packs <<<"$cli_help"; then
    "$DIST/auditdesk" packs list >/dev/null
    echo "packs list: ok"
fi

log "window: opened offscreen and closed"
QT_QPA_PLATFORM=offscreen AUDITDESK_SMOKE=gui timeout 120 "$DIST/auditdesk-gui"

smoke_s=$(( $(date +%s) - smoke_start_s ))
size="$(du -sh "$DIST" | cut -f1)"
log "smoke test passed"
echo "folder: dist/AuditDesk  size: $size  build (venv, install, PyInstaller): ${build_s}s  smoke test: ${smoke_s}s"
