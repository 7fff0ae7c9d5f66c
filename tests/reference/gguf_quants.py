#!/usr/bin/env python3
"""ggml's quantization formats in the gguf Python package, for tests/reference/test_gguf_quants_reference.cpp
(suite GgufQuantsReference).

quants.safetensors      seeded float32 weight matrices `input.<name>` (gaussian rows of 4096, rows with outliers,
                        blocks of zeros, blocks whose largest magnitude is negative or tied, tiny weights whose
                        scale is an fp16 subnormal, values on rounding boundaries, a row length of 96) and for each
                        of F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: `codes.<name>.<TYPE>` = gguf.quants.quantize
                        (uint8, rows x row bytes) and `dequant.<name>.<TYPE>` = gguf.quants.dequantize of those codes.
                        gguf 0.19 has no K-quant quantizer, so for every block type (Q4_K, Q5_K, Q6_K included)
                        `blocks.<TYPE>` holds random valid blocks (random bytes, finite fp16 scales) and
                        `blocks.<TYPE>.dequant` gguf's dequantization of them.
llama_cpp.safetensors   only with --ggml-lib PATH (llama.cpp's libggml-base.so): `codes.<name>.<TYPE>` from
                        ggml_quantize_chunk without an importance matrix (what llama_model_quantize runs), for the
                        inputs whose row length is a multiple of 256 and every block type.
"""
import ctypes
import importlib.metadata
import os

import numpy as np
import reference_common as common
import torch

import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

GGUF_QUANTIZED = (T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1)
BLOCK_TYPES = (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K)
# Byte offsets of each block type's fp16 scale fields (d, and dmin or m): random bytes there could be inf/NaN.
FP16_FIELDS = {T.Q8_0: (0,), T.Q4_0: (0,), T.Q4_1: (0, 2), T.Q5_0: (0,), T.Q5_1: (0, 2), T.Q4_K: (0, 2),
               T.Q5_K: (0, 2), T.Q6_K: (208,)}


def boundary_block():
    """Two rows of 32 whose scale is exactly 1 for Q8_0 (absmax 127) and whose other values sit on x.5, where
    round-half-away-from-zero matters; then the same shifted for Q4_0's trunc(x / d + 8.5) with d = -1."""
    q8 = np.array([127.0] + [k + 0.5 for k in range(-16, 15)], dtype=np.float32)
    q4 = np.array([-8.0] + [k * 0.5 for k in range(-15, 16)], dtype=np.float32)
    return np.stack([q8, -q8, q4, -q4]).reshape(2, 64)


def make_inputs():
    rng = np.random.default_rng(21)
    gaussian = (rng.standard_normal((64, 4096)) * 0.02).astype(np.float32)
    outliers = (rng.standard_normal((32, 4096)) * 0.02).astype(np.float32)
    spots = rng.random(outliers.shape) < 0.002
    outliers[spots] *= 50  # a few weights 50x the rest, as in real LLM matrices
    zeros = rng.standard_normal((16, 256)).astype(np.float32)
    zeros[:, 32:64] = 0   # an all-zero block of 32 in every row
    zeros[3] = 0          # a whole zero super-block
    zeros[5, 100] = 1e-20  # a lone tiny value in an otherwise ordinary block
    negative_max = rng.standard_normal((16, 256)).astype(np.float32)
    negative_max[:, ::32] = -6.0  # each block's largest magnitude is negative ...
    negative_max[::2, 1::32] = 6.0  # ... or tied with a positive one after it
    negative_max[1::4, ::32] = 6.0  # ... or positive first, tied with a negative one after it
    negative_max[1::4, 1::32] = -6.0
    tiny = (rng.standard_normal((8, 256)) * 1e-6).astype(np.float32)  # fp16 scales underflow to subnormals / zero
    offset = (rng.standard_normal((8, 512)) * 0.01 + 0.05).astype(np.float32)  # all-positive blocks: min > 0
    return {
        "gaussian": gaussian,
        "outliers": outliers,
        "zeros": zeros,
        "negative_max": negative_max,
        "tiny": tiny,
        "offset": offset,
        "boundaries": boundary_block(),
        "row96": (rng.standard_normal((8, 96)) * 0.1).astype(np.float32),
    }


def quantize_inputs(inputs):
    tensors = {}
    for name, x in inputs.items():
        tensors[f"input.{name}"] = torch.from_numpy(x)
        for qtype in GGUF_QUANTIZED:
            codes = np.ascontiguousarray(quants.quantize(x, qtype)).view(np.uint8).reshape(x.shape[0], -1)
            tensors[f"codes.{name}.{qtype.name}"] = torch.from_numpy(codes.copy())
            tensors[f"dequant.{name}.{qtype.name}"] = torch.from_numpy(quants.dequantize(codes, qtype).astype(np.float32))
    return tensors


def random_blocks(qtype, count, rng):
    """count random blocks of qtype whose fp16 fields are finite (normal and subnormal, both signs, some zero)."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(count, type_size), dtype=np.uint8)
    for offset in FP16_FIELDS[qtype]:
        values = (rng.standard_normal(count) * np.exp(rng.uniform(-12, 4, count))).astype(np.float16)
        values[::17] = 0
        blocks[:, offset:offset + 2] = values.view(np.uint8).reshape(count, 2)
    return blocks.reshape(1, -1)


def block_tensors():
    rng = np.random.default_rng(7)
    tensors = {}
    for qtype in BLOCK_TYPES:
        blocks = random_blocks(qtype, 512, rng)
        tensors[f"blocks.{qtype.name}"] = torch.from_numpy(blocks.copy())
        tensors[f"blocks.{qtype.name}.dequant"] = torch.from_numpy(quants.dequantize(blocks, qtype).astype(np.float32))
    return tensors


def llama_cpp_codes(lib_path, inputs):
    """ggml_quantize_chunk(type, src, dst, start 0, nrows, n_per_row, imatrix NULL) of llama.cpp's ggml-base."""
    lib = ctypes.CDLL(lib_path)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_void_p]
    tensors = {}
    for name, x in inputs.items():
        if x.shape[1] % 256:
            continue
        for qtype in BLOCK_TYPES:
            block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
            out = np.zeros((x.shape[0], x.shape[1] // block_size * type_size), dtype=np.uint8)
            src = np.ascontiguousarray(x, dtype=np.float32)
            written = lib.ggml_quantize_chunk(int(qtype), src.ctypes.data, out.ctypes.data, 0, x.shape[0], x.shape[1], None)
            assert written == out.size, f"ggml_quantize_chunk wrote {written} bytes, expected {out.size}"
            tensors[f"codes.{name}.{qtype.name}"] = torch.from_numpy(out)
    return tensors


def main():
    args = common.parse_args(__doc__, lambda p: p.add_argument(
        "--ggml-lib", default=os.environ.get("QTUNE_GGML_LIB"), help="llama.cpp's libggml-base.so (optional)"))
    inputs = make_inputs()
    tensors = quantize_inputs(inputs)
    tensors.update(block_tensors())
    common.save_tensors(os.path.join(args.out, "quants.safetensors"), tensors)
    print(f"gguf {importlib.metadata.version('gguf')}: {len(tensors)} tensors")
    if args.ggml_lib:
        codes = llama_cpp_codes(args.ggml_lib, inputs)
        common.save_tensors(os.path.join(args.out, "llama_cpp.safetensors"), codes)
        print(f"llama.cpp ({args.ggml_lib}): {len(codes)} quantized tensors")


if __name__ == "__main__":
    main()
