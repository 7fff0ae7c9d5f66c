#!/usr/bin/env python3
"""HF transformers + PEFT side of the training-throughput benchmark (issue 7); qtune's side is
bench/train_throughput.sh, the shared shapes, FLOPs formula and results line bench/throughput_common.py.

The same shape as qtune's run (LlamaConfig with the sizes of MODEL), randomly initialized straight on the
GPU in bf16, SDPA attention, LoRA r=16 alpha 32 dropout 0 on q,k,v,o,gate,up,down (peft), gradient
checkpointing (non-reentrant), AdamW on the LoRA parameters, gradient clipping at 1.0 (as qtune and HF's
Trainer), random token ids [BATCH, SEQ] with labels = input ids. Times every step between
torch.cuda.synchronize() calls; tokens/s = tokens of the steps after WARMUP / their summed time; peak
memory = torch.cuda.max_memory_allocated / max_memory_reserved over the steps (reset after the model and
optimizer are built); MFU as in throughput_common.py.

The base is bf16 by default (what the issue compares against); --base 4bit loads it through bitsandbytes
(NF4, double quantization, bf16 compute) like qtune's base, when bitsandbytes is installed. The model is
not passed through peft.prepare_model_for_kbit_training, which would cast the embeddings, norms and
lm_head to fp32 (more memory, an fp32 lm_head): both tools keep them in bf16.

  python3 bench/hf_peft_throughput.py                              # llama3-8b, seq 2048, batch 1, 20 steps, 5 warm-up
  python3 bench/hf_peft_throughput.py --model tiny --seq 128 --steps 3 --warmup 1
  python3 bench/hf_peft_throughput.py --max-seq 24GiB 80GiB        # longest trainable seq at batch 1 under each limit

--max-seq runs every probe in its own process (as qtune's side does) with
torch.cuda.set_per_process_memory_fraction(limit / total memory); a probe that raises
torch.cuda.OutOfMemoryError counts as too long. Each run prints one summary line and appends one JSON line
to OUT/results.jsonl ("tool": "hf-peft").
"""
import argparse
import gc
import importlib.util
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput_common as t  # noqa: E402

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
EXIT_OOM = 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.environ.get("MODEL", "llama3-8b"), choices=sorted(t.SHAPES))
    p.add_argument("--seq", type=int, default=int(os.environ.get("SEQ", 2048)))
    p.add_argument("--batch", type=int, default=int(os.environ.get("BATCH", 1)))
    p.add_argument("--steps", type=int, default=int(os.environ.get("STEPS", 20)))
    p.add_argument("--warmup", type=int, default=int(os.environ.get("WARMUP", 5)))
    p.add_argument("--out", default=os.environ.get("OUT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runs", "bench_throughput")))
    p.add_argument("--peak-flops", type=float, default=float(os.environ.get("PEAK_FLOPS", t.DEFAULT_PEAK_FLOPS)))
    p.add_argument("--base", choices=["bf16", "4bit"], default="bf16", help="frozen base: bf16 (default) or bitsandbytes NF4")
    p.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa, eager, flash_attention_2)")
    p.add_argument("--gpu-memory-limit", default=None, help="cap the caching allocator, e.g. 24GiB (one run)")
    p.add_argument("--max-seq", nargs="+", metavar="LIMIT", help="find the longest seq at batch 1 under each limit")
    p.add_argument("--max-seq-start", type=int, default=1024)
    p.add_argument("--max-seq-cap", type=int, default=t.MAX_POSITION)
    p.add_argument("--max-seq-step", type=int, default=256, help="bisection stops when the bracket is this narrow")
    p.add_argument("--max-seq-steps", type=int, default=3, help="training steps of each probe")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not 0 <= args.warmup < args.steps:
        p.error("--warmup must be below --steps")
    args.out = os.path.abspath(args.out)
    return args


def dtype_kwargs(transformers, torch):
    # transformers 5 renamed from_config/from_pretrained's torch_dtype to dtype.
    major = int(transformers.__version__.split(".")[0])
    return {"dtype": torch.bfloat16} if major >= 5 else {"torch_dtype": torch.bfloat16}


def llama_config(transformers, model_name):
    s = t.shape(model_name)
    return transformers.LlamaConfig(
        vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["intermediate"], num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"], max_position_embeddings=t.MAX_POSITION,
        rope_theta=t.ROPE_THETA, rms_norm_eps=t.RMS_NORM_EPS, tie_word_embeddings=False, use_cache=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192})


def build_model(args, torch, transformers, peft, device):
    config = llama_config(transformers, args.model)
    kwargs = dict(attn_implementation=args.attn, **dtype_kwargs(transformers, torch))
    torch.manual_seed(args.seed)
    if args.base == "bf16":
        with torch.device(device):  # random init where the model runs: no host copy, no download
            model = transformers.AutoModelForCausalLM.from_config(config, **kwargs)
    else:
        if device != "cuda":
            raise SystemExit("--base 4bit needs a CUDA device (bitsandbytes)")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise SystemExit("--base 4bit needs bitsandbytes (pip install bitsandbytes); the default --base bf16 does not")
        # bitsandbytes quantizes at from_pretrained: save the random bf16 model once, then load it in 4 bits.
        path = os.path.join(args.out, "hf_models", args.model)
        if not os.path.exists(os.path.join(path, "config.json")):
            with torch.device(device):
                random_model = transformers.AutoModelForCausalLM.from_config(config, **kwargs)
            random_model.save_pretrained(path)
            del random_model
            gc.collect()
            torch.cuda.empty_cache()
        quantization = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                                       bnb_4bit_compute_dtype=torch.bfloat16)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, quantization_config=quantization, device_map={"": 0}, **kwargs)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lora)  # LoRA weights in fp32 (peft's autocast_adapter_dtype), as qtune's
    model.train()
    return model


