#!/usr/bin/env python3
"""Turn bench/repro/results into markdown tables (bench/repro/tables.md).

    python3 bench/repro/tables.py [--results DIR] [--out FILE]

Reads only what run.sh measured: results/zeroshot/<task>/bits<B>.json,
results/baselines/<task>/<method>/seed<S>.json (the runtime's metrics JSON),
results/search/<task>/<study>/{report.json,trials.csv,front.svg}. A method or
study with no results is listed as "not yet available"; nothing is filled in.
"""
import argparse
import csv
import glob
import json
import os
import statistics

# Display order, label and bit-width column (the papers' "Bit" column).
METHODS = [
    ("lora-f32", "LoRA", "32"),
    ("qlora-int8", "QLoRA (INT8)", "8"),
    ("qlora-nf4", "QLoRA (NF4)", "4"),
    ("adalora", "AdaLoRA", "4"),
    ("loftq1", "LoftQ", "4 ¹"),
    ("loftq5", "LoftQ", "4 ⁵"),
    ("pissa", "PiSSA", "4"),
    ("gaussian", "Gaussian init", "4"),
    ("lq-lora", "LQ-LoRA", "mixed ≤4.2"),
    ("qblora", "Q-BLoRA (λ=2)", "4"),
    ("qablora", "QA-BLoRA (tile-aligned)", "4 (int4)"),
]
STUDIES = [
    ("uniform", "uniform configurations (bits × rank on every layer)"),
    ("qr-all", "QR-Adaptor, stages 1,2,3"),
    ("qr-no1", "QR-Adaptor without stage 1 (--stages 2,3)"),
    ("qr-no2", "QR-Adaptor without stage 2 (--stages 1,3)"),
    ("qr-no3", "QR-Adaptor without stage 3 (--stages 1,2)"),
    ("qr-all-imp", "QR-Adaptor, stages 1,2,3, stage 1 from measured entropy importance"),
]
MB = 1e6


def load(path):
    with open(path) as f:
        return json.load(f)


def acc_of(metrics, task):
    a = metrics["accuracy"]["babi:" + task]
    return a["acc"] if isinstance(a, dict) else a


def mean_std(xs, scale=1.0, digits=1):
    if not xs:
        return None
    m = statistics.mean(xs) * scale
    if len(xs) < 2:
        return f"{m:.{digits}f} (n=1)"
    s = statistics.stdev(xs) * scale
    suffix = "" if len(xs) == 3 else f" (n={len(xs)})"
    return f"{m:.{digits}f} ± {s:.{digits}f}{suffix}"


def tasks_in(results):
    found = set()
    for part in ("baselines", "zeroshot", "search"):
        for d in glob.glob(os.path.join(results, part, "*")):
            if os.path.isdir(d):
                found.add(os.path.basename(d))
    return sorted(found, key=lambda t: int(t[2:]) if t[2:].isdigit() else 999)


def method_runs(results, task, method):
    runs, failed = [], []
    d = os.path.join(results, "baselines", task, method)
    for p in sorted(glob.glob(os.path.join(d, "seed*.json"))):
        runs.append(load(p))
    failed = sorted(glob.glob(os.path.join(d, "seed*.failed")))
    return runs, failed


