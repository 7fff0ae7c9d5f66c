#!/usr/bin/env python3
"""The gguf package and transformers on the GGUF files `qtune export` writes (tests/reference/test_gguf_export_reference.cpp,
suite GgufExportReference, compares).

Per architecture (the `models` area's tiny models) a PEFT adapter with random A and B is saved, and qtune exports
base + adapter at every type. For each file:
  reader.json             what gguf.GGUFReader finds: every metadata key with its type, every tensor's name, type, shape
  logits.<type>           transformers' logits from the file (from_pretrained(gguf_file=...)), [2, 24]
  merged_logits           PEFT merge_and_unload's logits on the same ids (float32), the number the GGUF should give
  ids                     those ids
Without an adapter (base.<type>.gguf, q8_0 and q4_0): the gguf package's own quantizer on the base's weights in
llama.cpp's row order, codes.<type>/<tensor>.bin, which qtune's Q8_0/Q4_0 tensors must equal byte for byte.
A wider Llama (hidden 256, intermediate 512: K-quant rows) exported at q4_k_m, q5_k_m and q6_k:
  wide/dequant.<type>.safetensors  gguf.quants.dequantize of every tensor of the file, by GGUF name
  wide/weights.safetensors         the weights it came from (HF names)
For the families in OWN_CONFIG transformers cannot rebuild the config from the metadata, so the file's tensors
(read and mapped by transformers' GGUF loader: Gemma's norms less 1, Phi-3's fused tensors as they are) go into a
model of the folder's config; config.<arch>.json records the config transformers derived.
Mixture of experts (mixtral, qwen3_moe; types MOE_TYPES), in <out>/<arch>/: a PEFT adapter on attention and on
transformers 5's fused experts and routers (target_parameters), base + adapter exported, and
  reader.json            as above
  moe.safetensors        merged.<GGUF name>: PEFT's merged experts and routers as llama.cpp stacks them (gate_up_proj
                         [E, 2F, D] split into ffn_gate_exps / ffn_up_exps, down_proj [E, D, F] as ffn_down_exps, the
                         router as ffn_gate_inp) and its q/k projections (Mixtral's rows in llama.cpp's rope order);
                         dequant.<type>.<GGUF name>: gguf.quants.dequantize of those tensors of the file;
                         merged_logits and ids; logits.<type> for qwen3_moe (transformers' GGUF loader on the file,
                         its tensors in a model of the folder's config)
  config.qwen3_moe.json  the config transformers derived from the f32 file
transformers' GGUF loader has no Mixtral: it reads a "llama" file as Llama, without the experts.
"""
import json
import os
import re
import shutil

import gguf
import numpy as np
import reference_common as common
import torch
from gguf.quants import dequantize, quantize
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"]
ARCHS = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]
# Where transformers' GGUF loader cannot rebuild the config from the metadata: it ignores rope_freqs.weight (Llama 3
# rope scaling), reads a "llama" file as Llama (no sliding window: Mistral), and takes Qwen3's head_dim from its
# own default (128) instead of attention.key_length (the tiny Qwen3 has 32). Gemma 2/3: no metadata key gives
# query_pre_attn_scalar (its default 256; llama.cpp derives the scale from the sizes, the tiny models' 16 is neither),
# the soft-capping keys are not mapped (Gemma2Config's defaults), nor rope.scaling.* (Gemma 3's linear factor),
# attention.sliding_window_pattern (its default 6, the tiny Gemma 3 alternates) or rope.freq_base_swa. Phi-3: the
# rope_factors_long/short tensors and rope.dimension_count (partial rotary) are ignored. Their tensors go into the
# folder's config.
OWN_CONFIG = ("llama", "mistral", "qwen3", "gemma2", "gemma3", "phi3")
# PEFT's module names: Phi-3's fused projections.
TARGETS = {"phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]}
DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def ids():
    return torch.randint(3, common.VOCAB, (2, 24), generator=torch.Generator().manual_seed(5))


def reader_summary(path):
    r = gguf.GGUFReader(path)
    keys = {name: int(field.types[0]) for name, field in r.fields.items() if not name.startswith("GGUF.")}
    tensors = [{"name": t.name, "type": int(t.tensor_type), "shape": [int(n) for n in t.shape]} for t in r.tensors]
    return {"keys": keys, "tensors": tensors}


def peft_adapter(model_dir, out, arch):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0, init_lora_weights=False,
                        target_modules=TARGETS.get(arch, DEFAULT_TARGETS))
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    merged = peft_model.merge_and_unload()
    with torch.no_grad():
        return merged(ids()).logits


