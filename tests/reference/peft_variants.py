#!/usr/bin/env python3
"""PEFT's DoRA, PiSSA and OLoRA against qtune's, on the llama and qwen2 tiny models of Reference.models (--models DIR).

Per architecture, in <out>/<arch>/:
  dora/            a DoRA adapter PEFT initialized (B random, the magnitude moved off ||W + s·B·A|| so that it matters);
                   reference.safetensors: logits, transformers' causal-LM loss and the gradient of every lora_A, lora_B
                   and lora_magnitude_vector ("grad.<PEFT name>"); merged.safetensors: merge_and_unload's adapted weights
  dora_qtune/      `qtune train` with peft_use_dora (common.train_qtune); logits.safetensors: PeftModel.from_pretrained's logits
  <init>/          for init in pissa, olora: PEFT's start on the float32 base: init.safetensors holds every adapted
                   module's lora_A, lora_B and the residual base weight ("<module>.A", ".B", ".residual")
  quantized/       `qtune quantize` of the model (NF4, double quantization, compute dtype float32, so bitsandbytes
                   computes in float32 as qtune does), and on it, through transformers + bitsandbytes:
  dora4bit/        as dora/ (reference.safetensors), plus start.safetensors: each module's magnitude as PEFT started it,
                   ||deq(W) + s·B·A|| ("<module>.magnitude"), with the module's A and B
  olora4bit/       OLoRA's start: A, B and bitsandbytes' dequantization of the re-quantized residual ("<module>.residual")
  pissa_qtune/     `qtune train` with lora_init: pissa (a checkpoint at the end, step 3): logits.safetensors: PEFT's
                   logits with the final adapter (converted for the original base) and with the checkpoint's adapter
                   as trained (PEFT rebuilds the residual when it loads it)
"""
import os

import bitsandbytes
import reference_common as common
import torch
import torch.nn.functional as F
from bitsandbytes.functional import dequantize_4bit
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

ARCHS = ["llama", "qwen2"]
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA = "load_in_4bit: false\nlora_target_linear: true\nlora_r: 4\nlora_alpha: 8\n"  # qtune train's settings


def exact_4bit_forward(self, x):
    """bitsandbytes' Linear4bit as its GPU training path computes: x · dequantize_4bit(W)ᵀ. (Its CPU fallback product
    lands about 2% off that product on this machine, which would hide everything this test compares.)"""
    return F.linear(x, dequantize_4bit(self.weight.data, self.weight.quant_state).to(x.dtype), self.bias)


bitsandbytes.nn.Linear4bit.forward = exact_4bit_forward


def batch():
    return torch.randint(3, common.VOCAB, (2, 24), generator=torch.Generator().manual_seed(4))


def load_base(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def lora_modules(model):
    return [(name, m) for name, m in model.base_model.model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]


def peft_name(parameter):
    """The saved adapter's name of a PeftModel parameter (".default" dropped; the magnitude without ".weight")."""
    if "lora_magnitude_vector" in parameter:
        return parameter.replace(".default.weight", "")
    return parameter.replace(".default.", ".")


def dora_reference(model_dir, out, ids):
    torch.manual_seed(21)
    config = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, target_modules=PROJECTIONS,
                        init_lora_weights=False, use_dora=True)
    model = get_peft_model(load_base(model_dir), config)
    start = {}
    with torch.no_grad():
        for name, module in lora_modules(model):
            start[name + ".magnitude"] = module.lora_magnitude_vector["default"].weight.clone()
            start[name + ".A"] = module.lora_A["default"].weight
            start[name + ".B"] = module.lora_B["default"].weight
    os.makedirs(out, exist_ok=True)
    common.save_tensors(os.path.join(out, "start.safetensors"), start)
    with torch.no_grad():
        for _, module in lora_modules(model):
            m = module.lora_magnitude_vector["default"].weight
            m.mul_(1 + 0.2 * torch.randn(m.shape))
    result = model(input_ids=ids, labels=ids, use_cache=False)
    result.loss.backward()
    grads = {"grad." + peft_name(n): p.grad for n, p in model.named_parameters() if p.requires_grad}
    model.save_pretrained(out)
    common.save_tensors(os.path.join(out, "reference.safetensors"),
                        {"input_ids": ids, "logits": result.logits, "loss": result.loss.reshape(1), **grads})
    if "quantized" in model_dir:
        return
    merged = model.merge_and_unload()
    weights = {n + ".weight": m.weight for n, m in merged.named_modules() if n.split(".")[-1] in PROJECTIONS}
    common.save_tensors(os.path.join(out, "merged.safetensors"), weights)


def init_reference(model_dir, init, out):
    config = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, target_modules=PROJECTIONS,
                        init_lora_weights=init)
    model = get_peft_model(load_base(model_dir), config)
    tensors = {}
    for name, module in lora_modules(model):
        tensors[name + ".A"] = module.lora_A["default"].weight
        tensors[name + ".B"] = module.lora_B["default"].weight
        weight = module.base_layer.weight
        if hasattr(weight, "quant_state"):  # a re-quantized 4-bit residual: what bitsandbytes multiplies by
            weight = dequantize_4bit(weight.data, weight.quant_state)
        tensors[name + ".residual"] = weight
    os.makedirs(out, exist_ok=True)
    common.save_tensors(os.path.join(out, "init.safetensors"), tensors)


def peft_logits(model_dir, adapter, ids):
    with torch.no_grad():
        return PeftModel.from_pretrained(load_base(model_dir), adapter)(input_ids=ids, use_cache=False).logits


def main():
    args = common.parse_args(__doc__, lambda p: p.add_argument("--models", required=True, help="Reference.models' output"))
    ids = batch()
    for arch in ARCHS:
        model_dir, out = os.path.join(args.models, arch), os.path.join(args.out, arch)
        dora_reference(model_dir, os.path.join(out, "dora"), ids)
        for init in ["pissa", "olora"]:
            init_reference(model_dir, init, os.path.join(out, init))
        quantized = os.path.join(out, "quantized")
        common.run_qtune(args.qtune, "quantize", "--model", model_dir, "--out", quantized, "--type", "nf4", "--double-quant",
                         "--compute-dtype", "float32", "--force")
        dora_reference(quantized, os.path.join(out, "dora4bit"), ids)
        init_reference(quantized, "olora", os.path.join(out, "olora4bit"))
        run = common.train_qtune(args.qtune, model_dir, os.path.join(out, "dora_qtune"), LORA + "peft_use_dora: true\n")
        common.save_tensors(os.path.join(out, "dora_qtune", "logits.safetensors"),
                            {"input_ids": ids, "logits": peft_logits(model_dir, run, ids)})
        run = common.train_qtune(args.qtune, model_dir, os.path.join(out, "pissa_qtune"), LORA + "save_steps: 3\nlora_init: pissa\n")
        common.save_tensors(os.path.join(out, "pissa_qtune", "logits.safetensors"),
                            {"input_ids": ids, "final": peft_logits(model_dir, run, ids),
                             "checkpoint": peft_logits(model_dir, os.path.join(run, "checkpoint-3"), ids)})
        print(f"{arch}: DoRA, PiSSA and OLoRA references written")


if __name__ == "__main__":
    main()
