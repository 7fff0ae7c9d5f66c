#!/usr/bin/env python3
# Provides: golden-logit fixtures (tiny random Llama/Mistral/Qwen2/Qwen3 models + input cases) from an independent float64 reference forward pass.
import argparse
import json
import math
import os
import platform
import struct

import numpy as np

ARCHS = ("llama", "mistral", "qwen2", "qwen3")
VOCAB = 300
SEQ = 12
LONG = 40
PAD_ROW_LEN = 7          # row 1 of the padded case: 7 real tokens, then padding
PACKED_LENS = (5, 7)     # the two sequences packed into one row
OFFSET = 1000            # first position of the offset case

COMMON = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "initializer_range": 0.02,
    "use_cache": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "attention_dropout": 0.0,
    "torch_dtype": "float32",
}


def make_config(arch):
    """Return the HF config.json dict (HF key names) for one architecture."""
    cfg = dict(COMMON)
    if arch == "llama":
        cfg.update({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "head_dim": 16,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            # original_max_position_embeddings 32 puts the head_dim-16 frequencies in all three
            # llama3 bands: wavelength 2*pi < 32/4 (kept), 19.9 in [8, 32] (smoothed), >= 62.8 > 32 (divided).
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
            "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "pretraining_tp": 1,
        })
    elif arch == "mistral":
        cfg.update({
            "architectures": ["MistralForCausalLM"], "model_type": "mistral", "head_dim": 16,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 5, "tie_word_embeddings": False,
        })
    elif arch == "qwen2":
        # sliding_window is set but use_sliding_window is false (as in real Qwen2.5 configs): HF ignores the window.
        cfg.update({
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "rope_scaling": None, "use_sliding_window": False, "sliding_window": 4,
            "max_window_layers": 1, "layer_types": ["full_attention", "full_attention"],
            "tie_word_embeddings": True,
        })
    elif arch == "qwen3":
        cfg.update({
            "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 32, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "rope_scaling": None, "use_sliding_window": False, "sliding_window": None,
            "max_window_layers": 2, "layer_types": ["full_attention", "full_attention"],
            "tie_word_embeddings": False, "attention_bias": False,
        })
    else:
        raise ValueError(f"unknown arch {arch}")
    return cfg


def head_dim(cfg):
    """Per-head dimension: explicit head_dim if given, else hidden_size / num_attention_heads."""
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def bias_flags(cfg):
    """Return (bias on q/k/v, bias on o_proj) as HF builds them for this model_type."""
    if cfg["model_type"] == "qwen2":
        return True, False
    if cfg["model_type"] == "mistral":
        return False, False
    return cfg.get("attention_bias", False), cfg.get("attention_bias", False)


