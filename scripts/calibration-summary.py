#!/usr/bin/env python3
"""Merges `camel-worker calibrate --out` JSON reports (one or more chunks) and prints a Markdown
summary: per verifier configuration, tokens checked, mismatches, the δ/ε needed, false
rejections at a given tolerance, and the margin distributions.

    scripts/calibration-summary.py [--delta-milli N] [--epsilon-ppm N] report.json...
"""
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("--delta-milli", type=int, default=500)
ap.add_argument("--epsilon-ppm", type=int, default=10000)
ap.add_argument("reports", nargs="+")
a = ap.parse_args()

merged = {}
prompts = gens = toks = eos = 0
seconds = 0.0
firsts = []
for path in a.reports:
    r = json.load(open(path))
    prompts += r["prompts"]; gens += r["generations"]; toks += r["generated_tokens"]; eos += r["eos_stops"]
    seconds += r["seconds"]; firsts.append(r["first_prompt"])
    for c in r["configs"]:
        m = merged.setdefault(c["label"], {"jobs": 0, "tokens": 0, "greedy_tokens": 0, "sampled_tokens": 0,
                                            "greedy_mismatches": 0, "sampled_mismatches": 0,
                                            "max_greedy_gap": 0.0, "max_sampled_distance": 0.0,
                                            "hist": {}, "le": None, "prompts": 0})
        m["prompts"] += r["prompts"]
        for k in ["jobs", "tokens", "greedy_tokens", "sampled_tokens", "greedy_mismatches", "sampled_mismatches"]:
            m[k] += c[k]
        m["max_greedy_gap"] = max(m["max_greedy_gap"], c["max_greedy_gap"])
        m["max_sampled_distance"] = max(m["max_sampled_distance"], c["max_sampled_distance"])
        for h in ["greedy_confidence", "greedy_gaps", "sampled_distances", "sampled_confidence"]:
            m["le"] = c[h]["le"]
            cur = m["hist"].setdefault(h, [0] * len(c[h]["counts"]))
            m["hist"][h] = [x + y for x, y in zip(cur, c[h]["counts"])]

delta = a.delta_milli / 1000
eps = a.epsilon_ppm / 1e6
print(f"{prompts} prompts (first indices {sorted(firsts)}), {gens} honest generations, {toks} tokens "
      f"({eos} ended in EOS), {seconds/60:.1f} min of calibration time.\n")
print("| verifier configuration | prompts | jobs | tokens checked | greedy mismatches | max greedy gap (δ needed) | sampled mismatches | max CDF distance (ε needed) | rejected at δ=%.3f, ε=%.4f |" % (delta, eps))
print("|---|---|---|---|---|---|---|---|---|")
for label, m in merged.items():
    print(f"| {label} | {m['prompts']} | {m['jobs']} | {m['tokens']} ({m['greedy_tokens']} greedy, {m['sampled_tokens']} sampled) | "
          f"{m['greedy_mismatches']} | {m['max_greedy_gap']:.4f} | {m['sampled_mismatches']} | {m['max_sampled_distance']:.6f} | "
          f"{'0' if m['max_greedy_gap'] <= delta and m['max_sampled_distance'] <= eps else 'SOME'} |")
print()
names = {"greedy_confidence": "greedy: verifier top-1 − top-2 logit, every position",
         "greedy_gaps": "greedy mismatches: best − claimed logit",
         "sampled_confidence": "sampled: distance from u to the edge of the verifier's interval",
         "sampled_distances": "sampled mismatches: distance from u to the claimed interval"}
for label, m in merged.items():
    print(f"Distributions, {label} (count with value ≤ bound, exclusive of the previous bound):\n")
    le = m["le"]
    print("| distribution | " + " | ".join("≤ " + b.replace("inf", "∞") for b in le) + " |")
    print("|---|" + "---|" * len(le))
    for h, counts in m["hist"].items():
        print(f"| {names[h]} | " + " | ".join(str(c) for c in counts) + " |")
    print()
