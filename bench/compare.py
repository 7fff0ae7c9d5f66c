#!/usr/bin/env python3
"""qtune against transformers + PEFT + TRL, side by side in one run (bench/compare.sh calls this).

Both tools get the same random model files (qtune init-model, bf16 safetensors, Qwen2.5-0.5B or Llama-3.2-1B
shapes), the same data, LoRA r=16 alpha 32 dropout 0 on all linear layers, bf16 compute (bf16: true / TRL's
bf16=True: CPU autocast on a CPU), AdamW lr 1e-4 constant, clipping 1.0, one micro-batch per step, gradient
checkpointing on both sides (or off on both), a 16-bit base or NF4 with double quantization (bitsandbytes on the
HF side, quantized at load on both). SFT: rows of exactly SEQ tokens (SEQ-1 letters + EOS). DPO (sigmoid, beta
0.1, reference = the policy with its adapters off): pairs whose prompt+answer rows are SEQ tokens in ChatML.

Per row and tool, each run in a fresh process:
  tokens/s      tokens of the steps after the warm-up / their summed step time (qtune: metrics.jsonl's
                step_time_s; HF: bench/hf_compare.py's callback, see there). DPO counts both rows of a pair.
  memory        the process's peak RSS (wait4's ru_maxrss) on a CPU; the caching allocator's peak allocated
                bytes on a GPU.
  first step    seconds from this script starting the command to the start of the first training step.
And the limit: the machine's dense GEMM rate at the row's shapes (each projection and lm_head, forward and the
backward to the inputs, M = batch x seq rows), fp32 and bf16, through the same LibTorch qtune links; qtune's
model FLOP/s (throughput_common.flops_per_token, DPO: flops_per_token_dpo) as a fraction of it.

Prints a table, appends one JSON line per row to OUT/compare.jsonl and writes the table to OUT/table.md.
"""
import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput_common as t  # noqa: E402
import compare_report as report  # noqa: E402
import gemm_rate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ARCH = {"qwen2.5-0.5b": "qwen2", "llama3.2-1b": "llama", "tiny": "llama"}
TIED = {"qwen2.5-0.5b": True, "llama3.2-1b": True, "tiny": False}
# (shapes, tasks with their sequence lengths, batches, bases, steps, warm-up steps)
MATRICES = {
    "cpu": (["qwen2.5-0.5b"], [("sft", 512), ("sft", 2048), ("dpo", 512)], [1], ["16bit", "nf4"], 5, 2),
    "gpu": (["qwen2.5-0.5b", "llama3.2-1b"], [("sft", 512), ("sft", 2048), ("dpo", 512), ("dpo", 2048)], [1, 4], ["16bit", "nf4"], 20, 5),
    "smoke": (["tiny"], [("sft", 64), ("dpo", 64)], [1], ["nf4"], 3, 1),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--matrix", choices=sorted(MATRICES), help="which rows (default: gpu where torch sees one, else cpu)")
    p.add_argument("--only", default="", help="keep rows whose name has every comma-separated word, e.g. sft,512")
    p.add_argument("--steps", type=int, help="steps per run (default: the matrix's)")
    p.add_argument("--warmup", type=int, help="steps left out of tokens/s (default: the matrix's)")
    p.add_argument("--checkpointing", choices=["on", "off"], default="on")
    p.add_argument("--qtune", default=os.path.join(HERE, "..", "build", "trainer", "qtune"))
    p.add_argument("--out", default=os.path.join(HERE, "..", "runs", "compare"))
    p.add_argument("--timeout", type=float, default=None, help="seconds one run may take")
    p.add_argument("--check", action="store_true", help="exit 1 unless every row has a result from both tools")
    args = p.parse_args(argv)
    args.out, args.qtune = os.path.abspath(args.out), os.path.abspath(args.qtune)
    if not os.access(args.qtune, os.X_OK):
        p.error("no qtune binary at %s: build it (cmake --build build --target qtune) or pass --qtune" % args.qtune)
    return args


def matrix_rows(args, device):
    name = args.matrix or ("gpu" if device == "cuda" else "cpu")
    shapes, tasks, batches, bases, steps, warmup = MATRICES[name]
    rows = [dict(shape=s, task=task, seq=seq, batch=b, base=base, steps=args.steps or steps, warmup=warmup if args.warmup is None else args.warmup)
            for s in shapes for task, seq in tasks for b in batches for base in bases]
    for row in rows:
        row["name"] = "%s %s %s seq %d batch %d" % (row["shape"], row["task"], row["base"], row["seq"], row["batch"])
    words = [w for w in args.only.split(",") if w]
    return name, [r for r in rows if all(w in r["name"].split() for w in words)]


def make_model(args, shape_name):
    """Random bf16 weights in HF layout with qtune's byte tokenizer, once per shape; both tools load this folder."""
    path = os.path.join(args.out, "models", shape_name)
    if not os.path.exists(os.path.join(path, "config.json")):
        s = t.shape(shape_name)
        subprocess.run([args.qtune, "init-model", "--arch", ARCH[shape_name], "--out", path, "--hidden", str(s["hidden"]),
                        "--layers", str(s["layers"]), "--heads", str(s["heads"]), "--kv-heads", str(s["kv_heads"]),
                        "--intermediate", str(s["intermediate"]), "--vocab", str(s["vocab"]), "--tie" if TIED[shape_name] else "--untie",
                        "--dtype", "bf16", "--byte-tokenizer", "--seed", "0", "--force"], check=True, stdout=subprocess.DEVNULL)
    return path


def letters(rng, n):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(n))


