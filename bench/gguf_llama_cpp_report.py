"""The Markdown report of bench/gguf_llama_cpp.py: the environment, and per architecture the files, the greedy
comparison, the LoRA adapter and the quantizer comparison as tables."""
import codecs
import datetime
import importlib.metadata
import math
import os
import platform
import subprocess
import time

LORA_ROWS = ("base.f16 + adapter.f16 (lora_path)", "base.f16 + adapter.f32 (lora_path)")


def environment(qtune, command, start):
    import llama_cpp

    version = subprocess.run([qtune, "--version"], capture_output=True, text=True).stdout.strip()
    return {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - start, 1), "qtune": version, "llama_cpp_python": llama_cpp.__version__,
            "gguf": importlib.metadata.version("gguf"), "numpy": importlib.metadata.version("numpy"),
            "machine": f"{cpu_name()}, {os.cpu_count()} cores, {os_name()}"}


def cpu_name():
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return names[0] if names else platform.machine()


def os_name():
    try:
        with open("/etc/os-release") as f:
            fields = dict(line.rstrip().split("=", 1) for line in f if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"') or platform.platform()
    except OSError:
        return platform.platform()


def jsonable(value):
    """The runs without llama.cpp's logits (kept in memory only)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "logits"}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def err(result):
    return isinstance(result, dict) and "error" in result


def short(text, n=60):
    """One table cell: | escaped, newlines as ⏎, other control characters as \\xNN, cut to n characters."""
    text = "".join(c if c.isprintable() or c == "\n" else f"\\x{ord(c):02x}" for c in text)
    text = text.replace("|", "\\|").replace("\n", "⏎")
    return text if len(text) <= n else text[: n - 1] + "…"


def perplexity(result):
    if err(result) or result is None:
        return "—"
    return f"{math.exp(result['nll'] / result['tokens']):.4f} ({result['tokens']} tok)"


def qtune_perplexity(result):
    if result is None:
        return "—"
    if err(result):
        return f"error: {short(result['error'], 80)}"
    return f"{result['perplexity']:.4f} ({result['tokens']} tok)"


def nll_difference(qtune_eval, llama):
    """qtune eval's mean NLL minus llama.cpp's on the same tokens, in nats (and whether the token counts agree)."""
    if qtune_eval is None or llama is None or err(qtune_eval) or err(llama):
        return "—"
    same = "" if qtune_eval["tokens"] == llama["tokens"] else f" (tokens {qtune_eval['tokens']} vs {llama['tokens']})"
    return f"{qtune_eval['mean_nll'] - llama['nll'] / llama['tokens']:+.5f}{same}"


def parting_token(llama, other):
    """Where llama.cpp's generated tokens and the other text part: the largest k such that the first k tokens end on a
    whole UTF-8 character and decode to a prefix of `other` (token k is the first one the other side did not pick)."""
    decoder, text, agreed = codecs.getincrementaldecoder("utf-8")("replace"), "", 0
    for k, piece in enumerate(llama["pieces"], start=1):
        text += decoder.decode(bytes.fromhex(piece))
        if not other.startswith(text):
            break
        if decoder.getstate()[0] == b"":  # no partial character pending
            agreed = k
    return agreed


def greedy_cell(llama, other_texts, i):
    """'=' when the texts agree, else the token where they part and llama.cpp's top-2 logit gap at that step."""
    if err(other_texts):
        return f"error: {short(other_texts['error'], 60)}"
    other = other_texts[i]
    if llama["text"] == other:
        return "="
    k = parting_token(llama, other)
    return f"≠ from token {k} (gap {parting_gap(llama, k):.3g}): {short(other, 40)}"


def parting_gap(llama, k):
    """llama.cpp's smallest top-2 logit gap over the parting character's tokens (a UTF-8 character spans up to 4 byte
    tokens, and the text alone does not say which of them the other side picked differently)."""
    return min(llama["gaps"][k : k + 4] or llama["gaps"][-1:])


def greedy_agreement(llama, other_texts):
    if err(llama) or err(other_texts):
        return "—"
    same = sum(g["text"] == t for g, t in zip(llama["greedy"], other_texts))
    return f"{same}/{len(llama['greedy'])}"


def max_logit_diff(a, b):
    if err(a) or err(b) or a is None or b is None:
        return "—"
    return f"{max(float(abs(x - y).max()) for x, y in zip(a['logits'], b['logits'])):.3g}"


def qtune_result(run, name):
    """What qtune computed for the model of row `name`: a dequantized copy's source file, base + adapter for a LoRA row."""
    source = run["files"].get(name, {}).get("source")
    return run["qtune"].get(source or name) or (run["qtune"].get("base folder + adapter") if name in LORA_ROWS else None)


def file_rows(run):
    files, ll, qt = run["files"], run["llama"], run["qtune"]
    reference = ll.get("merged.f32")
    rows = []
    for name in ["merged folder (f32)", "base folder (f32)", *[n for n in files if not n.startswith("adapter.")], *LORA_ROWS]:
        f, lr = files.get(name, {}), ll.get(name)
        q = qtune_result(run, name) or {}
        types = ", ".join(f"{k} {v}" for k, v in f.get("types", {}).items()) if "types" in f else ("—" if not err(f) else "")
        loads = "—" if lr is None else ("**refused**: " + short(lr["error"], 100) if err(lr) else "loads, computes")
        if err(f):
            loads = "**not written**: " + short(f["error"], 100)
        match = q.get("accuracy") or (f"{lr['exact_match']}/{lr['of']}" if lr and not err(lr) and lr["of"] else "—")
        gen = q.get("generate")
        agree = greedy_agreement(lr, gen["greedy"] if gen and not err(gen) else gen) if lr and gen else "—"
        rows.append([name, types, f"{f['bytes'] / 1e6:.2f}" if "bytes" in f else "—", loads, match, agree,
                     qtune_perplexity(q.get("eval")), perplexity(lr), nll_difference(q.get("eval"), lr),
                     max_logit_diff(lr, reference) if lr else "—"])
    return rows


def texts_of(result, key="generate"):
    """A list of generated texts (qtune's generate result, or llama.cpp's greedy), or an {'error'} dict."""
    if result is None:
        return {"error": "not run"}
    if "greedy" in result:
        return [g if isinstance(g, str) else g["text"] for g in result["greedy"]]
    inner = result.get(key)
    return texts_of(inner) if inner and not err(inner) else inner or result


def greedy_rows(llama, columns, data):
    """Per prompt: llama.cpp's greedy tokens, and for each other column '=' or where it parts."""
    if llama is None or err(llama):
        return []
    columns = [texts_of(c) for c in columns]
    return [[short(prompt, 50), f"{len(g['ids'])}: {short(g['text'], 40)}", *[greedy_cell(g, c, i) for c in columns],
             f"{min(g['gaps']):.3g}" if g["gaps"] else "—"] for i, (prompt, g) in enumerate(zip(data["prompts"], llama["greedy"]))]


def disagreement_rows(run, data):
    """Every prompt where qtune generate and llama.cpp, on the same file, produce different greedy text."""
    rows = []
    for name, lr in run["llama"].items():
        qtexts = texts_of(qtune_result(run, name))
        if err(lr) or err(qtexts):
            continue
        for i, (g, q) in enumerate(zip(lr["greedy"], qtexts)):
            if g["text"] != q:
                k = parting_token(g, q)
                rows.append([name, short(data["prompts"][i], 40), k, f"{parting_gap(g, k):.3g}", short(g["text"], 40), short(q, 40)])
    return rows


def lora_rows(run):
    ll = run["llama"]
    merged = ll.get("merged.f16")
    rows = []
    for name in LORA_ROWS:
        lr = ll.get(name)
        if lr is None or err(lr) or merged is None or err(merged):
            rows.append([name, f"error: {short(lr['error'], 100)}" if err(lr) else "—", "", "", ""])
            continue
        same = sum(a["ids"] == b["ids"] for a, b in zip(lr["greedy"], merged["greedy"]))
        rows.append([name, f"{same}/{len(lr['greedy'])} (token ids)", max_logit_diff(lr, merged), perplexity(lr), perplexity(merged)])
    return rows


def logit_scale(run):
    ref = run["llama"].get("merged.f32")
    return "—" if ref is None or err(ref) else f"{max(float(abs(x).max()) for x in ref['logits']):.3g}"


def quantizer_rows(run):
    rows = []
    for c in run["quantizer"]:
        r = c["result"]
        if err(r):
            rows.append([c["llama"], c["qtune"], f"error: {short(r['error'], 80)}", "", "", ""])
            continue
        same = sum(t["same"] for t in r["tensors"])
        diffs = [t for t in r["tensors"] if not t["same"]]
        detail = "; ".join(diff_text(t) for t in diffs) or "none"
        only = ", ".join([*(f"only llama.cpp: {n}" for n in r["only_a"]), *(f"only qtune: {n}" for n in r["only_b"])]) or "none"
        keys = "; ".join(f"{k['key']}: {short(str(k['a']), 30)} vs {short(str(k['b']), 30)}" for k in r["key_diffs"]) or "none"
        order = "same" if r["order_same"] else "differs"
        rows.append([c["llama"], c["qtune"], f"{same}/{len(r['tensors'])}", detail, f"{only}; order {order}", keys])
    return rows


def diff_text(t):
    if "blocks" not in t:
        return f"{t['name']} {t['type_a']} vs {t['type_b']}"
    return (f"{t['name']} {t['type_a']}: {t['blocks_differing']}/{t['blocks']} blocks, max \\|Δ\\| {t['max_abs_diff']:.3g} "
            f"(max \\|w\\| {t['max_abs_value']:.3g})")


FILE_COLUMNS = ["file", "tensors", "MB", "llama.cpp", "exact match (100 held-out)", "greedy = qtune generate same model",
                "perplexity, qtune eval", "perplexity, llama.cpp", "mean NLL qtune − llama.cpp (nats)",
                "max \\|logit − merged.f32's\\| (llama.cpp)"]


def render_run(run, data):
    m, qt = run["model"], run["qtune"]
    out = [f"### {run['arch']}", "",
           f"Model: `qtune init-model --arch {run['arch']} --hidden 256 --layers 2 --heads 4 --kv-heads 2 --intermediate 512 "
           f"--dtype f32 --init-std 0.2 --byte-tokenizer`; trained {m['train_seconds']:.0f} s ({short(m['train_last'], 90)}). "
           f"Export with init-model's own tokenizer.json: {short(m['unpatched_export'], 200)}", "",
           table(FILE_COLUMNS, file_rows(run)), "",
           f"Logits of merged.f32.gguf in llama.cpp reach {logit_scale(run)} in absolute value on these records (init-std 0.2 "
           "makes the model very sure of itself); perplexity counts every token after the first, the user's random digits too.", "",
           f"Greedy, {len(data['prompts'])} prompts, up to 32 tokens, against llama.cpp on merged.f16.gguf (tokens: text):", "",
           table(["prompt", "llama.cpp merged.f16", "qtune merged folder", "qtune merged.f16.gguf", "llama.cpp base.f16 + adapter.f16",
                  "smallest top-2 gap"],
                 greedy_rows(run["llama"].get("merged.f16"), [qt.get("merged folder (f32)"), qt.get("merged.f16"),
                                                             run["llama"].get(LORA_ROWS[0])], data)), "",
           "The same for the base model before fine-tuning (it rarely stops early, so all 32 tokens count):", "",
           table(["prompt", "llama.cpp base.f16", "qtune base folder", "qtune base.f16.gguf", "smallest top-2 gap"],
                 greedy_rows(run["llama"].get("base.f16"), [qt.get("base folder (f32)"), qt.get("base.f16")], data)), "",
           "Every prompt where `qtune generate FILE` and llama.cpp on the same FILE part (gap: llama.cpp's best minus second-best "
           "logit over the parting character's tokens):", "",
           table(["file", "prompt", "parting token", "gap there", "llama.cpp", "qtune"], disagreement_rows(run, data)), "",
           "The adapter GGUF applied by llama.cpp (lora_path) over base.f16.gguf, against the merged merged.f16.gguf:", "",
           table(["llama.cpp", "greedy = merged.f16", "max \\|logit − merged.f16's\\|", "perplexity", "merged.f16's perplexity"],
                 lora_rows(run)), "",
           "llama.cpp's quantizer on qtune's merged.f16.gguf against qtune's own files, tensor by tensor:", "",
           table(["llama.cpp", "qtune", "same type and bytes", "differing tensors", "tensor names", "metadata keys that differ"],
                 quantizer_rows(run)), ""]
    return "\n".join(out)


def render(runs, meta, data):
    head = ["## GGUF export against llama.cpp (issue 21)", "",
            f"Command: `{meta['command']}`; {meta['date']}; {meta['seconds']:.0f} s in all. Machine: {meta['machine']}. "
            f"qtune {meta['qtune']}; llama-cpp-python {meta['llama_cpp_python']} (its vendored llama.cpp, built from the PyPI "
            f"source package); gguf {meta['gguf']}; numpy {meta['numpy']}.", ""]
    return "\n".join(head + [render_run(run, data) for run in runs])
