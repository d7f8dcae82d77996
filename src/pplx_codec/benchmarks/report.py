"""``pplx-codec bench --json FILE`` and ``pplx-codec bench compare A.json B.json``.

The JSON file (``"schema": 1``) holds every row of one run with where it ran:

- header: ``kind`` ("pplx-codec bench"), ``date`` (UTC, ISO 8601), ``pplx_codec``
  (version), ``mode`` ("quick"/"full"), ``families``, ``machine`` (CPU name,
  arch, OS, the relevant CPU flags, logical and usable CPUs), ``python``,
  ``versions`` (numpy and every peer distribution, null when not installed),
  ``peer_kernels`` (per peer: the kernels it runs here), ``isa`` (tiers
  compiled, detected, opt-in, active, forced_by, and ``ran``: the tiers our
  rows ran under), ``targets`` (the verdict lines), ``missing`` (peers not
  installed);
- ``rows``: one per table row: ``family``, ``case``, ``name``, ``side``
  ("ours", "peer" or "limit"), ``tier`` (ours: the tier it ran under; else
  null), ``kernels``, ``median_s``, ``q1_s``/``q3_s`` (quartiles of the
  kept samples), ``samples`` (kept), ``taken`` (all the samples taken: the
  least disturbed were kept), ``loops`` (calls per sample), ``cpu_s`` (this
  process's CPU seconds per call), ``other_load``, ``nbytes``, ``gb_per_s``,
  ``ours_is`` (peer rows: tier -> peer median / our best median under that
  tier), ``speedup_over`` (our rows, when several tiers ran: the first tier ->
  this row's speed over the same row under it), ``per_item``, ``peak`` (our
  rows of a batched case: ``kind``, ``tier``, ``threads``, ``work`` per call
  and ``fraction`` = work / median / the peak measured during that case);
- ``peaks``: the compute peaks measured in the run, during the batched cases
  (empty when none ran): per ``tier``, ``kind`` ("popcount" or "mac"), ``unit``,
  ``threads``: ``per_s`` (units per second, all threads), ``form`` (the
  instruction form that reached it), ``runs_per_s``, ``clock``.

``compare`` matches rows by (case, name, side, tier) and prints each one's
medians in A and B and B's speed over A's (A median / B median: above 1, B is
faster).  A row of ours whose tier differs between the files (e.g. a default
run on an AVX2 machine against one on an AVX-512 machine) is matched with the
same row of the other file when each file has exactly one tier of it left, and
its tier shows as ``avx2 -> avx512``.
"""

from __future__ import annotations

import json
import math
import os
import platform
from datetime import datetime, timezone
from typing import Any

from .peaks import to_json as peak_json
from .table import best_ours, fmt_time, peak_fraction, row_kernels, tiers_of, verdicts

SCHEMA = 1
KIND = "pplx-codec bench"
_ROW_FIELDS: dict[str, type | tuple[type, ...]] = {"case": str, "name": str, "side": str, "median_s": (int, float)}


