"""What bench/gguf_llama_cpp.py asks of llama.cpp (through llama-cpp-python) and of gguf-py's reader.

llama.cpp side: load a file (optionally with a LoRA adapter GGUF), greedy generation by argmax over its own logits
(no sampler, so nothing but the model decides), the NLL of whole sequences, and its quantizer. gguf-py side: two
files compared tensor by tensor (names, ggml types, bytes; for a tensor whose bytes differ, how many blocks differ
and the largest difference of the dequantized values) and key by key.
"""
import contextlib
import ctypes
import os
import sys

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize

N_CTX = 256  # the longest sequence scored or generated here is ~80 tokens


def without_extra_buffer_types():
    """Model parameters with use_extra_bufts off: ggml's CPU backend then runs its plain kernels instead of repacking
    quantized weights for AMX, whose matmul (ggml_backend_amx_mul_mat) segfaults on the bench's machine (a VM with
    AMX) for llama.cpp's own quantized files as for qtune's. LLAMA_EXTRA_BUFTS=1 keeps llama.cpp's default."""
    import llama_cpp.llama_cpp as lib

    if os.environ.get("LLAMA_EXTRA_BUFTS") == "1" or getattr(lib, "_bench_patched", False):
        return
    default = lib.llama_model_default_params

    def patched():
        params = default()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params, lib._bench_patched = patched, True


def open_model(path, lora=None):
    """A llama_cpp.Llama over `path` (plus the adapter GGUF `lora`); raises with llama.cpp's reason when it refuses."""
    import llama_cpp

    without_extra_buffer_types()
    return llama_cpp.Llama(model_path=path, lora_path=lora, n_ctx=N_CTX, n_batch=N_CTX, n_threads=os.cpu_count(),
                           logits_all=True, verbose=False, seed=0)


def sequence_logits(llm, ids):
    """llama.cpp's logits at every position of `ids` (fresh KV cache), float32 [len(ids), vocab]."""
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def greedy(llm, prompt_ids, max_new, stop_ids):
    """Argmax decoding as `qtune generate --temperature 0`: stops at a stop id (not kept) or after max_new tokens.
    Also returns, per step, the gap between the best and second-best logit (how near a tie each choice was)."""
    llm.reset()
    llm.eval(prompt_ids)
    out, gaps = [], []
    while len(out) < max_new:
        row = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top2 = np.partition(row, -2)[-2:]
        token = int(np.argmax(row))
        gaps.append(float(top2[1] - top2[0]))
        if token in stop_ids:
            break
        out.append(token)
        if len(out) < max_new:
            llm.eval([token])
    return out, gaps


def tokenize(llm, text):
    """Text with its special tokens (<|im_start|> ...) parsed, as qtune's encode_with_special_tokens; BOS only where
    the file's add_bos_token says so (the byte tokenizer has none)."""
    return llm.tokenize(text.encode("utf-8"), add_bos=bool(llm._model.add_bos_token()), special=True)


def detokenize(llm, ids):
    """The generated text as qtune prints it: special tokens dropped, invalid UTF-8 as U+FFFD."""
    return llm.detokenize(ids, special=False).decode("utf-8", errors="replace")


def piece_hex(llm, token):
    """The bytes of one token, as hex (the report finds where two texts part token by token from them)."""
    return llm.detokenize([token], special=False).hex()


def nll_of_sequence(logits, ids):
    """Σ -log p(ids[i] | ids[:i]) for i >= 1, in float64 (qtune eval scores a record's every token but the first)."""
    rows = logits[:-1].astype(np.float64)
    rows -= rows.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(rows).sum(axis=1))
    picked = rows[np.arange(len(ids) - 1), ids[1:]]
    return float((log_z - picked).sum()), len(ids) - 1


@contextlib.contextmanager
def stderr_to(path):
    """The process's stderr (file descriptor 2, where llama.cpp's C code logs) appended to `path` meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quantize(src, dst, ftype, log_path):
    """llama.cpp's own quantizer (llama_model_quantize, default parameters but the type), its log to `log_path`;
    raises on a non-zero return."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = os.cpu_count() or 1
    with stderr_to(log_path):
        rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src}, ftype {ftype}) returned {rc}")


