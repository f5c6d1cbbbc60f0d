"""results.json -> results.md + PNG plots (matplotlib, Debian's
python3-matplotlib; Agg backend, no display)."""

import math
from pathlib import Path

MODE_LABEL = {"none": "no filter", "full": "full capture", "low-overhead": "low-overhead",
              "drop-all": "drop-all"}
MODE_COLOR = {"none": "#999999", "full": "#d62728", "low-overhead": "#1f77b4", "drop-all": "#2ca02c"}
# The seed's Figure 2.16 gives two numbers in its text (§2.8.7): worst case
# ~100% overhead copying every write, 39.5% worst case with data dropping.
SEED = {"full": "~2x worst case (write amplification 2)", "low-overhead": "1.395x worst case",
        "drop-all": "-"}
TARGETS = {"full": 1.25, "low-overhead": 1.05}


def fmt_ratio(cell):
    if not cell or cell.get("ratio_median") is None:
        return "-"
    med, lo, hi = cell["ratio_median"], cell["ratio_min"], cell["ratio_max"]
    if len(cell["ratio"]) == 1:
        return f"{med:.3f}x"
    return f"{med:.3f}x ({lo:.2f}..{hi:.2f})"


def mib(b):
    return "-" if b is None else f"{b / (1 << 20):.1f}"


