#!/usr/bin/env python3
"""qtune's GGUF export against llama.cpp itself (bench/gguf_llama_cpp.sh runs this with llama-cpp-python's Python).

Per architecture (llama, whose Q/K rows qtune permutes for ggml's rope, and qwen2, which needs no permutation):
  model      `qtune init-model` (f32, hidden 256 so K-quant rows apply, byte-level tokenizer), the parity task of
             scripts/make_demo_data.py, `qtune train configs/tiny-qlora-sft.yaml` (LoRA on a 16-bit base, so a
             GGUF adapter over the f16 base means the same as the merged weights), `qtune merge` to f32 and to f16.
  files      `qtune export` of base+adapter at every type, of the base alone (f16), of the adapter alone (f16, f32),
             and of the f16-merged folder at q8_0/q4_0/q4_k_m; llama.cpp's quantizer (llama_model_quantize) run on
             qtune's f16 file at q8_0/q4_0/q4_k_m.
  loads      llama.cpp opens every file and computes with it.
  greedy     32 tokens by argmax over llama.cpp's logits, stopping at EOS as qtune does, for 5 held-out chat prompts
             (ChatML rendered by hand, the same text both sides) and 3 raw prompts; against `qtune generate` of the
             merged folder and of the same GGUF file. A difference is shown with llama.cpp's top-2 logit gap there.
  lora       base.f16.gguf + the adapter GGUF (lora_path) against the merged f16 file: greedy text, logits.
  quantizer  llama.cpp's q8_0/q4_0/q4_k_m of qtune's f16 file against qtune's files, tensor by tensor (gguf-py).
  as f32     an F32 copy of each 16-bit and quantized file (gguf-py dequantize): llama.cpp computing with exactly the
             weights qtune computes with, without its 8/16-bit rounding of the activations, against `qtune generate`
             and `qtune eval` of the original file.
  quality    exact match on the 100 held-out prompts (llama.cpp, every file) and perplexity of the held-out
             conversations (`qtune eval` and llama.cpp's logits on the same tokens, one sequence per conversation).
Writes OUT/report.md (also printed) and OUT/report.json. --reuse keeps the trained models of an earlier run in OUT.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_llama_cpp_report as report  # noqa: E402
import gguf_llama_cpp_side as side  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"]
LLAMA_FTYPES = {"q8_0": 7, "q4_0": 2, "q4_k_m": 15}  # llama_ftype LLAMA_FTYPE_MOSTLY_*
SHAPE = ["--hidden", "256", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "512"]
RAW_PROMPTS = ["parity of 31415 is", "Once upon a time", "0123456789"]
GREEDY_CHAT_PROMPTS = 5
MAX_NEW = 32
# qtune init-model --byte-tokenizer writes GPT-2's pre-tokenizer (ByteLevel with its own regex; "gpt-2" in GGUF). Real
# Llama 3 and Qwen 2 checkpoints carry their family's split regex ("llama-bpe", "qwen2"), so the bench writes that one
# into the base's tokenizer.json: with a vocabulary of single bytes and no merges every pre-tokenizer gives the same
# ids. OUT/ARCH/unpatched.gguf is the base exported with init-model's own tokenizer.json, for comparison.
SPLIT_REGEX = {
    "llama": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}


def chatml(user, assistant=None):
    text = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return text if assistant is None else text + f"{assistant}<|im_end|>\n"


class Qtune:
    """Runs qtune commands, keeping each one's command line, seconds and (on failure) its last error line."""

    def __init__(self, binary, log_path):
        self.binary, self.log = binary, open(log_path, "a")

    def __call__(self, *args, check=True):
        cmd = [self.binary, *map(str, args)]
        start = time.time()
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        seconds = time.time() - start
        self.log.write(f"$ {' '.join(cmd)}  # {seconds:.1f} s, rc {done.returncode}\n{done.stdout[-4000:]}{done.stderr[-4000:]}\n")
        self.log.flush()
        if check and done.returncode != 0:
            raise RuntimeError(last_line(done.stderr) or last_line(done.stdout) or f"rc {done.returncode}")
        return done.stdout, seconds


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def attempt(what, fn, *args):
    """fn(*args), or {'error': message} when it raises: the bench goes on and the report shows what failed."""
    try:
        return fn(*args)
    except Exception as e:  # qtune or llama.cpp refused: recorded, not fatal
        print(f"  {what}: {type(e).__name__}: {e}", file=sys.stderr)
        return {"error": f"{e}"}


