"""Smoke checks that run inside the built bundle (AUDITDESK_SMOKE=audit or =gui).

They prove the frozen folder works as shipped: bundled data is found inside it,
the llama.cpp worker process starts from the frozen executable, torch loads the
embedding model, and the window opens. They must never touch the user's real
home (build-linux.sh points AUDITDESK_HOME at a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def _inside_bundle(path: Path) -> bool:
    """True in the frozen app when `path` lies in the bundle; always True from source."""
    meipass = getattr(sys, "_MEIPASS", None)
    return meipass is None or Path(meipass).resolve() in path.resolve().parents


def _check(label: str, ok: bool, detail: str = "") -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {label}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        raise SystemExit(1)


def smoke_audit() -> int:
    """A tiny real audit (tiny GGUF base + LoRA, two probes, one sample) plus model checks."""
    import auditdesk.core  # noqa: F401 - sets the offline switches first
    from auditdesk.core.paths import bundled_dir

    started = time.monotonic()
    for name in ("resources", "probe_packs"):
        folder = bundled_dir(name)
        _check(f"bundled {name} inside the bundle", _inside_bundle(folder), str(folder))

    from auditdesk.core.models.tiny import write_tiny_lora, write_tiny_model
    from auditdesk.core.probes import expand
    from auditdesk.core.probes.loader import resolve_pack
    from auditdesk.core.audit_job import AuditConfig, run_job
    from auditdesk.core.store.db import open_store

    with tempfile.TemporaryDirectory(prefix="auditdesk-smoke-") as tmp:
        base = write_tiny_model(Path(tmp) / "tiny-base.gguf")
        lora = write_tiny_lora(Path(tmp) / "tiny-lora.gguf", base)
        items = expand(resolve_pack("occupations"))[:2]
        config = AuditConfig(base_model=str(base), lora_adapter=str(lora), samples=1, max_tokens=4,
                             threads=2, n_ctx=256, label="bundle smoke test")
        db = Path(tmp) / "smoke.db"
        # The default backend runs llama.cpp in a spawned child of this executable.
        with open_store(db) as store:
            run_id = run_job(store, config=config, items=items, analyse=False).run_id
            run = store.get_run(run_id)
            answers = store.query("SELECT COUNT(*) AS n FROM answers WHERE run_id = ?", (run_id,))[0]["n"]
        _check("tiny audit completed", run["status"] == "completed", f"run {run_id} {run['status']}")
        _check("answers from both models stored", answers >= 2 * len(items), f"{answers} answers")

    from auditdesk.core.models.defaults import default_base_model, embedding_model_path

    model = default_base_model()
    _check("default base model assembled offline from the bundle", model.is_file(),
           f"{model.stat().st_size / 2**20:.0f} MiB")

    from auditdesk.core.analysis.embeddings import SentenceTransformerEmbedder

    path = embedding_model_path()
    _check("embedding model folder inside the bundle", _inside_bundle(path), str(path))
    vectors = SentenceTransformerEmbedder(path).embed(["The bundle loads torch.", "A second sentence."])
    _check("embeddings computed with torch", tuple(vectors.shape) == (2, 384), str(tuple(vectors.shape)))

    print(f"bundle audit smoke test passed in {time.monotonic() - started:.1f}s", flush=True)
    return 0


def smoke_gui() -> int:
    """Open the real window, confirm it is shown, then close it and quit."""
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    from auditdesk.ui.app import main as gui_main

    # The timers need the application object before the real main() runs; it
    # then reuses this one, so set what create_app() sets before construction.
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    seen: list[str] = []
    gave_up: list[bool] = []

    def close_when_shown() -> None:
        windows = [w for w in app.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]
        if windows:
            seen.append(windows[0].windowTitle())
            windows[0].close()
        app.quit()

    def give_up() -> None:
        gave_up.append(True)
        app.exit(1)

    QTimer.singleShot(2000, close_when_shown)
    QTimer.singleShot(60000, give_up)
    started = time.monotonic()
    code = gui_main([])
    _check("window opened and closed within 60 s", not gave_up, f"{time.monotonic() - started:.1f}s")
    _check("window opened offscreen", bool(seen), f"title {seen[0]!r}" if seen else "no window")
    _check("window closed cleanly", code == 0, f"exit code {code}")
    print("bundle window smoke test passed", flush=True)
    return 0
