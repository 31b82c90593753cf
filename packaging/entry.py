"""The frozen application's one entry script, for both `auditdesk` and `auditdesk-gui`.

It must handle re-entry first (the llama.cpp worker is a child process that
re-runs this very executable with `-m auditdesk.core.engine.worker`, and
multiprocessing children re-run it too) and only then pick the CLI or the
window by the executable's name. It holds no application logic and must never import Qt
for a CLI run.
"""

import multiprocessing
import os
import sys


def _is_gui_executable() -> bool:
    name = os.path.basename(sys.executable if getattr(sys, "frozen", False) else sys.argv[0])
    return name.lower().removesuffix(".exe") == "auditdesk-gui"


def _run_own_module() -> bool:
    """Play the interpreter for `<exe> -m auditdesk.<module> ...`; True when it did.

    auditdesk.core.engine.worker starts its llama.cpp child as
    `sys.executable -m auditdesk.core.engine.worker <fds> <pid>`. In the bundle
    sys.executable is this launcher, so without this the child would parse `-m`
    as a CLI option and die, and every audit would fail to load its model. Only
    AuditDesk's own modules are run, so the app is no general Python interpreter.
    """
    if len(sys.argv) >= 3 and sys.argv[1] == "-m" and sys.argv[2].startswith("auditdesk."):
        import runpy

        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return True
    if len(sys.argv) >= 3 and sys.argv[1] == "-c":
        # auditdesk.ui.backend asks child processes `sys.executable -c CODE` (GPU
        # check, analysis). Unhandled, the window would start another window,
        # which starts another: run the code as `python -c` would.
        code = sys.argv[2]
        sys.argv = ["-c", *sys.argv[3:]]
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
        return True
    return False


def main() -> int:
    if _run_own_module():
        return 0
    # A multiprocessing child (spawn) runs `<exe> --multiprocessing-fork ...`;
    # without this it would parse those arguments as a CLI command.
    multiprocessing.freeze_support()

    smoke = os.environ.get("AUDITDESK_SMOKE", "")
    if _is_gui_executable():
        os.environ.setdefault("AUDITDESK_GUI", "1")
        if smoke == "gui":
            import bundle_smoke

            return bundle_smoke.smoke_gui()
        from auditdesk.ui.app import main as gui_main

        return gui_main()
    if smoke == "audit":
        import bundle_smoke

        return bundle_smoke.smoke_audit()
    from auditdesk.cli.main import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