def write(results, out):
    out = Path(out)
    modes = results["modes"]
    table = results["table"]
    m = results["machine"]
    lines = []
    lines.append(f"# dsvmi overhead benchmarks ({results['size']})\n")
    lines.append(f"Command: `{results['command']}`  ")
    lines.append(f"Machine: {m['cores']} cores ({m['cpu']}), host kernel {m['host_kernel']}, "
                 f"guest accelerator **{m['accel'].upper()}** ({m['accel_reason']}); "
                 f"load average at start {m['loadavg_start'][0]:.1f}, at end "
                 f"{results['loadavg_end'][0]:.1f} (shared machine); {results['date'] if 'date' in results else m['date']}.  ")
    g = results["guest"]
    lines.append(f"Guest: Debian 12 chroot ({g['kernel'].split()[0]}), {g['memory_mib']} MiB, 1 vCPU, "
                 f"virtio-blk on a raw ext4 image (O_DIRECT); sizes {g['sizes']}.  ")
    lines.append(f"{results['reps']} repetitions, modes interleaved in rotated order; suite took "
                 f"{results['suite_seconds'] / 60:.1f} min.\n")
    lines.append("## Guest workloads: time relative to no filter\n")
    lines.append("Median of per-repetition ratios `mode / none` (min..max). Host-timed phases, each "
                 "ending with the guest's `sync`.\n")
    hdr = "| workload | none (s, median) | " + " | ".join(MODE_LABEL[x] for x in modes if x != "none") + " |"
    lines.append(hdr)
    lines.append("|---" * (len(modes) + 1) + "|")
    for w, row in table.items():
        cells = [fmt_ratio(row.get(x)) for x in modes if x != "none"]
        base = row["none"]["seconds_median"]
        lines.append(f"| {w} | {base:.1f} | " + " | ".join(cells) + " |")
    worst = {}
    for x in modes:
        if x == "none":
            continue
        vals = [row[x]["ratio_median"] for row in table.values() if row[x]["ratio_median"] is not None]
        worst[x] = max(vals) if vals else None
    lines.append("| **worst case** | | " + " | ".join(
        f"**{worst[x]:.3f}x**" if worst.get(x) is not None else "-" for x in modes if x != "none") + " |")
    lines.append("| target | | " + " | ".join(
        (f"<= {TARGETS[x]:.2f}x" if x in TARGETS else "within noise") for x in modes if x != "none") + " |")
    lines.append("| seed (§2.8.7) | | " + " | ".join(SEED.get(x, "-") for x in modes if x != "none") + " |")
    lines.append("")
    lines.append("## Bytes the guest wrote vs bytes copied into the ring\n")
    lines.append("MiB per workload (median over repetitions): guest = /sys/block/vda/stat sectors "
                 "written; ring = frames produced (`dsvmi ring-stat`, headers included); "
                 "dropped = frames lost to a full ring.\n")
    fm = [x for x in modes if x != "none"]
    lines.append("| workload | guest wrote | " + " | ".join(f"ring: {MODE_LABEL[x]}" for x in fm) +
                 " | frames dropped (" + "/".join(fm) + ") |")
    lines.append("|---" * (len(fm) + 3) + "|")
    for w, row in table.items():
        lines.append(f"| {w} | {mib(row['none']['bytes_written_median'])} | " +
                     " | ".join(mib(row[x]['ring_bytes_median']) for x in fm) + " | " +
                     "/".join(str(row[x]["ring_dropped_frames"]) for x in fm) + " |")
    lines.append("")
    lines.append("## Engine side\n")
    cons = results["consumers"]
    for x in fm:
        mem = results["engine_memory"].get(x)
        peak = "-"
        if mem:
            peak = (f"{mem['peak_rss_kib_max'] / 1024:.1f} MiB, of which private (RssAnon, sampled "
                    f"every {0.5} s) {(mem.get('peak_anon_kib_sampled') or 0) / 1024:.1f} MiB and shared ring/"
                    f"tmpfs pages (RssShmem) {(mem.get('peak_shmem_kib_sampled') or 0) / 1024:.1f} MiB")
        lines.append(f"- {MODE_LABEL[x]}: consumer `{cons[x]}`, peak RSS (VmHWM) {peak}")
    if results.get("low_overhead_gate"):
        i = results["low_overhead_gate"]
        lines.append(f"- low-overhead gate: metadata + {', '.join(results['low_overhead_globs'])}, "
                     f"{i['grains_set']} of {i['grains_total']} 4 KiB grains set (crawl of the pristine image, "
                     "static for the run: `dsvmi bench static-gate`)")
    lat = results.get("event_latency") or {}
    if not lat:
        lines.append("- event latency: not reported (the consumer printed no event_latency_* counters)")
    for x, v in lat.items():
        lines.append(f"- {MODE_LABEL[x]}: event latency (frame timestamp in QEMU to event emitted) "
                     f"p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms (median over {v['boots']} boots; worst p99 "
                     f"{v['p99_ms_worst']} ms, max {v['max_ms']} ms; {v['events']} events)")
    for x in fm:
        ev = [b["consumer_stats"].get("events") for b in results["boots"]
              if b["mode"] == x and b.get("consumer_stats") and "events" in b["consumer_stats"]]
        if ev:
            lines.append(f"- {MODE_LABEL[x]}: engine events per boot (median) {sorted(ev)[len(ev) // 2]}")
    lines.append("")
    lines.append("![normalized overhead](overhead.png)\n")
    if (out / "timeseries-bonnie.png").exists():
        lines.append("![engine memory and ring fill during bonnie++](timeseries-bonnie.png)\n")
    bl = results.get("block_layer")
    if bl:
        lines.append("## Block layer alone (no guest CPU)\n")
        lines.append(f"`{bl['command']}` (metadata = a synthetic ext4-like gate; pass-all = full capture)\n")
        lines.append(bl.get("markdown") or f"failed: {bl.get('error')}")
        lines.append("")
    micro = results.get("micro")
    if micro:
        lines.append("## Micro benchmarks (Google Benchmark)\n")
        lines.append("| binary | benchmark | time per iteration | throughput |")
        lines.append("|---|---|---|---|")
        for binary, data in micro.items():
            if "skipped" in data:
                lines.append(f"| {binary} | skipped: {' '.join(data['skipped'].split())[:100]} | | |")
                continue
            if "error" in data:
                lines.append(f"| {binary} | error: {data['error'][:80]} | | |")
                continue
            for b in data.get("benchmarks", []):
                tput = ""
                if b.get("bytes_per_second"):
                    tput = f"{b['bytes_per_second'] / 1e9:.2f} GB/s"
                elif b.get("items_per_second"):
                    tput = f"{b['items_per_second'] / 1e6:.2f} M items/s"
                lines.append(f"| {binary} | {b['name']} | {b['real_time']:.1f} {b['time_unit']} | {tput} |")
        lines.append("")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot_overhead(results, out / "overhead.png")
    plot_timeseries(results, out / "timeseries-bonnie.png")


