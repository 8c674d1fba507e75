#!/usr/bin/env python3
"""bench_chart.py - the report of tools/bench.sh: a markdown table and an SVG bar chart, stdlib only.

    bench_chart.py --results RESULTS.jsonl --meta META.json --sysctl SYSCTL.tsv --md OUT.md --svg OUT.svg

RESULTS holds one JSON object per run (system, size, n, round, delivered, window_s, lat_p50_us, lat_p99_us,
deliv_count, deliv_p50_us, deliv_p99_us, inject_msgs_per_s, cpu {process name: seconds}; system ceiling,
ringmail, postfix, half (target_rate), peers (smtp-source -> smtp-sink), many (sessions, connections,
errors)); delivered msgs/s of a run = delivered / window_s; MTA CPU per message = CPU of every process but
ringmail-gen and ringmail-sink / delivered; the Targets table (issue 15) ends the markdown; a run whose sink measured no delivery latency (deliv_count 0) is left out of
the delivery latency columns ("n/a" when no round has one). Every
row shows the median over its rounds and the spread (min..max). The markdown table, the ratios and the
host settings are also printed on stdout.
"""
import argparse
import json
import statistics
import sys
from xml.sax.saxutils import escape

SYSTEMS = [("ceiling", "ceiling (gen → sink)", "#8c8c8c"),
           ("ringmail", "ringmail (gen → ringmaild → sink)", "#2b6cb0"),
           ("postfix", "Postfix (gen → Postfix → sink)", "#c05621")]
LABEL = {s: lab for s, lab, _ in SYSTEMS}
COLOUR = {s: c for s, _, c in SYSTEMS}


def rate(r):
    return r["delivered"] / r["window_s"] if r["window_s"] > 0 else 0.0


def spread(values, fmt):
    """median (min..max), or just the value for a single round"""
    if not values:
        return "n/a"
    m = statistics.median(values)
    if len(values) == 1:
        return fmt(m)
    return "%s (%s..%s)" % (fmt(m), fmt(min(values)), fmt(max(values)))


def f0(v):
    return "%.0f" % v


def f2(v):
    return "%.2f" % v


def ms(v):
    return "%.1f" % (v / 1000.0)


def deliv(runs, key):
    """the injection-to-delivery values of the runs that measured any"""
    return [r[key] for r in runs if r.get("deliv_count", 0) > 0]


def cpu_medians(runs):
    """process name -> median CPU seconds over the runs (0 where a run did not have it)"""
    names = sorted({k for r in runs for k in r["cpu"]})
    return {n: statistics.median([r["cpu"].get(n, 0.0) for r in runs]) for n in names}


def mta_cpu(r):
    """CPU seconds of the MTA's processes in a run (every process but the client and the sink)"""
    return sum(v for k, v in r["cpu"].items() if k not in ("ringmail-gen", "ringmail-sink"))


def us_per_msg(r, cpu_s):
    return cpu_s * 1e6 / r["delivered"] if r["delivered"] > 0 else None


def cpu_per_msg(runs):
    """MTA CPU microseconds per delivered message of each run that delivered any"""
    return [v for v in (us_per_msg(r, mta_cpu(r)) for r in runs) if v is not None]


def rows_of(results, systems=SYSTEMS):
    """(size, system) -> runs, in report order"""
    out = {}
    for size in sorted({r["size"] for r in results}):
        for s in systems:
            s = s[0] if isinstance(s, tuple) else s
            runs = [r for r in results if r["size"] == size and r["system"] == s]
            if runs:
                out[(size, s)] = runs
    return out


def median_or_none(values):
    return statistics.median(values) if values else None


def peers_ratios(results):
    """size -> ringmail-gen → ringmail-sink (ceiling) / smtp-source → smtp-sink of the median msgs/s"""
    rows = rows_of(results, ["ceiling", "peers"])
    res = {}
    for size in sorted({k[0] for k in rows}):
        c, p = (median_or_none([rate(r) for r in rows.get((size, s), [])]) for s in ("ceiling", "peers"))
        res[size] = c / p if c is not None and p else None
    return res


