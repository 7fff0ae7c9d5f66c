#!/usr/bin/env python3
"""transformers on qtune's model folders: `qtune init-model` writes a tiny random model of each architecture,
transformers loads it with `from_pretrained` (its default attention, float32) and computes the logits of four
cases and a greedy generation with its KV cache. Saved per architecture in <out>/<arch>/reference.safetensors;
tests/reference/test_transformers_models.cpp (suite TransformersModel) compares qtune's own numbers with them.

Cases (token ids in [3, 300)):
  plain   [2, 24] ids, no mask
  padded  [2, 24] ids + attention_mask, row 1 right-padded after 13 tokens
  packed  [1, 24] three sequences (7, 9, 8 tokens) in one row, position_ids restarting at 0 per sequence and no
          attention mask: transformers' packed-sequence detection (its flash/SDPA varlen semantics)
  offset  [2, 24] ids at positions 1000..1023 (rope beyond 1,000; llama3 scaling's low-frequency band)
  greedy  prompt [1, 8]; 32 new tokens, do_sample=False, KV cache on, no end-of-sequence stop
Besides the four architectures, llama_sharded is the Llama model written in shards (model.safetensors.index.json).
Mixture of experts (mixtral, qwen3_moe): also each sparse layer's chosen experts per token (<case>.experts.<layer>,
torch.topk of the router's softmax, as transformers' routers pick them) for plain, padded and packed, and the routers'
load-balancing loss transformers returns (<case>.aux_loss, output_router_logits=True).
mixtral_ties: the Mixtral model with router rows 2 and 3 copies of rows 0 and 1, so every token's probabilities tie
in pairs and torch.topk's tie order decides. qwen3_moe_dense_layer: written by transformers' save_pretrained, a
Qwen3-MoE whose layer 0 is dense (mlp_only_layers) and whose routing weights are not renormalized.
Loading must be clean: no missing, unexpected or mismatched weights, the model class the architecture names.
"""
import os

import reference_common as common
import torch
import transformers

SEQ = 24
PAD_AFTER = 13
PACKED = (7, 9, 8)
OFFSET = 1000
PROMPT, NEW_TOKENS = 8, 32


def make_inputs():
    g = torch.Generator().manual_seed(1)
    ids = lambda *shape: torch.randint(3, common.VOCAB, shape, generator=g)
    mask = torch.ones(2, SEQ, dtype=torch.int64)
    mask[1, PAD_AFTER:] = 0
    padded = ids(2, SEQ) * mask  # pad id 0
    packed_positions = torch.cat([torch.arange(n) for n in PACKED]).unsqueeze(0)
    return {"plain.input_ids": ids(2, SEQ), "padded.input_ids": padded, "padded.attention_mask": mask,
            "packed.input_ids": ids(1, SEQ), "packed.position_ids": packed_positions,
            "offset.input_ids": ids(2, SEQ), "offset.position_ids": (OFFSET + torch.arange(SEQ)).expand(2, SEQ).clone(),
            "greedy.prompt": ids(1, PROMPT)}


def greedy(model, prompt):
    """transformers' greedy decoding with its cache; returns the new ids and the smallest top-1/top-2 logit gap."""
    model.generation_config.eos_token_id = None  # always NEW_TOKENS tokens
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS, do_sample=False,
                         use_cache=True, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    gaps = [s.topk(2).values.diff().abs().min().item() for s in out.scores]
    return out.sequences[:, prompt.size(1):], min(gaps)


def chosen_experts(model, outputs):
    """Each sparse layer's top-k experts per token, {layer index: [N, k]}, from the router logits transformers
    recorded (its routers' own computation: softmax in float32, then torch.topk)."""
    k = model.config.num_experts_per_tok
    sparse = [i for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "gate")]
    assert len(sparse) == len(outputs.router_logits), (sparse, len(outputs.router_logits))
    return {i: torch.topk(torch.softmax(l.float(), -1), k, dim=-1).indices for i, l in zip(sparse, outputs.router_logits)}


