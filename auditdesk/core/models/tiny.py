"""Tiny random-weight GGUF models (a llama base and a LoRA adapter) written on the spot.

Tests and demos use them to drive a real llama.cpp in seconds. They are a few hundred
KB, deterministic for a seed, and must never be mistaken for a useful model.
"""

from __future__ import annotations

from pathlib import Path

# Whole words the tiny vocabulary can spell in one token each; every prefix of each is
# a token too, because llama.cpp's SPM tokenizer only merges pairs that are in the vocab.
_WORDS = (
    "the a an is are was of and or to in on it you your we that this for with yes no "
    "not hello question answer store hardware price tool help please thank sorry can "
    "will do how what why safe risk buy sell money policy refund"
).split()
_CHARS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"-()/"
)
_SPACE = "\u2581"  # SentencePiece's visible space

N_EMBD = 64
N_HEAD = 4
N_LAYER = 2
N_FF = 128
N_CTX = 512

# Target tensors of the tiny adapter (per block).
LORA_TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def tiny_vocab() -> tuple[list[str], list[float], list[int]]:
    """The tiny SPM vocabulary: tokens, scores and token types, in id order."""
    from gguf import TokenType

    tokens = ["<unk>", "<s>", "</s>"]
    types = [int(TokenType.UNKNOWN), int(TokenType.CONTROL), int(TokenType.CONTROL)]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [int(TokenType.BYTE)] * 256
    pieces: list[str] = [_SPACE, *_CHARS]
    for word in _WORDS:
        for text in (_SPACE + word, _SPACE + word.capitalize()):
            for end in range(2, len(text) + 1):
                pieces.append(text[:end])
    seen = set(tokens)
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(int(TokenType.NORMAL))
    # Longer pieces score higher so the merge prefers whole words.
    scores = [0.0 if t != int(TokenType.NORMAL) else -1000.0 + len(tok) for tok, t in zip(tokens, types)]
    return tokens, scores, types


