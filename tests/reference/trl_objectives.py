"""TRL's preference objectives and transformers' SFT loss on a tiny model with a LoRA adapter, for
tests/reference/test_trl_objectives.cpp (ctest Reference.trl).

Per architecture (llama, mistral, qwen2, qwen3, gemma3, phi3, mixtral, qwen3_moe) it writes under --out/<arch>: model/ (qtune init-model, float32), adapter/ (PEFT
LoRA with nonzero A and B, saved by PEFT; both computed in float64), and per case <case>.safetensors: the loss and every metric the trainer
logged for one batch, float64 scalars named as TRL names them. --out/pairs.json holds the batch (token ids of
prompt, chosen and rejected per pair; lengths differ, so padding matters) and --out/cases.json each case's trainer
and settings. The loss and metrics come from TRL's own trainers: its collator pads the batch and its compute_loss
scores it (DPOTrainer with the adapter disabled as the reference, CPOTrainer for SimPO, ORPOTrainer).
SFT: transformers' `loss` of the same model and adapter on the prompt + answer rows with the prompts labelled -100
(for MoE, whose adapter trains the routers, with output_router_logits: plus router_aux_loss_coef · the load-balancing
loss). DPOTrainer adds that term on MoE models by itself.
"""
import json
import os
import tempfile
import warnings

from reference_common import VOCAB, init_model, parse_args, save_tensors

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402
from trl.experimental.cpo import CPOConfig, CPOTrainer  # noqa: E402
from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402

# gemma3: 1 + w norms, GeGLU; phi3: fused projections; mixtral, qwen3_moe: routed experts (the adapter on their fused
# experts and routers as PEFT makes it on transformers 5: target_parameters)
ARCHS = ["llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3", "mixtral", "qwen3_moe"]
# (not gemma2: transformers 5.25 gives NaN logits for its left-padded rows in float64, as TRL pads prompts)
# The metrics are differences of answer sums (rewards β·(π − ρ), their margins): float32 rounding of the ~40-nat
# sums alone moves them by more than 1e-5 relative, so both sides compute in float64 (qtune loads the same files
# with dtype f64). TRL's own float32 islands stay (ORPOTrainer casts the log-probs to float32 for the odds ratio).
DTYPE = torch.float64
TARGETS = ["q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj", "gate_up_proj", "down_proj"]  # each family has 4 or 7

# name -> (trainer, its settings). Settings use TRL's names; the C++ test maps them to qtune's config keys.
CASES = {
    "dpo_sigmoid": ("dpo", {"loss_type": "sigmoid", "beta": 0.1}),
    "dpo_sigmoid_smoothing": ("dpo", {"loss_type": "sigmoid", "beta": 0.1, "label_smoothing": 0.2}),
    "dpo_ipo": ("dpo", {"loss_type": "ipo", "beta": 0.1}),
    "dpo_robust": ("dpo", {"loss_type": "robust", "beta": 0.1, "label_smoothing": 0.2}),
    "dpo_hinge": ("dpo", {"loss_type": "hinge", "beta": 0.1}),
    "simpo": ("cpo", {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 0.5, "cpo_alpha": 0.0}),
    "simpo_smoothing_nll": ("cpo", {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 0.5, "cpo_alpha": 0.5,
                                    "label_smoothing": 0.2}),
    "orpo": ("orpo", {"beta": 0.1}),
}
TRAINERS = {"dpo": (DPOConfig, DPOTrainer), "cpo": (CPOConfig, CPOTrainer), "orpo": (ORPOConfig, ORPOTrainer)}


def make_pairs(count=4):
    """Random byte-token pairs; prompt, chosen and rejected lengths all differ between pairs."""
    g = torch.Generator().manual_seed(1)

    def ids(n):
        return torch.randint(0, 256, (n,), generator=g).tolist()

    return [{"prompt": ids(3 + 2 * i), "chosen": ids(2 + 3 * i), "rejected": ids(7 - i)} for i in range(count)]


def make_adapter(model_dir, adapter_dir, moe):
    """A PEFT LoRA on every projection (an MoE's experts and router included) with seeded random A and B, large
    enough that the DPO rewards β·(π − ρ) are not a float32 rounding of two near-equal sums."""
    experts = {"target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate.weight"]} if moe else {}
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"] if moe else TARGETS  # (gate_proj etc. would name Qwen3-MoE's experts)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM", **experts)
    model = get_peft_model(base_model(model_dir), config)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)
    model.save_pretrained(adapter_dir)


def load_adapter_weights(model, adapter_dir):
    """The saved adapter's A and B into the adapter a trainer made from the same LoraConfig."""
    result = set_peft_model_state_dict(model, load_file(os.path.join(adapter_dir, "adapter_model.safetensors")))
    assert not result.unexpected_keys, result.unexpected_keys
    assert not [k for k in result.missing_keys if "lora_" in k], result.missing_keys


