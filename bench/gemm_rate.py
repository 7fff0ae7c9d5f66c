"""The machine's dense GEMM rate at a model's shapes, the limit bench/compare.py holds qtune's model FLOP/s against.

For every projection of a decoder layer (q, k, v, o, gate, up, down) and for lm_head: the forward x @ W^T and the
backward to the inputs dy @ W, with M = batch x seq rows, in fp32 and bf16, through torch (the LibTorch build qtune
links, so both use the same BLAS / oneDNN kernels). Rate = the FLOPs of one pass over these GEMMs, weighted as the
model runs them (each layer shape L times, lm_head once) / their time; each GEMM's time is the median of 3 after a
warm-up. lm_head is timed on its first 32768 columns (its rate per FLOP; the whole 152k columns would take minutes
on a CPU) and counted at its full width.
"""
import statistics
import time

LM_HEAD_COLUMNS = 32768


def layer_gemms(s):
    """(in, out, count) of each weight the model multiplies per token."""
    d, head_dim = s["hidden"], s["hidden"] // s["heads"]
    q, kv, f = s["heads"] * head_dim, s["kv_heads"] * head_dim, s["intermediate"]
    layer = [(d, q), (d, kv), (d, kv), (q, d), (d, f), (d, f), (f, d)]
    return [(k, n, s["layers"]) for k, n in layer] + [(d, s["vocab"], 1)]


def time_one(torch, fn, synchronize):
    fn()
    synchronize()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rate(torch, s, rows, dtype, device):
    """FLOP/s of the model's GEMMs at `rows` rows in `dtype`."""
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    generator = torch.Generator(device=device).manual_seed(0)
    flops = seconds = 0.0
    for k, n, count in layer_gemms(s):
        timed_n = min(n, LM_HEAD_COLUMNS)
        x = torch.randn(rows, k, device=device, generator=generator).to(dtype)
        w = torch.randn(timed_n, k, device=device, generator=generator).to(dtype)
        dy = torch.randn(rows, timed_n, device=device, generator=generator).to(dtype)
        per_call = time_one(torch, lambda: torch.nn.functional.linear(x, w), synchronize) + time_one(torch, lambda: dy @ w, synchronize)
        flops += count * 2 * (2.0 * rows * k * n)
        seconds += count * per_call * n / timed_n
    return flops / seconds


def measure(torch, s, rows, device):
    return {"fp32": rate(torch, s, rows, torch.float32, device), "bf16": rate(torch, s, rows, torch.bfloat16, device), "rows": rows,
            "method": "median of 3 per GEMM; q,k,v,o,gate,up,down x layers + lm_head, forward and backward-to-inputs"}
