"""bench/compare.py's results: one JSON record per row (both tools, ratios, the limit) and the Markdown table."""
import throughput_common as t


def slug(row):
    return "%s-%s-%s-seq%d-b%d" % (row["shape"], row["task"], row["base"], row["seq"], row["batch"])


def memory_bytes(result, device):
    """Peak RSS on a CPU; the caching allocator's peak allocated bytes on a GPU."""
    return result.get("peak_allocated_bytes") if device == "cuda" else result.get("peak_rss_bytes")


def ratio(a, b):
    return a / b if a and b else None


def side(result, device):
    keep = ("status", "error", "tokens_per_s", "step_times_s", "tokens_per_step", "losses", "time_to_first_step_s",
            "peak_rss_bytes", "peak_allocated_bytes", "peak_reserved_bytes", "compute", "versions", "setup_s", "log")
    out = {k: result.get(k) for k in keep if k in result}
    out["memory_bytes"] = memory_bytes(result, device)
    return out


def row_record(row, qtune, hf, gemm, device, matrix, checkpointing, machine, command, date):
    s = t.shape(row["shape"])
    fpt = (t.flops_per_token_dpo if row["task"] == "dpo" else t.flops_per_token)(s, row["seq"])
    q, h = side(qtune, device), side(hf, device)
    model_flops = q["tokens_per_s"] * fpt if q.get("tokens_per_s") else None
    return dict(row=row["name"], shape=row["shape"], task=row["task"], base=row["base"], seq=row["seq"], batch=row["batch"],
                steps=row["steps"], warmup=row["warmup"], checkpointing=checkpointing == "on", device=device, matrix=matrix,
                qtune=q, hf=h,
                ratios=dict(tokens_per_s=ratio(q.get("tokens_per_s"), h.get("tokens_per_s")),
                            memory=ratio(q["memory_bytes"], h["memory_bytes"]),
                            time_to_first_step=ratio(q.get("time_to_first_step_s"), h.get("time_to_first_step_s"))),
                flops_per_token=fpt, flops_formula=("dpo: 6*N + 8*L*S*D_attn (policy 4N + attention, reference forward)"
                                                    if row["task"] == "dpo" else t.formula_text()),
                gemm_flops_per_s=gemm, qtune_model_flops_per_s=model_flops,
                qtune_fraction_of_bf16_gemm=ratio(model_flops, gemm["bf16"]), machine=machine, command=command, date=date)


def number(value, fmt):
    return fmt % value if value is not None else "n/a"


def cells(record):
    q, h, r = record["qtune"], record["hf"], record["ratios"]
    fail = lambda s: s["status"] if s["status"] != "ok" else None
    gib = lambda b: number(b / 2**30 if b else None, "%.2f")
    return [record["row"].replace(" seq ", " ").replace(" batch ", " b"),
            fail(q) or number(q.get("tokens_per_s"), "%.1f"), fail(h) or number(h.get("tokens_per_s"), "%.1f"), number(r["tokens_per_s"], "**%.2f×**"),
            gib(q["memory_bytes"]), gib(h["memory_bytes"]), number(r["memory"], "**%.2f×**"),
            number(q.get("time_to_first_step_s"), "%.1f"), number(h.get("time_to_first_step_s"), "%.1f"), number(r["time_to_first_step"], "**%.2f×**"),
            number(record["qtune_model_flops_per_s"] and record["qtune_model_flops_per_s"] / 1e9, "%.0f"),
            number(record["gemm_flops_per_s"]["bf16"] / 1e9, "%.0f"), number(record["qtune_fraction_of_bf16_gemm"] and 100 * record["qtune_fraction_of_bf16_gemm"], "%.0f%%")]


def row_line(record):
    c = cells(record)
    return "%s: tokens/s qtune %s, hf %s (%s); memory GiB %s / %s (%s); first step s %s / %s (%s); qtune %s GFLOP/s of %s bf16 GEMM (%s)" % tuple(
        x.replace("**", "") for x in c)


def table(records, machine, command, date):
    memory = "peak allocated GiB" if records and records[0]["device"] == "cuda" else "peak RSS GiB"
    head = ["row (shape task base seq batch)", "qtune tok/s", "HF tok/s", "ratio", "qtune " + memory, "HF " + memory, "ratio",
            "qtune first step s", "HF first step s", "ratio", "qtune model GFLOP/s", "bf16 GEMM GFLOP/s", "fraction"]
    lines = ["Command: `%s`; %s; %s (%s cores, %s GiB%s); torch %s; %s." % (
        command, date, machine["gpu"] or machine["cpu"], machine["cores"], machine["memory_gib"],
        ", " + "+".join(machine["cpu_bf16"]) if machine["cpu_bf16"] else "", machine["torch"], machine["host"]), "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in records]
    if records:
        g = records[0]["gemm_flops_per_s"]
        lines += ["", "GEMM rate at the first row's shapes: fp32 %.0f GFLOP/s, bf16 %.0f GFLOP/s (%s)." % (g["fp32"] / 1e9, g["bf16"] / 1e9, g["method"])]
    return "\n".join(lines) + "\n"
