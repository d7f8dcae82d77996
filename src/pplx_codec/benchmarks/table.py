"""The bench's table: per case, each implementation's median and spread, GB/s, how many
times faster ours is (per tier), the kernels each row ran, a batched case's fraction of
the compute peak, and the targets' verdicts."""

from __future__ import annotations

from .._dispatch import AUTO
from ._harness import OTHER_LOAD_FLAG, Case, Impl
from .hardware import peer_of
from .peaks import describe, fraction


def fmt_time(s: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:7.2f} {unit}"
    return f"{s / 1e-9:7.1f} ns"


def _verdict(case: Case, timings, prefix: str, want: float, metric: str = "time", *, tier: str | None = None) -> str:
    """One target's line: ours against the best peer whose name starts with ``prefix``, by
    wall time or (metric "cpu") by this process's CPU time per call; with ``tier``, ours are
    only the rows timed under that tier."""
    if metric == "cpu":
        value = {impl.label: case.cpu.get(impl.label) for impl, _ in timings}
    else:
        value = {impl.label: t for impl, t in timings}
    ours = [v for impl, _ in timings if impl.ours and (tier is None or impl.isa == tier)
            and (v := value[impl.label]) is not None]
    peers = [v for impl, _ in timings if not impl.ours and not impl.limit and impl.name.startswith(prefix)
             and (v := value[impl.label]) is not None]
    what = f"best '{prefix}'" if prefix else "best peer" + (" installed" if case.missing else "")
    label = "CPU time: " if metric == "cpu" else ""
    name = f"{case.name} [{tier}]" if tier else case.name
    if not peers or not ours:
        return f"{name}: {label}target vs {what} not measured (peer not installed)"
    got = min(peers) / min(ours)
    return (f"{name}: {label}ours / {what} = {got:.2f}x "
            f"(target >= {want}x) {'met' if got >= want else 'MISSED'}")


def tiers_of(results) -> list[str]:
    """The tiers our rows ran under (``Impl.isa``), in order of appearance; [] when none was set."""
    seen: list[str] = []
    for _, timings in results:
        for impl, _ in timings:
            if impl.ours and impl.isa and impl.isa not in seen:
                seen.append(impl.isa)
    return seen


def best_ours(timings, tiers: list[str]) -> dict[str | None, float]:
    """Our best median per tier (key None: over all our rows, when fewer than 2 tiers ran)."""
    if len(tiers) < 2:
        return {None: min(t for impl, t in timings if impl.ours)}
    best: dict[str | None, float] = {}
    for impl, t in timings:
        if impl.ours and impl.isa is not None:
            best[impl.isa] = min(t, best.get(impl.isa, t))
    return best


# how much slower than the fastest tier the default table may run a kernel row and still be
# on that row's fastest path (issue 25: medians on this noisy 2-core machine move ~2-3%)
DEFAULT_WITHIN = 0.05


def default_path(timings) -> list[tuple[str, float, str]]:
    """Under ``auto`` and other tiers: per our row, (name, auto's median / the fastest other
    tier's median, that tier); [] when auto or no other tier ran."""
    auto = {impl.name: t for impl, t in timings if impl.ours and impl.isa == AUTO}
    out = []
    for name, t in auto.items():
        others = [(u, impl.isa) for impl, u in timings if impl.ours and impl.name == name and impl.isa
                  and impl.isa != AUTO]
        if others:
            fastest, tier = min(others, key=lambda x: x[0])
            out.append((name, t / fastest, str(tier)))
    return out


def _default_verdict(case: Case, timings) -> str | None:
    rows = default_path(timings)
    if not rows or not case.kernel:
        return None
    worst = max(rows, key=lambda r: r[1])
    return (f"{case.name}: default path (auto) / fastest tier = {worst[1]:.2f}x ({worst[0]} vs {worst[2]}; "
            f"within {DEFAULT_WITHIN:.0%}) {'met' if worst[1] <= 1 + DEFAULT_WITHIN else 'MISSED'}")


