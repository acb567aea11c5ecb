#!/usr/bin/env python3
"""Umbra/Tor ratios from `umbra bench --json` and the tor-localnet bench's JSON.

Usage: compare_ratios.py UMBRA_JSON TOR_JSON. Prints one row per comparable figure and
whether Umbra meets the target of issue 6 (docs/performance.md#targets). Standard library only.
"""
import json
import statistics
import sys

MB = 1e6


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def tor_runs(t, group, key, field):
    return [r.get(field) for r in t.get(group, {}).get(key, []) if r.get("ok")]


def main():
    u = json.load(open(sys.argv[1]))
    t = json.load(open(sys.argv[2]))
    cb = u["circuit_build"]
    tor_circ = med(t["circuits"]["extendcircuit_s"])
    tor_circ = tor_circ * 1e3 if tor_circ is not None else None
    tor_bulk = med(tor_runs(t, "bulk", "exit/50M.bin", "MBps"))
    tor_onion = med(tor_runs(t, "bulk", "onion/50M.bin", "MBps"))
    tor_cpu = med([r["cpu"]["tor_total"] * 1e3 / (50 * (1 << 20) / MB)
                   for r in t["bulk"].get("exit/50M.bin", []) if r.get("ok")])
    tor_small = med(tor_runs(t, "small", "exit/keepalive_stream", "wall_s"))
    tor_small_fb = med(tor_runs(t, "small", "exit/keepalive_stream", "median_first_byte_s"))
    g = u.get("gateway", {}).get("small", {})
    idle = u.get("idle_circuits", {})
    rows = [
        # name, umbra, tor, unit, "lower is better", target check
        ("3-hop circuit build, median", cb["median_ms"], tor_circ, "ms", True,
         lambda x, r: x <= 2.0 and (r is None or r <= 0.2), "<= 2 ms and <= 1/5 of Tor"),
        ("3-hop circuit build, p99", cb["p99_ms"],
         (max(t["circuits"]["extendcircuit_s"]) * 1e3 if t["circuits"]["extendcircuit_s"] else None),
         "ms", True, None, "(Tor: max of its samples)"),
        ("one stream through 3 hops", u["bulk_1_stream"]["MBps"], tor_bulk, "MB/s", False,
         lambda x, r: x >= 100 and (r is None or r >= 10), ">= 100 MB/s and >= 10x Tor"),
        ("  vs Tor through an onion service", u["bulk_1_stream"]["MBps"], tor_onion, "MB/s", False,
         None, ""),
        ("8 streams together", u["bulk_8_streams"]["MBps"], tor_bulk, "MB/s", False, None,
         "(Tor: one stream)"),
        ("CPU per MB carried, all processes", u["bulk_1_stream"]["cpu_ms_per_MB"], tor_cpu, "ms",
         True, lambda x, r: r is not None and r <= 0.2, "<= 1/5 of Tor"),
        ("100 x 4 KiB one after another, one circuit (cold)",
         g.get("cold", {}).get("total_s"), tor_small, "s", True,
         lambda x, r: x <= 0.5, "<= 0.5 s (Umbra cold: includes circuit build)"),
        ("100 x 4 KiB, cached by the gateway", g.get("cached", {}).get("total_s"), tor_small, "s",
         True, None, ""),
        ("  first byte per file, median (cold)", g.get("cold", {}).get("median_first_byte_ms"),
         tor_small_fb * 1e3 if tor_small_fb is not None else None, "ms", True, None, ""),
        ("relay RSS, 10,000 idle circuits", idle.get("rss_MiB_for_10000_circuits_at_one_relay"),
         None, "MiB", True, lambda x, r: x <= 64, "<= 64 MiB"),
        ("hop handshakes per relay CPU-second", idle.get("hop_handshakes_per_relay_cpu_s"), None,
         "/s", False, lambda x, r: x >= 5000, ">= 5000 (micro bench: benches/micro.rs)"),
    ]
    print("%-52s %11s %11s %9s  %s" % ("figure", "Umbra", "Tor", "Umbra/Tor", "target"))
    for name, x, y, unit, _, check, note in rows:
        if x is None:
            print("%-52s %11s" % (name, "n/a"))
            continue
        r = x / y if (y not in (None, 0)) else None
        ys = "%.2f" % y if y is not None else "-"
        rs = "%.3f" % r if r is not None else "-"
        verdict = ""
        if check is not None:
            verdict = ("MET " if check(x, r) else "NOT MET ") + note
        elif note:
            verdict = note
        print("%-52s %8.2f %-3s %8s %-3s %8s  %s" % (name, x, unit, ys, "", rs, verdict))


if __name__ == "__main__":
    main()