def many_ok(r):
    """every session got its banner and its message through: no reply code but 250s, no error"""
    return r["sent"] == r["n"] and r["failed"] == 0 and not r.get("errors") and r["delivered"] == r["n"] \
        and r.get("connections", 0) >= r["n"]


def targets(results):
    """[(target, today in the issue, wanted, measured text, met: True/False/None)], issue 15's targets"""
    rows = rows_of(results, ["ceiling", "ringmail", "postfix", "half", "many"])
    rat = ratios(rows_of(results))
    out = []

    def add(name, today, op, want, value, fmt):
        met = None if value is None else (value >= want if op == ">=" else value <= want)
        out.append((name, today, "%s %s" % (op, fmt(want)), "n/a" if value is None else fmt(value), met))

    def ratio(v):
        return "%.2f" % v

    def us(v):
        return "%.0f us" % v

    def msec(v):
        return "%.1f ms" % v
    add("10 KB delivered, ringmail / ceiling", "0.41", ">=", 0.70, rat.get(10240, (None, None))[1], ratio)
    add("10 KB delivered, ringmail / Postfix", "7.6", ">=", 10, rat.get(10240, (None, None))[0], ratio)
    add("100 KB delivered, ringmail / Postfix", "2.2", ">=", 3, rat.get(102400, (None, None))[0], ratio)
    add("MTA CPU per 10 KB message (all roles)", "185 us", "<=", 100,
        median_or_none(cpu_per_msg(rows.get((10240, "ringmail"), []))), us)
    add("MTA CPU per 100 KB message (all roles)", "980 us", "<=", 400,
        median_or_none(cpu_per_msg(rows.get((102400, "ringmail"), []))), us)
    for size in (10240, 102400):
        half = [r for r in rows.get((size, "half"), []) if r.get("deliv_count", 0) > 0]
        kb = size // 1024
        add("%d KB injection-to-delivery p50 at half the saturating rate" % kb, "not measured", "<=", 10,
            median_or_none([r["deliv_p50_us"] / 1000.0 for r in half]), msec)
        add("%d KB injection-to-delivery p99 at half the saturating rate" % kb, "not measured", "<=", 50,
            median_or_none([r["deliv_p99_us"] / 1000.0 for r in half]), msec)
        add("%d KB time-to-250 p99 at half the saturating rate" % kb, "not measured", "<=", 5,
            median_or_none([r["lat_p99_us"] / 1000.0 for r in rows.get((size, "half"), [])]), msec)
    out.append(("spool walk at start", "~100-150 k/s", ">= 200 k/s", "n/a (tools/bench-million.sh)", None))
    add("ringmail-gen → ringmail-sink / smtp-source → smtp-sink, 100 KB", "0.76-0.89", ">=", 1.5,
        peers_ratios(results).get(102400), ratio)
    many = rows.get((10240, "many"), [])
    if many:
        ok = all(many_ok(r) for r in many)
        out.append(("ringmail-gen --concurrency %d against a node: every session served" % many[0]["sessions"],
                    "not measured", "all", "%d of %d round(s)" % (sum(many_ok(r) for r in many), len(many)), ok))
    else:
        out.append(("ringmail-gen --concurrency N against a node", "not measured", "all", "n/a", None))
    return out


def met_word(met):
    return "not measured" if met is None else ("met" if met else "not met")


def targets_md(results):
    out = ["", "## Targets", "",
           "Issue 15's targets: the measured value is the median over the rounds of this run (ratios: of the "
           "medians); nothing here is asserted.", "",
           "| target | issue 15 baseline | wanted | measured | |", "|---|---|---|---|---|"]
    for name, today, want, val, met in targets(results):
        out.append("| %s | %s | %s | %s | %s |" % (name, today, want, val, met_word(met)))
    return out


def ratios(rows):
    """size -> (ringmail/Postfix, ringmail/ceiling) of the median delivered msgs/s, None where missing"""
    res = {}
    for size in sorted({k[0] for k in rows}):
        med = {s: statistics.median([rate(r) for r in rows[(size, s)]]) for s, _, _ in SYSTEMS if (size, s) in rows}
        rm = med.get("ringmail")
        res[size] = tuple(rm / med[o] if rm is not None and med.get(o) else None for o in ("postfix", "ceiling"))
    return res