def plot_overhead(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    modes = [x for x in results["modes"] if x != "none"]
    table = results["table"]
    wls = list(table)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    width = 0.8 / max(1, len(modes))
    for i, x in enumerate(modes):
        meds, lo, hi = [], [], []
        for w in wls:
            c = table[w][x]
            med = c["ratio_median"] if c["ratio_median"] is not None else math.nan
            meds.append((med - 1) * 100)
            lo.append(((med - c["ratio_min"]) * 100) if c["ratio_min"] is not None else 0)
            hi.append(((c["ratio_max"] - med) * 100) if c["ratio_max"] is not None else 0)
        xs = [k + (i - (len(modes) - 1) / 2) * width for k in range(len(wls))]
        ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=MODE_LABEL[x], color=MODE_COLOR[x])
        for xx, v in zip(xs, meds):
            if not math.isnan(v):
                ax.annotate(f"{v:+.1f}%", (xx, v), ha="center", va="bottom" if v >= 0 else "top",
                            fontsize=8, xytext=(0, 2 if v >= 0 else -2), textcoords="offset points")
    ax.axhline(0, color="black", linewidth=0.8)
    for x, t in (("low-overhead", 5), ("full", 25)):
        if x in modes:
            ax.axhline(t, color=MODE_COLOR[x], linestyle=":", linewidth=1)
            ax.annotate(f"target {MODE_LABEL[x]} {t}%", (-0.45, t), ha="left", va="bottom",
                        fontsize=7, color=MODE_COLOR[x],
                        bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))
    ax.set_xlim(-0.5, len(wls) - 0.5)
    ax.set_xticks(range(len(wls)))
    ax.set_xticklabels(wls)
    ax.set_ylabel("overhead vs no filter (%)")
    m = results["machine"]
    ax.set_title(f"Normalized overhead per workload ({results['size']}, {m['accel'].upper()}, "
                 f"{results['reps']} reps; bars = median, whiskers = min..max)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_timeseries(results, path):
    """Engine memory, ring fill and guest write rate during bonnie++ (the
    first repetition of the full-capture mode, else any filtered mode)."""
    boots = results["boots"]
    pick = None
    for mode in ("full", "low-overhead", "drop-all"):
        pick = next((b for b in boots if b["mode"] == mode and "bonnie.run" in b["phases"]), None)
        if pick:
            break
    if not pick:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    marks = [k for k in pick["marks"] if k["phase"] == "bonnie.run"]
    t0, t1 = marks[0]["t"], marks[-1]["t"]
    s = [x for x in pick["samples"] if t0 - 2 <= x["t"] <= t1 + 2]
    ts = [x["t"] - t0 for x in s]
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), dpi=100, sharex=True)
    rss = [(x.get("consumer_rss_kib") or 0) / 1024 for x in s]
    qrss = [(x.get("qemu_rss_kib") or 0) / 1024 for x in s]
    anon = [(x.get("consumer_anon_kib") or 0) / 1024 for x in s]
    axes[0].plot(ts, rss, color="#d62728", label="engine RSS (incl. ring pages)")
    axes[0].plot(ts, anon, color="#ff9896", label="engine private (RssAnon)")
    axes[0].set_ylabel("MiB")
    ax0b = axes[0].twinx()
    ax0b.plot(ts, qrss, color="#7f7f7f", linestyle="--", label="QEMU RSS")
    ax0b.set_ylabel("QEMU MiB", color="#7f7f7f")
    axes[0].legend(loc="upper left", fontsize=8)
    ax0b.legend(loc="upper right", fontsize=8)
    axes[0].set_title(f"bonnie++ under {MODE_LABEL[pick['mode']]} (rep {pick['rep'] + 1}): "
                      "memory, ring fill, copied write rate", fontsize=9)
    fill = [100.0 * (x.get("ring_fill") or 0) / x["ring_capacity"] if x.get("ring_capacity") else 0
            for x in s]
    axes[1].plot(ts, fill, color="#1f77b4")
    axes[1].set_ylabel("ring fill (%)")
    axes[1].set_ylim(bottom=0)
    rate = [0.0]
    for a, b in zip(s, s[1:]):
        dt = b["t"] - a["t"]
        d = (b.get("ring_produced_bytes") or 0) - (a.get("ring_produced_bytes") or 0)
        rate.append(d / dt / (1 << 20) if dt > 0 else 0)
    axes[2].plot(ts, rate, color="#2ca02c")
    axes[2].set_ylabel("copied MiB/s")
    axes[2].set_xlabel("seconds since bonnie++ started (host clock)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