def weight_shapes(cfg):
    """List (name, shape) of every tensor HF saves, in construction order."""
    h, inter, hd = cfg["hidden_size"], cfg["intermediate_size"], head_dim(cfg)
    nq, nkv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    qkv_bias, o_bias = bias_flags(cfg)
    shapes = [("model.embed_tokens.weight", (cfg["vocab_size"], h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for proj, n in (("q_proj", nq), ("k_proj", nkv), ("v_proj", nkv)):
            shapes.append((p + f"self_attn.{proj}.weight", (n, h)))
            if qkv_bias:
                shapes.append((p + f"self_attn.{proj}.bias", (n,)))
        shapes.append((p + "self_attn.o_proj.weight", (h, nq)))
        if o_bias:
            shapes.append((p + "self_attn.o_proj.bias", (h,)))
        if cfg["model_type"] == "qwen3":
            shapes.append((p + "self_attn.q_norm.weight", (hd,)))
            shapes.append((p + "self_attn.k_norm.weight", (hd,)))
        shapes.append((p + "mlp.gate_proj.weight", (inter, h)))
        shapes.append((p + "mlp.up_proj.weight", (inter, h)))
        shapes.append((p + "mlp.down_proj.weight", (h, inter)))
        shapes.append((p + "input_layernorm.weight", (h,)))
        shapes.append((p + "post_attention_layernorm.weight", (h,)))
    shapes.append(("model.norm.weight", (h,)))
    if not cfg["tie_word_embeddings"]:
        shapes.append(("lm_head.weight", (cfg["vocab_size"], h)))
    return shapes


def make_weights(cfg, seed):
    """Random float32 weights: std 0.2 matrices, std 0.1 biases, norm weights 1 + 0.1*N(0,1)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(cfg):
        x = rng.standard_normal(shape)
        if name.endswith("norm.weight"):
            x = 1.0 + 0.1 * x
        elif name.endswith(".bias"):
            x = 0.1 * x
        else:
            x = 0.2 * x
        weights[name] = x.astype(np.float32)
    return weights


def make_inputs(seed):
    """Token ids (in [3, VOCAB)), masks and positions of the four cases; identical in the HF script."""
    rng = np.random.default_rng(seed + 1)
    padded = rng.integers(3, VOCAB, size=(2, SEQ), dtype=np.int64)
    mask = np.ones((2, SEQ), dtype=np.int64)
    padded[1, PAD_ROW_LEN:] = 0
    mask[1, PAD_ROW_LEN:] = 0
    seqs = [rng.integers(3, VOCAB, size=n, dtype=np.int64) for n in PACKED_LENS]
    packed_pos = np.concatenate([np.arange(n) for n in PACKED_LENS]).astype(np.int64)
    offset = rng.integers(3, VOCAB, size=(1, SEQ), dtype=np.int64)
    long_ids = rng.integers(3, VOCAB, size=(1, LONG), dtype=np.int64)
    return {
        "padded.input_ids": padded, "padded.attention_mask": mask,
        "packed.input_ids": np.concatenate(seqs)[None, :], "packed.position_ids": packed_pos[None, :],
        "offset.input_ids": offset, "offset.position_ids": (OFFSET + np.arange(SEQ, dtype=np.int64))[None, :],
        "long.input_ids": long_ids,
    }


# ---------------------------------------------------------------- reference forward pass (float64)

def rms_norm(x, w, eps):
    """HF RMSNorm: x / sqrt(mean(x^2, -1) + eps) * weight."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_inv_freq(cfg):
    """Inverse RoPE frequencies, including HF's 'linear' and 'llama3' rope_scaling (modeling_rope_utils.py)."""
    d = head_dim(cfg)
    inv = 1.0 / cfg["rope_theta"] ** (np.arange(0, d, 2, dtype=np.float64) / d)
    scaling = cfg.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / scaling["factor"]
    if kind != "llama3":
        raise ValueError(f"rope type {kind} not implemented")
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    out = np.where(wavelen > old_len / low, inv / factor, inv)
    smooth = (old_len / wavelen - low) / (high - low)
    medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
    return np.where(medium, (1 - smooth) * inv / factor + smooth * inv, out)


def apply_rope(x, positions, inv_freq):
    """rotate_half RoPE on x [T, heads, d]: x*cos + rotate_half(x)*sin, angles duplicated over both halves."""
    ang = positions.astype(np.float64)[:, None] * inv_freq[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[:, None, :]
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def layer_window(cfg, layer):
    """Sliding window of one layer (None = full attention), as HF decides it."""
    if cfg["model_type"] == "mistral":
        return cfg.get("sliding_window")
    if cfg.get("use_sliding_window") and cfg.get("sliding_window") and layer >= cfg.get("max_window_layers", 0):
        return cfg["sliding_window"]
    return None


def allowed_mask(n, window):
    """Boolean [n, n]: query i sees key j iff j <= i and i - j < window (HF masking_utils)."""
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    ok = j <= i
    if window is not None:
        ok &= (i - j) < window
    return ok


def linear(x, w, b=None):
    """y = x @ W^T (+ b)."""
    y = x @ w.T
    return y if b is None else y + b


def attention(cfg, w, layer, x, positions, block_ids):
    """One self-attention block on x [T, hidden]; block_ids restricts attention to equal ids (packing check)."""
    p = f"model.layers.{layer}.self_attn."
    t, d = x.shape[0], head_dim(cfg)
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    q = linear(x, w[p + "q_proj.weight"], w.get(p + "q_proj.bias")).reshape(t, nh, d)
    k = linear(x, w[p + "k_proj.weight"], w.get(p + "k_proj.bias")).reshape(t, nkv, d)
    v = linear(x, w[p + "v_proj.weight"], w.get(p + "v_proj.bias")).reshape(t, nkv, d)
    if cfg["model_type"] == "qwen3":  # per-head RMSNorm over head_dim, before RoPE
        q = rms_norm(q, w[p + "q_norm.weight"], cfg["rms_norm_eps"])
        k = rms_norm(k, w[p + "k_norm.weight"], cfg["rms_norm_eps"])
    inv_freq = rope_inv_freq(cfg)
    q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
    ok = allowed_mask(t, layer_window(cfg, layer))
    if block_ids is not None:
        ok &= block_ids[:, None] == block_ids[None, :]
    out = np.zeros((t, nh, d))
    for h in range(nh):
        kv = h // (nh // nkv)
        scores = (q[:, h, :] @ k[:, kv, :].T) * d ** -0.5
        scores = np.where(ok, scores, -np.inf)
        probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        out[:, h, :] = probs @ v[:, kv, :]
    return linear(out.reshape(t, nh * d), w[p + "o_proj.weight"], w.get(p + "o_proj.bias"))


def forward(cfg, weights, ids, positions, block_ids=None):
    """Logits [T, vocab] in float64 for one sequence of token ids at the given positions."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    eps = cfg["rms_norm_eps"]
    x = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = x + attention(cfg, w, i, rms_norm(x, w[p + "input_layernorm.weight"], eps), positions, block_ids)
        hmid = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = linear(hmid, w[p + "mlp.gate_proj.weight"])
        up = linear(hmid, w[p + "mlp.up_proj.weight"])
        x = x + linear(gate / (1.0 + np.exp(-gate)) * up, w[p + "mlp.down_proj.weight"])
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def compute_cases(cfg, weights, inputs):
    """Add the float32 logits of each case to a copy of inputs."""
    cases = dict(inputs)
    ids, mask = inputs["padded.input_ids"], inputs["padded.attention_mask"]
    padded = np.zeros((2, SEQ, VOCAB))
    for row in range(2):
        n = int(mask[row].sum())  # right padding: the valid tokens are the prefix
        padded[row, :n] = forward(cfg, weights, ids[row, :n], np.arange(n))
    cases["padded.logits"] = padded
    parts, start = [], 0
    for n in PACKED_LENS:
        parts.append(forward(cfg, weights, inputs["packed.input_ids"][0, start:start + n], np.arange(n)))
        start += n
    cases["packed.logits"] = np.concatenate(parts)[None]
    cases["offset.logits"] = forward(cfg, weights, inputs["offset.input_ids"][0], inputs["offset.position_ids"][0])[None]
    cases["long.logits"] = forward(cfg, weights, inputs["long.input_ids"][0], np.arange(LONG))[None]
    for k in ("padded.logits", "packed.logits", "offset.logits", "long.logits"):
        cases[k] = cases[k].astype(np.float32)
    return cases


# ---------------------------------------------------------------- files

DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}


def write_safetensors(path, tensors):
    """Write {name: float32/int64 array} as safetensors: u64 LE header size, JSON header padded to 8, raw LE data."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def read_safetensors(path):
    """Minimal independent reader used by the self-check: returns {name: array}."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    types = {"F32": "<f4", "I64": "<i8"}
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=types[info["dtype"]]).reshape(info["shape"])
    return out


def write_readme(root, seed):
    """Describe how the fixtures were made and how they are compared."""
    text = f"""# Reference fixtures (numpy)

Generated by `scripts/make_reference_fixtures.py`, an independent float64 numpy implementation of the
HF transformers forward pass (no torch, no transformers), with random weights and inputs.

Command: `/usr/bin/python3 scripts/make_reference_fixtures.py --out tests/fixtures --seed {seed}`
Versions: Python {platform.python_version()}, numpy {np.__version__}.

Each `<arch>/` (llama, mistral, qwen2, qwen3) holds `config.json` (HF key names), `model.safetensors`
(float32 weights, HF tensor names; no `lm_head.weight` when `tie_word_embeddings` is true) and
`cases.safetensors` (inputs I64, logits F32 computed in float64):

- `padded.*`: ids/attention_mask [2,12], row 1 right-padded after 7 tokens (pad id 0); logits [2,12,300]
  (pad positions are zero and are not compared).
- `packed.*`: ids/position_ids [1,12], two sequences of 5 and 7 tokens; logits = the two sequences run
  separately, concatenated (no attention across sequences).
- `offset.*`: ids/position_ids [1,12], positions 1000..1011; logits [1,12,300].
- `long.*`: ids [1,40], positions 0..39; logits [1,40,300] (exercises Mistral's sliding window of 5).

qwen2's config sets `sliding_window` 4 with `use_sliding_window` false, as real Qwen2.5 configs do: HF
ignores the window, and so must the implementation under test.

Error metric of the C++ parity test: `max|qtune - ref| / max|ref|` over the compared positions
(attention_mask == 1), which must be <= 1e-4 in fp32.
"""
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write(text)


# ---------------------------------------------------------------- self-check

def self_check(cfg, weights, cases, arch_dir):
    """Assert file round-trips, packing == block-diagonal mask, and the llama3 frequencies worked by hand."""
    for fname, want in (("model.safetensors", weights), ("cases.safetensors", cases)):
        got = read_safetensors(os.path.join(arch_dir, fname))
        assert sorted(got) == sorted(want), fname
        for k in want:
            assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), (fname, k)
    block_ids = np.repeat(np.arange(len(PACKED_LENS)), PACKED_LENS)
    packed = forward(cfg, weights, cases["packed.input_ids"][0], cases["packed.position_ids"][0], block_ids)
    err = np.abs(packed - cases["packed.logits"][0]).max() / np.abs(cases["packed.logits"]).max()
    assert err < 1e-6, f"packed block-diagonal mismatch {err}"
    prefix = forward(cfg, weights, cases["long.input_ids"][0, :SEQ], np.arange(SEQ))
    err = np.abs(prefix - cases["long.logits"][0, :SEQ]).max() / np.abs(prefix).max()
    assert err < 1e-6, f"causality: prefix logits depend on later tokens ({err})"
    if cfg.get("rope_scaling"):  # llama: head_dim 16, theta 1e4, factor 8, low 1, high 4, original length 32
        inv = rope_inv_freq(cfg)
        assert abs(inv[0] - 1.0) < 1e-15  # wavelength 2*pi < 32/4: high-frequency band, unchanged
        f1 = 10000.0 ** -0.125  # wavelength 2*pi*sqrt(10) = 19.87 in [8, 32]: smoothed
        s = (32.0 / (2 * math.pi / f1) - 1.0) / 3.0
        assert abs(inv[1] - ((1 - s) * f1 / 8 + s * f1)) < 1e-15
        assert abs(inv[2] - 0.1 / 8) < 1e-15  # wavelength 62.8 > 32: low-frequency band, divided by 8
    return err


def main():
    """Parse arguments, then write config, weights, cases and a README per architecture."""
    ap = argparse.ArgumentParser(description="Write numpy reference logits fixtures.")
    ap.add_argument("--out", default="tests/fixtures", help="fixture root; files go to <out>/numpy/<arch>/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    args = ap.parse_args()
    root = os.path.join(args.out, "numpy")
    inputs = make_inputs(args.seed)
    for arch in args.arch:
        arch_dir = os.path.join(root, arch)
        os.makedirs(arch_dir, exist_ok=True)
        cfg = make_config(arch)
        weights = make_weights(cfg, args.seed)
        cases = compute_cases(cfg, weights, inputs)
        with open(os.path.join(arch_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        write_safetensors(os.path.join(arch_dir, "model.safetensors"), weights)
        write_safetensors(os.path.join(arch_dir, "cases.safetensors"), cases)
        self_check(cfg, weights, cases, arch_dir)
        print(f"{arch}: ok, max|logit| {np.abs(cases['long.logits']).max():.3f}")
    write_readme(root, args.seed)


if __name__ == "__main__":
    main()
