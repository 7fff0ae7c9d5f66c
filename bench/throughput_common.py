# Shared by the two sides of the training-throughput benchmark (bench/train_throughput.sh for qtune,
# bench/hf_peft_throughput.py for HF transformers + PEFT): the model shapes, the FLOPs-per-token formula,
# MFU and the results.jsonl line, so that both tools are measured by the same arithmetic.
#
# Model FLOPs per token (the convention, "4N + attention"):
#
#   flops_per_token = 4 * N + 6 * L * S * D_attn
#
#   N       = non-embedding parameters that are multiplied per token: the decoder projections
#             L * (D*H*Dh + 2*D*KV*Dh + H*Dh*D + 3*D*F) plus lm_head D*V (the input embedding is a lookup,
#             norms are negligible). Llama-3-8B shape: N = 6,979,321,856 + 525,336,576 = 7,504,658,432.
#   4 * N   = forward 2N + backward to the inputs 2N. The base is frozen, so there is no weight gradient
#             (the 2N a full fine-tune adds); LoRA's own FLOPs (6 per LoRA parameter: 0.25 GFLOP/token
#             for r=16 on all linear layers of the 8B shape, 0.8%) are left out.
#   attention, causal, per token and layer: forward Q.K^T and P.V each 2 * D_attn * (S/2) on average
#             over the S positions = 2 * S * D_attn; backward (grads of Q, K and V) twice that; so
#             3 * 2 * S * D_attn = 6 * S * D_attn, with D_attn = H * Dh. Masked-out halves are not counted.
#   Not counted: the recompute of gradient checkpointing (another 2N + attention forward): MFU counts the
#   model's FLOPs, not the hardware's.
#
#   Llama-3-8B shape at S = 2048: 4N = 30,018,633,728; attention 6*32*2048*4096 = 1,610,612,736;
#   flops_per_token = 31,629,246,464 (3.163e10).
#
# MFU = tokens_per_s * flops_per_token / peak_flops; peak_flops defaults to 989e12 (H100 SXM and H200,
# bf16 dense tensor cores, NVIDIA's datasheet).
import datetime
import json
import os
import platform
import re

DEFAULT_PEAK_FLOPS = 989e12

# Llama-3-8B and -70B (and Llama 3.1: same sizes) and a tiny shape that trains on a CPU in seconds.
SHAPES = {
    "llama3-8b": dict(hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336, vocab=128256),
    "llama3-70b": dict(hidden=8192, layers=80, heads=64, kv_heads=8, intermediate=28672, vocab=128256),
    "tiny": dict(hidden=256, layers=2, heads=8, kv_heads=4, intermediate=688, vocab=32000),
    "tiny-4layers": dict(hidden=256, layers=4, heads=8, kv_heads=4, intermediate=688, vocab=32000),  # streams layers in steady state
    # bench/compare.sh's shapes (tied embeddings as published; lm_head still multiplies per token).
    "qwen2.5-0.5b": dict(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, vocab=151936),
    "llama3.2-1b": dict(hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256),
}
# Both tools build the model with these (Llama 3.1 values; they do not change the FLOPs).
ROPE_THETA = 500000.0
RMS_NORM_EPS = 1e-5
MAX_POSITION = 131072


