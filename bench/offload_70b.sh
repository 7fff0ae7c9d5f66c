#!/usr/bin/env bash
# 70B on one 24 GB GPU (issue 8): a Llama-3-70B-shaped model (80 layers, hidden 8192, GQA 64/8, FFN 28672,
# vocab 128256) written straight in NF4 + double quantization, QLoRA r=16 on all linear layers, sequence
# 2048, trained under gpu_memory_limit (22GiB): qtune's memory plan streams the 4-bit layers from pinned
# host memory (offload_base) because they do not fit. Reports, from metrics.jsonl: peak GPU memory (the
# caching allocator's peak statistics), tokens/s, host->device GB/s of the layer copies against the link
# rate qtune measured at start, and the fraction of the copy time hidden behind compute (1 - time the
# compute stream waited for a copy / time the copies took, both timed with CUDA events).
# With RESIDENT=1 (a GPU with room for the whole 4-bit model, ~40 GB: H100 80GB, H200) it also trains the
# same model fully resident: the streamed step's extra time over it is the copy time that was not hidden,
# an independent check of the event-timed fraction.
# Then an estimate for an RTX 4090 on PCIe 4.0 x16 from the measured run (arithmetic printed with it).
#
# Usage: bench/offload_70b.sh [train_throughput.sh flags]     # on the GPU machine, after scripts/cuda_build.sh
#   MODEL=tiny-4layers DEVICE=cpu STEPS=3 WARMUP=1 SEQ=64 bench/offload_70b.sh   # the CPU smoke run (ctest)
# Variables: MODEL (llama3-70b), SEQ (2048), STEPS (8), WARMUP (3), LIMIT (22GiB), RESIDENT (0|1), OUT
#   (runs/bench_offload), DEVICE (auto | cuda | cpu: the CPU has no budget, so offload_base=true is set),
#   RTX4090_FLOPS (165.2e12: bf16 tensor cores with fp32 accumulate, NVIDIA's Ada datasheet),
#   RTX4090_LINK (25e9 B/s: PCIe 4.0 x16 is 31.5 GB/s raw; pinned copies reach about 80% of it),
#   GPU_PEAK_FLOPS (989e12: H100 SXM / H200 bf16 dense).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
export MODEL=${MODEL:-llama3-70b} SEQ=${SEQ:-2048} STEPS=${STEPS:-8} WARMUP=${WARMUP:-3} OUT=${OUT:-$root/runs/bench_offload}
DEVICE=${DEVICE:-auto} LIMIT=${LIMIT:-22GiB} RESIDENT=${RESIDENT:-0}
RTX4090_FLOPS=${RTX4090_FLOPS:-165.2e12} RTX4090_LINK=${RTX4090_LINK:-25e9} GPU_PEAK_FLOPS=${GPU_PEAK_FLOPS:-989e12}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/results.jsonl"

# The streamed run: under the limit on a GPU (the plan turns offload_base on), forced on the CPU.
if [ "$DEVICE" = cpu ]; then streamed="offload_base=true"; else streamed="gpu_memory_limit=$LIMIT"; fi
DEVICE=$DEVICE bash "$here/train_throughput.sh" --name streamed --overrides "$streamed" "$@"
if [ "$RESIDENT" = 1 ]; then
  DEVICE=$DEVICE bash "$here/train_throughput.sh" --name resident --overrides "offload_base=false" "$@"
fi

PYTHONPATH="$here" python3 - "$OUT/results.jsonl" "$RTX4090_FLOPS" "$RTX4090_LINK" "$GPU_PEAK_FLOPS" <<'PY'
import json, sys
results, flops_4090, link_4090, gpu_peak = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
runs = [json.loads(l) for l in open(results)]
streamed = runs[0]
if streamed["status"] != "ok":
    sys.exit("error: the streamed run failed: %s" % streamed.get("error"))
if not streamed.get("offload_h2d_bytes_per_step"):
    sys.exit("error: the run streamed nothing: the memory plan kept the layers resident (see its plan lines in %s/log)" % streamed["run_dir"])
step_s = streamed["mean_step_time_s"]
print("streamed: %.0f tokens/s, %.2f s/step, %.1f GB host->device per step at %.1f GB/s (link measured at start: %s GB/s), "
      "copy time hidden %.0f%%" % (streamed["tokens_per_s"], step_s, streamed["offload_h2d_bytes_per_step"] / 1e9,
                                   streamed["offload_h2d_gb_per_s"] or 0, streamed.get("plan_link_gb_per_s"), 100 * (streamed["offload_copy_hidden"] or 0)))
compute_s = step_s  # without a resident run: the streamed step bounds the compute from above
if len(runs) > 1 and runs[1]["status"] == "ok":
    resident = runs[1]
    compute_s = resident["mean_step_time_s"]
    copy_s = streamed["offload_h2d_bytes_per_step"] / (streamed["offload_h2d_gb_per_s"] * 1e9)
    exposed = max(0.0, step_s - compute_s)
    print("resident: %.0f tokens/s, %.2f s/step; streaming added %.2f s/step of %.2f s of copies: %.0f%% hidden (step-time check)" % (
        resident["tokens_per_s"], compute_s, exposed, copy_s, 100 * max(0.0, 1 - exposed / copy_s)))
# RTX 4090 on PCIe 4.0 x16: the same FLOPs at the same fraction of peak, the same bytes over its link; copies
# overlap compute as here (the step is the slower of the two, plus the part of the copies not hidden here).
tokens = streamed["tokens_per_s"] * step_s
compute_4090 = compute_s * gpu_peak / flops_4090
copy_4090 = streamed["offload_h2d_bytes_per_step"] / link_4090
hidden = streamed["offload_copy_hidden"] or 0
step_4090 = max(compute_4090, copy_4090) + (1 - hidden) * min(compute_4090, copy_4090)
print("RTX 4090 estimate: compute %.2f s x %.0f/%.1f TFLOP/s = %.2f s; copies %.1f GB / %.0f GB/s = %.2f s; step = max + %.0f%% of min"
      " = %.2f s -> %.0f tokens/s" % (compute_s, gpu_peak / 1e12, flops_4090 / 1e12, compute_4090, streamed["offload_h2d_bytes_per_step"] / 1e9,
                                     link_4090 / 1e9, copy_4090, 100 * (1 - hidden), step_4090, tokens / step_4090))
PY