def markdown(results, meta, sysctl):
    rows = rows_of(results)
    out = ["# Side-by-side bench: latest run", "",
           "Produced by `tools/bench.sh%s` on %s." % (" --quick" if meta["quick"] else "", meta["date"]), "",
           "- Machine: %s." % meta["machine"],
           "- Load: `%s` (load average %s)." % (meta["uptime"].strip(), meta["load"]),
           "- %d round(s) per row; values are the median and, in brackets, min..max over the rounds." % meta["rounds"],
           "- Client: ringmail-gen, %d sessions, connections reused. ringmail: %d ingress, %d egress worker(s), "
           "body log %s; ringmail-sink: %d worker(s)." % (meta["sessions"], meta["ingress_workers"],
                                                         meta["egress_workers"], meta.get("body_log", "true (default)"),
                                                         meta["sink_workers"])]
    if meta.get("postfix_version"):
        out.append("- Postfix %s, a private instance with qmgr relaying to the sink." % meta["postfix_version"])
    if meta.get("postfix_skipped"):
        out.append("- Postfix row skipped: %s." % meta["postfix_skipped"])
    out += ["- delivered msgs/s = messages counted by the sink / time from the first injection to the last arrival; "
            "MMH = millions of messages per hour. time-to-250 = ringmail-gen's latency from MAIL FROM to the 250 "
            "after the data (injection only). delivery = injection-to-delivery latency per message: "
            "ringmail-sink's wall clock when it queues the 250 after the data minus the X-Gen-Sent stamp "
            "ringmail-gen wrote when it sent that message's MAIL FROM (same host, same clock; percentiles from "
            "the sink's --latency histogram, up to 6 % high); for the ceiling it is gen → sink directly, for "
            "ringmail and Postfix it includes the MTA's queueing and relaying.",
            "", "| body | row | messages | delivered msgs/s | MMH | injection msgs/s (client) "
            "| time-to-250 p50 ms | time-to-250 p99 ms | delivery p50 ms | delivery p99 ms "
            "| CPU s, total of the MTA | CPU s, gen | CPU s, sink | MTA CPU us/msg |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (size, s), runs in rows.items():
        mta = [mta_cpu(r) for r in runs]
        out.append("| %d KB | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            size // 1024, LABEL[s], runs[0]["n"], spread([rate(r) for r in runs], f0),
            spread([rate(r) * 3600 / 1e6 for r in runs], f2), spread([r["inject_msgs_per_s"] for r in runs], f0),
            spread([r["lat_p50_us"] for r in runs], ms), spread([r["lat_p99_us"] for r in runs], ms),
            spread(deliv(runs, "deliv_p50_us"), ms), spread(deliv(runs, "deliv_p99_us"), ms),
            "—" if s == "ceiling" else spread(mta, lambda v: "%.1f" % v),
            spread([r["cpu"].get("ringmail-gen", 0) for r in runs], lambda v: "%.1f" % v),
            spread([r["cpu"].get("ringmail-sink", 0) for r in runs], lambda v: "%.1f" % v),
            "—" if s == "ceiling" else spread(cpu_per_msg(runs), f0)))
    out += half_md(results) + peers_md(results) + many_md(results, meta)
    out += ["", "| body | ringmail / Postfix | ringmail / ceiling |", "|---|---|---|"]
    for size, (rp, rc) in ratios(rows).items():
        out.append("| %d KB | %s | %s |" % (size // 1024, "n/a" if rp is None else "%.2f" % rp,
                                            "n/a" if rc is None else "%.2f" % rc))
    out += ["", "CPU seconds per process (median over the rounds, from /proc/PID/stat between the first injection "
            "and the moment the system was idle again; `exited` = children that ended meanwhile):", ""]
    for (size, s), runs in rows.items():
        med = cpu_medians(runs)
        out.append("- %d KB %s: %s" % (size // 1024, s, ", ".join(
            "%s %.2f" % (k, v) for k, v in sorted(med.items(), key=lambda kv: -kv[1]) if v >= 0.005) or "—"))
    out += ["", "MTA CPU microseconds per delivered message by process (median over the rounds; total = every "
            "process of the MTA, ringmail-gen and ringmail-sink excluded):", ""]
    for (size, s), runs in rows.items():
        if s == "ceiling":
            continue
        names = sorted({k for r in runs for k in r["cpu"] if k not in ("ringmail-gen", "ringmail-sink")})
        per = {k: median_or_none([v for v in (us_per_msg(r, r["cpu"].get(k, 0.0)) for r in runs) if v is not None])
               for k in names}
        tot = median_or_none(cpu_per_msg(runs))
        out.append("- %d KB %s: total %s; %s" % (size // 1024, s, "n/a" if tot is None else "%.0f" % tot, ", ".join(
            "%s %.0f" % (k, v) for k, v in sorted(per.items(), key=lambda kv: -(kv[1] or 0)) if v is not None) or "—"))
    out += ["", "Host settings in force (recommended for a park node, as `ringctl doctor` checks them):", "",
            "| setting | value | recommended | |", "|---|---|---|---|"]
    for name, value, rec, ok in sysctl:
        out.append("| `%s` | %s | %s | %s |" % (name, value, rec, "ok" if ok == "ok" else "**differs**"))
    out += targets_md(results)
    return "\n".join(out) + "\n"


