#!/usr/bin/env python3
"""PEFT on qtune's adapters and qtune on PEFT's, for the four tiny models of Reference.models (--models DIR).

Per architecture, in <out>/<arch>/:
  qtune/          an adapter trained by `qtune train` (3 steps, float32 base); qtune.safetensors: the logits
                  PeftModel.from_pretrained gives with it
  peft_<case>/    an adapter PEFT initialized (init_lora_weights=False: B is random too, so it changes the output);
                  reference.safetensors: the logits, transformers' causal-LM loss (labels = input_ids) and the
                  gradient of that loss for every lora_A / lora_B (named "grad.<PEFT tensor name>")
  merged16/       merge_and_unload of peft_all on a bfloat16 base (base16/, written by qtune init-model --dtype bf16),
                  saved by save_pretrained
  quantized/      `qtune quantize` of the float32 model (NF4, double quantization); merged4bit.safetensors: every
                  adapted projection as bitsandbytes' dequantize_4bit(W) in the checkpoint's bnb_4bit_compute_dtype
                  (the weight bitsandbytes' 4-bit forward multiplies by, so the one the adapter trained against)
                  + PEFT's delta weight, rounded once to bfloat16
Cases: all = the 7 projections, r 8, alpha 16; rslora_subset = q_proj, v_proj, down_proj, r 4, alpha 8, use_rslora.
Phi-3 (fused): all = qkv_proj, o_proj, gate_up_proj, down_proj; rslora_subset = qkv_proj, down_proj.
Mixture of experts (mixtral, qwen3_moe), in <out>/<arch>/: qtune/ and qtune.safetensors as above (qtune trains
every projection, each expert's too, and the router; PEFT converts those per-expert modules to transformers 5's
fused experts on load); peft_experts/: PEFT on the fused experts themselves (target_parameters: the experts'
gate_up_proj and down_proj and the router's weight; q_proj, v_proj; r 4, alpha 8), with its logits, loss (the
causal-LM loss plus router_aux_loss_coef times the routers' load-balancing loss, output_router_logits=True) and
gradients.
Merges of the two MoE adapters (qtune's run, in PEFT's per-expert layout: attention, every expert, the router;
peft_experts/: the fused experts and the router) in <out>/<arch>/merge_<adapter>/, each PEFT's merge_and_unload of the
adapter on a base loaded in float32, saved by save_pretrained (which writes the per-expert layout transformers reads):
  f32/    on the float32 model, in float32
  bf16/   on base16/ (qtune init-model --dtype bf16), rounded once to bfloat16. Not PEFT's merge in a bfloat16 model:
          there its ParamWrapper (the fused experts, the router) rounds the delta to bfloat16 before adding it, a
          second rounding that its nn.Linear merge (attention) and qtune's merge do not make
  nf4/    on nf4_base/: quantized/ (`qtune quantize` of the float32 model, NF4, double quantization) with every 4-bit
          weight as bitsandbytes dequantizes it, in the dtype training computed in (the run's record: float32; for
          peft_experts the checkpoint's bnb_4bit_compute_dtype), rounded once to bfloat16
  qtune_f32/  `qtune merge --dtype f32` of the float32 model, which transformers loads with no missing, unexpected or
          mismatched key; logits.safetensors: input_ids, "peft" (the logits of PEFT's merged float32 model) and
          "qtune" (transformers' logits with qtune_f32/)
The run trained on the model quantized at load (NF4), which its record (qtune_training_base.json) tells `qtune merge`;
qtune/peft_files/ holds its PEFT files alone, an adapter made elsewhere, for the merges on the 16/32-bit bases.
"""
import json
import os
import shutil

