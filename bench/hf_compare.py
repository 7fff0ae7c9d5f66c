#!/usr/bin/env python3
"""Hugging Face side of the qtune-vs-HF training comparison: one LoRA/QLoRA run through transformers + PEFT + TRL,
measured from the outside like qtune's run, written as one JSON object.

What runs: the model of --model-dir (bf16 safetensors, SDPA attention) as it is (--base 16bit) or quantized by
bitsandbytes at load (--base nf4: NF4, double quantization, bf16 compute; on the CPU through bitsandbytes' CPU
backend), LoRA r=16 alpha 32 dropout 0 on every linear layer but lm_head (peft's "all-linear"), trained by TRL's
SFTTrainer (--task sft: JSONL {"text"} rows, loss on every token, no packing) or DPOTrainer (--task dpo: JSONL
conversational prompt/chosen/rejected pairs rendered by the tokenizer's chat template; sigmoid loss, beta 0.1; the
reference is the policy with its adapter disabled, recomputed every step). AdamW (torch), lr 1e-4 constant, no
weight decay, gradient clipping at 1.0, one micro-batch per step, bf16 autocast (on the CPU too: what a user of HF
with bf16 on a CPU gets). prepare_model_for_kbit_training is not called: it would upcast the norms and embeddings
to fp32, where qtune keeps them in bf16. Note that TRL itself casts the adapter to bf16 when the base is quantized.

What is measured (time.time() everywhere, so that the numbers line up with the caller's --launch-time):
  - step times: a TrainerCallback reads the clock at on_step_begin and on_step_end (after torch.cuda.synchronize()
    on CUDA), so a step is forward + backward + clipping + optimizer step; fetching and collating the batch happens
    before on_step_begin and is not counted, nor is the logging after on_step_end.
  - tokens per step: the non-padding tokens of the batch the policy forward received (attention_mask.sum(): for DPO
    the chosen and the rejected rows, prompt included), counted in compute_loss.
  - tokens_per_s: the tokens of the steps after the first --warmup / the sum of their step times.
  - time_to_first_step_s: on_step_begin of step 1 - --launch-time (the caller's clock just before it started this
    process): interpreter start, imports, model load, data preparation, trainer construction and set-up.
  - memory: on CUDA torch.cuda.max_memory_allocated / max_memory_reserved over training (reset just before
    trainer.train()); on the CPU the caller measures the process's peak RSS, and this records ru_maxrss too.

  HF_HUB_OFFLINE=1 python bench/hf_compare.py --model-dir M --data sft.jsonl --task sft --base nf4 --seq 512 \\
      --batch 4 --steps 20 --warmup 5 --checkpointing on --launch-time "$(date +%s.%N)" --out-json run.json

Exit status: 0 trained (status "ok"), 3 out of memory on CUDA (status "oom"), 1 any other error (status "error");
the JSON is written in every case (FILE.tmp, then renamed), with one summary line on stdout or "error: ..." on stderr.
"""
import time

SCRIPT_START = time.time()  # before the heavy imports, so setup_s can split the time to the first step

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: never wait on the network

EXIT_ERROR = 1
EXIT_OOM = 3
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", bias="none", task_type="CAUSAL_LM")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True, help="Hugging Face model folder (config, bf16 safetensors, tokenizer)")
    p.add_argument("--data", required=True, help="JSONL: {\"text\"} rows (sft) or prompt/chosen/rejected messages (dpo)")
    p.add_argument("--task", required=True, choices=["sft", "dpo"])
    p.add_argument("--base", required=True, choices=["16bit", "nf4"])
    p.add_argument("--seq", required=True, type=int, help="max_length: longer rows are cut (keep the start)")
    p.add_argument("--batch", required=True, type=int, help="rows per step (DPO: pairs per step)")
    p.add_argument("--steps", required=True, type=int)
    p.add_argument("--warmup", required=True, type=int, help="first steps left out of tokens_per_s")
    p.add_argument("--checkpointing", required=True, choices=["on", "off"], help="activation (gradient) checkpointing")
    p.add_argument("--launch-time", required=True, type=float, help="epoch seconds, taken by the caller just before it started this process")
    p.add_argument("--out-json", required=True)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    if not 0 <= args.warmup < args.steps:
        p.error("--warmup must be at least 0 and below --steps")
    if args.seq < 2 or args.batch < 1:
        p.error("--seq must be at least 2 and --batch at least 1")
    args.out_json = os.path.abspath(args.out_json)
    args.checkpointing = args.checkpointing == "on"
    return args