def gguf_logits(folder, name, config=None):
    """transformers on the file; with `config`, only its tensors (dequantized, Q/K rows put back by transformers)
    go into a model made from `config`."""
    if config is None:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    else:
        as_llama = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder, gguf_file=name))
        tensors = load_gguf_checkpoint(os.path.join(folder, name), return_tensors=True, model_to_load=as_llama)["tensors"]
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        tied = ("lm_head.weight",) if config.tie_word_embeddings else ()  # the file has token_embd only
        assert not unexpected and all("rotary" in m or m in tied for m in missing), (missing, unexpected)
        model.tie_weights()
    with torch.no_grad():
        return model.eval()(ids()).logits


def llama_rows(weight, heads):
    """llama.cpp's converter's Q/K row order: each head's two rotary halves interleaved (published layout)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def quantizer_codes(base, out, arch):
    """gguf.quants.quantize of every 2-D base weight, in the GGUF file's row order."""
    config = json.load(open(os.path.join(base, "config.json")))
    weights = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).state_dict()
    for qtype in ("Q8_0", "Q4_0"):
        os.makedirs(os.path.join(out, f"codes.{qtype}"), exist_ok=True)
        for name, w in weights.items():
            if w.dim() != 2 or w.shape[1] % 32:
                continue
            if arch in ("llama", "mistral") and name.endswith(("q_proj.weight", "k_proj.weight")):
                heads = config["num_attention_heads"] if "q_proj" in name else config["num_key_value_heads"]
                w = llama_rows(w, heads)
            codes = quantize(w.numpy().astype(np.float32), gguf.GGMLQuantizationType[qtype])
            codes.tofile(os.path.join(out, f"codes.{qtype}", name + ".bin"))


def export(qtune, out_file, base, qtype, adapter=None):
    args = ["export", "--model", base, "--out", out_file, "--type", qtype, "--force"]
    common.run_qtune(qtune, *args, *(["--adapter", adapter] if adapter else []))


def per_architecture(args, arch):
    out = os.path.join(args.out, arch)
    os.makedirs(out)
    # The file's general.name is the folder's name, and transformers reads a "llama" file whose name holds "mistral" as
    # its own mistral architecture, which its GGUF loader then cannot map: a neutral name.
    base = shutil.copytree(os.path.join(args.models, arch), os.path.join(out, "base"))
    logits = {"merged_logits": peft_adapter(base, os.path.join(out, "adapter"), arch), "ids": ids()}
    summaries = {}
    hf_config = AutoConfig.from_pretrained(base) if arch in OWN_CONFIG else None
    for qtype in TYPES:
        name = f"model.{qtype}.gguf"
        export(args.qtune, os.path.join(out, name), base, qtype, os.path.join(out, "adapter"))
        summaries[qtype] = reader_summary(os.path.join(out, name))
        logits[f"logits.{qtype}"] = gguf_logits(out, name, hf_config)
    derived = AutoConfig.from_pretrained(out, gguf_file="model.f32.gguf").to_dict()
    json.dump(derived, open(os.path.join(args.out, f"config.{arch}.json"), "w"), indent=1, default=str)
    for qtype in ("q8_0", "q4_0"):
        export(args.qtune, os.path.join(out, f"base.{qtype}.gguf"), base, qtype)
    quantizer_codes(base, out, arch)
    common.save_tensors(os.path.join(out, "logits.safetensors"), logits)
    json.dump(summaries, open(os.path.join(out, "reader.json"), "w"), indent=1)


def wide_llama(args):
    """K-quant rows: gguf's dequantization of qtune's Q4_K / Q5_K / Q6_K tensors, next to the weights they encode."""
    out = os.path.join(args.out, "wide")
    common.run_qtune(args.qtune, "init-model", "--arch", "llama", "--out", out, "--hidden", 256, "--layers", 2, "--heads", 4,
                     "--kv-heads", 2, "--intermediate", 512, "--vocab", common.VOCAB, "--dtype", "f32", "--seed", 4,
                     "--byte-tokenizer", "--force")
    weights = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).state_dict()
    common.save_tensors(os.path.join(out, "weights.safetensors"), weights)
    for qtype in ("q4_k_m", "q5_k_m", "q6_k"):
        path = os.path.join(out, f"model.{qtype}.gguf")
        export(args.qtune, path, out, qtype)
        reader = gguf.GGUFReader(path)
        dequantized = {t.name: torch.from_numpy(np.ascontiguousarray(dequantize(t.data, t.tensor_type))).float() for t in reader.tensors}
        common.save_tensors(os.path.join(out, f"dequant.{qtype}.safetensors"), dequantized)