def base_name(args):
    return "bf16" if args.base == "bf16" else "nf4-double-quant"  # as qtune's results lines name its base


def versions():
    out = {}
    for name in ("torch", "transformers", "peft", "bitsandbytes"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001: absent, or present but unusable here
            out[name] = None
    return out


def is_oom(error, torch):
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower() or "CUBLAS_STATUS_ALLOC_FAILED" in str(error)


def one_run(args):
    """Trains args.steps steps at (args.seq, args.batch); appends the results line; returns the exit status."""
    import torch
    import transformers
    import peft

    device = "cuda" if torch.cuda.is_available() else "cpu"
    fields = dict(status="ok", steps=args.steps, warmup=args.warmup, peak_flops=args.peak_flops, base=base_name(args), attn=args.attn,
                  gpu_memory_limit=args.gpu_memory_limit, device=device, versions=versions(),
                  gpu_name=torch.cuda.get_device_name() if device == "cuda" else None)
    if args.gpu_memory_limit:
        if device != "cuda":
            raise SystemExit("--gpu-memory-limit needs a CUDA device")
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, t.parse_size(args.gpu_memory_limit) / total), 0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    records, status = [], 0
    try:
        model = build_model(args, torch, transformers, peft, device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        fields["lora_parameters"] = sum(p.numel() for p in trainable)
        optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        vocab = t.shape(args.model)["vocab"]
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for step in range(1, args.steps + 1):
            ids = torch.randint(0, vocab, (args.batch, args.seq), device=device, generator=generator)
            sync()
            start = time.perf_counter()
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
            records.append(dict(step=step, tokens=ids.numel(), step_time_s=time.perf_counter() - start, loss=loss.item()))
            del ids, loss
    except Exception as error:  # noqa: BLE001: an out-of-memory error is a result here, anything else is not
        if not is_oom(error, torch):
            raise
        fields.update(status="oom", error=str(error).splitlines()[0][:300])
        status = EXIT_OOM
    if status == 0:
        tps, kept, seconds = t.steady_state(records, args.warmup)
        fields.update(tokens_per_s=tps, measured_steps=kept, measured_s=seconds, mean_step_time_s=seconds / kept if kept else None,
                      tokens_per_step=records[-1]["tokens"], final_loss=records[-1]["loss"])
    if device == "cuda":
        fields.update(peak_allocated_bytes=torch.cuda.max_memory_allocated(), peak_reserved_bytes=torch.cuda.max_memory_reserved())
    line = t.result_line("hf-peft", args.model, args.seq, args.batch, **fields)
    t.append_result(args.out, line)
    print(t.summary_text(line), flush=True)
    return status


def probe(args, limit, seq):
    """One --max-seq probe in a fresh process; True when it trained."""
    command = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--seq", str(seq), "--batch", "1",
               "--steps", str(args.max_seq_steps), "--warmup", str(1 if args.max_seq_steps > 1 else 0), "--out", args.out,
               "--peak-flops", str(args.peak_flops), "--base", args.base, "--attn", args.attn, "--gpu-memory-limit", limit,
               "--seed", str(args.seed)]
    code = subprocess.run(command).returncode
    if code not in (0, EXIT_OOM):
        raise SystemExit("the probe at seq %d failed for another reason than memory (exit %d)" % (seq, code))
    return code == 0


def max_seq(args, limit):
    """Doubles from --max-seq-start while it trains, then bisects the bracket down to --max-seq-step."""
    good, bad, seq = 0, 0, args.max_seq_start
    while seq <= args.max_seq_cap:
        if not probe(args, limit, seq):
            bad = seq
            break
        good, seq = seq, seq * 2
    while good == 0 and bad > args.max_seq_step:  # even the first failed: halve down
        seq = bad // 2
        if probe(args, limit, seq):
            good = seq
        else:
            bad = seq
    while good and bad and bad - good > args.max_seq_step:
        seq = (good + bad) // 2 // args.max_seq_step * args.max_seq_step
        if seq <= good:
            break
        if probe(args, limit, seq):
            good = seq
        else:
            bad = seq
    line = t.result_line("hf-peft", args.model, good, 1, mode="max_seq", status="ok", gpu_memory_limit=limit, max_seq=good,
                         first_failing_seq=bad or None, reached_cap=(bad == 0), max_seq_resolution=args.max_seq_step,
                         peak_flops=args.peak_flops, base=base_name(args), attn=args.attn, limit_kind="cuda caching allocator")
    t.append_result(args.out, line)
    print("hf-peft %s max seq at batch 1 under %s: %d%s" % (args.model, limit, good,
          " (the cap, --max-seq-cap)" if bad == 0 else " (%d failed: out of memory)" % bad), flush=True)


def main():
    args = parse_args()
    if not args.max_seq:
        return one_run(args)
    for limit in args.max_seq:
        t.parse_size(limit)  # fail early on a typo
    for limit in args.max_seq:
        max_seq(args, limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