def import_libraries():
    """The heavy imports, as one namespace (timed as setup_s.imports)."""
    import datasets
    import peft
    import torch
    import transformers
    import trl

    return argparse.Namespace(datasets=datasets, peft=peft, torch=torch, transformers=transformers, trl=trl)


def library_versions():
    # From the installed metadata: importing bitsandbytes for its version alone would load its CPU/CUDA backend.
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "peft", "trl", "bitsandbytes"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def pick_device(requested, torch):
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    return requested


def load_tokenizer(lib, model_dir):
    tokenizer = lib.transformers.AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:  # TRL would do the same; done here so the choice is ours and visible
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(lib, args, device):
    """The base model, bf16 or NF4, placed where it trains (no host copy on CUDA)."""
    torch = lib.torch
    kwargs = dict(dtype=torch.bfloat16, attn_implementation="sdpa", device_map={"": 0 if device == "cuda" else "cpu"})
    if args.base == "nf4":
        kwargs["quantization_config"] = lib.transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
    model = lib.transformers.AutoModelForCausalLM.from_pretrained(args.model_dir, **kwargs)
    model.config.use_cache = False  # no KV cache in training (and it conflicts with checkpointing)
    return model


def load_rows(lib, args, work_dir):
    # A cache inside the run's own folder: every run prepares its data from scratch, so runs time alike.
    lib.datasets.disable_caching()
    return lib.datasets.load_dataset("json", data_files=args.data, cache_dir=os.path.join(work_dir, "datasets"))["train"]


def checkpointing_arguments(lib, on):
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns)."""
    fields = lib.transformers.TrainingArguments.__dataclass_fields__
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: on, name + "_kwargs": {"use_reentrant": False} if on else None}


def trainer_config(lib, args, device, work_dir):
    common = dict(
        output_dir=os.path.join(work_dir, "trainer"), per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
        max_steps=args.steps, learning_rate=1e-4, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch", logging_steps=1, save_strategy="no", eval_strategy="no", report_to="none",
        seed=0, dataloader_num_workers=0, dataloader_pin_memory=device == "cuda", bf16=True, use_cpu=device == "cpu",
        remove_unused_columns=True,  # TRL keeps the columns its collator needs (its signature columns)
        disable_tqdm=True, max_length=args.seq, **checkpointing_arguments(lib, args.checkpointing))
    if args.task == "sft":
        return lib.trl.SFTConfig(dataset_text_field="text", packing=False, padding_free=False, completion_only_loss=False,
                                 assistant_only_loss=False, **common)
    return lib.trl.DPOConfig(beta=0.1, loss_type="sigmoid", precompute_ref_log_probs=False, **common)


class StepRecorder:
    """Per-step clock readings (from the callback) and tokens and losses (from compute_loss). Tokens and losses stay
    tensors until the end: reading them mid-step would add a device sync the run does not otherwise have."""

    def __init__(self, synchronize):
        self.synchronize = synchronize
        self.begins, self.ends, self.tokens, self.padded_tokens, self.losses = [], [], [], [], []

    def clock(self):
        self.synchronize()
        return time.time()

    def count_batch(self, inputs, loss):
        self.tokens.append(inputs["attention_mask"].sum().detach())
        self.padded_tokens.append(inputs["input_ids"].numel())
        self.losses.append(loss.detach())

    def per_step(self):
        count = len(self.ends)
        if not (len(self.begins) == len(self.tokens) == count):
            raise RuntimeError("steps and compute_loss calls do not pair up (%d begins, %d ends, %d batches)"
                               % (len(self.begins), count, len(self.tokens)))
        times = [end - begin for begin, end in zip(self.begins, self.ends)]
        return times, [int(t) for t in self.tokens], [float(x) for x in self.losses]


def timing_callback(lib, recorder):
    class StepClock(lib.transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            recorder.begins.append(recorder.clock())

        def on_step_end(self, args, state, control, **kwargs):
            recorder.ends.append(recorder.clock())

    return StepClock()


def counting_trainer_class(base):
    """The TRL trainer, also recording each training batch's tokens and the loss its own compute_loss gave."""

    class CountingTrainer(base):
        recorder = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            result = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            if self.recorder is not None and model.training:
                self.recorder.count_batch(inputs, result[0] if return_outputs else result)
            return result

    return CountingTrainer


