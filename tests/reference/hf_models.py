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


def reference(model, inputs):
    with torch.no_grad():
        run = lambda **kw: model(**kw, use_cache=False).logits
        out = {"plain.logits": run(input_ids=inputs["plain.input_ids"]),
               "padded.logits": run(input_ids=inputs["padded.input_ids"], attention_mask=inputs["padded.attention_mask"]),
               "packed.logits": run(input_ids=inputs["packed.input_ids"], position_ids=inputs["packed.position_ids"]),
               "offset.logits": run(input_ids=inputs["offset.input_ids"], position_ids=inputs["offset.position_ids"])}
        tokens, gap = greedy(model, inputs["greedy.prompt"])
    out["greedy.tokens"] = tokens
    return out, gap


FOLDERS = {arch: (arch, []) for arch in common.ARCH_FLAGS}
FOLDERS["llama_sharded"] = ("llama", ["--max-shard-gb", "0.0001"])


def load(folder, arch):
    """transformers' from_pretrained, asserting it took every weight qtune wrote and nothing else."""
    model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"{folder}: transformers did not load it cleanly: {problems}"
    assert type(model).__name__.lower().startswith(arch), f"{folder}: loaded as {type(model).__name__}"
    return model.eval()


def main():
    args = common.parse_args(__doc__)
    inputs = make_inputs()
    for name, (arch, extra) in FOLDERS.items():
        folder = common.init_model(args.qtune, arch, os.path.join(args.out, name), extra=extra)
        model = load(folder, arch)
        out, gap = reference(model, inputs)
        common.save_tensors(os.path.join(folder, "reference.safetensors"), {**inputs, **out})
        print(f"{name}: {type(model).__name__}, attention {model.config._attn_implementation}, "
              f"smallest top-2 logit gap in greedy decoding {gap:.2e}")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
