"""Shared by the reference scripts: arguments, running qtune, the tiny models of the four architectures, saving.

The scripts only run the reference libraries (transformers, PEFT, TRL, bitsandbytes) and qtune's command line;
every comparison is made by the C++ tests in tests/reference/*.cpp."""
import argparse
import json
import os
import shutil
import subprocess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

transformers.utils.logging.disable_progress_bar()  # keep ctest's log to what the scripts print

# qtune init-model flags per architecture: Llama keeps its preset's llama3 rope scaling; Mistral gets a window
# shorter than the test sequences; Qwen2 keeps its q/k/v biases and tied embeddings; Qwen3 its q/k norms. Gemma 2:
# window 5 on even layers, soft-capping, a head_dim (32) that is not the query scale's hidden/heads (16). Gemma 3:
# sliding and full layers alternate (pattern 2) with their two rope bases, linear scaling on the full ones. Phi-3:
# fused projections, RoPE on 3/4 of each head, longrope with an original context of 512 (the offset case's positions
# pass it: long factors; the others: short), window 7.
ARCH_FLAGS = {
    "llama": [],
    "mistral": ["--sliding-window", "5"],
    "qwen2": [],
    "qwen3": ["--head-dim", "32"],
    "gemma2": ["--sliding-window", "5", "--head-dim", "32"],
    "gemma3": ["--sliding-window", "5", "--sliding-window-pattern", "2", "--head-dim", "32"],
    "phi3": ["--sliding-window", "7", "--partial-rotary-factor", "0.75", "--original-max-positions", "512"],
}
# Mixture of experts: Mixtral with 4 experts of intermediate 128, top 2; Qwen3-MoE with 8 experts of 48, top 3 (a k
# above 2 tells the per-token summation order apart), q/k norms. Their router weights are N(0, 0.2²) like the rest,
# which spreads a 64-wide hidden state's router logits (std ~1.6) so that no choice hangs on a rounding difference.
MOE_FLAGS = {
    "mixtral": ["--experts", "4", "--experts-per-token", "2"],
    "qwen3_moe": ["--head-dim", "32", "--experts", "8", "--experts-per-token", "3", "--moe-intermediate", "48"],
}
NEW_FAMILIES = ("gemma2", "gemma3", "phi3", "mixtral", "qwen3_moe")
VOCAB = 300


def parse_args(description, extra=None):
    """--qtune BINARY --out DIR (emptied first) [--models DIR] plus what `extra(parser)` adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--qtune", required=True, help="the qtune binary")
    parser.add_argument("--out", required=True, help="output folder (emptied first)")
    if extra:
        extra(parser)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)  # nothing left from an earlier run if this one fails
    os.makedirs(args.out)
    torch.manual_seed(0)
    return args


def run_qtune(qtune, *args):
    """Runs qtune; raises with its output when it fails."""
    done = subprocess.run([qtune, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"qtune {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}")
    return done.stdout


def train_qtune(qtune, model_dir, out, settings):
    """Trains 3 steps with `qtune train` on six short chat samples (sequence_len 64, micro-batches of 2, lr 0.05, no
    dropout, seed 3, on the CPU) plus `settings` (YAML lines: the LoRA keys); returns the run folder, out/run."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "train.jsonl"), "w") as f:
        for word in ["alpha", "beta", "gamma", "delta", "omega", "sigma"]:
            turns = [{"role": "user", "content": f"say {word}"}, {"role": "assistant", "content": f"{word} {word}"}]
            f.write(json.dumps({"messages": turns}) + "\n")
    with open(os.path.join(out, "config.yaml"), "w") as f:
        f.write(f"base_model: {model_dir}\ndatasets:\n  - path: {out}/train.jsonl\n    type: chat_template\n"
                "chat_template: chatml\nsequence_len: 64\nmicro_batch_size: 2\nmax_steps: 3\nlearning_rate: 0.05\n"
                f"lora_dropout: 0.0\n{settings}output_dir: {out}/run\nseed: 3\ndevice: cpu\n")
    run_qtune(qtune, "train", os.path.join(out, "config.yaml"))
    return os.path.join(out, "run")


def init_model(qtune, arch, out, dtype="f32", seed=0, extra=()):
    """A tiny random model of `arch` written by `qtune init-model` (hidden 64, 2 layers, 4 heads, 2 KV heads,
    vocabulary 300 with qtune's byte-level tokenizer, weights N(0, 0.2²) so logits are far from uniform), its norm
    weights then moved off their identity value by N(0, 0.1²) each, so that every norm is told apart."""
    run_qtune(qtune, "init-model", "--arch", arch, "--out", out, "--hidden", 64, "--layers", 2, "--heads", 4,
              "--kv-heads", 2, "--intermediate", 128, "--vocab", VOCAB, "--dtype", dtype, "--init-std", 0.2,
              "--seed", seed, "--byte-tokenizer", "--force", *{**ARCH_FLAGS, **MOE_FLAGS}[arch], *extra)
    if arch in NEW_FAMILIES:
        perturb_norms(out, seed)
    return out


def perturb_norms(folder, seed):
    g = torch.Generator().manual_seed(seed + 7)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            path = os.path.join(folder, name)
            tensors = load_file(path)
            for key in sorted(tensors):
                if key.endswith("norm.weight"):
                    t = tensors[key]
                    tensors[key] = (t.float() + 0.1 * torch.randn(t.shape, generator=g)).to(t.dtype)
            save_file(tensors, path, metadata={"format": "pt"})


def save_tensors(path, tensors):
    """safetensors file of contiguous CPU tensors (what the C++ tests read)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path)