def make_data(args, row):
    """SFT: {"text"} rows of SEQ-1 letters (+ EOS = SEQ tokens of the byte tokenizer). DPO: one user turn and two
    different answers; ChatML adds 19 tokens around a prompt and 2 after an answer, so each row is SEQ tokens."""
    rows = row["batch"] * row["steps"]
    path = os.path.join(args.out, "data", "%s-seq%d-rows%d.jsonl" % (row["task"], row["seq"], rows))
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = random.Random(0)
    prompt_chars, answer_chars = row["seq"] // 2 - 19, row["seq"] - row["seq"] // 2 - 2
    with open(path + ".tmp", "w") as f:
        for _ in range(rows):
            if row["task"] == "sft":
                record = {"text": letters(rng, row["seq"] - 1)}
            else:
                record = {"prompt": [{"role": "user", "content": letters(rng, prompt_chars)}],
                          "chosen": [{"role": "assistant", "content": letters(rng, answer_chars)}],
                          "rejected": [{"role": "assistant", "content": letters(rng, answer_chars)}]}
            f.write(json.dumps(record) + "\n")
    os.replace(path + ".tmp", path)
    return path


def qtune_config(row, model, data, out_dir, checkpointing):
    four_bit = row["base"] == "nf4"
    lines = ["base_model: %s" % model, "datasets:", "  - path: %s" % data, "    type: %s" % ("completion" if row["task"] == "sft" else "preference")]
    if row["task"] == "dpo":
        lines += ["chat_template: chatml", "rl: dpo", "rl_beta: 0.1", "dpo_loss_type: sigmoid"]
    lines += ["sequence_len: %d" % row["seq"], "sample_packing: false", "overlong_samples: truncate",
              "load_in_4bit: %s" % str(four_bit).lower(), "bnb_4bit_quant_type: nf4", "bnb_4bit_use_double_quant: true",
              "adapter: %s" % ("qlora" if four_bit else "lora"), "lora_r: 16", "lora_alpha: 32", "lora_dropout: 0.0",
              "lora_target_linear: true", "bf16: true", "micro_batch_size: %d" % row["batch"], "gradient_accumulation_steps: 1",
              "max_steps: %d" % row["steps"], "learning_rate: 1.0e-4", "lr_scheduler: constant", "weight_decay: 0.0",
              "max_grad_norm: 1.0", "gradient_checkpointing: %s" % ("true" if checkpointing == "on" else "false"),
              "val_set_size: 0", "save_steps: 0", "logging_steps: 1", "seed: 0",
              "dataset_prepared_path: %s" % os.path.join(out_dir, "prepared"), "output_dir: %s" % os.path.join(out_dir, "out")]
    return "\n".join(lines) + "\n"


def run_measured(command, log_path, timeout, env=None):
    """Runs one tool in a fresh process; returns (launch time, exit status, its peak RSS in bytes). A "{launch}"
    argument becomes the launch time (Unix seconds)."""
    with open(log_path, "w") as log:
        launch = time.time()
        command = [repr(launch) if word == "{launch}" else word for word in command]
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = launch + timeout if timeout else None
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
                return launch, child.returncode, usage.ru_maxrss * 1024  # Linux: KiB
            if deadline and time.time() > deadline:
                child.kill()
            time.sleep(0.05)


def last_error(log_path):
    lines = open(log_path, errors="replace").read().splitlines()
    errors = [l for l in lines if l.startswith("error:")]
    return (errors[-1] if errors else (lines[-1] if lines else "no output"))[:300]