import reference_common as common
import torch
from bitsandbytes.functional import QuantState, dequantize_4bit
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
FUSED_PROJECTIONS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]  # Phi-3's
PEFT_CASES = {
    "all": dict(r=8, lora_alpha=16, target_modules=PROJECTIONS, use_rslora=False),
    "rslora_subset": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], use_rslora=True),
}
FUSED_TARGETS = {"all": FUSED_PROJECTIONS, "rslora_subset": ["qkv_proj", "down_proj"]}
# qtune train's LoRA settings per architecture: both target styles and rsLoRA on and off across the four.
QTUNE_LORA = {
    "llama": "lora_target_linear: true\nlora_r: 8\nlora_alpha: 16\n",
    "mistral": "lora_target_modules: [q_proj, v_proj, down_proj]\nlora_r: 4\nlora_alpha: 8\npeft_use_rslora: true\n",
    "qwen2": "lora_target_modules: [q_proj, k_proj, o_proj, up_proj]\nlora_r: 4\nlora_alpha: 16\npeft_use_rslora: true\n",
    "qwen3": "lora_target_linear: true\nlora_r: 4\nlora_alpha: 8\n",
    "gemma2": "lora_target_linear: true\nlora_r: 4\nlora_alpha: 8\n",
    "gemma3": "lora_target_modules: [q_proj, v_proj, o_proj, down_proj]\nlora_r: 4\nlora_alpha: 8\npeft_use_rslora: true\n",
    "phi3": "lora_target_modules: [qkv_proj, gate_up_proj]\nlora_r: 4\nlora_alpha: 8\n",
}
# On the MoE models: attention, every expert's projections and the router (trained only when listed: "gate").
MOE_QTUNE_LORA = "lora_target_linear: true\nlora_target_modules: [gate]\nlora_r: 4\nlora_alpha: 8\n"


def batch():
    return torch.randint(3, common.VOCAB, (2, 24), generator=torch.Generator().manual_seed(2))


def load_base(folder, dtype=torch.float32):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()


def peft_adapter(model_dir, arch, case, out, ids):
    """A PEFT-initialized adapter, its logits, loss and LoRA gradients."""
    torch.manual_seed(sorted(PEFT_CASES).index(case) + 10)
    settings = dict(PEFT_CASES[case], **({"target_modules": FUSED_TARGETS[case]} if arch == "phi3" else {}))
    config = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", init_lora_weights=False, **settings)
    model = get_peft_model(load_base(model_dir), config)
    result = model(input_ids=ids, labels=ids, use_cache=False)
    result.loss.backward()
    grads = {"grad." + n.replace(".default.", "."): p.grad for n, p in model.named_parameters() if p.requires_grad}
    model.save_pretrained(out)
    common.save_tensors(os.path.join(out, "reference.safetensors"),
                        {"input_ids": ids, "logits": result.logits, "loss": result.loss.reshape(1), **grads})
    return model


def peft_expert_adapter(model_dir, out, ids):
    """PEFT's LoRA on transformers 5's fused experts and router (random A and B), its logits, loss and gradients."""
    torch.manual_seed(20)
    config = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, bias="none", init_lora_weights=False,
                        target_modules=["q_proj", "v_proj"],
                        target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate.weight"])
    model = get_peft_model(load_base(model_dir), config)
    # output_router_logits: the loss is the causal-LM loss + router_aux_loss_coef · the routers' load-balancing loss
    result = model(input_ids=ids, labels=ids, use_cache=False, output_router_logits=True)
    result.loss.backward()
    grads = {"grad." + n.replace(".default.", "."): p.grad for n, p in model.named_parameters() if p.requires_grad}
    model.save_pretrained(out)
    common.save_tensors(os.path.join(out, "reference.safetensors"),
                        {"input_ids": ids, "logits": result.logits, "loss": result.loss.reshape(1), "aux_loss": result.aux_loss.reshape(1),
                         **grads})


def peft_merged(base_dir, adapter_dir, out, dtype):
    """merge_and_unload on base_dir loaded in float32, saved in `dtype` (transformers writes one tensor per expert)."""
    merged = PeftModel.from_pretrained(load_base(base_dir), adapter_dir).merge_and_unload()
    merged.to(dtype).save_pretrained(out)
    return merged


