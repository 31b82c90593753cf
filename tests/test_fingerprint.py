"""Silent swap detection: a behavioural fingerprint of server models per run, on real tiny models and servers."""

from __future__ import annotations

import json

from auditdesk.cli.main import main
from auditdesk.core.engine import ModelSpec, open_engine
from auditdesk.core.monitoring.fingerprint import behaviour_fingerprint, swapped_roles
from auditdesk.core.store import open_store
from llama_server import free_port, serve, stop


def _fingerprint(model, lora=None):
    spec = ModelSpec(path=str(model), lora_path=str(lora) if lora else None, n_ctx=256, n_threads=2, label="x")
    engine = open_engine(spec, backend="llama-inproc")
    try:
        return behaviour_fingerprint(engine)
    finally:
        engine.close()


def test_fingerprint_is_stable_for_a_model_and_differs_for_another(tiny_model, tiny_lora):
    first, again, other = _fingerprint(tiny_model), _fingerprint(tiny_model), _fingerprint(tiny_model, tiny_lora)
    assert first["digest"] == again["digest"]
    assert other["digest"] != first["digest"]
    assert len(first["greedy"]) == 6 and all(isinstance(v, float) for v in first["logprobs"])
    assert swapped_roles({"tuned": first}, {"tuned": other}) == ["tuned"]
    assert swapped_roles({"tuned": first}, {"tuned": again}) == []
    assert swapped_roles({}, {"tuned": other}) == []  # nothing to compare with: not a swap


def test_a_model_swapped_behind_the_same_server_is_reported_first(tmp_path, tiny_model, tiny_lora, capsys):
    from open_pack import write_pack

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = str(tmp_path / "swap.db")
    server = serve(tiny_model, port)
    try:
        assert main(["monitor", "add", "deployed", "--base", str(tiny_model), "--tuned-server", url,
                     "--pack", str(write_pack(tmp_path)), "--samples", "2", "--max-tokens", "8", "--seed", "1",
                     "--threads", "2", "--n-ctx", "256", "--backend", "llama-inproc", "--db", db]) == 0
        runs = [main(["monitor", "run", "deployed", "--db", db, "--quiet",
                      "--summary", str(tmp_path / f"run{n}.json")]) for n in range(2)]
    finally:
        stop(server)
    # The same file name behind the same address, now with an adapter: a silent swap.
    server = serve(tiny_model, port, "--lora_path", str(tiny_lora))
    try:
        swapped_code = main(["monitor", "run", "deployed", "--db", db, "--quiet",
                             "--summary", str(tmp_path / "run2.json")])
    finally:
        stop(server)
    outcomes = [json.loads((tmp_path / f"run{n}.json").read_text()) for n in range(3)]
    assert outcomes[1]["swapped"] == [] and runs[1] == (3 if outcomes[1]["new_concerns"] else 0)
    assert outcomes[2]["swapped"] == ["tuned"] and swapped_code == 3
    text = (tmp_path / "run2.txt").read_text().splitlines()
    assert text[0].startswith("THE TUNED MODEL BEHIND THE SERVER IS NOT THE ONE AUDITED IN RUN 2")
    with open_store(db, read_only=True) as store:
        rows = store.query("SELECT run_id, role, digest FROM run_fingerprints ORDER BY run_id")
        run_ids = [o["run_id"] for o in outcomes]
        assert [(r["run_id"], r["role"]) for r in rows] == [(i, "tuned") for i in run_ids]
        assert rows[0]["digest"] == rows[1]["digest"] != rows[2]["digest"]
        # The model's identity (address and name) did not change: only its behaviour shows the swap.
        identities = {store.get_run(i)["tuned_model_sha256"] for i in run_ids}
        assert len(identities) == 1
    capsys.readouterr()
    assert main(["compare", str(run_ids[1]), str(run_ids[2]), "--db", db, "--quiet"]) == 0
    assert "The tuned model behind the server is not the one of run" in capsys.readouterr().out
