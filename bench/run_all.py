"""Every benchmark, one after another; one table at the end (figure, Sorna, baseline
measured in the same run, ratio of medians), then every benchmark's JSON.

    python bench/run_all.py [--only NAME ...] [--json FILE]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, arguments): each prints one JSON document (bench/_common.report).
BENCHMARKS = [
    ("kernel_create", []),
    ("execute_roundtrip", []),
    ("throughput", []),
    ("manager_scale", []),
    ("density", []),
    ("cluster_faults", []),
    ("noisy_neighbour", []),
    ("fuzz", []),
    ("load", []),
    ("languages", []),
    ("curve_cost", []),
    ("gateway_tenants", []),
]


def rows(name, doc):
    """(figure, sorna, baseline, ratio) lines of one benchmark's document."""
    unit = doc.get("unit", "")

    def fmt(series):
        p90 = f" (p90 {series['p90']:g})" if "p90" in series else ""
        return f"{series['median']:g}{p90} {unit}"

    if "sorna" not in doc:  # a benchmark of several series, without one baseline
        yield from _series_rows(name, doc, unit)
        return
    yield (name, fmt(doc["sorna"]), fmt(doc["baseline"]), f"{doc['ratio_of_medians']:g}")
    if "warm" in doc:
        yield (f"{name}: warm", fmt(doc["warm"]), fmt(doc["baseline"]),
               f"{doc['warm_ratio_to_baseline']:g}")
    if "repl_direct" in doc:
        yield (f"{name}: REPL alone", fmt(doc["repl_direct"]), "", "")
    if "echo_other_process" in doc:
        other = doc["echo_other_process"]
        yield (f"{name}: vs. an echo in another process", fmt(doc["sorna"]), fmt(other),
               f"{doc['sorna']['median'] / other['median']:.2f}")
    if "upload_curve" in doc:
        yield (f"{name}: 1 MiB upload", fmt(doc["upload_curve"]), fmt(doc["upload_plain"]),
               f"{doc['upload_ratio_of_medians']:g}")
    if "agent_cpu_us_per_execute" in doc:
        series = doc["agent_cpu_us_per_execute"]
        yield (f"{name}: agent CPU per execute", f"{series['median']:g} µs", "", "")
    for table, result in doc.get("tables", {}).items():
        beats = result["heartbeats"]
        yield (f"{name}: {table} placements", fmt(result["placements_per_s"]), "", "")
        yield (f"{name}: {table}, {beats['agents']} agents' heartbeats",
               f"{beats['manager_core_percent']['median']:g}% of a core, "
               f"{beats['manager_cpu_us_per_heartbeat']['median']:g} µs each", "", "")


def _series_rows(name, doc, unit, path=""):
    """A row for every summary (a map with a median) anywhere in the document."""
    for key, value in doc.items():
        if isinstance(value, list):  # one summary per setting, e.g. per interval
            value = {_setting(item): item for item in value if isinstance(item, dict)}
        if not isinstance(value, dict) or key == "notes":
            continue
        label = f"{path}{key}"
        if "median" in value and "p90" in value:
            yield (f"{name}: {label}", f"{value['median']:g} (p90 {value['p90']:g}) {unit}",
                   "", "")
        else:
            yield from _series_rows(name, value, unit, f"{label} ")


def _setting(item):
    """"(interval 1)": what a list item's plain fields say it was measured with."""
    plain = [f"{k} {v}" for k, v in item.items() if not isinstance(v, (dict, list))]
    return f"({', '.join(plain)})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="benchmark names to run")
    parser.add_argument("--json", help="also write every document to this file")
    args = parser.parse_args()
    documents, table = {}, []
    for name, extra in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        print(f"== {name}", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra],
                              stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(f"{name} failed with status {done.returncode}", file=sys.stderr)
            table.append((name, "FAILED", "", ""))
            continue
        doc = json.loads(done.stdout)
        doc["seconds"] = round(time.monotonic() - started, 1)
        documents[name] = doc
        table.extend(rows(name, doc))
    widths = [max(len(r[i]) for r in table + [("figure", "sorna", "baseline", "ratio")])
              for i in range(4)]
    print(json.dumps(documents, indent=2, ensure_ascii=False))
    print()
    for row in [("figure", "sorna", "baseline", "ratio")] + table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if args.json:
        Path(args.json).write_text(json.dumps(documents, indent=2, ensure_ascii=False))
    return 1 if any(r[1] == "FAILED" for r in table) else 0


if __name__ == "__main__":
    sys.exit(main())