def verdicts(results) -> list[str]:
    """Every target's line (per tier when several ran), the default path's against the fastest
    tier per kernel case, then the cases' report verdicts."""
    tiers = tiers_of(results)
    out = []
    for case, timings in results:
        if (line := _default_verdict(case, timings)) is not None:
            out.append(line)
        for target in ([case.target] if case.target else []) + list(case.targets):
            for tier in tiers if len(tiers) > 1 else [None]:
                out.append(_verdict(case, timings, *target, tier=tier))
        if case.report:
            out += case.report(case, timings)[1]
    return out


def row_kernels(impl: Impl, default_tier: str | None, kernels: dict[str, str]) -> str:
    """What the "kernels" column says of a row."""
    if impl.kernels is not None:
        return impl.kernels
    if impl.ours:
        return impl.isa or default_tier or ""
    if impl.limit:
        return ""
    peer = peer_of(impl.name)
    return kernels.get(peer, "") if peer else ""


def _tier_speedups(timings, tiers: list[str]) -> str | None:
    """Per case, with several tiers: each of our rows' speed under every tier over the first."""
    base = {impl.name: t for impl, t in timings if impl.ours and impl.isa == tiers[0]}
    parts = []
    for tier in tiers[1:]:
        pairs = [f"{impl.name} {base[impl.name] / t:.2f}x" for impl, t in timings
                 if impl.ours and impl.isa == tier and impl.name in base]
        if pairs:
            parts.append(f"{tier} over {tiers[0]}: " + ", ".join(pairs))
    return "; ".join(parts) or None


def spread(case: Case, impl: Impl, median: float) -> float | None:
    """A row's inter-quartile range over its median (None for a single timed run)."""
    stats = case.stats.get(impl.label, {})
    if stats.get("samples", 0) < 2 or median <= 0:
        return None
    return (stats["q3"] - stats["q1"]) / median


def peak_fraction(case: Case, impl: Impl, t: float, default_tier: str | None):
    """(fraction, peak) of one of our rows of a batched case (``Case.peak``) against the peak
    measured during that case (``Case.peaks``), or None."""
    if not case.peaks or case.peak is None or not impl.ours:
        return None
    kind, work = case.peak
    return fraction(case.peaks, work, t, impl.isa or default_tier, kind, impl.threads)