def build(results, *, version: str, mode: str, families: list[str], capabilities: dict, default_tier: str,
          machine: dict, versions: dict[str, str | None], peer_kernels: dict[str, dict[str, str]],
          missing: list[str], peaks: dict | None = None) -> dict[str, Any]:
    """The JSON document of one run (see the module's docstring)."""
    tiers = tiers_of(results)
    kernels = {k: v["kernels"] for k, v in peer_kernels.items()}
    rows = []
    for case, timings in results:
        best = best_ours(timings, tiers)
        base = {impl.name: t for impl, t in timings if impl.ours and tiers and impl.isa == tiers[0]}
        for impl, t in timings:
            side = "ours" if impl.ours else "limit" if impl.limit else "peer"
            stats = case.stats.get(impl.label, {})
            row: dict[str, Any] = {
                "family": case.family, "case": case.name, "name": impl.name, "side": side,
                "tier": (impl.isa or default_tier) if impl.ours else None,
                "kernels": row_kernels(impl, default_tier, kernels) or None,
                "median_s": t, "q1_s": stats.get("q1"), "q3_s": stats.get("q3"),
                "samples": stats.get("samples"), "taken": stats.get("taken"), "loops": stats.get("loops"),
                "cpu_s": case.cpu.get(impl.label), "other_load": case.other_load.get(impl.label),
                "nbytes": case.nbytes, "gb_per_s": case.nbytes / t / 1e9 if t > 0 else None,
            }
            if side == "peer":
                row["ours_is"] = {(key or default_tier): t / b if b > 0 else None for key, b in best.items()}
            elif side == "ours" and len(tiers) > 1 and impl.name in base:
                row["speedup_over"] = {tiers[0]: base[impl.name] / t if t > 0 else None}
            if case.per_item:
                row["per_item"] = case.per_item
            if (peaked := peak_fraction(case, impl, t, default_tier)) is not None:
                frac, peak = peaked
                row["peak"] = {"kind": peak.kind, "tier": peak.tier, "threads": peak.threads, "work": case.peak[1],
                               "fraction": frac}
            rows.append(row)
    caps = dict(capabilities)
    caps["ran"] = tiers or [default_tier]
    return {
        "schema": SCHEMA, "kind": KIND,
        "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "pplx_codec": version, "mode": mode, "families": list(families), "machine": machine,
        "python": f"{platform.python_implementation()} {platform.python_version()}", "versions": versions,
        "peer_kernels": peer_kernels, "isa": caps, "targets": verdicts(results), "missing": sorted(missing),
        "peaks": peak_json(peaks) if peaks else [], "rows": rows,
    }


def write(doc: dict, path: str) -> None:
    """Write ``doc`` to ``path`` atomically: a temporary file beside it, then a rename (a
    reader never sees half a file; an interrupted write leaves the old file, if any)."""
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.tmp")
    text = json.dumps(_finite(doc), indent=1, allow_nan=False) + "\n"  # before the file exists
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (not JSON) as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def load(path: str) -> dict[str, Any]:
    """A file ``bench --json`` wrote; ``ValueError`` (one line) for anything else.  (An
    unreadable file raises ``OSError``.)"""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a pplx-codec bench result (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a pplx-codec bench result (not JSON: {e.msg} at line {e.lineno} "
                         f"column {e.colno})") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND or "schema" not in doc:
        raise ValueError(f"{path} is not a pplx-codec bench result (no \"kind\": \"{KIND}\" and \"schema\"; "
                         "write one with pplx-codec bench --json FILE)")
    schema = doc["schema"]
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise ValueError(f"{path}: bad bench schema {schema!r}")
    if schema > SCHEMA:
        raise ValueError(f"{path}: bench schema {schema} is newer than this pplx-codec reads ({SCHEMA}); "
                         "upgrade pplx-codec")
    rows = doc.get("rows")
    if not isinstance(rows, list):
        raise ValueError(f"{path}: a bench result without a list of rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {i} is not an object")
        for key, kind in _ROW_FIELDS.items():
            value = row.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"{path}: row {i} has no valid {key!r}")
        if not math.isfinite(row["median_s"]) or row["median_s"] <= 0:
            raise ValueError(f"{path}: row {i} has median_s {row['median_s']!r} (must be > 0)")
        if row.get("tier") is not None and not isinstance(row["tier"], str):
            raise ValueError(f"{path}: row {i} has a tier that is not a string")
    return doc


def _key(row: dict) -> tuple:
    return row["case"], row["name"], row["side"], row.get("tier")