def build_trainer(lib, args, model, tokenizer, rows, config, recorder):
    """TRL wraps the model in a new LoRA adapter itself (peft_config): for DPO that makes the reference the policy
    with adapters disabled (a PeftModel passed in would instead get a copied "ref" adapter)."""
    base = lib.trl.SFTTrainer if args.task == "sft" else lib.trl.DPOTrainer
    trainer = counting_trainer_class(base)(model=model, args=config, train_dataset=rows, processing_class=tokenizer,
                                           peft_config=lib.peft.LoraConfig(**LORA), callbacks=[timing_callback(lib, recorder)])
    trainer.recorder = recorder
    # With tqdm off the Trainer prints every log dict to stdout; stdout is for this script's one summary line.
    trainer.remove_callback(lib.transformers.trainer_callback.PrinterCallback)
    return trainer


def check_trainer(lib, args, trainer):
    """Fails on a set-up that would measure something else than intended; returns the trainable parameter count."""
    model = trainer.model
    if not isinstance(model, lib.peft.PeftModel):
        raise RuntimeError("TRL did not wrap the model in a PeftModel")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise RuntimeError("no trainable parameters")
    if args.task == "dpo" and (trainer.ref_model is not None or "ref" in model.peft_config):
        raise RuntimeError("the DPO reference is not the policy with adapters disabled")
    if args.checkpointing and not model.get_input_embeddings()._forward_hooks:
        # Checkpointed layers need inputs that require grad, or no gradient reaches the adapters.
        model.enable_input_require_grads()
    return trainable


def checkpointing_active(model):
    """Whether the decoder layers checkpoint (read after training: the Trainer turns it on in train())."""
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def lora_dtype(model):
    dtypes = {str(p.dtype).replace("torch.", "") for p in model.parameters() if p.requires_grad}
    return "/".join(sorted(dtypes)).replace("float32", "fp32").replace("bfloat16", "bf16")


def compute_text(args, device, model):
    weights = "NF4 double-quant weights, bf16 compute" if args.base == "nf4" else "bf16 weights"
    autocast = "CUDA autocast bf16" if device == "cuda" else "CPU autocast bf16"
    text = "%s, %s, LoRA %s, SDPA" % (weights, autocast, lora_dtype(model))
    if args.task == "dpo":
        text += ", DPO reference = adapters disabled, recomputed each step"
    return text


def steady_tokens_per_s(step_times, tokens, warmup):
    seconds = sum(step_times[warmup:])
    return sum(tokens[warmup:]) / seconds if seconds > 0 else None