def use_named_pre_tokenizer(model_dir, arch):
    path = os.path.join(model_dir, "tokenizer.json")
    with open(path) as f:
        doc = json.load(f)
    split = {"type": "Split", "pattern": {"Regex": SPLIT_REGEX[arch]}, "behavior": "Isolated", "invert": False}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    doc["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split, byte_level]}
    with open(path, "w") as f:
        json.dump(doc, f, ensure_ascii=False)


def make_data(out):
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_demo_data.py"), out], check=True, capture_output=True)
    with open(os.path.join(out, "test.jsonl")) as f:
        test = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(out, "heldout.jsonl"), "w") as f:
        for item in test:
            f.write(json.dumps({"text": chatml(item["prompt"], item["expected"])}) + "\n")
    prompts = [chatml(item["prompt"]) for item in test[:GREEDY_CHAT_PROMPTS]] + RAW_PROMPTS
    with open(os.path.join(out, "greedy.jsonl"), "w") as f:
        for p in prompts:
            f.write(json.dumps({"prompt": p}) + "\n")
    return {"dir": out, "test": test, "prompts": prompts, "heldout": [chatml(i["prompt"], i["expected"]) for i in test]}


def train_model(q, arch, work, data, epochs, reuse):
    """init-model, the named pre-tokenizer, train, merge to f32 and f16 (or, with reuse, what an earlier run made).
    Returns what the report says of it."""
    record = f"{work}/model.json"
    if reuse and os.path.exists(record):
        with open(record) as f:
            return json.load(f)
    model = make_and_train(q, arch, work, data, epochs)
    with open(record, "w") as f:
        json.dump(model, f)
    return model


def make_and_train(q, arch, work, data, epochs):
    base, adapter = f"{work}/base", f"{work}/adapter"
    q("init-model", "--arch", arch, "--out", base, *SHAPE, "--dtype", "f32", "--init-std", "0.2", "--seed", "0", "--byte-tokenizer",
      "--force")
    unpatched = attempt("export with init-model's tokenizer", q, "export", "--model", base, "--out", f"{work}/unpatched.gguf", "--force")
    use_named_pre_tokenizer(base, arch)
    datasets = f"[{{path: {data['dir']}/train.jsonl, type: chat_template}}]"
    out, train_s = q("train", os.path.join(ROOT, "configs", "tiny-qlora-sft.yaml"), f"base_model={base}", f"output_dir={adapter}",
                     "load_in_4bit=false", f"num_epochs={epochs}", f"datasets={datasets}")
    for dtype in ("f32", "f16"):
        q("merge", "--base", base, "--adapter", adapter, "--out", f"{work}/merged-{dtype}", "--dtype", dtype, "--force")
    return {"train_seconds": train_s, "train_last": last_line(out),
            "unpatched_export": unpatched.get("error", "exported") if isinstance(unpatched, dict) else "exported"}


def export_files(q, work):
    """Every GGUF file qtune writes for the bench: name -> {path, seconds} or {error}."""
    g, base, adapter = f"{work}/gguf", f"{work}/base", f"{work}/adapter"
    os.makedirs(g, exist_ok=True)
    jobs = {f"merged.{t}": ["--model", base, "--adapter", adapter, "--type", t] for t in TYPES}
    jobs["base.f16"] = ["--model", base, "--type", "f16"]
    for t in ("f16", "f32"):
        jobs[f"adapter.{t}"] = ["--model", base, "--adapter", adapter, "--adapter-only", "--type", t]
    for t in LLAMA_FTYPES:
        jobs[f"merged16.{t}"] = ["--model", f"{work}/merged-f16", "--type", t]
    files = {}
    for name, args in jobs.items():
        path = f"{g}/{name}.gguf"
        result = attempt(f"export {name}", q, "export", *args, "--out", path, "--force")
        files[name] = result if isinstance(result, dict) else {"path": path, "seconds": result[1], "said": last_line(result[0])}
    return files


