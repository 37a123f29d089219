"""Summaries of fuzz corpus results (JSON lines written by ``_run.py``)."""

import collections
import json

#: peak-memory bound of one case: 64 MB + 10 x the input size
BASE_BYTES = 64 << 20
PER_INPUT_BYTE = 10


def load(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def violations(recs, time_limit=None):
    """Contract violations, one line each (empty: the corpus passed)."""
    out = []
    for r in recs:
        tag = f"{r['kind']}#{r['case']} {r['how']}"
        if r["outcome"].startswith("bad"):
            out.append(f"{tag}: {r['outcome']} {r.get('error')}: {r.get('message')}\n"
                       f"{r.get('trace', '')}")
        if r["outcome"] == "refused" and not r["names_item"]:
            out.append(f"{tag}: message does not name the input: {r['message']!r}")
        if r["outcome"] == "refused" and r.get("names_target") is False:
            out.append(f"{tag}: message does not name the mutated item: {r['message']!r}")
        if r.get("modified"):
            out.append(f"{tag}: the input file was modified")
        if time_limit is not None and r["seconds"] > time_limit:
            out.append(f"{tag}: took {r['seconds']:.2f} s")
        bound = BASE_BYTES + PER_INPUT_BYTE * r["size"]
        if r["peak_bytes"] is not None and r["peak_bytes"] > bound:
            out.append(f"{tag}: peak memory {r['peak_bytes'] >> 20} MiB over the bound "
                       f"{bound >> 20} MiB")
    return out


def table(recs):
    """{kind: {"cases", outcome counts..., "max_peak_mib", "max_seconds"}}."""
    out = {}
    for r in recs:
        d = out.setdefault(r["kind"], collections.Counter())
        d["cases"] += 1
        d[r["outcome"]] += 1
        d["max_peak_kib"] = max(d["max_peak_kib"], (r["peak_bytes"] or 0) >> 10)
        d["max_ms"] = max(d["max_ms"], int(1000 * r["seconds"]))
    return out
