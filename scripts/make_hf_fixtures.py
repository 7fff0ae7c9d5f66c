#!/usr/bin/env python3
# Provides: golden-logit fixtures (tiny random Llama/Mistral/Qwen2/Qwen3 models + input cases) computed by HF transformers.
import argparse
import inspect
import math
import os
import platform
import shutil

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file

try:  # the sliding-window / packing semantics these fixtures pin down are those of masking_utils
    import transformers.masking_utils  # noqa: F401
except ImportError:
    raise SystemExit("make_hf_fixtures.py needs transformers >= 4.53 (transformers.masking_utils)")

ARCHS = ("llama", "mistral", "qwen2", "qwen3")
VOCAB = 300
SEQ = 12
LONG = 40
PAD_ROW_LEN = 7          # row 1 of the padded case: 7 real tokens, then padding
PACKED_LENS = (5, 7)     # the two sequences packed into one row
OFFSET = 1000            # first position of the offset case

COMMON = dict(
    vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, hidden_act="silu", max_position_embeddings=2048, bos_token_id=1, eos_token_id=2,
    attention_dropout=0.0,
)
# original_max_position_embeddings 32 puts the head_dim-16 frequencies in all three llama3 bands.
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 32}


def rope_kwargs(config_cls, theta, scaling):
    """RoPE config arguments: `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (4.x)."""
    if "rope_parameters" in inspect.signature(config_cls.__init__).parameters:
        return {"rope_parameters": dict(scaling or {"rope_type": "default"}, rope_theta=theta)}
    return {"rope_theta": theta, "rope_scaling": scaling}


def build_model(arch):
    """Tiny float32 eager-attention model of one architecture, same shapes as make_reference_fixtures.py."""
    if arch == "llama":
        cfg_cls = transformers.LlamaConfig
        extra = dict(head_dim=16, rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False,
                     mlp_bias=False, **rope_kwargs(cfg_cls, 10000.0, LLAMA3))
    elif arch == "mistral":
        cfg_cls = transformers.MistralConfig
        extra = dict(head_dim=16, rms_norm_eps=1e-5, sliding_window=5, tie_word_embeddings=False,
                     **rope_kwargs(cfg_cls, 10000.0, None))
    elif arch == "qwen2":
        # The numpy fixture sets sliding_window 4 with use_sliding_window false (a trap: the window must be ignored);
        # here it stays None, because some transformers 4.x versions keep the value and act on it.
        cfg_cls = transformers.Qwen2Config
        extra = dict(rms_norm_eps=1e-6, use_sliding_window=False, sliding_window=None, max_window_layers=1,
                     tie_word_embeddings=True, **rope_kwargs(cfg_cls, 1000000.0, None))
    else:
        cfg_cls = transformers.Qwen3Config
        extra = dict(head_dim=32, rms_norm_eps=1e-6, use_sliding_window=False, sliding_window=None,
                     max_window_layers=2, tie_word_embeddings=False, attention_bias=False,
                     **rope_kwargs(cfg_cls, 1000000.0, None))
    config = cfg_cls(**COMMON, **extra)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = model.to(torch.float32).eval()
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    if arch in ("qwen2", "qwen3"):  # no sliding-window layers: use_sliding_window is false
        assert all(t == "full_attention" for t in getattr(model.config, "layer_types", None) or []), arch
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "lm_head not tied"
    return model


def randomize(model, seed):
    """Overwrite every parameter: N(0, 0.2^2) matrices, N(0, 0.1^2) biases, 1 + 0.1*N(0,1) norm weights."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied lm_head/embed_tokens appear once, the tie is kept
            x = torch.randn(p.shape, dtype=torch.float32)
            if name.endswith("norm.weight"):
                x = 1.0 + 0.1 * x
            elif name.endswith(".bias"):
                x = 0.1 * x
            else:
                x = 0.2 * x
            p.copy_(x)


def expected_inv_freq(head_dim, theta, scaling):
    """RoPE inverse frequencies from the formulas (default or llama3), to check the config was honoured."""
    inv = [theta ** (-i / head_dim) for i in range(0, head_dim, 2)]
    if not scaling:
        return inv
    old, low, high, factor = (scaling["original_max_position_embeddings"], scaling["low_freq_factor"],
                              scaling["high_freq_factor"], scaling["factor"])
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(f)
        elif wavelen > old / low:
            out.append(f / factor)
        else:
            s = (old / wavelen - low) / (high - low)
            out.append((1 - s) * f / factor + s * f)
    return out


def check_rope(model, arch):
    """Assert the model's inv_freq buffer matches the intended RoPE configuration."""
    head_dim = {"llama": 16, "mistral": 16, "qwen2": 16, "qwen3": 32}[arch]
    theta = 10000.0 if arch in ("llama", "mistral") else 1000000.0
    want = torch.tensor(expected_inv_freq(head_dim, theta, LLAMA3 if arch == "llama" else None))
    bufs = [m.inv_freq for m in model.modules() if hasattr(m, "inv_freq")]
    assert bufs, "no rotary embedding found"
    for got in bufs:
        assert torch.allclose(got.float().cpu(), want.float(), rtol=1e-5, atol=0), (arch, got, want)