def match(a_rows: list[dict], b_rows: list[dict]) -> list[tuple[dict | None, dict | None, str | None]]:
    """Pairs (row of A or None, row of B or None, tier shown), in A's order with B's extra
    rows after the last row of their case (or at the end)."""
    b_by_key: dict[tuple, dict] = {}
    for row in b_rows:
        b_by_key.setdefault(_key(row), row)
    used_b: set[int] = set()
    pairs: list[list] = []
    for row in a_rows:
        other = b_by_key.get(_key(row))
        if other is not None and id(other) not in used_b:
            used_b.add(id(other))
            pairs.append([row, other, row.get("tier")])
        else:
            pairs.append([row, None, row.get("tier")])
    # ours under another tier: pair when each side has exactly one such row left
    left_a: dict[tuple, list[list]] = {}
    for p in pairs:
        if p[1] is None:
            left_a.setdefault((p[0]["case"], p[0]["name"], p[0]["side"]), []).append(p)
    left_b: dict[tuple, list[dict]] = {}
    for row in b_rows:
        if id(row) not in used_b:
            left_b.setdefault((row["case"], row["name"], row["side"]), []).append(row)
    for key, ps in left_a.items():
        bs = left_b.get(key, [])
        if len(ps) == 1 and len(bs) == 1:
            ps[0][1] = bs[0]
            ps[0][2] = f"{ps[0][0].get('tier') or '-'} -> {bs[0].get('tier') or '-'}"
            used_b.add(id(bs[0]))
    out = [(p[0], p[1], p[2]) for p in pairs]
    for row in b_rows:  # only in B: after the last row of its case
        if id(row) in used_b:
            continue
        at = max((i for i, (ra, rb, _) in enumerate(out) if (ra or rb or {}).get("case") == row["case"]),
                 default=len(out) - 1)
        out.insert(at + 1, (None, row, row.get("tier")))
    return out


def _describe(label: str, path: str, doc: dict) -> str:
    m = doc.get("machine") or {}
    isa = doc.get("isa") or {}
    flags = " ".join(m.get("flags") or []) or "?"
    ran = ", ".join(isa.get("ran") or []) or "?"
    return (f"{label}: {path}: pplx-codec {doc.get('pplx_codec', '?')} ({doc.get('mode', '?')}), "
            f"{doc.get('date', '?')}\n"
            f"   cpu {m.get('cpu', '?')} ({m.get('arch', '?')}, {m.get('usable_cpus', '?')} CPUs; {flags}); "
            f"tiers ran {ran} (detected {', '.join(isa.get('detected') or []) or '?'})")


def compare(a: dict, b: dict, path_a: str, path_b: str) -> str:
    """The comparison table of two runs (see the module's docstring)."""
    lines = [_describe("A", path_a, a), _describe("B", path_b, b)]
    if a.get("mode") != b.get("mode"):
        lines.append(f"note: A ran {a.get('mode')}, B {b.get('mode')}: quick runs shrink some cases (their names "
                     "say so), which then match nothing")
    pairs = match(a["rows"], b["rows"])
    shown = [row for ra, rb, _ in pairs if (row := ra or rb) is not None]
    width = max([40] + [len(("limit: " if row["side"] == "limit" else "") + row["name"]) for row in shown])
    tier_width = max([4] + [len(t or "") for _, _, t in pairs])
    header = f"{'case / implementation':{width + 3}} {'tier':{tier_width}} {'A median':>10} {'B median':>10} " \
             f"{'B/A speed':>10}"
    lines += ["", header, "-" * len(header)]
    logs: dict[str, list[float]] = {"ours": [], "peer": []}
    only = {"A": 0, "B": 0}
    case = None
    for ra, rb, tier in pairs:
        row = ra or rb
        assert row is not None
        if row["case"] != case:
            case = row["case"]
            lines.append(case)
        mark = "*" if row["side"] == "ours" else "=" if row["side"] == "limit" else " "
        name = ("limit: " if row["side"] == "limit" else "") + row["name"]
        ta = fmt_time(ra["median_s"]) if ra else "-"
        tb = fmt_time(rb["median_s"]) if rb else "-"
        if ra and rb:
            speed = ra["median_s"] / rb["median_s"]
            ratio = f"{speed:9.2f}x"
            if row["side"] in logs:
                logs[row["side"]].append(math.log(speed))
        else:
            ratio = "only in A" if ra else "only in B"
            only["A" if ra else "B"] += 1
        lines.append(f" {mark} {name:{width}} {tier or '':{tier_width}} {ta:>10} {tb:>10} {ratio:>10}".rstrip())
    lines.append("")
    lines.append("* = pplx-codec.  B/A speed = A median / B median (above 1: B is faster).")
    for side, label in (("ours", "our rows"), ("peer", "peer rows")):
        if logs[side]:
            g = math.exp(sum(logs[side]) / len(logs[side]))
            lines.append(f"geometric mean B/A speed, {label}: {g:.2f}x over {len(logs[side])} rows")
    if only["A"] or only["B"]:
        lines.append(f"rows in one file only: A {only['A']}, B {only['B']}")
    return "\n".join(lines)