def run_qtune(args, row, model, data, device):
    out_dir = os.path.join(args.out, "runs", report.slug(row), "qtune")
    os.makedirs(out_dir, exist_ok=True)
    config = os.path.join(out_dir, "config.yaml")
    with open(config, "w") as f:
        f.write(qtune_config(row, model, data, out_dir, args.checkpointing))
    log = os.path.join(out_dir, "log")
    launch, code, peak_rss = run_measured([args.qtune, "train", config, "device=" + device], log, args.timeout)
    result = dict(tool="qtune", status="ok" if code == 0 else "error", exit_code=code, peak_rss_bytes=peak_rss, log=log)
    if code != 0:
        return dict(result, error=last_error(log))
    records = [json.loads(l) for l in open(os.path.join(out_dir, "out", "metrics.jsonl")) if l.strip()]
    tps, kept, _ = t.steady_state(records, row["warmup"])
    first = records[0]
    result.update(tokens_per_s=tps, measured_steps=kept, step_times_s=[r["step_time_s"] for r in records],
                  tokens_per_step=[r["tokens"] for r in records], losses=[r["loss"] for r in records],
                  time_to_first_step_s=first["wall_time"] - first["step_time_s"] - launch,
                  peak_allocated_bytes=max((r.get("device_peak_allocated_bytes") or 0 for r in records), default=None) or None)
    return result


def run_hf(args, row, model, data, device):
    out_dir = os.path.join(args.out, "runs", report.slug(row), "hf")
    os.makedirs(out_dir, exist_ok=True)
    out_json, log = os.path.join(out_dir, "result.json"), os.path.join(out_dir, "log")
    command = [sys.executable, os.path.join(HERE, "hf_compare.py"), "--model-dir", model, "--data", data, "--task", row["task"],
               "--base", row["base"], "--seq", str(row["seq"]), "--batch", str(row["batch"]), "--steps", str(row["steps"]),
               "--warmup", str(row["warmup"]), "--checkpointing", args.checkpointing, "--device", device,
               "--out-json", out_json, "--launch-time", "{launch}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    launch, code, peak_rss = run_measured(command, log, args.timeout, env)
    if not os.path.exists(out_json):
        return dict(tool="hf", status="error", exit_code=code, peak_rss_bytes=peak_rss, log=log, error=last_error(log))
    result = json.load(open(out_json))
    result.update(exit_code=code, peak_rss_bytes=peak_rss, log=log)
    result["time_to_first_step_s"] = result["first_step_start"] - launch if result.get("first_step_start") else None
    return result


def machine_facts(torch, device):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    return dict(host=platform.node(), cpu=cpu, cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                cpu_bf16=[f for f in ("avx512_bf16", "amx_bf16") if f in flags], memory_gib=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                gpu=torch.cuda.get_device_name() if device == "cuda" else None, torch=torch.__version__)


def main(argv=None):
    args = parse_args(argv)
    import torch  # the same LibTorch build qtune links (the GEMM rate is measured through it)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    matrix, rows = matrix_rows(args, device)
    if not rows:
        print("error: --only '%s' keeps no row of the %s matrix" % (args.only, matrix), file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    machine = machine_facts(torch, device)
    command = " ".join(["bench/compare.sh"] + (argv if argv is not None else sys.argv[1:]))
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    print("compare: %d rows of the %s matrix on %s (%s, %d cores%s), checkpointing %s" % (
        len(rows), matrix, device, machine["gpu"] or machine["cpu"], machine["cores"],
        ", " + "+".join(machine["cpu_bf16"]) if machine["cpu_bf16"] else "", args.checkpointing), flush=True)
    done, gemm_rates = [], {}
    for row in rows:
        model, data = make_model(args, row["shape"]), make_data(args, row)
        qtune = run_qtune(args, row, model, data, device)
        hf = run_hf(args, row, model, data, device)
        key = (row["shape"], row["batch"] * row["seq"])  # rows of both bases and tasks share their GEMM shapes
        if key not in gemm_rates:
            gemm_rates[key] = gemm_rate.measure(torch, t.shape(row["shape"]), key[1], device)
        gemm = gemm_rates[key]
        record = report.row_record(row, qtune, hf, gemm, device, matrix, args.checkpointing, machine, command, date)
        with open(os.path.join(args.out, "compare.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        print(report.row_line(record), flush=True)
        done.append(record)
    table = report.table(done, machine, command, date)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    print(table, flush=True)
    if args.check:
        missing = [r["row"] for r in done if not (r["qtune"]["status"] == "ok" and r["hf"]["status"] == "ok")]
        if missing:
            print("error: no result from both tools for: %s (logs under %s/runs)" % ("; ".join(missing), args.out), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