def format_table(results, default_tier: str | None = None, kernels: dict[str, str] | None = None) -> str:
    """One table: per case, each implementation's median and spread, GB/s, how many times
    faster ours is (per tier, when ours ran under several), the kernels each row ran and, in
    a batched case, each of our rows' fraction of the compute peak.

    ``default_tier``: the tier of our rows that have none of their own (the active one);
    ``kernels``: peer (``hardware.peer_of``) -> the kernels it uses here."""
    kernels = kernels or {}
    tiers = tiers_of(results)
    multi = len(tiers) > 1
    lines = []
    any_limit = any(impl.limit for _, timings in results for impl, _ in timings)
    width = max([49] + [len(impl.label) + (7 if impl.limit else 0) for _, timings in results for impl, _ in timings])
    ratio_heads = [f"ours {t}" for t in tiers] if multi else ["ours is"]
    ratio_widths = [max(9, len(h)) for h in ratio_heads]
    kern_width = max([7] + [len(row_kernels(impl, default_tier, kernels)) for _, timings in results
                            for impl, _ in timings])
    header = f"{'case / implementation':{width + 3}} {'median':>10} {'iqr':>6} {'GB/s':>7}"
    header += "".join(f" {h:>{w}}" for h, w in zip(ratio_heads, ratio_widths, strict=True))
    header += f"  {'kernels':{kern_width}}"
    header += f" {'x limit':>8}" if any_limit else ""
    lines += [header.rstrip(), "-" * len(header.rstrip())]
    disturbed = False
    for case, timings in results:
        best = best_ours(timings, tiers)
        limit = min((t for impl, t in timings if impl.limit), default=None)
        lines.append(f"{case.name}" + (f"  [{case.note}]" if case.note else ""))
        for impl, t in sorted(timings, key=lambda it: it[1]):
            mark = "*" if impl.ours else "=" if impl.limit else " "
            name = f"limit: {impl.label}" if impl.limit else impl.label
            iqr = spread(case, impl, t)
            row = f" {mark} {name:{width}} {fmt_time(t):>10} {f'{iqr:.1%}' if iqr is not None else '-':>6}"
            row += f" {case.nbytes / t / 1e9:7.2f}"
            for key, w in zip(tiers if multi else [None], ratio_widths, strict=True):
                ratio = "" if impl.ours or impl.limit or key not in best else f"{t / best[key]:8.2f}x"
                row += f" {ratio:>{w}}"
            row += f"  {row_kernels(impl, default_tier, kernels):{kern_width}}"
            if any_limit:
                row += f" {t / limit:7.2f}x" if limit is not None and not impl.limit else " " * 9
            if case.per_item:
                cpu = case.cpu.get(impl.label)
                row += f"  {case.per_item / t:>9,.0f} {case.item}s/s"
                if cpu is not None:
                    row += f", cpu {cpu / case.per_item * 1e6:7.2f} us/{case.item}"
            if (peaked := peak_fraction(case, impl, t, default_tier)) is not None:
                row += f"  {describe(*peaked)}"
            load = case.other_load.get(impl.label)
            if load is not None and load > OTHER_LOAD_FLAG:
                row += f"  ! others {load:.0%}"
                disturbed = True
            lines.append(row.rstrip())
        if multi and (speedups := _tier_speedups(timings, tiers)):
            lines.append(f"   {speedups}")
        if rows := default_path(timings):
            lines.append("   auto / fastest tier: " + ", ".join(f"{n} {r:.2f}x ({tier})" for n, r, tier in rows))
        if case.missing:
            lines.append(f"   (not installed: {', '.join(case.missing)})")
        if case.report:
            extra, _ = case.report(case, timings)
            lines += ["   " + line for line in extra]
    lines.append("")
    if multi:
        lines.append("* = pplx-codec, once per tier ([tier]).  'ours <tier>' = peer median / our best median under "
                     "that tier (higher is better for us).")
        if AUTO in tiers:
            lines.append("[auto] = the default table: each kernel family on the path measured fastest on this CPU "
                         "(header: 'default paths');\n  'auto / fastest tier' = its median over the fastest tier's "
                         "for that row (1.00x: on the fastest path).")
    else:
        lines.append("* = pplx-codec.  'ours is' = peer median / our best median (higher is better for us).")
    lines.append("kernels = our tier; for a peer, the SIMD level it runs here (faiss: its dispatched level; "
                 "numkong/simsimd: the newest capability\n"
                 "  this CPU has, which a kernel may not use; usearch: its kernel for the row's metric).")
    lines.append("median, iqr = of the kept samples (each the mean of a loop of calls, taken in rounds that interleave "
                 "the case's rows);\n  iqr = inter-quartile range / median (the samples' spread).")
    if any(case.peaks for case, _ in results):
        lines.append("N% of <tier> <kind> peak = the row's work per second / the compute peak of its tier for its "
                     "threads, measured during\n  that case (popcount: bytes popcounted; mac: int8 multiply-adds).")
    if any(case.per_item for case, _ in results):
        lines.append("cpu = CPU time of this process (all its threads, user + system; not child processes) "
                     "per item, median over the samples.")
    if any_limit:
        lines.append("= = a bound, not an implementation; 'x limit' = row median / the bound's median.")
    if disturbed:
        lines.append(f"! = other processes used more than {OTHER_LOAD_FLAG:.0%} of the machine's CPU time while "
                     "that row's kept samples were taken: its time (and ratios with it) may be inflated; rerun on a "
                     "quiet machine.")
    lines += ["", "Targets:"] + ["  " + v for v in verdicts(results)]
    return "\n".join(lines)