def half_md(results):
    rows = rows_of(results, ["half"])
    out = ["", "Half the saturating rate: ringmail-gen --rate at half the delivered msgs/s of the same round's "
           "ringmail row, same sessions, a fresh node and sink:", "",
           "| body | row | paced at msgs/s | messages | delivered msgs/s | time-to-250 p50 ms | time-to-250 p99 ms "
           "| delivery p50 ms | delivery p99 ms | MTA CPU us/msg |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (size, _), runs in rows.items():
        out.append("| %d KB | ringmail at half rate | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            size // 1024, spread([r["target_rate"] for r in runs], f0), spread([r["n"] for r in runs], f0),
            spread([rate(r) for r in runs], f0), spread([r["lat_p50_us"] for r in runs], ms),
            spread([r["lat_p99_us"] for r in runs], ms), spread(deliv(runs, "deliv_p50_us"), ms),
            spread(deliv(runs, "deliv_p99_us"), ms), spread(cpu_per_msg(runs), f0)))
    if not rows:
        out.append("| — | no half-rate run | | | | | | | | |")
    return out


def peers_md(results):
    rows = rows_of(results, ["peers"])
    out = ["", "Postfix's test tools: smtp-source -d (connections reused) → smtp-sink, the same messages and "
           "sessions as the ceiling row; msgs/s over smtp-source's wall clock:", "",
           "| body | row | messages | msgs/s | ringmail-gen → ringmail-sink / smtp-source → smtp-sink |",
           "|---|---|---|---|---|"]
    pr = peers_ratios(results)
    for (size, _), runs in rows.items():
        out.append("| %d KB | smtp-source → smtp-sink | %d | %s | %s |" % (
            size // 1024, runs[0]["n"], spread([rate(r) for r in runs], f0),
            "n/a" if pr.get(size) is None else "%.2f" % pr[size]))
    if not rows:
        out.append("| — | skipped (smtp-source or smtp-sink missing) | | | |")
    return out


def many_md(results, meta):
    rows = rows_of(results, ["many"])
    out = ["", "Many sessions: ringmail-gen --concurrency N, one message per session, against a node with "
           "[ingress] max_connections = N per worker; N = %s:" % meta.get("many", "?"), "",
           "| body | row | sessions | messages | delivered msgs/s | sessions opened | errors | every session served |",
           "|---|---|---|---|---|---|---|---|"]
    for (size, _), runs in rows.items():
        errs = {}
        for r in runs:
            for k, v in (r.get("errors") or {}).items():
                errs[k] = errs.get(k, 0) + v
        out.append("| %d KB | ringmail, many sessions | %d | %d | %s | %s | %s | %s |" % (
            size // 1024, runs[0]["sessions"], runs[0]["n"], spread([rate(r) for r in runs], f0),
            spread([r.get("connections", 0) for r in runs], f0),
            ", ".join("%s %d" % kv for kv in sorted(errs.items())) or "none",
            "yes" if all(many_ok(r) for r in runs) else "no"))
    return out