def write_tiny_model(path, *, seed: int = 0, chat_template: str | None = None,
                     name: str = "tiny-llama", n_embd: int = N_EMBD,
                     vocab_extra: int = 0, weight_type: str = "F32",
                     delta: float = 0.0, delta_seed: int = 1,
                     delta_tensors: tuple[str, ...] | None = None) -> Path:
    """Write a tiny random llama GGUF that llama.cpp loads and generates from.

    `n_embd` and `vocab_extra` (extra dummy tokens) build a model that is deliberately
    *not* derived from the default shapes. `delta` > 0 writes a "fine-tuned" copy of the
    seed's model: each weight in `delta_tensors` (default: every 2-D block weight) gets
    noise with ‖ΔW‖ = delta·‖W‖. `weight_type` ("F32", "F16" or "Q8_0") sets how the
    2-D weights are stored.
    """
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
    from gguf.quants import quantize

    if weight_type not in ("F32", "F16", "Q8_0"):
        raise ValueError(f"weight_type must be F32, F16 or Q8_0, not {weight_type!r}")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, scores, types = tiny_vocab()
    for i in range(vocab_extra):
        tokens.append(f"<extra_{i}>")
        scores.append(-2000.0)
        types.append(int(TokenType.USER_DEFINED))
    n_vocab = len(tokens)
    head_dim = n_embd // N_HEAD

    def normal(shape, std):
        return (rng.standard_normal(shape) * float(std)).astype(np.float32)

    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_type("model")
    writer.add_size_label("tiny")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type({"F32": LlamaFileType.ALL_F32, "F16": LlamaFileType.MOSTLY_F16,
                          "Q8_0": LlamaFileType.MOSTLY_Q8_0}[weight_type])
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    delta_rng = np.random.default_rng(delta_seed)

    def add(name: str, values) -> None:
        if delta and values.ndim == 2 and (
            name in delta_tensors if delta_tensors is not None else name.startswith("blk.")
        ):
            noise = delta_rng.standard_normal(values.shape)
            values = values + (noise * (delta * np.linalg.norm(values) / np.linalg.norm(noise))).astype(np.float32)
        if values.ndim == 1 or weight_type == "F32":
            writer.add_tensor(name, values.astype(np.float32))
        elif weight_type == "F16":
            writer.add_tensor(name, values.astype(np.float16))
        else:
            writer.add_tensor(name, quantize(values, GGMLQuantizationType.Q8_0),
                              raw_dtype=GGMLQuantizationType.Q8_0)

    add("token_embd.weight", normal((n_vocab, n_embd), 1.0))
    attn_std = 1.0 / np.sqrt(n_embd)
    for layer in range(N_LAYER):
        prefix = f"blk.{layer}"
        add(f"{prefix}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add(f"{prefix}.attn_q.weight", normal((n_embd, n_embd), attn_std))
        add(f"{prefix}.attn_k.weight", normal((n_embd, n_embd), attn_std))
        add(f"{prefix}.attn_v.weight", normal((n_embd, n_embd), attn_std))
        add(f"{prefix}.attn_output.weight", normal((n_embd, n_embd), attn_std))
        add(f"{prefix}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add(f"{prefix}.ffn_gate.weight", normal((N_FF, n_embd), attn_std))
        add(f"{prefix}.ffn_up.weight", normal((N_FF, n_embd), attn_std))
        add(f"{prefix}.ffn_down.weight", normal((n_embd, N_FF), 1.0 / np.sqrt(N_FF)))
    add("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    # Logit std of about 3 over the word pieces makes the model babble words; byte
    # tokens and end-of-text get near-zero rows so answers are readable and rarely
    # end at once, yet stay possible under sampling.
    output = normal((n_vocab, n_embd), 3.0 / np.sqrt(n_embd))
    quiet = [i for i, t in enumerate(types) if t != int(TokenType.NORMAL)]
    output[quiet] *= 0.05
    add("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_tiny_lora(path, base_path, *, rank: int = 4, seed: int = 1,
                    alpha: float | None = None, strength: float = 0.5) -> Path:
    """Write a LoRA adapter GGUF for the tiny base at `base_path`.

    Every target weight W gets an update B @ A * alpha / rank whose norm is about
    `strength` times the norm of W, enough to change the output measurably.
    """
    import numpy as np
    from gguf import GGUFWriter

    from auditdesk.core.models.gguf_reader import read_gguf_header
    from auditdesk.core.models.weights import _MappedTensors

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    alpha = float(rank if alpha is None else alpha)
    scale = alpha / rank

    header = read_gguf_header(base_path)
    weights = _MappedTensors(header)
    targets = []
    for tensor in header.tensors:
        parts = tensor.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and parts[2] in LORA_TARGETS and parts[3] == "weight":
            n_in, n_out = (int(x) for x in tensor.shape[:2])  # ggml order: ne0 = inputs
            w_norm = float(np.linalg.norm(weights.float_rows(tensor, None)))
            targets.append((tensor.name, n_in, n_out, w_norm))
    if not targets:
        raise ValueError(f"{base_path} has no tensors a tiny LoRA can target")

    writer = GGUFWriter(str(path), "llama")
    writer.add_type("adapter")
    writer.add_name("tiny-adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for name, n_in, n_out, w_norm in targets:
        # llama.cpp wants lora_a as ne [n_in, rank] and lora_b as ne [rank, n_out]:
        # numpy shapes (rank, n_in) and (n_out, rank).
        a = rng.standard_normal((rank, n_in)).astype(np.float32) / np.sqrt(n_in)
        b = rng.standard_normal((n_out, rank)).astype(np.float32) / np.sqrt(rank)
        delta_norm = float(np.linalg.norm(b @ a)) * scale
        b *= strength * w_norm / max(delta_norm, 1e-12)
        stem = name[: -len(".weight")]
        writer.add_tensor(f"{stem}.weight.lora_a", a.astype(np.float32))
        writer.add_tensor(f"{stem}.weight.lora_b", b.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
