#!/usr/bin/env python3
"""ctest Report.Chromium: `qtune report` pages as headless Chromium renders them.

Runs: the demo (scripts/demo.sh's base model and data, configs/tiny-qlora-sft.yaml as it is), a DPO and an ORPO
run with evaluation on a tiny model, and the two preference runs overlaid on one page. Each page gets a copy with
a measuring script appended (the page itself has no script), which Chromium runs before dumping the DOM. Checks:
every expected plot is in the DOM with a rendered size and its legend inside it; each series has one point per metrics.jsonl line with
that key (the file read here is the reference); its points lie inside the plotting frame, in step order left to
right, and a larger value is drawn higher (SVG y is the reverse order of the values); the tables show the last
loss, the step count and the data figures of qtune_run.json; the page fetches nothing. --screenshot FILE also
saves the demo page as a PNG (the README's picture).
Usage: test_report_chromium.py --qtune BINARY --source DIR --out DIR [--screenshot FILE]."""
import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys

SKIP = 77  # ctest's SKIP_RETURN_CODE for this test

# Appended to a copy of the page: measures what Chromium laid out and writes it into <pre id="measured">.
MEASURE = """<script>
const plots = [...document.querySelectorAll('svg.plot')].map(svg => {
  const box = svg.getBoundingClientRect();
  const series = [...svg.querySelectorAll('g.series')].map(g => ({
    label: g.dataset.label, points: Number(g.dataset.points),
    drawn: [...g.querySelectorAll('polyline')].flatMap(p => [...p.points].map(q => [q.x, q.y])),
    length: [...g.querySelectorAll('polyline')].reduce((sum, p) => sum + p.getTotalLength(), 0),
    markers: g.querySelectorAll('circle').length}));
  const frame = svg.querySelector('rect.frame').getBBox();
  const legendRight = Math.max(...[...svg.querySelectorAll('text.legend')].map(t => t.getBBox().x + t.getBBox().width));
  return {metric: svg.dataset.metric, width: box.width, height: box.height, series, legend_right: legendRight,
          view_width: svg.viewBox.baseVal.width, frame: [frame.x, frame.y, frame.x + frame.width, frame.y + frame.height]};
});
const table = id => Object.fromEntries([...document.querySelectorAll('#' + id + ' tr')].slice(1)
  .map(tr => [tr.querySelector('th').textContent, [...tr.querySelectorAll('td')].map(td => td.textContent)]));
const sections = ['summary', 'plots', 'data', 'memory-plan', 'config'].filter(id => document.getElementById(id));
const out = document.createElement('pre');
out.id = 'measured';
out.textContent = JSON.stringify({plots, summary: table('summary'), data: table('data'), sections,
  preformatted: [...document.querySelectorAll('#memory-plan pre, #config pre')].map(p => p.textContent)});
document.body.appendChild(out);
</script>"""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def run(*args, cwd=None):
    done = subprocess.run([str(a) for a in args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}"
    return done.stdout


def browser_args(browser):
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1000"]


def measure(browser, page, scratch):
    """What Chromium rendered of `page`: the MEASURE script's JSON."""
    text = open(page, encoding="utf-8").read()
    assert "<script" not in text, f"{page} has a script"
    for external in ("src=", "href=", "@import", "url("):
        assert external not in text, f"{page} refers to something outside it ({external})"
    measured_page = os.path.join(scratch, os.path.basename(page) + ".measure.html")
    with open(measured_page, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", MEASURE + "</body>"))
    dom = run(*browser_args(browser), "--dump-dom", "file://" + os.path.abspath(measured_page))
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, f"Chromium's DOM of {page} has no measurements:\n{dom[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def logged(run_dir, key):
    """(step, value) of `key` in run_dir's metrics.jsonl, in order (a null is a non-finite value)."""
    points = []
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        record = json.loads(line)
        if key in record and record[key] is not None:
            points.append((record["step"], record[key]))
    return points


def check_series(plot, series, expected):
    """A series shows `expected`: one point each, inside the frame, ordered by step and by value."""
    where = f"plot {plot['metric']}, series {series['label']}"
    assert series["points"] == len(expected), f"{where}: {series['points']} points, metrics.jsonl has {len(expected)}"
    drawn = series["drawn"]
    assert len(drawn) == len(expected), f"{where}: {len(drawn)} drawn points for {len(expected)}"
    x0, y0, x1, y1 = plot["frame"]
    for x, y in drawn:
        assert x0 - 0.2 <= x <= x1 + 0.2 and y0 - 0.2 <= y <= y1 + 0.2, f"{where}: ({x}, {y}) outside the frame {plot['frame']}"
    for (step_a, value_a), (step_b, value_b), (xa, ya), (xb, yb) in zip(expected, expected[1:], drawn, drawn[1:]):
        assert xa < xb, f"{where}: step {step_a} drawn at x {xa}, step {step_b} at {xb}"
        if abs(value_a - value_b) > 1e-6 * max(abs(value_a), abs(value_b), 1e-12) and abs(ya - yb) > 0.15:
            assert (value_a > value_b) == (ya < yb), f"{where}: {value_a} at y {ya} and {value_b} at y {yb}"
    if len(expected) > 1:
        assert series["length"] > 0, f"{where}: the line has no length"


# Each plot's series in a single-run page: (plot id, [(legend label, metrics.jsonl key)]).
SFT_PLOTS = [("loss", [("train", "loss")]), ("lr", [("learning rate", "lr")]), ("grad_norm", [("gradient norm", "grad_norm")]),
             ("tokens_per_s", [("tokens/s since start", "tokens_per_s")]), ("step_time_s", [("optimizer step", "step_time_s")]),
             ("memory", [("host RSS", "host_memory_bytes")])]
PREFERENCE_PLOTS = [("loss", [("train", "loss"), ("eval", "eval_loss")]),
                    ("rewards", [("chosen", "rewards/chosen"), ("rejected", "rewards/rejected"), ("eval chosen", "eval_rewards/chosen"),
                                 ("eval rejected", "eval_rewards/rejected")]),
                    ("margins", [("train", "rewards/margins"), ("eval", "eval_rewards/margins")]),
                    ("accuracies", [("train", "rewards/accuracies"), ("eval", "eval_rewards/accuracies")])]


def final_eval(run_dir, key):
    """The final evaluation's value of `key` when the run record has it after the last logged evaluation."""
    record = json.load(open(os.path.join(run_dir, "qtune_run.json")))
    final = record.get("final", {})
    value = final.get("eval", {}).get(key)
    points = logged(run_dir, key)
    return [] if value is None or (points and points[-1][0] >= final["steps"]) else [(final["steps"], value)]


def check_page(measured, runs, plots):
    """`runs`: {legend prefix: run folder}; `plots`: the series each page must draw."""
    assert measured["sections"] == ["summary", "plots", "data", "memory-plan", "config"], measured["sections"]
    by_metric = {p["metric"]: p for p in measured["plots"]}
    for metric, keys in plots:
        assert metric in by_metric, f"no {metric} plot; plots: {sorted(by_metric)}"
        plot = by_metric[metric]
        assert plot["width"] > 300 and plot["height"] > 150, f"plot {metric} rendered {plot['width']} x {plot['height']}"
        assert plot["legend_right"] <= plot["view_width"], f"plot {metric}: the legend runs out of the chart ({plot['legend_right']})"
        labels = {s["label"]: s for s in plot["series"]}
        for prefix, run_dir in runs.items():
            for label, key in keys:
                full = (prefix + " " + label) if prefix else label
                assert full in labels, f"plot {metric} has no series {full!r}: {sorted(labels)}"
                expected = logged(run_dir, key) + (final_eval(run_dir, key) if key.startswith("eval_") else [])
                check_series(plot, labels[full], [(s, v / 2**30 if metric == "memory" else v) for s, v in expected])
                if key.startswith("eval_"):
                    assert labels[full]["markers"] == len(expected), f"plot {metric}: eval markers"
    for prefix, run_dir in runs.items():
        column = list(runs).index(prefix)
        record = json.load(open(os.path.join(run_dir, "qtune_run.json")))
        last = logged(run_dir, "loss")[-1][1]
        assert measured["summary"]["final train loss"][column] == f"{last:.4f}", measured["summary"]
        assert measured["summary"]["steps"][column] == f"{record['final']['steps']} of {record['total_steps']}", measured["summary"]
        assert measured["summary"]["status"][column] == "done", measured["summary"]
        assert measured["data"]["tokens per epoch"][column] == str(record["data"]["tokens"]), measured["data"]
        assert measured["data"]["training samples"][column] == str(record["data"]["train_samples"]), measured["data"]
        assert any(p.startswith("memory plan on cpu") for p in measured["preformatted"]), measured["preformatted"]


def demo_run(qtune, source, out):
    """configs/tiny-qlora-sft.yaml on scripts/demo.sh's base model and data (the demo's own run)."""
    demo = os.path.join(out, "runs", "demo")
    run(qtune, "init-model", "--arch", "qwen2", "--out", f"{demo}/base", "--hidden", 64, "--layers", 2, "--heads", 4, "--kv-heads", 2,
        "--intermediate", 128, "--dtype", "f32", "--init-std", 0.2, "--seed", 0, "--byte-tokenizer")
    run(sys.executable, os.path.join(source, "scripts", "make_demo_data.py"), f"{demo}/parity")
    run(qtune, "train", os.path.join(source, "configs", "tiny-qlora-sft.yaml"), f"base_model={demo}/base",
        f"datasets=[{{path: {demo}/parity/train.jsonl, type: chat_template}}]", f"output_dir={demo}/adapter")
    return f"{demo}/adapter"


def preference_runs(qtune, out):
    """A DPO and an ORPO run with evaluation on a tiny model with qtune's byte tokenizer."""
    model = os.path.join(out, "model")
    run(qtune, "init-model", "--arch", "qwen2", "--out", model, "--hidden", 32, "--layers", 2, "--heads", 2, "--kv-heads", 1,
        "--intermediate", 64, "--dtype", "f32", "--seed", 1, "--byte-tokenizer")
    with open(os.path.join(out, "pairs.jsonl"), "w") as f:
        for word in ["cat", "dog", "sun", "sky", "red", "sea", "owl", "fig"] * 3:
            f.write(json.dumps({"prompt": f"say {word}", "chosen": word.upper(), "rejected": word}) + "\n")
    dirs = {}
    for recipe in ("dpo", "orpo"):
        with open(os.path.join(out, recipe + ".yaml"), "w") as f:
            f.write(f"base_model: model\nrl: {recipe}\ndatasets:\n  - path: pairs.jsonl\n    type: preference\nchat_template: chatml\n"
                    "sequence_len: 48\nmicro_batch_size: 4\nmax_steps: 12\nlearning_rate: 0.005\nlora_r: 4\nlora_alpha: 8\n"
                    f"lora_target_linear: true\nval_set_size: 6\neval_steps: 4\nlogging_steps: 1\nseed: 3\ndevice: cpu\noutput_dir: {recipe}\n")
        run(qtune, "train", recipe + ".yaml", cwd=out)
        dirs[recipe] = os.path.join(out, recipe)
    return dirs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qtune", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    args.qtune = os.path.abspath(args.qtune)
    browser = chromium()
    if browser is None:
        message = "no chromium: scripts/setup.sh installs Debian's chromium package"
        if os.environ.get("QTUNE_REQUIRE_REFERENCE") == "1":
            sys.exit("error: " + message)
        print("skipped: " + message)
        sys.exit(SKIP)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)

    demo = demo_run(args.qtune, args.source, args.out)
    check_page(measure(browser, os.path.join(demo, "report.html"), args.out), {"": demo}, SFT_PLOTS)
    print("ok: the demo's report (written by qtune train) renders every plot")
    if args.screenshot:
        run(*browser_args(browser), "--window-size=1280,1180", "--screenshot=" + os.path.abspath(args.screenshot),
            "file://" + os.path.abspath(os.path.join(demo, "report.html")))

    preference = preference_runs(args.qtune, args.out)
    for name, run_dir in preference.items():
        page = os.path.join(args.out, name + ".html")
        run(args.qtune, "report", run_dir, "--out", page)
        check_page(measure(browser, page, args.out), {"": run_dir}, SFT_PLOTS + PREFERENCE_PLOTS)
        print(f"ok: the {name} report renders loss, rewards, margins and accuracies with their evaluations")
    both = os.path.join(args.out, "both.html")
    run(args.qtune, "report", preference["dpo"], preference["orpo"], "--out", both)
    check_page(measure(browser, both, args.out), {"dpo": preference["dpo"], "orpo": preference["orpo"]}, PREFERENCE_PLOTS)
    print("ok: two runs overlaid")


if __name__ == "__main__":
    main()