def svg(results, meta):
    rows = rows_of(results)
    sizes = sorted({k[0] for k in rows})
    pw, ph, top, left, gap = 360, 260, 70, 70, 40
    width = left + len(sizes) * (pw + gap)
    height = top + ph + 90
    e = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="12">' % (width, height, width, height),
         '<rect x="0" y="0" width="%d" height="%d" fill="white"/>' % (width, height),
         '<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>' % (
             left, escape("Delivered msgs/s: median, whisker min..max over %d round(s)" % meta["rounds"])),
         '<text x="%d" y="42" fill="#555">%s</text>' % (left, escape(meta["machine"] + "; " + meta["date"]))]
    for i, size in enumerate(sizes):
        x0 = left + i * (pw + gap)
        present = [s for s, _, _ in SYSTEMS if (size, s) in rows]
        vals = {s: [rate(r) for r in rows[(size, s)]] for s in present}
        top_v = max([max(v) for v in vals.values()] + [1.0]) * 1.15
        e.append('<text x="%d" y="%d" font-weight="bold">%d KB bodies</text>' % (x0, top - 12, size // 1024))
        e.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (x0, top + ph, x0 + pw, top + ph))
        e.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (x0, top, x0, top + ph))
        for t in range(5):
            v = top_v * t / 4
            y = top + ph - ph * t / 4
            e.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (x0, y, x0 + pw, y))
            e.append('<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>' % (x0 - 4, y + 4, f0(v)))
        bw = pw / max(len(present), 1)
        for j, s in enumerate(present):
            v = vals[s]
            m, lo, hi = statistics.median(v), min(v), max(v)
            bx = x0 + j * bw + bw * 0.2
            h = ph * m / top_v
            e.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>' % (
                bx, top + ph - h, bw * 0.6, h, COLOUR[s], escape("%s: %s msgs/s" % (LABEL[s], spread(v, f0)))))
            cx, ylo, yhi = bx + bw * 0.3, top + ph - ph * lo / top_v, top + ph - ph * hi / top_v
            e.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>' % (cx, ylo, cx, yhi))
            for yy in (ylo, yhi):
                e.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>' % (cx - 5, yy, cx + 5, yy))
            e.append('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>' % (cx, yhi - 6, f0(m)))
            e.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (cx, top + ph + 16, escape(s)))
    ly = top + ph + 45
    for k, (s, lab, c) in enumerate(SYSTEMS):
        lx = left + k * 230
        e.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (lx, ly - 10, c))
        e.append('<text x="%d" y="%d">%s</text>' % (lx + 16, ly, escape(lab)))
    e.append('<text x="%d" y="%d" fill="#555">%s</text>' % (left, ly + 24, escape(
        "MMH = msgs/s × 3600 / 10⁶. Window: first injection to last arrival at ringmail-sink.")))
    e.append("</svg>")
    return "\n".join(e) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for a in ("--results", "--meta", "--sysctl", "--md", "--svg"):
        ap.add_argument(a, required=True)
    a = ap.parse_args()
    with open(a.results) as f:
        results = [json.loads(line) for line in f if line.strip()]
    with open(a.meta) as f:
        meta = json.load(f)
    with open(a.sysctl) as f:
        sysctl = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if not results:
        print("bench_chart: no results", file=sys.stderr)
        return 1
    md = markdown(results, meta, sysctl)
    with open(a.md, "w") as f:
        f.write(md)
    with open(a.svg, "w") as f:
        f.write(svg(results, meta))
    print(md)
    for size, (rp, rc) in ratios(rows_of(results)).items():
        print("ratio %d KB: ringmail/Postfix %s, ringmail/ceiling %s" % (
            size // 1024, "n/a" if rp is None else "%.2f" % rp, "n/a" if rc is None else "%.2f" % rc))
    for name, _, want, val, met in targets(results):
        print("target: %s: %s (wanted %s): %s" % (name, val, want, met_word(met)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
