#!/usr/bin/env python3
"""PEFT's LoRA+ parameter groups (peft.optimizers.create_loraplus_optimizer with torch.optim.AdamW) on a tiny Llama
written by `qtune init-model`, for tests/reference/test_loraplus_reference.cpp.

  <out>/model/       the base (float32)
  <out>/groups.json  per case: the LoRA settings, lr, loraplus_lr_ratio and weight decay given to PEFT, and for every
                     trained tensor (PEFT's saved name: ".default" dropped, DoRA's magnitude without ".weight") its shape
                     and the lr and weight_decay of the parameter group PEFT put it in
qtune's weight_decay is what PEFT calls loraplus_weight_decay (the weight decay of every LoRA+ group).
"""
import json
import os

import reference_common as common
import torch
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from transformers import AutoModelForCausalLM

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CASES = {
    "all": dict(lora=dict(r=4, lora_alpha=8, target_modules=PROJECTIONS), lr=2e-4, ratio=16.0, weight_decay=0.01),
    "dora_subset": dict(lora=dict(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj", "down_proj"], use_dora=True),
                        lr=1e-3, ratio=4.0, weight_decay=0.05),
}


def saved_name(name):
    name = name.replace(".default", "")
    return name[: -len(".weight")] if name.endswith("lora_magnitude_vector.weight") else name


def parameter_groups(model_dir, case):
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **case["lora"]))
    optimizer = create_loraplus_optimizer(model, torch.optim.AdamW, lr=case["lr"], loraplus_lr_ratio=case["ratio"],
                                          loraplus_weight_decay=case["weight_decay"])
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            tensors[saved_name(names[id(p)])] = {"shape": list(p.shape), "lr": group["lr"], "weight_decay": group["weight_decay"]}
    return {**case, "tensors": tensors}


def main():
    args = common.parse_args(__doc__)
    model_dir = common.init_model(args.qtune, "llama", os.path.join(args.out, "model"))
    groups = {name: parameter_groups(model_dir, case) for name, case in CASES.items()}
    with open(os.path.join(args.out, "groups.json"), "w") as f:
        json.dump(groups, f, indent=1)
    for name, case in groups.items():
        print(f"{name}: {len(case['tensors'])} tensors in PEFT's LoRA+ groups")


if __name__ == "__main__":
    main()