def base_model(model_dir):
    """The float32 checkpoint computed in float64 (see DTYPE); MoE experts through transformers' eager loop (its
    default, torch's grouped_mm, takes no float64)."""
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPE, experts_implementation="eager")


def dpo_features(pairs):
    """What DPOTrainer's dataset preparation yields per example (its collator builds the batch)."""
    return [{"prompt_ids": p["prompt"], "chosen_ids": p["chosen"], "rejected_ids": p["rejected"]} for p in pairs]


def cpo_features(pairs):
    """What CPOTrainer/ORPOTrainer's tokenize_row yields per example: sequences, masks, prompt labels -100."""
    features = []
    for p in pairs:
        f = {"prompt_input_ids": p["prompt"], "prompt_attention_mask": [1] * len(p["prompt"])}
        for side in ("chosen", "rejected"):
            ids = p["prompt"] + p[side]
            f[f"{side}_input_ids"] = ids
            f[f"{side}_attention_mask"] = [1] * len(ids)
            f[f"{side}_labels"] = [-100] * len(p["prompt"]) + p[side]
        features.append(f)
    return features


def trainer_metrics(kind, trainer):
    """The metrics the trainer stored for the step it just scored (what its log() would average)."""
    stored = trainer._metrics["train"] if kind == "dpo" else trainer._stored_metrics["train"]
    return {name: values[-1] for name, values in stored.items()}


def run_case(kind, settings, model_dir, adapter_dir, tokenizer, pairs, work):
    """Loss and metrics of one TRL trainer on the batch."""
    config_class, trainer_class = TRAINERS[kind]
    args = config_class(output_dir=work, report_to="none", bf16=False, use_cpu=True, per_device_train_batch_size=len(pairs),
                        remove_unused_columns=kind == "dpo", **settings)
    # The trainers need a dataset to start; the scored batch is `pairs`, collated by the trainer's own collator.
    dataset = Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}])
    # The trainer adds a new adapter (so DPO's reference is the base model: adapters disabled), then it gets the
    # saved weights. A PeftModel passed in would instead be its own reference (TRL copies it as adapter "ref").
    trainer = trainer_class(model=base_model(model_dir), args=args, train_dataset=dataset, processing_class=tokenizer,
                            peft_config=LoraConfig.from_pretrained(adapter_dir))
    load_adapter_weights(trainer.model, adapter_dir)
    batch = trainer.data_collator(dpo_features(pairs) if kind == "dpo" else cpo_features(pairs))
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    return {"loss": loss.item(), **trainer_metrics(kind, trainer)}


def sft_loss(model_dir, adapter_dir, tokenizer, pairs):
    """transformers' causal-LM loss (mean over labelled next tokens) of prompt + answer rows, right-padded."""
    rows = [(p["prompt"], p[side]) for side in ("chosen", "rejected") for p in pairs]
    width = max(len(prompt) + len(answer) for prompt, answer in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    for r, (prompt, answer) in enumerate(rows):
        n = len(prompt) + len(answer)
        ids[r, :n] = torch.tensor(prompt + answer)
        mask[r, :n] = 1
        labels[r, len(prompt):n] = torch.tensor(answer)
    model = PeftModel.from_pretrained(base_model(model_dir), adapter_dir)
    # An MoE adapter here trains the router: its loss is transformers' with the load-balancing term
    # (output_router_logits), which qtune adds whenever a router is trained.
    moe = hasattr(model.config, "num_experts_per_tok")
    return model(input_ids=ids, attention_mask=mask, labels=labels, **({"output_router_logits": True} if moe else {})).loss.item()


def save_scalars(path, values):
    save_tensors(path, {name: torch.tensor(float(v), dtype=torch.float64) for name, v in values.items()})


def main():
    args = parse_args(__doc__.splitlines()[0])
    warnings.filterwarnings("ignore")
    pairs = make_pairs()
    assert all(max(p["prompt"] + p["chosen"] + p["rejected"]) < VOCAB for p in pairs)
    with open(os.path.join(args.out, "pairs.json"), "w") as f:
        json.dump(pairs, f)
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump({name: {"trainer": kind, **settings} for name, (kind, settings) in CASES.items()}, f, indent=1)
    for arch in ARCHS:
        root = os.path.join(args.out, arch)
        model_dir, adapter_dir = os.path.join(root, "model"), os.path.join(root, "adapter")
        init_model(args.qtune, arch, model_dir)
        make_adapter(model_dir, adapter_dir, arch in ("mixtral", "qwen3_moe"))
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        for name, (kind, settings) in CASES.items():
            with tempfile.TemporaryDirectory() as work:
                values = run_case(kind, settings, model_dir, adapter_dir, tokenizer, pairs, work)
            save_scalars(os.path.join(root, f"{name}.safetensors"), values)
            print(arch, name, json.dumps(values))
        sft = sft_loss(model_dir, adapter_dir, tokenizer, pairs)
        save_scalars(os.path.join(root, "sft.safetensors"), {"loss": sft})
        print(arch, "sft loss", sft)


if __name__ == "__main__":
    main()
