#!/usr/bin/env python3
"""bitsandbytes 4-bit on the CPU, for tests/reference/test_bnb_4bit.cpp (suite Bnb4bitReference).

quantize.safetensors   seeded weights (fp32, bf16, fp16; shapes whose size is and is not a multiple of the block,
                       an odd size, an all-zero block, values on the code boundaries) and what
                       bitsandbytes.functional.quantize_4bit made of each, for nf4/fp4 x blocksize 64/128/256/4096 x
                       compress_statistics off/on: <input>.<type>.b<blocksize>.<plain|nested>.{packed, absmax,
                       quant_map, nested_absmax, nested_quant_map, offset}.
<arch>/                qtune init-model folder (llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3; qwen2 and gemma3
                       in bf16, the others f32).
<arch>/bnb/            transformers + bitsandbytes' save_pretrained of that model loaded in 4 bits (nf4, double
                       quantization, compute dtype float32), with logits.safetensors: its logits for `input_ids`.
<arch>/qtune/          `qtune quantize` of the same folder (nf4 + --double-quant; fp4 without for llama), with
                       logits.safetensors: the logits transformers + bitsandbytes compute after loading it.
"""
import json
import os

import reference_common as common
import torch

import bitsandbytes
import bitsandbytes.functional as F
import transformers
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

TYPES = ("nf4", "fp4")
BLOCKSIZES = (64, 128, 256, 4096)
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
# Which 4-bit format `qtune quantize` writes per architecture (the transformers-saved checkpoints are all nf4 +
# double quantization, what QLoRA recipes use).
QTUNE_FORMAT = {"llama": ("fp4", False), "mistral": ("nf4", True), "qwen2": ("nf4", True), "qwen3": ("nf4", True),
                "gemma2": ("nf4", True), "gemma3": ("nf4", True), "phi3": ("nf4", True)}
MODEL_DTYPE = {"llama": "f32", "mistral": "f32", "qwen2": "bf16", "qwen3": "f32", "gemma2": "f32", "gemma3": "bf16", "phi3": "f32"}