def baseline_tables(results, tasks, out):
    # Combined table in the seeds' layout: Method | Bit | tasks | Average | Memory.
    out.append("## Baselines: accuracy (%) per task, mean ± std over seeds\n")
    out.append("Memory = measured peak bytes of the fine-tune (MB, mean over "
               "tasks and seeds). w/o tuning = zero-shot of the base at that "
               "bit-width (no seed).\n")
    head = "| Method | Bit | " + " | ".join(tasks) + " | Average | Memory (MB) |"
    out.append(head)
    out.append("|" + "---|" * (len(tasks) + 4))
    for bits, label in (("32", "32"), ("8", "8"), ("4", "4 (NF4)")):
        cells, vals = [], []
        for t in tasks:
            p = os.path.join(results, "zeroshot", t, f"bits{bits}.json")
            if os.path.exists(p):
                a = acc_of(load(p), t) * 100
                cells.append(f"{a:.1f}")
                vals.append(a)
            else:
                cells.append("not run")
        avg = f"{statistics.mean(vals):.1f}" if len(vals) == len(tasks) else "—"
        out.append(f"| w/o tuning | {label} | " + " | ".join(cells) + f" | {avg} | - |")
    for key, label, bits in METHODS:
        cells, means, mems, complete = [], [], [], True
        for t in tasks:
            runs, failed = method_runs(results, t, key)
            accs = [acc_of(r, t) for r in runs]
            mems += [r["peak_bytes"]["total"] for r in runs]
            if accs:
                cells.append(mean_std(accs, 100))
                means.append(statistics.mean(accs) * 100)
            else:
                cells.append("failed" if failed else "not yet available")
                complete = False
        avg = f"{statistics.mean(means):.1f}" if complete and means else "—"
        mem = f"{statistics.mean(mems) / MB:.1f}" if mems else "—"
        out.append(f"| {label} | {bits} | " + " | ".join(cells) + f" | {avg} | {mem} |")
    out.append("")

    for t in tasks:
        out.append(f"### bAbI {t}\n")
        out.append("| Method | Bit | seeds | acc (%) | peak (MB) | weights (KB) | "
                   "adapters + grads + optimizer (KB) | activations (MB) | "
                   "trainable params | train wall (s) |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for key, label, bits in METHODS:
            runs, failed = method_runs(results, t, key)
            if not runs:
                what = ("failed: see " + os.path.relpath(failed[0], results)) if failed \
                    else "not yet available"
                out.append(f"| {label} | {bits} | 0 | {what} | | | | | | |")
                continue
            pk = [r["peak_bytes"] for r in runs]
            state = [p["adapters"] + p["gradients"] + p["optimizer"] for p in pk]
            seeds = len(runs)
            fl = f" ({len(failed)} failed)" if failed else ""
            out.append(
                f"| {label} | {bits} | {seeds}{fl} | "
                f"{mean_std([acc_of(r, t) for r in runs], 100)} | "
                f"{mean_std([p['total'] for p in pk], 1 / MB, 2)} | "
                f"{statistics.mean(p['weights'] for p in pk) / 1e3:.1f} | "
                f"{statistics.mean(state) / 1e3:.1f} | "
                f"{statistics.mean(p['activations'] for p in pk) / MB:.1f} | "
                f"{runs[0].get('trainable_params', '')} | "
                f"{statistics.mean(r.get('train_wall_s', 0) for r in runs):.0f} |")
        out.append("")


def read_trials(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def hypervolume(points, ref_mem, ref_acc=0.0):
    """Area dominated by (memory, accuracy) points (memory minimised,
    accuracy maximised) inside the reference box."""
    pts = sorted((m, a) for m, a in points if m < ref_mem and a > ref_acc)
    area, best = 0.0, ref_acc
    # Sweep memory upwards; each point adds the strip up to the next memory.
    for i, (m, a) in enumerate(pts):
        best = max(best, a)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else ref_mem
        area += (nxt - m) * (best - ref_acc)
    return area


def search_tables(results, tasks, out, results_rel):
    out.append("## Searches: QR-Adaptor ablations vs uniform configurations\n")
    for t in tasks:
        base = os.path.join(results, "search", t)
        if not os.path.isdir(base):
            continue
        out.append(f"### bAbI {t}\n")
        uniform_rows = []
        allpk = []
        for key, _ in STUDIES:
            if key == "automixq-pruned":
                continue  # another model: not on the same axes
            tp = os.path.join(base, key, "trials.csv")
            if os.path.exists(tp):
                allpk += [float(r["peak_bytes"]) for r in read_trials(tp)
                          if r["state"] == "complete"]
        ref_mem = 1.1 * max(allpk) if allpk else 0.0
        out.append(f"Hypervolume: the area dominated by a study's complete trials, "
                   f"against one reference for every study of the task: peak "
                   f"{ref_mem / MB:.2f} MB (1.1 × the largest peak of these studies), "
                   f"accuracy 0. Memory is the measured peak (MB = 10^6 bytes).\n")
        out.append("| study | trials complete / failed | wall (s, sum of trials) | "
                   "best acc (%) | its peak (MB) | chosen (α=0.5): acc (%) / peak (MB) | "
                   "front size | hypervolume (acc × MB) | SVG |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for key, label in STUDIES:
            d = os.path.join(base, key)
            tp = os.path.join(d, "trials.csv")
            if not os.path.exists(tp):
                out.append(f"| {label} | not yet available | | | | | | | |")
                continue
            trials = read_trials(tp)
            done = [r for r in trials if r["state"] == "complete"]
            fail = [r for r in trials if r["state"] == "failed"]
            secs = sum(float(r["seconds"]) for r in trials if r["seconds"])
            rep = load(os.path.join(d, "report.json")) if os.path.exists(
                os.path.join(d, "report.json")) else {}
            best = max(done, key=lambda r: float(r["accuracy"]), default=None)
            bcell = (f"{float(best['accuracy']) * 100:.1f} | "
                     f"{float(best['peak_bytes']) / MB:.1f}") if best else "— | —"
            ch = rep.get("chosen")
            ccell = "—"
            if ch:
                ca = ch.get("accuracy", ch.get("performance"))
                cm = ch.get("peak_bytes", ch.get("memory"))
                if ca is not None and cm is not None:
                    ccell = f"{float(ca) * 100:.1f} / {float(cm) / MB:.1f}"
            hv = hypervolume([(float(r["peak_bytes"]), float(r["accuracy"]))
                              for r in done], ref_mem)
            hvcell = f"{hv / MB:.3f}" if done else "—"
            svg = os.path.join(d, "front.svg")
            svgcell = f"[svg]({os.path.join(results_rel, 'search', t, key, 'front.svg')})" \
                if os.path.exists(svg) else "—"
            busy = any(r["state"] in ("running", "waiting") for r in trials)
            short = not rep.get("strategy_finished", False) and \
                len(done) + len(fail) < int(os.environ.get("REPRO_SEARCH_TRIALS", "8"))
            status = " (in progress)" if busy or short else ""
            out.append(f"| {label}{status} | {len(done)} / {len(fail)} | {secs:.0f} | {bcell} | "
                       f"{ccell} | {len(rep.get('front', []))} | {hvcell} | {svgcell} |")
            if key == "uniform":
                uniform_rows = done
        if uniform_rows:
            out.append("\nUniform configurations (one trial each, seed 0):\n")
            out.append("| bits | rank | acc (%) | peak (MB) | wall (s) |")
            out.append("|---|---|---|---|---|")
            for r in uniform_rows:
                out.append(f"| {r['bits'].split()[0]} | {r['ranks'].split()[0]} | "
                           f"{float(r['accuracy']) * 100:.1f} | "
                           f"{float(r['peak_bytes']) / MB:.2f} | {float(r['seconds']):.0f} |")
        out.append("")


def pruned_tables(results, tasks, out):
    out.append("## AutoMixQ on a 30%-pruned stories260K\n")
    rep = os.path.join(results, "pruned", "prune_report.json")
    if not os.path.exists(rep):
        out.append("Not yet available: the pruning (`--mixq-prune`, `mixq-run importance`) "
                   "had not landed when these runs were made; no row here was run.\n")
        return
    pr = load(rep)
    out.append("Pruned model (`results/pruned/prune_report.json`, `prune.log`): "
               "LLM-Pruner block-wise, layers 1-3, 60% of their KV groups and MLP "
               "channels by first-order Taylor importance; parameters "
               f"{pr.get('params_before', '?')} → {pr.get('params_after', '?')}. "
               "Rows: the same recipe on the pruned model; AutoMixQ = the study's "
               "best trial (seed 0) on the same pruned model, per layer bits {4, 8} "
               "× rank {2, 4, 8}.\n")
    for t in tasks:
        out.append(f"### bAbI {t}\n")
        out.append("| Method | Bit | seeds | acc (%) | peak (MB) |")
        out.append("|---|---|---|---|---|")
        zp = os.path.join(results, "pruned", f"zeroshot-{t}.json")
        if os.path.exists(zp):
            out.append(f"| w/o tuning (pruned) | 32 | - | {acc_of(load(zp), t) * 100:.1f} | - |")
        for key, label, bits in (("pruned-lora-f32", "LoRA (pruned)", "32"),
                                 ("pruned-loftq8", "LoftQ 8-bit (pruned)", "8"),
                                 ("pruned-lora-f32-d0", "LoRA (pruned), no dropout", "32"),
                                 ("pruned-loftq8-d0", "LoftQ 8-bit (pruned), no dropout", "8")):
            runs, failed = method_runs(results, t, key)
            if not runs:
                out.append(f"| {label} | {bits} | 0 | not yet available | |")
                continue
            out.append(f"| {label} | {bits} | {len(runs)} | "
                       f"{mean_std([acc_of(r, t) for r in runs], 100)} | "
                       f"{mean_std([r['peak_bytes']['total'] for r in runs], 1 / MB, 2)} |")
        studies = []
        for key, label in (("uniform-pruned", "uniform configurations (search objective)"),
                           ("automixq-pruned", "AutoMixQ")):
            tp = os.path.join(results, "search", t, key, "trials.csv")
            if not os.path.exists(tp):
                out.append(f"| {label} | — | 0 | not yet available | |")
                continue
            done = [r for r in read_trials(tp) if r["state"] == "complete"]
            studies.append((key, label, done))
            best = max(done, key=lambda r: float(r["accuracy"]), default=None)
            if best:
                out.append(f"| {label}: best of {len(done)} trials | {best['bits']} "
                           f"(ranks {best['ranks']}) | 1 (seed 0) | "
                           f"{float(best['accuracy']) * 100:.1f} | "
                           f"{float(best['peak_bytes']) / MB:.2f} |")
        for key, label, done in studies:
            out.append(f"\n{label} on the pruned model, every trial "
                       f"([svg](results/search/{t}/{key}/front.svg)):\n")
            out.append("| trial | stage | bits | ranks | acc (%) | peak (MB) | s |")
            out.append("|---|---|---|---|---|---|---|")
            for r in done:
                out.append(f"| {r['trial']} | {r['stage']} | {r['bits']} | {r['ranks']} | "
                           f"{float(r['accuracy']) * 100:.1f} | "
                           f"{float(r['peak_bytes']) / MB:.2f} | {float(r['seconds']):.0f} |")
        out.append("")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(here, "results"))
    ap.add_argument("--out", default=os.path.join(here, "tables.md"))
    a = ap.parse_args()
    tasks = tasks_in(a.results)
    out = ["# MixQ reproduction in miniature: generated tables",
           "",
           "Generated by `python3 bench/repro/tables.py` from bench/repro/results "
           "(see README.md for the recipe and the command). stories260K, bAbI, "
           "first 200 test questions per task; chance is 1/6 (6 candidate answers).",
           ""]
    baseline_tables(a.results, [t for t in tasks
                                if os.path.isdir(os.path.join(a.results, "baselines", t))], out)
    pruned_tables(a.results, [t for t in tasks if glob.glob(
        os.path.join(a.results, "baselines", t, "pruned-*")) or os.path.isdir(
        os.path.join(a.results, "search", t, "automixq-pruned"))], out)
    search_tables(a.results, tasks, out,
                  os.path.relpath(a.results, os.path.dirname(os.path.abspath(a.out))))
    text = "\n".join(out) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(f"wrote {a.out}")
    # README.md carries a copy between its markers (without the title).
    readme = os.path.join(os.path.dirname(os.path.abspath(a.out)), "README.md")
    begin, end = "<!-- tables:begin -->", "<!-- tables:end -->"
    if os.path.exists(readme):
        r = open(readme).read()
        if begin in r and end in r:
            body = text.split("\n", 2)[2]
            r = r[:r.index(begin) + len(begin)] + "\n" + body + r[r.index(end):]
            with open(readme, "w") as f:
                f.write(r)
            print(f"updated {readme}")


if __name__ == "__main__":
    main()
