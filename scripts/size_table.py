"""Where the wasm's bytes go: `twiggy top --format csv` of a module that still has its names (the
cargo output, before wasm-bindgen and wasm-opt), summed per crate and, for our own crate, per
module. Custom sections (names, DWARF, wasm-bindgen's descriptors) are left out: wasm-bindgen and
wasm-opt remove them. Standard library only.

  python3 scripts/size_table.py twiggy.csv"""

import collections
import csv
import re
import sys

rows = list(csv.DictReader(open(sys.argv[1])))
crates, ours = collections.Counter(), collections.Counter()
for r in rows:
    name, size = r["Name"], int(r["ShallowSize"])
    if name.startswith(("custom section", '"function names"', "export ", "import ", "__wbindgen_describe")):
        continue
    if name.startswith("data segment"):
        crates["(data: string and table constants)"] += size
        continue
    # The crate of an item: the first path segment, also inside `<impl X for Y>` and `&mut`.
    m = re.match(r"^<?(?:&(?:mut )?)?([a-z_][a-z0-9_]*)(?:\[[0-9a-f]+\])?::", name)
    crate = m.group(1) if m else "(other: glue, closures, unnamed)"
    crates[crate] += size
    if crate == "mcp_edge_gateway":
        m = re.match(r"^<?(?:&(?:mut )?)?mcp_edge_gateway::([a-z_]+)(?:::([a-z_]+))?", name)
        top, sub = m.group(1), m.group(2)
        ours[top + (f"::{sub}" if top in ("web", "engine", "config") and sub else "")] += size
total = sum(crates.values())
print("| crate (code and data, before wasm-opt) | KiB | share |")
print("|---|---|---|")
for k, v in crates.most_common(15):
    print(f"| {k} | {v / 1024:.1f} | {100 * v / total:.1f} % |")
rest = total - sum(v for _, v in crates.most_common(15))
print(f"| everything else | {rest / 1024:.1f} | {100 * rest / total:.1f} % |")
print(f"| total | {total / 1024:.1f} | |")
print("\n| our crate, by module | KiB |")
print("|---|---|")
for k, v in ours.most_common(20):
    print(f"| `{k}` | {v / 1024:.1f} |")
