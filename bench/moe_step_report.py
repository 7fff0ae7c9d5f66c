# bench/moe_step.sh's table: steady-state step time and tokens/s of the MoE and the dense run, their ratio, and
# each run's memory against its 4-bit checkpoint's size on disk. Also writes the figures to OUT/moe_step.json.
# Memory: qtune maps a prequantized checkpoint and computes from its pages (zero copy), copying only the 16-bit
# tensors (embeddings, lm_head, norms, routers). A page of the expert bank is resident once its expert has run,
# so a short run's peak RSS misses the experts no token reached yet. The steady state, every expert resident, is
# bounded by the peak anonymous RSS plus every mapped byte of the file; loading can peak higher (the 16-bit tensors
# mapped and copied at once). The larger of the two is held to the target.
# Usage: python3 moe_step_report.py OUT MOE_NAME DENSE_NAME WARMUP SEQ SHAPE_TEXT
import glob
import json
import os
import sys

STEP_TARGET = 1.5    # the bound on the MoE step against the dense step
MEMORY_TARGET = 1.2  # the bound on host memory against the 4-bit size


def run_figures(out, name, warmup):
    run_dir = os.path.join(out, "runs", name)
    records = [json.loads(line) for line in open(os.path.join(run_dir, "out", "metrics.jsonl")) if line.strip()]
    kept = [r for r in records if r["step"] > warmup]
    if not kept:
        sys.exit("error: %s logged no step after the first %d (see %s/log)" % (name, warmup, run_dir))
    seconds = sum(r["step_time_s"] for r in kept)
    wall_s, peak_kb = open(os.path.join(run_dir, "time")).read().split()[-2:]
    anon_kb, file_kb = open(os.path.join(run_dir, "rss")).read().split()
    files = glob.glob(os.path.join(out, "models", name, "*.safetensors"))
    log = open(os.path.join(run_dir, "log"), errors="replace").read().splitlines()
    return dict(name=name, measured_steps=len(kept), step_s=seconds / len(kept), tokens_per_s=sum(r["tokens"] for r in kept) / seconds,
                tokens_per_step=kept[-1]["tokens"], first_step_s=records[0]["step_time_s"], wall_s=float(wall_s),
                peak_rss_bytes=int(peak_kb) * 1024, peak_anon_bytes=int(anon_kb) * 1024, peak_file_rss_bytes=int(file_kb) * 1024,
                mapped_bytes=sum(mapped_bytes(f) for f in files), checkpoint_bytes=sum(os.path.getsize(f) for f in files),
                final_loss=records[-1]["loss"], plan=[l for l in log if l.startswith(("memory plan", "  "))],
                init=init_figures(out, name))


def mapped_bytes(path):
    """The bytes of the file's tensors qtune computes from in place: all but the 16-bit ones it copies (the bench's
    models are bf16 otherwise; the 4-bit codes are U8, their scales U8/F32)."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return sum(t["data_offsets"][1] - t["data_offsets"][0] for k, t in header.items() if k != "__metadata__" and t["dtype"] != "BF16")


def steady_bytes(r):
    return r["peak_anon_bytes"] + r["mapped_bytes"]


def host_bytes(r):
    return max(r["peak_rss_bytes"], steady_bytes(r))


def init_figures(out, name):
    """init-model's wall time and peak RSS when this run wrote the model (absent when it was reused)."""
    path = os.path.join(out, "runs", name + ".init-time")
    if not os.path.exists(path):
        return None
    wall_s, peak_kb = open(path).read().split()[-2:]
    return dict(wall_s=float(wall_s), peak_rss_bytes=int(peak_kb) * 1024)


def mib(n):
    return n / 2**20


def main():
    out, moe_name, dense_name, warmup, seq, shape = sys.argv[1:]
    moe, dense = run_figures(out, moe_name, int(warmup)), run_figures(out, dense_name, int(warmup))
    ratio = moe["step_s"] / dense["step_s"]
    memory = host_bytes(moe) / moe["checkpoint_bytes"]
    threads = os.environ.get("OMP_NUM_THREADS")  # LibTorch's intra-op threads: all cores unless set
    print("MoE step on the CPU, %s tokens per step (%s; OMP_NUM_THREADS=%s)" % (seq, shape, threads or "unset"))
    print("| model | steady step s | tokens/s | first step s | peak RSS MiB | peak anonymous MiB | mapped MiB | 4-bit checkpoint MiB "
          "| peak RSS / checkpoint | (anonymous + mapped) / checkpoint |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in (moe, dense):
        print("| %s | %.4g | %.4g | %.4g | %.1f | %.1f | %.1f | %.1f | %.3f | %.3f |" % (
            r["name"], r["step_s"], r["tokens_per_s"], r["first_step_s"], mib(r["peak_rss_bytes"]), mib(r["peak_anon_bytes"]),
            mib(r["mapped_bytes"]), mib(r["checkpoint_bytes"]), r["peak_rss_bytes"] / r["checkpoint_bytes"], steady_bytes(r) / r["checkpoint_bytes"]))
    print("MoE / dense step time: %.3f (target <= %.1f: %s)" % (ratio, STEP_TARGET, "met" if ratio <= STEP_TARGET else "missed"))
    print("MoE host memory (max of peak RSS, peak anonymous + mapped) / 4-bit size: %.3f (target <= %.2f: %s)" % (
        memory, MEMORY_TARGET, "met" if memory <= MEMORY_TARGET else "missed"))
    for r in (moe, dense):
        if r["init"]:
            print("init-model %s: %.1f s, peak RSS %.1f MiB" % (r["name"], r["init"]["wall_s"], mib(r["init"]["peak_rss_bytes"])))
    with open(os.path.join(out, "moe_step.json"), "w") as f:
        json.dump(dict(seq=int(seq), shape=shape, omp_num_threads=threads, step_ratio=ratio, memory_ratio=memory, moe=moe, dense=dense), f, indent=1)


if __name__ == "__main__":
    main()
