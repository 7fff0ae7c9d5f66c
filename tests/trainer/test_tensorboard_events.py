#!/usr/bin/env python3
"""ctest Reference.TensorBoardEvents: qtune's TensorBoard event files (report_to: tensorboard) read by the
`tensorboard` package itself, on a tiny model trained on the CPU.

For each run, TensorBoard's EventAccumulator (the backend's reader, every event kept) and its raw record reader
(RawEventFileLoader + the Event proto) must find each number of metrics.jsonl exactly once: the tag by README's
rule ("eval_X" -> "eval/X", any other key K -> "train/K"; "step" and "wall_time" are the event's own fields), at its
step, with the value as float32 and the line's wall_time. Runs: SFT with evaluation; DPO (the preference metrics);
SFT stopped early and resumed; SFT resumed from an earlier checkpoint than its last step (the events after it are
dropped and written again); two ranks (rank 0 alone writes); and a run without report_to, which writes no event file.
Usage: test_tensorboard_events.py --qtune BINARY --out DIR."""
import argparse
import glob
import json
import math
import os
import shutil
import subprocess

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2
from tensorboard.util import tensor_util

WORDS = ["cat", "dog", "sun", "sky", "red", "sea", "owl", "fig"]


def qtune(binary, *args):
    done = subprocess.run([binary, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, f"qtune {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}"
    return done.stdout


def write_data(out):
    with open(os.path.join(out, "chat.jsonl"), "w") as f:
        for w in WORDS * 2:
            turns = [{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": f"{w} {w}"}]
            f.write(json.dumps({"messages": turns}) + "\n")
    with open(os.path.join(out, "pairs.jsonl"), "w") as f:
        for w in WORDS * 2:
            f.write(json.dumps({"prompt": f"say {w}", "chosen": w.upper(), "rejected": w}) + "\n")


def write_config(out, name, data, extra):
    """A config for run `name` (output in out/name) on chat.jsonl or pairs.jsonl; returns its path."""
    kind = "chat_template\nchat_template: chatml" if data == "chat" else "preference"
    path = os.path.join(out, name + ".yaml")
    with open(path, "w") as f:
        f.write(f"base_model: model\ndatasets:\n  - path: {data}.jsonl\n    type: {kind}\nsequence_len: 48\n"
                "micro_batch_size: 2\nlearning_rate: 0.01\nlora_r: 4\nlora_alpha: 8\nlora_target_linear: true\n"
                f"val_set_size: 4\nseed: 5\ndevice: cpu\noutput_dir: {name}\n{extra}")
    return path


def expected_scalars(run_dir):
    """{(tag, step): (value, wall_time)} from metrics.jsonl; a null (a non-finite number) is NaN."""
    expected = {}
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        record = json.loads(line)
        for key, value in record.items():
            if key in ("step", "wall_time") or isinstance(value, (bool, str)):
                continue
            tag = "eval/" + key[len("eval_"):] if key.startswith("eval_") else "train/" + key
            expected[(tag, record["step"])] = (math.nan if value is None else value, record["wall_time"])
    return expected


def check_same(found, expected, reader):
    """`found`: [(tag, step, value, wall_time)] as a reader saw them; each expected once, nothing else."""
    keys = [(tag, step) for tag, step, _, _ in found]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"{reader}: (tag, step) more than once: {duplicates[:5]}"
    assert set(keys) == set(expected), (f"{reader}: missing {sorted(set(expected) - set(keys))[:5]}, "
                                        f"extra {sorted(set(keys) - set(expected))[:5]}")
    for tag, step, value, wall_time in found:
        want, want_time = expected[(tag, step)]
        same = np.isnan(value) if math.isnan(want) else np.float32(value) == np.float32(want)
        assert same, f"{reader}: {tag} at step {step} is {value}, metrics.jsonl has {want}"
        assert wall_time == want_time, f"{reader}: {tag} at step {step}: wall_time {wall_time} != {want_time}"


def accumulator(logging_dir):
    acc = event_accumulator.EventAccumulator(logging_dir, size_guidance={k: 0 for k in event_accumulator.DEFAULT_SIZE_GUIDANCE})
    acc.Reload()
    return acc


def raw_scalars(logging_dir):
    """Every simple_value of every event file in logging_dir, read record by record; each file starts with its version."""
    found = []
    for path in sorted(glob.glob(os.path.join(logging_dir, "*tfevents*"))):
        events = [event_pb2.Event.FromString(record) for record in RawEventFileLoader(path).Load()]
        assert events and events[0].file_version == "brain.Event:2", f"{path}: no file_version event first"
        for e in events:
            found += [(v.tag, e.step, v.simple_value, e.wall_time) for v in e.summary.value if v.WhichOneof("value") == "simple_value"]
    return found


def check_run(run_dir, config_yaml=None):
    """The two readers against metrics.jsonl; the config's text summary (equal to `config_yaml` when given)."""
    logging_dir = os.path.join(run_dir, "runs")
    expected = expected_scalars(run_dir)
    acc = accumulator(logging_dir)
    found = [(tag, e.step, e.value, e.wall_time) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)]
    check_same(found, expected, "EventAccumulator")
    check_same(raw_scalars(logging_dir), expected, "RawEventFileLoader")
    assert "config" in acc.PluginTagToContent("text"), acc.Tags()
    texts = acc.Tensors("config")
    assert len(texts) == 1, f"{len(texts)} config texts"
    text = tensor_util.make_ndarray(texts[0].tensor_proto).item().decode()
    if config_yaml is not None:
        assert text == "```yaml\n" + open(config_yaml).read() + "```\n", text
    return expected


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qtune", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    args.qtune, args.out = os.path.abspath(args.qtune), os.path.abspath(args.out)
    os.chdir(args.out)
    qtune(args.qtune, "init-model", "--arch", "qwen2", "--out", "model", "--hidden", 64, "--layers", 2, "--heads", 4, "--kv-heads", 2,
          "--intermediate", 128, "--dtype", "f32", "--init-std", 0.2, "--byte-tokenizer", "--force")
    write_data(args.out)
    sft = "max_steps: 6\neval_steps: 3\nsave_steps: 2\nreport_to: tensorboard\n"

    qtune(args.qtune, "train", write_config(args.out, "sft", "chat", sft))
    expected = check_run("sft", "sft/qtune_training.yaml")
    assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/host_memory_bytes", "eval/loss"} <= {t for t, _ in expected}
    assert {s for t, s in expected if t == "eval/loss"} == {3, 6}

    qtune(args.qtune, "train", write_config(args.out, "dpo", "pairs", "rl: dpo\nmax_steps: 4\neval_steps: 2\nreport_to: [tensorboard]\n"))
    expected = check_run("dpo", "dpo/qtune_training.yaml")
    assert {"train/rewards/accuracies", "train/rewards/margins", "eval/rewards/accuracies"} <= {t for t, _ in expected}

    stopped = write_config(args.out, "stopped", "chat", sft)
    qtune(args.qtune, "train", stopped, "stop_after_steps=4")
    assert {s for _, s in check_run("stopped")} == {1, 2, 3, 4}
    qtune(args.qtune, "train", stopped, "resume_from_checkpoint=auto")
    assert {s for _, s in check_run("stopped")} == set(range(1, 7))

    # From checkpoint-2 of the finished run: steps 3..6 were written before and are written again.
    for later in ("sft/checkpoint-4", "sft/checkpoint-6"):
        shutil.rmtree(later, ignore_errors=True)
    qtune(args.qtune, "train", os.path.join(args.out, "sft.yaml"), "resume_from_checkpoint=auto")
    assert {s for _, s in check_run("sft")} == set(range(1, 7))

    # Two ranks: rank 0 alone writes (a second writer would add a file and every scalar twice).
    qtune(args.qtune, "train", write_config(args.out, "ranks", "chat", "max_steps: 2\nreport_to: tensorboard\n"), "--nproc", 2)
    assert len(glob.glob("ranks/runs/*tfevents*")) == 1 and {s for _, s in check_run("ranks")} == {1, 2}

    qtune(args.qtune, "train", write_config(args.out, "plain", "chat", "max_steps: 1\n"))
    assert os.path.exists("plain/metrics.jsonl") and not glob.glob("plain/**/*tfevents*", recursive=True), os.listdir("plain")
    print("ok: every metrics.jsonl number once in TensorBoard's readers (SFT, DPO, stopped + resumed, resumed from an earlier checkpoint)")


if __name__ == "__main__":
    main()