def flat_dequantize(weight, state):
    """bitsandbytes' dequantize_4bit of the flattened tensor, reshaped: its CPU kernel blocks each row on its own, wrong
    for rows not a multiple of the block (Qwen3-MoE's 48-wide down_proj here; bitsandbytes 0.50), while the format
    (its quantize_4bit, its CUDA kernel, its generic path) blocks the flattened tensor."""
    shape, state.shape = state.shape, torch.Size([state.shape.numel()])
    return dequantize_4bit(weight, state).reshape(shape)


def dequantized_base(quantized_dir, out, compute_dtype=None):
    """A float32 folder of the 4-bit checkpoint as training computed with it: each 4-bit weight dequantized by
    bitsandbytes in compute_dtype (default: the checkpoint's bnb_4bit_compute_dtype), every other tensor as stored."""
    with open(os.path.join(quantized_dir, "config.json")) as f:
        config = json.load(f)
    stored_compute_dtype = getattr(torch, config.pop("quantization_config")["bnb_4bit_compute_dtype"])
    compute_dtype = compute_dtype or stored_compute_dtype
    tensors = {}
    with safe_open(os.path.join(quantized_dir, "model.safetensors"), "pt") as f:
        quantized = {k.split(".quant_state.")[0] for k in f.keys() if ".quant_state." in k}
        for key in f.keys():
            if key in quantized:
                aux = {k[len(key) + 1:]: f.get_tensor(k) for k in f.keys() if k.startswith(key + ".")}
                state = QuantState.from_dict(aux, device=torch.device("cpu"))
                tensors[key] = flat_dequantize(f.get_tensor(key), state).to(compute_dtype).float()
            elif not any(key.startswith(q + ".") for q in quantized):
                tensors[key] = f.get_tensor(key).float()
    os.makedirs(out, exist_ok=True)
    common.save_tensors(os.path.join(out, "model.safetensors"), tensors)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(config, dtype="float32"), f, indent=2)
    return out


def adapter_files_only(run, out):
    """The run's PEFT files without qtune's training record: an adapter made elsewhere, merged onto the base as given
    (with the record, qtune merges into the NF4 weights the run trained on)."""
    os.makedirs(out, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(os.path.join(run, name), out)
    return out


def qtune_merged_logits(qtune, model_dir, adapter_dir, out, ids):
    """transformers' logits with `qtune merge --dtype f32`'s folder, which must load key for key."""
    common.run_qtune(qtune, "merge", "--base", model_dir, "--adapter", adapter_dir, "--out", out, "--dtype", "f32", "--force")
    model, info = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, output_loading_info=True)
    wrong = {what: sorted(map(str, keys)) for what, keys in info.items() if keys}
    if wrong:
        raise RuntimeError(f"transformers loads {out} with {wrong}")
    with torch.no_grad():
        return model.eval()(input_ids=ids, use_cache=False).logits


def moe_merges(qtune, arch, model_dir, out, ids):
    base16 = common.init_model(qtune, arch, os.path.join(out, "base16"), dtype="bf16")
    quantized = os.path.join(out, "quantized")
    common.run_qtune(qtune, "quantize", "--model", model_dir, "--out", quantized, "--type", "nf4", "--double-quant")
    run, peft_experts = os.path.join(out, "qtune", "run"), os.path.join(out, "peft_experts")
    # adapter: (its folder for the 16/32-bit bases, for the NF4 base, deq(W)'s dtype there: the run's, the checkpoint's)
    adapters = {"qtune": (adapter_files_only(run, os.path.join(out, "qtune", "peft_files")), run, torch.float32),
                "peft_experts": (peft_experts, peft_experts, None)}
    for adapter, (plain, four_bit, compute_dtype) in adapters.items():
        merges = os.path.join(out, "merge_" + adapter)
        merged = peft_merged(model_dir, plain, os.path.join(merges, "f32"), torch.float32)
        peft_merged(base16, plain, os.path.join(merges, "bf16"), torch.bfloat16)
        dequantized = dequantized_base(quantized, os.path.join(merges, "nf4_base"), compute_dtype)
        peft_merged(dequantized, four_bit, os.path.join(merges, "nf4"), torch.bfloat16)
        with torch.no_grad():
            logits = merged.eval()(input_ids=ids, use_cache=False).logits
        qtune_logits = qtune_merged_logits(qtune, model_dir, plain, os.path.join(merges, "qtune_f32"), ids)
        common.save_tensors(os.path.join(merges, "logits.safetensors"), {"input_ids": ids, "peft": logits, "qtune": qtune_logits})