def train(lib, args, result, work_dir):
    """Loads, builds and trains; fills `result` as it goes (so a failure still reports what got done)."""
    torch = lib.torch
    device = pick_device(args.device, torch)
    result["device"] = device
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    setup = result["setup_s"]

    start = time.time()
    tokenizer = load_tokenizer(lib, args.model_dir)
    model = load_model(lib, args, device)
    setup["model_load"] = time.time() - start

    start = time.time()
    rows = load_rows(lib, args, work_dir)
    recorder = StepRecorder(synchronize)
    trainer = build_trainer(lib, args, model, tokenizer, rows, trainer_config(lib, args, device, work_dir), recorder)
    result["trainable_parameters"] = check_trainer(lib, args, trainer)
    setup["trainer_init"] = time.time() - start

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_call = time.time()
    try:
        trainer.train()
    finally:
        if device == "cuda":
            result["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
            result["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
        if recorder.begins:
            result["first_step_start"] = recorder.begins[0]
            result["time_to_first_step_s"] = recorder.begins[0] - args.launch_time
            setup["train_call_to_first_step"] = recorder.begins[0] - train_call

    step_times, tokens, losses = recorder.per_step()
    if len(step_times) != args.steps:
        raise RuntimeError("trained %d steps, not %d" % (len(step_times), args.steps))
    result.update(step_times_s=step_times, tokens_per_step=tokens, padded_tokens_per_step=recorder.padded_tokens,
                  losses=losses, tokens_per_s=steady_tokens_per_s(step_times, tokens, args.warmup),
                  checkpointing_active=checkpointing_active(trainer.model), compute=compute_text(args, device, trainer.model))


def empty_result(args):
    return dict(tool="hf", task=args.task, base=args.base, seq=args.seq, batch=args.batch, steps=args.steps,
                warmup=args.warmup, checkpointing=args.checkpointing, device=None, status="error", error=None,
                tokens_per_s=None, step_times_s=[], tokens_per_step=[], padded_tokens_per_step=[], losses=[],
                first_step_start=None, time_to_first_step_s=None, setup_s={}, peak_rss_bytes_self=None,
                peak_allocated_bytes=None, peak_reserved_bytes=None, trainable_parameters=None,
                checkpointing_active=None, versions={}, compute=None, launch_time=args.launch_time)


def is_out_of_memory(error, lib):
    torch = getattr(lib, "torch", None) if lib else None
    if torch is not None and isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error)
    return "out of memory" in text.lower() or "CUBLAS_STATUS_ALLOC_FAILED" in text


def one_line(error):
    lines = str(error).strip().splitlines()
    return ("%s: %s" % (type(error).__name__, lines[0] if lines else ""))[:500]


def write_json(path, result):
    """Whole or not at all: the caller never reads a half-written file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def summary(result):
    tps = result["tokens_per_s"]
    losses = result["losses"]
    return ("hf %s %s seq %d batch %d ckpt %s %s: %s tokens/s (steps %d-%d), %s tokens/step, first step %.2f s after launch, "
            "loss %.4f -> %.4f" % (
                result["task"], result["base"], result["seq"], result["batch"], "on" if result["checkpointing"] else "off",
                result["device"], "%.1f" % tps if tps else "n/a", result["warmup"] + 1, result["steps"],
                result["tokens_per_step"][-1], result["time_to_first_step_s"], losses[0], losses[-1]))


def main(argv=None):
    args = parse_args(argv)
    result = empty_result(args)
    os.makedirs(os.path.dirname(args.out_json), exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix=".hf_compare_", dir=os.path.dirname(args.out_json))
    lib, status = None, 0
    try:
        start = time.time()
        lib = import_libraries()
        result["setup_s"].update(interpreter_and_stdlib=SCRIPT_START - args.launch_time, imports=time.time() - start)
        result["versions"] = library_versions()
        train(lib, args, result, work_dir)
        result["status"] = "ok"
    except Exception as error:  # noqa: BLE001: every failure is a result to report
        oom = result.get("device") == "cuda" and is_out_of_memory(error, lib)
        result.update(status="oom" if oom else "error", error=one_line(error))
        status = EXIT_OOM if oom else EXIT_ERROR
    finally:
        result["peak_rss_bytes_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        shutil.rmtree(work_dir, ignore_errors=True)  # the trainer's output_dir and the data cache: nothing is kept
        write_json(args.out_json, result)
    if status:
        print("error: %s" % result["error"], file=sys.stderr, flush=True)
    else:
        print(summary(result), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