def llama_quantize_files(files, work):
    """llama.cpp's quantizer on qtune's f16 file: llama.q8_0 etc."""
    src = files["merged.f16"].get("path")
    for t, ftype in LLAMA_FTYPES.items():
        dst = f"{work}/gguf/llama.{t}.gguf"
        files[f"llama.{t}"] = {"error": "no merged.f16 file"} if src is None else attempt(f"quantize {t}", quantize_timed, src, dst, ftype)


def dequantized_files(files, work):
    """An F32 copy (gguf-py dequantize) of each 16-bit and quantized model file: '<name> as f32'."""
    for name in [n for n in files if n.startswith(("merged.", "base.")) and n != "merged.f32"]:
        if "path" in files[name]:
            dst = f"{work}/gguf/{name}.as-f32.gguf"
            result = attempt(f"dequantize {name}", side.dequantized_copy, files[name]["path"], dst)
            files[f"{name} as f32"] = result if isinstance(result, dict) else {"path": dst, "source": name}


def quantize_timed(src, dst, ftype):
    start = time.time()
    side.quantize(src, dst, ftype, os.path.join(os.path.dirname(dst), "llama_quantize.log"))
    return {"path": dst, "seconds": time.time() - start}


def qtune_generations(q, model, data, adapter=None):
    """`qtune generate` of the greedy prompts (raw text with its special tokens parsed, no template added)."""
    extra = ["--adapter", adapter] if adapter else []
    out, _ = q("generate", "--model", model, *extra, "--prompts", f"{data['dir']}/greedy.jsonl", "--max-new-tokens", MAX_NEW)
    texts = [json.loads(line)["completion"] for line in out.splitlines() if line.startswith("{")]
    return {"greedy": texts}


def qtune_eval(q, model, data, adapter=None):
    extra = ["--adapter", adapter] if adapter else []
    out, _ = q("eval", "--model", model, *extra, "--text", f"{data['dir']}/heldout.jsonl", "--json")
    return json.loads(last_line(out))


def qtune_side(q, work, files, data):
    """qtune generate / eval of the merged folders and of every GGUF file that holds a whole model."""
    models = {"merged folder (f32)": f"{work}/merged-f32", "base folder (f32)": f"{work}/base"}
    models.update({name: f["path"] for name, f in files.items() if "path" in f and not name.startswith("adapter.") and "source" not in f})
    results = {}
    for name, model in models.items():
        print(f"  qtune generate/eval {name}", file=sys.stderr)
        results[name] = {"generate": attempt(f"qtune generate {name}", qtune_generations, q, model, data),
                         "eval": attempt(f"qtune eval {name}", qtune_eval, q, model, data)}
    for name in ("merged folder (f32)", "base folder (f32)"):
        results[name]["accuracy"] = attempt(f"qtune accuracy {name}", qtune_exact_match, q, models[name], data)
    results["base folder + adapter"] = {"eval": attempt("qtune eval base+adapter", qtune_eval, q, f"{work}/base", data, f"{work}/adapter"),
                                        "generate": attempt("qtune generate base+adapter", qtune_generations, q, f"{work}/base", data,
                                                            f"{work}/adapter")}
    return results


def qtune_exact_match(q, model, data):
    out, _ = q("generate", "--model", model, "--prompts", f"{data['dir']}/test.jsonl", "--chat", "--max-new-tokens", "6")
    return last_line(out)