def boundary_values(quant_type):
    """One block per row of 64: absmax 1 first, then the midpoints between neighbouring code values (computed as
    bitsandbytes' CPU path computes them, in float32) and the float32 numbers either side of each."""
    code = F.get_4bit_type(quant_type, device="cpu")
    values = code.sort().values
    mids = (values[:-1] + values[1:]) / 2
    near = torch.cat([mids, torch.nextafter(mids, torch.tensor(2.0)), torch.nextafter(mids, torch.tensor(-2.0))])
    near = torch.cat([near, -near])
    row = torch.cat([torch.ones(1), near, values])
    return torch.nn.functional.pad(row, (0, 64 * ((row.numel() + 63) // 64) - row.numel())).view(-1, 64)


def make_inputs():
    """Weights quantized below, float32 before the per-dtype cast (a bf16/f16 input is the float32 one rounded)."""
    g = torch.Generator().manual_seed(18)
    # Rows of different scales so the block absmax (and hence the nested statistics) spread over a wide range.
    big = torch.randn(512, 160, generator=g) * torch.logspace(-3, 0, 512).unsqueeze(1)
    zero_block = torch.randn(40, 64, generator=g) * 0.02
    zero_block[4:8] = 0  # elements 256..511: one whole block at blocksize 64, 128 and 256
    return {
        "square": torch.randn(96, 64, generator=g) * 0.05,  # 6144: whole blocks except at 4096
        "odd": torch.randn(37, 61, generator=g) * 0.2,      # 2257: a partial last block and an odd element count
        "big": big,                                         # 81920: 1280 blocks at 64, 5 nested blocks
        "zero_block": zero_block,
        "boundaries_nf4": boundary_values("nf4"),
        "boundaries_fp4": boundary_values("fp4"),
    }


def quantize_all(out):
    tensors = {}
    for name, weight in make_inputs().items():
        for dtype_name, dtype in DTYPES.items():
            if name.startswith("boundaries") and dtype_name != "f32":
                continue  # the boundary values are float32 numbers
            input_name = f"{name}.{dtype_name}"
            w = weight.to(dtype)
            tensors[f"input.{input_name}"] = w
            for quant_type in TYPES:
                for blocksize in BLOCKSIZES:
                    for nested in (False, True):
                        packed, state = F.quantize_4bit(w, blocksize=blocksize, compress_statistics=nested,
                                                        quant_type=quant_type)
                        key = f"{input_name}.{quant_type}.b{blocksize}.{'nested' if nested else 'plain'}"
                        tensors[f"{key}.packed"] = packed.view(-1)
                        tensors[f"{key}.absmax"] = state.absmax
                        tensors[f"{key}.quant_map"] = state.code
                        if nested:
                            tensors[f"{key}.nested_absmax"] = state.state2.absmax
                            tensors[f"{key}.nested_quant_map"] = state.state2.code
                            tensors[f"{key}.offset"] = state.offset.reshape(1)
    common.save_tensors(os.path.join(out, "quantize.safetensors"), tensors)
    return len(tensors)


def token_ids():
    g = torch.Generator().manual_seed(2)
    return torch.randint(3, common.VOCAB, (2, 24), generator=g)


def load_4bit(folder, config=None):
    """transformers + bitsandbytes on the CPU; the load must use every tensor of the folder and miss none."""
    kwargs = {"quantization_config": config} if config is not None else {}
    model, info = AutoModelForCausalLM.from_pretrained(folder, device_map="cpu", dtype=torch.float32,
                                                       output_loading_info=True, **kwargs)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise RuntimeError(f"transformers loading {folder}: {problems}")
    layers = [m for m in model.modules() if isinstance(m, bitsandbytes.nn.Linear4bit)]
    if not layers:
        raise RuntimeError(f"transformers loaded {folder} without 4-bit layers")
    # On a CPU with AVX512-BF16, bitsandbytes' inference path repacks the weight and multiplies in bfloat16
    # whatever the compute dtype; elsewhere it dequantizes to the compute dtype (float32) and calls linear. Take the
    # second everywhere, so the reference is bitsandbytes' float32 result and does not depend on the runner's CPU.
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    # For a pre-quantized folder transformers keeps the other tensors in the file's dtype (bf16 for qwen2) although
    # dtype=float32 was asked, which it honours for an unquantized folder and when quantizing on load; cast them as
    # asked (exact for bf16), so both 4-bit directions compare float32 models.
    for param in model.parameters():
        if param.is_floating_point() and param.dtype != torch.float32:
            param.data = param.data.float()
    return model.eval()


def save_logits(model, folder):
    ids = token_ids()
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits
    common.save_tensors(os.path.join(folder, "logits.safetensors"), {"input_ids": ids, "logits": logits})


def models(args):
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32)
    for arch in common.ARCH_FLAGS:
        folder = common.init_model(args.qtune, arch, os.path.join(args.out, arch), dtype=MODEL_DTYPE[arch])
        # transformers + bitsandbytes quantize while loading, then save their own 4-bit checkpoint.
        bnb_dir = os.path.join(folder, "bnb")
        model = load_4bit(folder, config)
        model.save_pretrained(bnb_dir)
        save_logits(model, bnb_dir)
        # qtune quantizes; transformers + bitsandbytes load that.
        quant_type, double_quant = QTUNE_FORMAT[arch]
        qtune_dir = os.path.join(folder, "qtune")
        common.run_qtune(args.qtune, "quantize", "--model", folder, "--out", qtune_dir, "--type", quant_type,
                         "--compute-dtype", "float32", *(["--double-quant"] if double_quant else []))
        save_logits(load_4bit(qtune_dir), qtune_dir)
        with open(os.path.join(bnb_dir, "config.json")) as f:
            saved = json.load(f)["quantization_config"]
        print(f"{arch} ({MODEL_DTYPE[arch]}): transformers saved {saved['bnb_4bit_quant_type']}"
              f"{' + double quant' if saved['bnb_4bit_use_double_quant'] else ''}; loaded qtune's {quant_type}"
              f"{' + double quant' if double_quant else ''}")


def main():
    args = common.parse_args(__doc__)
    count = quantize_all(args.out)
    print(f"quantize_4bit: {count} tensors")
    models(args)
    print(f"bitsandbytes {bitsandbytes.__version__}, transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