def make_inputs(seed):
    """Token ids (in [3, VOCAB)), masks and positions of the four cases; identical in the numpy script."""
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


def logits(model, device, ids, attention_mask=None, position_ids=None):
    """Run the model (no cache) and return float32 logits as a numpy array."""
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(device)
    with torch.no_grad():
        out = model(input_ids=t(ids), attention_mask=t(attention_mask), position_ids=t(position_ids), use_cache=False)
    return out.logits.float().cpu().numpy()


def compute_cases(model, device, inputs):
    """Add the logits of each case to a copy of inputs."""
    cases = dict(inputs)
    cases["padded.logits"] = logits(model, device, inputs["padded.input_ids"], inputs["padded.attention_mask"])
    parts, start = [], 0
    for n in PACKED_LENS:  # packing is defined as the sequences run separately, each from position 0
        parts.append(logits(model, device, inputs["packed.input_ids"][:, start:start + n]))
        start += n
    cases["packed.logits"] = np.concatenate(parts, axis=1)
    cases["offset.logits"] = logits(model, device, inputs["offset.input_ids"], None, inputs["offset.position_ids"])
    cases["long.logits"] = logits(model, device, inputs["long.input_ids"])
    # Information only: HF's own packed-sequence detection (position_ids, no mask, no cache) should agree.
    hf_packed = logits(model, device, inputs["packed.input_ids"], None, inputs["packed.position_ids"])
    err = np.abs(hf_packed - cases["packed.logits"]).max() / np.abs(cases["packed.logits"]).max()
    print(f"  HF packed-with-position_ids vs separate runs: rel err {err:.2e}")
    return cases


def write_readme(root, seed, device):
    """Describe how the fixtures were made and how they are compared."""
    text = f"""# Golden fixtures (HF transformers)

Generated by `scripts/make_hf_fixtures.py` with HF transformers' own model classes
(attn_implementation="eager", float32, device {device}), random weights and inputs.

Command: `python3 scripts/make_hf_fixtures.py --out tests/fixtures --seed {seed}`
Versions: Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__},
numpy {np.__version__}.

Each `<arch>/` (llama, mistral, qwen2, qwen3) holds what `save_pretrained` wrote (`config.json`,
`model.safetensors` in float32; no `lm_head.weight` when `tie_word_embeddings` is true) and
`cases.safetensors` (inputs I64, logits F32):

- `padded.*`: ids/attention_mask [2,12], row 1 right-padded after 7 tokens (pad id 0); logits [2,12,300]
  with that mask (pad positions hold whatever HF outputs and are not compared).
- `packed.*`: ids/position_ids [1,12], two sequences of 5 and 7 tokens; logits = the two sequences run
  separately, concatenated (no attention across sequences).
- `offset.*`: ids/position_ids [1,12], positions 1000..1011; logits [1,12,300].
- `long.*`: ids [1,40], positions 0..39; logits [1,40,300] (exercises Mistral's sliding window of 5).

Inputs are identical to those of the numpy fixtures; the weights differ (torch.randn here). Unlike the numpy
fixture, qwen2's config has `sliding_window` null (the numpy one sets 4 with `use_sliding_window` false).

Error metric of the C++ parity test: `max|qtune - ref| / max|ref|` over the compared positions
(attention_mask == 1), which must be <= 1e-5 in fp32.
"""
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write(text)


def main():
    """Parse arguments, then save model, config and cases per architecture."""
    ap = argparse.ArgumentParser(description="Write HF transformers golden logits fixtures.")
    ap.add_argument("--out", default="tests/fixtures", help="fixture root; files go to <out>/hf/<arch>/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # keep GPU matmuls in true fp32
    torch.backends.cudnn.allow_tf32 = False
    root = os.path.join(args.out, "hf")
    shutil.rmtree(root, ignore_errors=True)  # nothing left from an earlier run if this one fails
    inputs = make_inputs(args.seed)
    for arch in args.arch:
        print(arch)
        arch_dir = os.path.join(root, arch)
        os.makedirs(arch_dir, exist_ok=True)
        model = build_model(arch)
        randomize(model, args.seed)
        check_rope(model, arch)
        model.to(args.device)
        cases = compute_cases(model, args.device, inputs)
        try:
            model.cpu().save_pretrained(arch_dir, safe_serialization=True)
        except TypeError:  # transformers versions without the argument always write safetensors
            model.cpu().save_pretrained(arch_dir)
        save_file(cases, os.path.join(arch_dir, "cases.safetensors"), metadata={"format": "pt"})
        print(f"  written to {arch_dir}, max|logit| {np.abs(cases['long.logits']).max():.3f}")
    write_readme(root, args.seed, args.device)


if __name__ == "__main__":
    main()