def reference(model, inputs):
    moe = hasattr(model.config, "num_experts_per_tok")
    out = {}

    def run(case, **kw):
        result = model(**kw, use_cache=False, **({"output_router_logits": True} if moe else {}))
        out[case + ".logits"] = result.logits
        if moe:  # transformers' load_balancing_loss_func over the real tokens (attention_mask) of this forward
            out[case + ".aux_loss"] = result.aux_loss.reshape(1)
        if moe and case != "offset":
            for layer, experts in chosen_experts(model, result).items():
                out[f"{case}.experts.{layer}"] = experts

    with torch.no_grad():
        run("plain", input_ids=inputs["plain.input_ids"])
        run("padded", input_ids=inputs["padded.input_ids"], attention_mask=inputs["padded.attention_mask"])
        run("packed", input_ids=inputs["packed.input_ids"], position_ids=inputs["packed.position_ids"])
        run("offset", input_ids=inputs["offset.input_ids"], position_ids=inputs["offset.position_ids"])
        tokens, gap = greedy(model, inputs["greedy.prompt"])
    out["greedy.tokens"] = tokens
    return out, gap


FOLDERS = {arch: (arch, []) for arch in {**common.ARCH_FLAGS, **common.MOE_FLAGS}}
FOLDERS["llama_sharded"] = ("llama", ["--max-shard-gb", "0.0001"])
FOLDERS["mixtral_ties"] = ("mixtral", [])


def tie_routers(folder):
    """Router rows 2, 3 := rows 0, 1 in every layer: each token's router probabilities then tie in pairs."""
    path = os.path.join(folder, "model.safetensors")
    tensors = common.load_file(path)
    for key in sorted(tensors):
        if key.endswith("block_sparse_moe.gate.weight"):
            tensors[key][2:4] = tensors[key][0:2]
    common.save_file(tensors, path, metadata={"format": "pt"})


def qwen3_moe_dense_layer(folder):
    """A Qwen3-MoE written by transformers itself: layer 0 dense (mlp_only_layers), 8 experts, top 3 not
    renormalized, its weights N(0, 0.2²) and norms 1 + N(0, 0.1²) as init_model's."""
    config = transformers.Qwen3MoeConfig(
        vocab_size=common.VOCAB, hidden_size=64, intermediate_size=128, moe_intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_experts=8, num_experts_per_tok=3,
        norm_topk_prob=False, mlp_only_layers=[0], bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(5)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.1 * torch.randn(p.shape) if name.endswith("norm.weight") else 0.2 * torch.randn(p.shape))
    model.save_pretrained(folder)
    return folder


def load(folder, arch):
    """transformers' from_pretrained, asserting it took every weight qtune wrote and nothing else."""
    model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"{folder}: transformers did not load it cleanly: {problems}"
    assert type(model).__name__.lower().startswith(arch.replace("_", "")), f"{folder}: loaded as {type(model).__name__}"
    return model.eval()


def main():
    args = common.parse_args(__doc__)
    inputs = make_inputs()
    for name, (arch, extra) in FOLDERS.items():
        folder = common.init_model(args.qtune, arch, os.path.join(args.out, name), extra=extra)
        if name == "mixtral_ties":
            tie_routers(folder)
        model = load(folder, arch)
        out, gap = reference(model, inputs)
        common.save_tensors(os.path.join(folder, "reference.safetensors"), {**inputs, **out})
        print(f"{name}: {type(model).__name__}, attention {model.config._attn_implementation}, "
              f"smallest top-2 logit gap in greedy decoding {gap:.2e}")
    folder = qwen3_moe_dense_layer(os.path.join(args.out, "qwen3_moe_dense_layer"))
    model = load(folder, "qwen3_moe")
    out, gap = reference(model, inputs)
    common.save_tensors(os.path.join(folder, "reference.safetensors"), {**inputs, **out})
    print(f"qwen3_moe_dense_layer: layers {[type(l.mlp).__name__ for l in model.model.layers]}, greedy gap {gap:.2e}")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