MOE_ARCHS = ["mixtral", "qwen3_moe"]
MOE_TYPES = ["f32", "q8_0", "q4_k_m"]
# transformers 5's module names for both families: mlp.experts (fused gate_up_proj, down_proj) and the router mlp.gate.
MOE_TARGETS = dict(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                   target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate.weight"])
# transformers' GGUF loader reads qwen3moe; the tiny model's expert width (48) is not in its config mapping
# (expert_feed_forward_length is not read: Qwen3MoeConfig's 768), so its tensors go into the folder's config.
TRANSFORMERS_GGUF = ("qwen3_moe",)


def peft_moe_adapter(model_dir, out):
    """PEFT's LoRA (random A and B) on attention, the fused experts and the routers, saved; the merged model."""
    torch.manual_seed(6)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False, **MOE_TARGETS)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    return peft_model.merge_and_unload().eval()


def as_llama_cpp(merged, arch):
    """The merged experts, routers and q/k projections by GGUF name, as llama.cpp's converter writes them: experts
    stacked [E, out, in], Mixtral's q/k rows in llama.cpp's rope order (it converts Mixtral as llama)."""
    out = {}
    config = merged.config
    for name, t in merged.state_dict().items():
        m = re.fullmatch(r"model\.layers\.(\d+)\.(mlp\.experts\.gate_up_proj|mlp\.experts\.down_proj|mlp\.gate\.weight|"
                         r"self_attn\.q_proj\.weight|self_attn\.k_proj\.weight)", name)
        if not m:
            continue
        blk = f"blk.{m[1]}."
        if m[2] == "mlp.experts.gate_up_proj":  # gate rows, then up rows
            f = t.shape[1] // 2
            out[blk + "ffn_gate_exps.weight"], out[blk + "ffn_up_exps.weight"] = t[:, :f], t[:, f:]
        elif m[2] == "mlp.experts.down_proj":
            out[blk + "ffn_down_exps.weight"] = t
        elif m[2] == "mlp.gate.weight":
            out[blk + "ffn_gate_inp.weight"] = t
        else:
            q = m[2].startswith("self_attn.q")
            heads = config.num_attention_heads if q else config.num_key_value_heads
            out[blk + ("attn_q.weight" if q else "attn_k.weight")] = llama_rows(t, heads) if arch == "mixtral" else t
    assert any("_exps" in k for k in out), "no experts found in the merged model's state dict"
    return out


def moe_architecture(args, arch):
    out = os.path.join(args.out, arch)
    os.makedirs(out)
    base = shutil.copytree(os.path.join(args.models, arch), os.path.join(out, "base"))
    merged = peft_moe_adapter(base, os.path.join(out, "adapter"))
    expected = as_llama_cpp(merged, arch)
    with torch.no_grad():
        tensors = {"merged_logits": merged(ids()).logits, "ids": ids(), **{"merged." + k: v for k, v in expected.items()}}
    summaries = {}
    for qtype in MOE_TYPES:
        name = f"model.{qtype}.gguf"
        export(args.qtune, os.path.join(out, name), base, qtype, os.path.join(out, "adapter"))
        summaries[qtype] = reader_summary(os.path.join(out, name))
        for t in gguf.GGUFReader(os.path.join(out, name)).tensors:
            if t.name in expected:
                tensors[f"dequant.{qtype}.{t.name}"] = torch.from_numpy(np.array(dequantize(t.data, t.tensor_type))).float()
        if arch in TRANSFORMERS_GGUF:
            tensors[f"logits.{qtype}"] = gguf_logits(out, name, AutoConfig.from_pretrained(base))
    if arch in TRANSFORMERS_GGUF:
        derived = AutoConfig.from_pretrained(out, gguf_file="model.f32.gguf").to_dict()
        json.dump(derived, open(os.path.join(args.out, f"config.{arch}.json"), "w"), indent=1, default=str)
    common.save_tensors(os.path.join(out, "moe.safetensors"), tensors)
    json.dump(summaries, open(os.path.join(out, "reader.json"), "w"), indent=1)


def main():
    args = common.parse_args(__doc__, lambda p: p.add_argument("--models", required=True))
    for arch in ARCHS:
        per_architecture(args, arch)
    wide_llama(args)
    for arch in MOE_ARCHS:
        moe_architecture(args, arch)


if __name__ == "__main__":
    main()