def moe_architecture(qtune, arch, model_dir, out, ids):
    run = common.train_qtune(qtune, model_dir, os.path.join(out, "qtune"), MOE_QTUNE_LORA)
    with torch.no_grad():
        logits = PeftModel.from_pretrained(load_base(model_dir), run)(input_ids=ids, use_cache=False).logits
    common.save_tensors(os.path.join(out, "qtune.safetensors"), {"input_ids": ids, "logits": logits})
    peft_expert_adapter(model_dir, os.path.join(out, "peft_experts"), ids)
    moe_merges(qtune, arch, model_dir, out, ids)


def merged_16bit(base16_dir, adapter_dir, out):
    merged = PeftModel.from_pretrained(load_base(base16_dir, torch.bfloat16), adapter_dir).merge_and_unload()
    merged.save_pretrained(out)


def merged_4bit(quantized_dir, peft_model, out_file):
    """bitsandbytes' dequantization of each adapted 4-bit weight plus PEFT's delta weight, in bfloat16."""
    with open(os.path.join(quantized_dir, "config.json")) as f:
        compute_dtype = getattr(torch, json.load(f)["quantization_config"]["bnb_4bit_compute_dtype"])
    merged = {}
    with safe_open(os.path.join(quantized_dir, "model.safetensors"), "pt") as f:
        for name, module in peft_model.base_model.model.named_modules():
            if not hasattr(module, "get_delta_weight"):
                continue
            weight = name + ".weight"
            aux = {k[len(weight) + 1:]: f.get_tensor(k) for k in f.keys() if k.startswith(weight + ".")}
            state = QuantState.from_dict(aux, device=torch.device("cpu"))
            base = flat_dequantize(f.get_tensor(weight), state).to(compute_dtype).float()
            merged[weight] = (base + module.get_delta_weight("default").float()).to(torch.bfloat16)
    common.save_tensors(out_file, merged)


def main():
    args = common.parse_args(__doc__, lambda p: p.add_argument("--models", required=True, help="Reference.models' output"))
    ids = batch()
    for arch in common.ARCH_FLAGS:
        model_dir, out = os.path.join(args.models, arch), os.path.join(args.out, arch)
        run = common.train_qtune(args.qtune, model_dir, os.path.join(out, "qtune"), QTUNE_LORA[arch])
        with torch.no_grad():
            logits = PeftModel.from_pretrained(load_base(model_dir), run)(input_ids=ids, use_cache=False).logits
        common.save_tensors(os.path.join(out, "qtune.safetensors"), {"input_ids": ids, "logits": logits})
        peft_models = {case: peft_adapter(model_dir, arch, case, os.path.join(out, "peft_" + case), ids) for case in PEFT_CASES}
        base16 = common.init_model(args.qtune, arch, os.path.join(out, "base16"), dtype="bf16")
        merged_16bit(base16, os.path.join(out, "peft_all"), os.path.join(out, "merged16"))
        quantized = os.path.join(out, "quantized")
        common.run_qtune(args.qtune, "quantize", "--model", model_dir, "--out", quantized, "--type", "nf4", "--double-quant")
        merged_4bit(quantized, peft_models["all"], os.path.join(out, "merged4bit.safetensors"))
        print(f"{arch}: qtune adapter, PEFT adapters {list(PEFT_CASES)}, merges written")
    for arch in common.MOE_FLAGS:
        moe_architecture(args.qtune, arch, os.path.join(args.models, arch), os.path.join(args.out, arch), ids)
        print(f"{arch}: qtune adapter on every expert and the router, PEFT adapter on the fused experts and router, merges written")


if __name__ == "__main__":
    main()
