# bench/moe_step.sh's table: steady-state step time and tokens/s of the MoE and the dense run, their ratio, and
# each run's peak RSS against its 4-bit checkpoint's size on disk. Also writes the figures to OUT/moe_step.json.
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
    files = glob.glob(os.path.join(out, "models", name, "*.safetensors"))
    log = open(os.path.join(run_dir, "log"), errors="replace").read().splitlines()
    return dict(name=name, measured_steps=len(kept), step_s=seconds / len(kept), tokens_per_s=sum(r["tokens"] for r in kept) / seconds,
                tokens_per_step=kept[-1]["tokens"], first_step_s=records[0]["step_time_s"], wall_s=float(wall_s),
                peak_rss_bytes=int(peak_kb) * 1024, checkpoint_bytes=sum(os.path.getsize(f) for f in files),
                final_loss=records[-1]["loss"], plan=[l for l in log if l.startswith(("memory plan", "  "))],
                init=init_figures(out, name))


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
    memory = moe["peak_rss_bytes"] / moe["checkpoint_bytes"]
    threads = os.environ.get("OMP_NUM_THREADS")  # LibTorch's intra-op threads: all cores unless set
    print("MoE step on the CPU, %s tokens per step (%s; OMP_NUM_THREADS=%s)" % (seq, shape, threads or "unset"))
    print("| model | steady step s | tokens/s | first step s | peak RSS MiB | 4-bit checkpoint MiB | RSS / checkpoint |")
    print("|---|---|---|---|---|---|---|")
    for r in (moe, dense):
        print("| %s | %.4g | %.4g | %.4g | %.1f | %.1f | %.3f |" % (r["name"], r["step_s"], r["tokens_per_s"], r["first_step_s"],
                                                              mib(r["peak_rss_bytes"]), mib(r["checkpoint_bytes"]),
                                                              r["peak_rss_bytes"] / r["checkpoint_bytes"]))
    print("MoE / dense step time: %.3f (target <= %.1f: %s)" % (ratio, STEP_TARGET, "met" if ratio <= STEP_TARGET else "missed"))
    print("MoE peak RSS / 4-bit size: %.3f (target <= %.2f: %s)" % (memory, MEMORY_TARGET, "met" if memory <= MEMORY_TARGET else "missed"))
    for r in (moe, dense):
        if r["init"]:
            print("init-model %s: %.1f s, peak RSS %.1f MiB" % (r["name"], r["init"]["wall_s"], mib(r["init"]["peak_rss_bytes"])))
    with open(os.path.join(out, "moe_step.json"), "w") as f:
        json.dump(dict(seq=int(seq), shape=shape, omp_num_threads=threads, step_ratio=ratio, memory_ratio=memory, moe=moe, dense=dense), f, indent=1)


if __name__ == "__main__":
    main()