def tensor_bytes(t):
    return np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)


def compare_tensor(a, b):
    """One tensor in two files: {'same': bool, ...}; for different bytes, the differing blocks and dequantized max diff."""
    ta, tb = GGMLQuantizationType(a.tensor_type), GGMLQuantizationType(b.tensor_type)
    row = {"name": a.name, "type_a": ta.name, "type_b": tb.name, "shape": [int(x) for x in a.shape]}
    if ta != tb or list(a.shape) != list(b.shape):
        row.update(same=False, why="type or shape differs")
        return row
    bytes_a, bytes_b = tensor_bytes(a), tensor_bytes(b)
    row["same"] = bool(np.array_equal(bytes_a, bytes_b))
    if row["same"]:
        return row
    block_bytes = GGML_QUANT_SIZES[ta][1]
    blocks_a, blocks_b = bytes_a.reshape(-1, block_bytes), bytes_b.reshape(-1, block_bytes)
    row["blocks"] = int(blocks_a.shape[0])
    row["blocks_differing"] = int((blocks_a != blocks_b).any(axis=1).sum())
    va = dequantize(np.asarray(a.data), ta).astype(np.float64)
    vb = dequantize(np.asarray(b.data), tb).astype(np.float64)
    row["max_abs_diff"] = float(np.abs(va - vb).max())
    row["max_abs_value"] = float(np.abs(va).max())
    return row


def field_value(field):
    try:
        value = field.contents()
    except Exception:  # a field type this gguf version cannot render
        return None
    return value.tolist() if hasattr(value, "tolist") else value


def compare_files(path_a, path_b):
    """Tensors and metadata keys of two GGUF files: per-tensor rows, names in one file only, and differing keys."""
    ra, rb = GGUFReader(path_a), GGUFReader(path_b)
    ta, tb = {t.name: t for t in ra.tensors}, {t.name: t for t in rb.tensors}
    rows = [compare_tensor(ta[n], tb[n]) for n in ta if n in tb]
    keys_a = {k: field_value(f) for k, f in ra.fields.items() if not k.startswith("GGUF.")}
    keys_b = {k: field_value(f) for k, f in rb.fields.items() if not k.startswith("GGUF.")}
    key_diffs = [{"key": k, "a": keys_a.get(k), "b": keys_b.get(k)} for k in sorted(set(keys_a) | set(keys_b))
                 if keys_a.get(k) != keys_b.get(k)]
    return {"tensors": rows, "only_a": sorted(set(ta) - set(tb)), "only_b": sorted(set(tb) - set(ta)), "key_diffs": key_diffs,
            "order_same": [t.name for t in ra.tensors] == [t.name for t in rb.tensors]}


def type_counts(path):
    """{'Q4_K': 9, 'F32': 5, ...} of a GGUF file."""
    counts = {}
    for t in GGUFReader(path).tensors:
        name = GGMLQuantizationType(t.tensor_type).name
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def dequantized_copy(src, dst):
    """`src` with every tensor dequantized (gguf-py) to F32 and the same keys: what llama.cpp computes with it is the
    arithmetic on those exact weight values in f32, as qtune computes, without llama.cpp's 8-bit (Q8_0/Q8_K) or
    16-bit rounding of the activations that its CPU matmul applies to quantized and f16/bf16 weights."""
    reader = GGUFReader(src)
    writer = GGUFWriter(dst, str(reader.fields["general.architecture"].contents()))
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype, value, sub_type = field.types[0], field.contents(), field.types[-1] if len(field.types) > 1 else None
        if key == "tokenizer.ggml.merges" and not value:
            # gguf-py writes no empty array and llama.cpp wants the key: one merge of bytes 0x00 0x01 ("Ā ā"), which no
            # prompt here contains, keeps the byte-level vocabulary's tokenization as it is
            value, sub_type = ["\u0100 \u0101"], GGUFValueType.STRING
        writer.add_key_value(key, value, vtype, sub_type=sub_type)
    writer.add_file_type(0)  # LLAMA_FTYPE_ALL_F32
    for t in reader.tensors:
        values = dequantize(np.asarray(t.data), GGMLQuantizationType(t.tensor_type))
        writer.add_tensor(t.name, np.ascontiguousarray(values, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