def llama_file(path, data, lora=None, exact_match=True):
    """Everything llama.cpp computes with one file: greedy texts, held-out exact match (unless told not to), NLL and
    logits per record."""
    llm = side.open_model(path, lora)
    stop = {llm.token_eos()}
    greedy = []
    for prompt in data["prompts"]:
        ids, gaps = side.greedy(llm, side.tokenize(llm, prompt), MAX_NEW, stop)
        greedy.append({"text": side.detokenize(llm, ids), "ids": ids, "gaps": gaps, "pieces": [side.piece_hex(llm, i) for i in ids]})
    matched = 0
    for item in data["test"] if exact_match else []:
        ids, _ = side.greedy(llm, side.tokenize(llm, chatml(item["prompt"])), 6, stop)
        matched += side.detokenize(llm, ids).strip() == item["expected"].strip()
    nll, tokens, logits = 0.0, 0, []
    for text in data["heldout"]:
        ids = side.tokenize(llm, text)
        rows = side.sequence_logits(llm, ids)
        s, n = side.nll_of_sequence(rows, ids)
        nll, tokens = nll + s, tokens + n
        logits.append(rows)
    llm.close()
    return {"greedy": greedy, "exact_match": matched, "of": len(data["test"]) if exact_match else 0, "nll": nll, "tokens": tokens,
            "logits": logits}


def llama_side(files, data):
    results = {}
    for name, f in files.items():
        if "path" not in f or name.startswith("adapter."):
            continue
        print(f"  llama.cpp {name}", file=sys.stderr)
        results[name] = attempt(f"llama.cpp {name}", llama_file, f["path"], data, None, "source" not in f)
    base = files.get("base.f16", {}).get("path")
    for t in ("f16", "f32"):
        adapter = files.get(f"adapter.{t}", {}).get("path")
        name = f"base.f16 + adapter.{t} (lora_path)"
        print(f"  llama.cpp {name}", file=sys.stderr)
        results[name] = attempt(name, llama_file, base, data, adapter) if base and adapter else {"error": "file missing"}
    return results


def quantizer_comparisons(files):
    rows = []
    for t in LLAMA_FTYPES:
        for qtune_name in (f"merged16.{t}", f"merged.{t}"):
            a, b = files.get(f"llama.{t}", {}).get("path"), files.get(qtune_name, {}).get("path")
            result = attempt(f"compare {t}", side.compare_files, a, b) if a and b else {"error": "file missing"}
            rows.append({"type": t, "llama": f"llama.{t}", "qtune": qtune_name, "result": result})
    return rows


def run_arch(q, arch, out, data, args):
    work = f"{out}/{arch}"
    os.makedirs(work, exist_ok=True)
    print(f"== {arch}: model, training, merges", file=sys.stderr)
    model = train_model(q, arch, work, data, args.epochs, args.reuse)
    print(f"== {arch}: qtune export", file=sys.stderr)
    files = export_files(q, work)
    llama_quantize_files(files, work)
    dequantized_files(files, work)
    for f in files.values():
        if "path" in f:
            f["types"], f["bytes"] = side.type_counts(f["path"]), os.path.getsize(f["path"])
    print(f"== {arch}: qtune generate / eval", file=sys.stderr)
    qt = qtune_side(q, work, files, data)
    print(f"== {arch}: llama.cpp", file=sys.stderr)
    ll = llama_side(files, data)
    print(f"== {arch}: tensor comparisons", file=sys.stderr)
    return {"arch": arch, "model": model, "files": files, "qtune": qt, "llama": ll, "quantizer": quantizer_comparisons(files)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qtune", required=True)
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "gguf-llama-cpp"))
    ap.add_argument("--arch", default="llama,qwen2", help="comma-separated: llama, qwen2")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs over the 800 conversations (34 steps each)")
    ap.add_argument("--reuse", action="store_true", help="keep the trained model and merges of an earlier run in --out")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    start = time.time()
    binary = os.path.join(out, "qtune")  # a copy: a rebuild of build/trainer/qtune during the run changes nothing
    shutil.copy2(args.qtune, binary)
    q = Qtune(binary, f"{out}/commands.log")
    data = make_data(f"{out}/parity")
    runs = [run_arch(q, arch, out, data, args) for arch in args.arch.split(",")]
    meta = report.environment(q.binary, os.environ.get("GGUF_BENCH_COMMAND", " ".join(sys.argv)), start)
    text = report.render(runs, meta, data)
    with open(f"{out}/report.md", "w") as f:
        f.write(text)
    with open(f"{out}/report.json", "w") as f:
        json.dump({"meta": meta, "runs": report.jsonable(runs)}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
