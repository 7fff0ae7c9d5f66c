#!/usr/bin/env python3
"""transformers' perplexity on the windows `qtune eval` scores, for the four tiny models of Reference.models
(--models DIR, each with qtune's byte-level tokenizer.json).

Per architecture, in <out>/<arch>/: text.txt and records.jsonl (what is scored), adapter/ (a PEFT adapter, random
A and B), and per case <case>.json = {"qtune": what `qtune eval --json` printed, "transformers": {"nll_sum",
"tokens", "perplexity"}}. tests/reference/test_eval_reference.cpp (suite EvalReference) compares them.

transformers' side, as its perplexity guide computes it: the text tokenized once by the tokenizer (with what its
post-processor adds), windows of `context` tokens starting `stride` apart (min(stride, context − 1): with stride =
context the windows share one token so that none goes unscored), labels −100 except the tokens the previous window
did not score, model(input_ids, labels=...) in float32; loss × the number of labels it averaged gives the NLL sum.
Records: each "text" tokenized alone, cut to the context, labels = input_ids.
Cases: windows (context 128, stride 48), shared (context 128, stride 128), records (context 64: one record is
cut), adapter (the PEFT adapter on the base, context 96, stride 40).
"""
import json
import math
import os

import reference_common as common
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

TEXT = (
    "In the spring of that year the river rose higher than anyone in the village could remember. Farmers moved "
    "their cattle to the hills, and the baker, who had never once closed his shop, sold bread from a rowing boat. "
    "Children thought it was wonderful; their parents counted sandbags. By June the water had gone, leaving a "
    "fine grey silt over every field, and the harvest that followed was the best in forty years.\n\n"
    "Measuring how surprised a language model is by a text is simple: for each token, take the probability the "
    "model gave it after reading everything before it, average the negative logarithms, and exponentiate. A "
    "model that guessed uniformly among 300 symbols would score exactly 300; one that knew the text by heart "
    "would score 1. Numbers (3.14159, 2,718, 1/137), punctuation -- quotes, \"dashes\", [brackets] -- and odd "
    "words like quixotic, syzygy or floccinaucinihilipilification all count the same way.\n"
)
RECORDS = [
    "A short record.",
    "Records are scored one by one, each from its own beginning, and the negative log-likelihoods of all their "
    "tokens are added up before dividing by how many tokens were scored.",
    "Tea, coffee, or water?",
    "The last record mentions nothing in particular.",
]
CASES = {
    "windows": dict(text="text.txt", context=128, stride=48),
    "shared": dict(text="text.txt", context=128, stride=128),
    "records": dict(text="records.jsonl", context=64),
    "adapter": dict(text="text.txt", context=96, stride=40, adapter=True),
}


def nll_of(model, ids, labels):
    """The summed NLL transformers' causal-LM loss averages, and over how many tokens."""
    with torch.no_grad():
        loss = model(input_ids=ids.unsqueeze(0), labels=labels.unsqueeze(0), use_cache=False).loss
    tokens = int((labels[1:] != -100).sum())  # the loss shifts: label t + 1 is predicted at position t
    return loss.item() * tokens, tokens


def windows_nll(model, ids, context, stride):
    """The perplexity guide's loop over one token stream."""
    step, total, tokens, previous_end = min(stride, context - 1), 0.0, 0, 0
    for begin in range(0, len(ids), step):
        end = min(begin + context, len(ids))
        window = ids[begin:end]
        labels = window.clone()
        labels[: -(end - previous_end)] = -100  # only what the previous window did not score
        nll, n = nll_of(model, window, labels)
        total, tokens, previous_end = total + nll, tokens + n, end
        if end == len(ids):
            break
    return total, tokens


def records_nll(model, tokenizer, context):
    total, tokens = 0.0, 0
    for text in RECORDS:
        ids = torch.tensor(tokenizer(text)["input_ids"][:context])
        nll, n = nll_of(model, ids, ids.clone())
        total, tokens = total + nll, tokens + n
    return total, tokens


def make_adapter(model_dir, out):
    """A PEFT adapter with random A and B (init_lora_weights=False) on every projection, r 4, alpha 8."""
    torch.manual_seed(7)
    config = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
                        target_modules=["q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj",
                                        "gate_up_proj", "down_proj"])  # each family has 4 or 7 of these
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), config).save_pretrained(out)
    return out


def run_case(args, model_dir, out, case, models, tokenizer, ids):
    spec = CASES[case]
    flags = ["--model", model_dir, "--text", os.path.join(out, spec["text"]), "--context", spec["context"], "--json"]
    if "stride" in spec:
        flags += ["--stride", spec["stride"]]
    if spec.get("adapter"):
        flags += ["--adapter", os.path.join(out, "adapter")]
    printed = common.run_qtune(args.qtune, "eval", *flags).strip().splitlines()[-1]
    model = models["adapter" if spec.get("adapter") else "base"]
    if spec["text"] == "records.jsonl":
        nll, tokens = records_nll(model, tokenizer, spec["context"])
    else:
        nll, tokens = windows_nll(model, ids, spec["context"], spec["stride"])
    reference = {"nll_sum": nll, "tokens": tokens, "perplexity": math.exp(nll / tokens)}
    with open(os.path.join(out, case + ".json"), "w") as f:
        json.dump({"qtune": json.loads(printed), "transformers": reference}, f, indent=1)
    return reference


def main():
    args = common.parse_args(__doc__, lambda p: p.add_argument("--models", required=True, help="Reference.models' output"))
    for arch in common.ARCH_FLAGS:
        model_dir, out = os.path.join(args.models, arch), os.path.join(args.out, arch)
        os.makedirs(out)
        with open(os.path.join(out, "text.txt"), "w") as f:
            f.write(TEXT)
        with open(os.path.join(out, "records.jsonl"), "w") as f:
            f.writelines(json.dumps({"text": text}) + "\n" for text in RECORDS)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        ids = torch.tensor(tokenizer(TEXT)["input_ids"])
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        adapter = make_adapter(model_dir, os.path.join(out, "adapter"))
        with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), adapter).eval()
        models = {"base": base, "adapter": with_adapter}
        for case in CASES:
            r = run_case(args, model_dir, out, case, models, tokenizer, ids)
            print(f"{arch} {case}: transformers perplexity {r['perplexity']:.4f} over {r['tokens']} tokens")


if __name__ == "__main__":
    main()