def parse_size(text):
    """Bytes of "24GiB", "80GB", "500MiB" or a plain number (as qtune's gpu_memory_limit reads them)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    units = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    if not m or m.group(2).lower() not in units:
        raise SystemExit("not a size: '%s' (write e.g. 24GiB, 80GB or a number of bytes)" % text)
    return int(round(float(m.group(1)) * units[m.group(2).lower()]))


def shape(name):
    if name not in SHAPES:
        raise SystemExit("unknown MODEL '%s'; use one of: %s" % (name, ", ".join(SHAPES)))
    return dict(SHAPES[name])


def non_embedding_params(s):
    """N: decoder projections plus lm_head (see the header)."""
    d, head_dim = s["hidden"], s["hidden"] // s["heads"]
    q = o = d * s["heads"] * head_dim
    kv = d * s["kv_heads"] * head_dim
    mlp = 3 * d * s["intermediate"]
    return s["layers"] * (q + 2 * kv + o + mlp) + d * s["vocab"]


def flops_per_token(s, seq):
    d_attn = s["heads"] * (s["hidden"] // s["heads"])
    return 4 * non_embedding_params(s) + 6 * s["layers"] * seq * d_attn


def flops_per_token_dpo(s, seq):
    """A DPO step per token of its chosen and rejected rows: the policy's 4N + attention, plus the reference's
    forward (2N + 2*L*S*D_attn), the policy with its adapters off."""
    d_attn = s["heads"] * (s["hidden"] // s["heads"])
    return flops_per_token(s, seq) + 2 * non_embedding_params(s) + 2 * s["layers"] * seq * d_attn


def formula_text():
    return "flops_per_token = 4*N + 6*L*S*D_attn (N: decoder projections + lm_head; no recompute, no LoRA)"


def steady_state(records, warmup):
    """tokens/s over the steps after the first `warmup`: their tokens / their summed step time."""
    kept = [r for r in records if r["step"] > warmup]
    seconds = sum(r["step_time_s"] for r in kept)
    tokens = sum(r["tokens"] for r in kept)
    return (tokens / seconds if seconds > 0 else 0.0), len(kept), seconds


def offload_figures(records, warmup):
    """The layer streaming of offload_base over the steps after `warmup` (metrics.jsonl fields): host->device
    bytes per step, the copies' rate, and the fraction of copy time the compute did not wait for
    (1 - waited / copying, summed over the steps). None when the run streamed nothing."""
    kept = [r for r in records if r["step"] > warmup and r.get("offload_h2d_bytes")]
    if not kept:
        return {}
    copy_s = [r["offload_h2d_bytes"] / (r["offload_h2d_gb_per_s"] * 1e9) for r in kept if r["offload_h2d_gb_per_s"] > 0]
    waited = sum((1 - r["offload_copy_hidden"]) * c for r, c in zip(kept, copy_s))
    total_bytes = sum(r["offload_h2d_bytes"] for r in kept)
    return dict(offload_h2d_bytes_per_step=total_bytes / len(kept),
                offload_h2d_gb_per_s=(total_bytes / sum(copy_s) / 1e9) if sum(copy_s) > 0 else None,
                offload_copy_hidden=(1 - waited / sum(copy_s)) if sum(copy_s) > 0 else None)


def plan_link_gb_per_s(log_lines):
    """The host->device rate qtune measured for its memory plan ("... at 25.3 GB/s (measured)"), or None."""
    for l in log_lines:
        m = re.search(r"copies [0-9.]+ s at ([0-9.]+) GB/s \(measured\)", l)
        if m:
            return float(m.group(1))
    return None


def result_line(tool, model, seq, batch, **fields):
    """One results.jsonl record; `fields` adds the measured values (None where not measured)."""
    s = shape(model)
    n = non_embedding_params(s)
    fpt = flops_per_token(s, seq)
    peak = fields.pop("peak_flops", DEFAULT_PEAK_FLOPS)
    tps = fields.get("tokens_per_s")
    line = {
        "tool": tool,
        "model": model,
        "shape": s,
        "seq": seq,
        "batch": batch,
        "n_non_embedding": n,
        "flops_per_token": fpt,
        "flops_formula": formula_text(),
        "peak_flops": peak,
        "mfu": (tps * fpt / peak) if tps else None,
        "host": platform.node(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    line.update(fields)
    return line


def append_result(out_dir, line):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")


def gib(n):
    return "%.2f GiB" % (n / 2**30) if n else "n/a"


def summary_text(line):
    """The one line printed per run."""
    head = "%s %s seq %d batch %d" % (line["tool"], line["model"], line["seq"], line["batch"])
    if line.get("status") != "ok":
        error = (line.get("error") or "").replace("error: ", "", 1)
        return "%s: %s%s" % (head, line.get("status"), (": " + error) if error else "")
    text = "%s: %.0f tokens/s (%d steps after %d warm-up), MFU %.3g%% (%.4g FLOP/token, peak %.0f TFLOP/s)" % (
        head, line["tokens_per_s"], line["measured_steps"], line["warmup"], 100 * line["mfu"], line["flops_per_token"],
        line["peak_flops"] / 1e12)
    if line.get("peak_allocated_bytes"):
        text += ", gpu peak %s allocated / %s reserved" % (gib(line["peak_allocated_bytes"]), gib(line.get("peak_reserved_bytes")))
    elif line.get("peak_host_bytes"):
        text += ", host peak %s" % gib(line["peak_host_bytes"])
    if line.get("offload_h2d_bytes_per_step"):
        moved = line["offload_h2d_bytes_per_step"]
        text += "; streamed %s/step at %.1f GB/s, %.0f%% of the copy time hidden" % (
            "%.1f GB" % (moved / 1e9) if moved >= 1e9 else "%.1f MB" % (moved / 1e6), line["offload_h2d_gb_per_s"] or 0,
            100 * (line["offload_copy_hidden"] or 0))
    return text
