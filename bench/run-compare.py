#!/usr/bin/env python3
"""Side-by-side load comparison: grtmp-test-server vs nginx-rtmp.

For each (players, bitrate) case the same load (bench/loadgen.cpp: one
publisher looping a generated H.264/AAC FLV in real time, N players joining
at --rate per second) runs against our server and then against nginx-rtmp,
each started fresh on a free port. Only the SERVER process is measured:
CPU seconds (utime+stime from /proc/PID/stat) over the measured window and
VmRSS sampled every 100 ms (the loadgen does the sampling, so the window is
exact). Then publishers per core: K publishers at 600 kbps, no players.

Usage (from the source root, after building build-bench):
    python3 bench/run-compare.py                      # full run, ~10 min
    python3 bench/run-compare.py --players 100 --bitrates 600k --publishers '' --duration 5   # smoke

Pinning (default): the loadgen runs on CPU 0 and the server on CPU 1
(os.sched_setaffinity), so both servers get one and the same core and the
loadgen never competes with the server for it. --no-pin disables it.

Priority (default --boost -10): the server and the loadgen each start in a
session of their own (so a scheduler autogroup of their own) with autogroup
nice -10, so that builds running on the shared machine do not starve them;
--boost 0 disables it. The 1-minute load average is recorded before and
after every run and printed next to every row; uptime + top are printed at
the start and the end. See docs/performance.md.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLIPS = {
    # name: (size, video bitrate)
    "600k": ("640x360", "600k"),
    "3M": ("1280x720", "3M"),
}

NGINX_CONF = """load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
worker_processes 1;
error_log {tmp}/error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; }} }} }}
"""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def machine_load():
    return os.getloadavg()[0]


def top_snapshot():
    try:
        up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        top = subprocess.run(["top", "-bn1"], capture_output=True, text=True).stdout.splitlines()[:15]
        return up + "\n" + "\n".join(top)
    except OSError:
        return ""


def make_clip(name, outdir, seconds):
    size, rate = CLIPS[name]
    path = os.path.join(outdir, f"clip-{name}-{seconds}s.flv")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return path
    log(f"generating {path} (ffmpeg lavfi testsrc+sine, libx264 -g 50, {rate})")
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-x264-params", "nal-hrd=cbr",
        "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-f", "flv", path + ".tmp",
    ]
    subprocess.run(cmd, check=True)
    os.rename(path + ".tmp", path)
    return path


def preexec(cpu, boost):
    def fn():
        if boost:
            # Own session, hence own scheduler autogroup (the kernel shares CPU
            # between autogroups first), at nice -10: the server and the
            # loadgen get the CPU they need even while the shared machine runs
            # builds. Both need well under one core.
            os.setsid()
            try:
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(boost))
            except OSError:
                pass
            try:
                os.setpriority(os.PRIO_PROCESS, 0, boost)
            except OSError:
                pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        for want in (65536, hard):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
                break
            except (ValueError, OSError):
                continue
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
    return fn


class Server:
    def __init__(self, kind, args, tmp):
        self.kind, self.args, self.tmp = kind, args, tmp
        self.proc = None
        self.port = None

    def start(self):
        cpu = None if self.args.no_pin else 1
        if self.kind == "ours":
            binary = self.args.ours_bin or os.path.join(self.args.build, "tests", "grtmp-test-server")
            cmd = [binary, "--port", "0", "--threads", str(self.args.threads), "--log-level", "warning"]
            self.errf = open(os.path.join(self.tmp, "ours.err"), "w")
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf, text=True,
                                         preexec_fn=preexec(cpu, self.args.boost))
            line = self.proc.stdout.readline()
            if not line.startswith("PORT "):
                raise RuntimeError(f"grtmp-test-server did not start: {line!r}")
            self.port = int(line.split()[1])
        else:
            self.port = free_port()
            ntmp = os.path.join(self.tmp, "nginx")
            os.makedirs(os.path.join(ntmp, "logs"), exist_ok=True)
            conf = os.path.join(ntmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(tmp=ntmp, port=self.port))
            self.errf = open(os.path.join(ntmp, "stderr.log"), "w")
            self.proc = subprocess.Popen(["/usr/sbin/nginx", "-p", ntmp, "-c", conf], stdout=self.errf,
                                         stderr=self.errf, preexec_fn=preexec(cpu, self.args.boost))
            deadline = time.time() + 5
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    break
                except OSError:
                    if self.proc.poll() is not None:
                        raise RuntimeError("nginx did not start (see %s)" % ntmp)
                    time.sleep(0.05)
            # The probe connection above is gone before the load starts.
            time.sleep(0.2)
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errf.close()


def run_load(args, kind, clip, players, publishers, duration, tmp):
    srv = Server(kind, args, tmp)
    load_before = machine_load()
    pid = srv.start()
    try:
        cmd = [os.path.join(args.build, "bench", "grtmp-loadgen"), "--port", str(srv.port), "--flv", clip,
               "--players", str(players), "--publishers", str(publishers), "--rate", str(args.rate),
               "--duration", str(duration), "--warmup", str(args.warmup), "--server-pid", str(pid)]
        cpu = None if args.no_pin else 0
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=preexec(cpu, args.boost),
                           timeout=duration + players / max(args.rate, 1) + 120)
        wall = time.time() - t0
    finally:
        srv.stop()
    load_after = machine_load()
    try:
        res = json.loads(r.stdout)
    except json.JSONDecodeError:
        res = {"error": "loadgen output unreadable", "stdout": r.stdout[-2000:], "stderr": r.stderr[-2000:]}
    res["server"] = kind
    res["load_before"] = round(load_before, 2)
    res["load_after"] = round(load_after, 2)
    res["wall_s"] = round(wall, 1)
    res["cmd"] = " ".join(cmd)
    return res


def derived(r):
    d = {}
    gb = r.get("delivered_bytes", 0) / 1e9
    d["cpu_per_gb"] = r["server_cpu_s"] / gb if gb > 0 and "server_cpu_s" in r else None
    n = r.get("players", 0)
    if n and "server_rss_peak_kb" in r:
        d["rss_per_player_kb"] = (r["server_rss_peak_kb"] - r["server_rss_base_kb"]) / n
    else:
        d["rss_per_player_kb"] = None
    if r.get("duration_s"):
        d["cpu_per_s"] = r.get("server_cpu_s", 0) / r["duration_s"]
    return d


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--players", default="100,500,1000")
    ap.add_argument("--bitrates", default="600k,3M")
    ap.add_argument("--publishers", default="50,100,200", help="publisher-only runs ('' to skip)")
    ap.add_argument("--duration", type=float, default=20, help="measured window of player runs (s)")
    ap.add_argument("--pub-duration", type=float, default=10, help="measured window of publisher runs (s)")
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--rate", type=float, default=200, help="player connections per second")
    ap.add_argument("--threads", type=int, default=0,
                    help="grtmp-test-server --threads (0: the server's default, one loop thread per usable core; "
                         "pinned to one core that is 1)")
    ap.add_argument("--servers", default="ours,nginx")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--boost", type=int, default=-10,
                    help="nice value of the server's and loadgen's own autogroup (0: no boost)")
    ap.add_argument("--ours-bin", help="another grtmp-test-server binary (e.g. a prototype build)")
    ap.add_argument("--clip-seconds", type=int, default=10)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "grtmp-bench"))
    ap.add_argument("--json", help="write all raw results here")
    args = ap.parse_args()

    for b in ("ffmpeg",):
        if not shutil.which(b):
            sys.exit(f"{b} not found")
    os.makedirs(args.workdir, exist_ok=True)
    servers = [s for s in args.servers.split(",") if s]
    bitrates = [b for b in args.bitrates.split(",") if b]
    clips = {b: make_clip(b, args.workdir, args.clip_seconds) for b in set(bitrates) | {"600k"}}
    snapshots = [("start", top_snapshot())]
    t_start = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="grtmp-cmp-") as tmp:
        for b in bitrates:
            for n in [int(x) for x in args.players.split(",") if x]:
                for kind in servers:
                    log(f"== {kind}: {n} players at {b} (load {machine_load():.2f})")
                    r = run_load(args, kind, clips[b], n, 1, args.duration, tmp)
                    r["bitrate"], r["case"] = b, "players"
                    r.update(derived(r))
                    log("   cpu %.2fs, delivered %.3f GB, starved %s, join median %s ms, load %s->%s" % (
                        r.get("server_cpu_s", -1), r.get("delivered_bytes", 0) / 1e9, r.get("starved"),
                        r.get("join_ms_median"), r["load_before"], r["load_after"]))
                    results.append(r)
        for k in [int(x) for x in args.publishers.split(",") if x]:
            for kind in servers:
                log(f"== {kind}: {k} publishers at 600k, no players (load {machine_load():.2f})")
                r = run_load(args, kind, clips["600k"], 0, k, args.pub_duration, tmp)
                r["bitrate"], r["case"] = "600k", "publishers"
                r.update(derived(r))
                log("   cpu %.2fs over %.1fs, live %s/%s, load %s->%s" % (
                    r.get("server_cpu_s", -1), r.get("duration_s", 0), r.get("publishers_live_at_end"), k,
                    r["load_before"], r["load_after"]))
                results.append(r)
    snapshots.append(("end", top_snapshot()))
    elapsed = time.time() - t_start

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "snapshots": snapshots, "elapsed_s": elapsed,
                       "argv": sys.argv}, f, indent=1)

    # ---- Markdown ----
    by = {}
    for r in results:
        by[(r["case"], r["bitrate"], r.get("players") if r["case"] == "players" else r.get("publishers"),
            r["server"])] = r
    out = []
    out.append(f"Command: `{' '.join(sys.argv)}` — pinning: "
               f"{'none' if args.no_pin else 'loadgen on CPU 0, server on CPU 1'}; priority boost: "
               f"{'autogroup nice %d' % args.boost if args.boost else 'none'}; ours `--threads {args.threads}`"
               f"{' (' + args.ours_bin + ')' if args.ours_bin else ''}; "
               f"player window {args.duration:g} s, join rate {args.rate:g}/s; took {elapsed / 60:.1f} min.")
    out.append("")
    out.append("| bitrate | players | server | CPU s | delivered GB | CPU s/GB | peak RSS MB | RSS/player KB "
               "| recv min/med (% exp) | starved | join min/med/p99 ms | errors | load 1m |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for b in bitrates:
        for n in [int(x) for x in args.players.split(",") if x]:
            rows = {s: by.get(("players", b, n, s)) for s in servers}
            for s in servers:
                r = rows[s]
                if not r or "server_cpu_s" not in r:
                    out.append(f"| {b} | {n} | {s} | failed: {r.get('error') if r else 'missing'} |")
                    continue
                errs = sum(r.get("errors", {}).values())
                out.append(
                    f"| {b} | {n} | {s} | {r['server_cpu_s']:.2f} | {r['delivered_bytes'] / 1e9:.3f} "
                    f"| {fmt(r['cpu_per_gb'])} | {r['server_rss_peak_kb'] / 1024:.1f} | {fmt(r['rss_per_player_kb'], 1)} "
                    f"| {100 * r['received_min_ratio']:.1f} / {100 * r['received_median_ratio']:.1f} | {r['starved']} "
                    f"| {r['join_ms_min']:.1f} / {r['join_ms_median']:.1f} / {r['join_ms_p99']:.1f} | {errs} "
                    f"| {r['load_before']:.1f}→{r['load_after']:.1f} |")
            if "ours" in rows and "nginx" in rows and rows["ours"] and rows["nginx"] and \
                    "server_cpu_s" in rows["ours"] and "server_cpu_s" in rows["nginx"]:
                o, g = rows["ours"], rows["nginx"]
                out.append(
                    f"| {b} | {n} | **ours/nginx** | {fmt(ratio(o['server_cpu_s'], g['server_cpu_s']))} | "
                    f"| **{fmt(ratio(o['cpu_per_gb'], g['cpu_per_gb']))}** | {fmt(ratio(o['server_rss_peak_kb'], g['server_rss_peak_kb']))} "
                    f"| **{fmt(ratio(o['rss_per_player_kb'], g['rss_per_player_kb']))}** | | "
                    f"| {fmt(ratio(o['join_ms_median'], g['join_ms_median']), 3)} (median) | | |")
    pubs = [int(x) for x in args.publishers.split(",") if x]
    if pubs:
        out.append("")
        out.append("Publishers only (600 kbps video + 96 kbps audio each, no players):")
        out.append("")
        out.append("| publishers | server | live at end | CPU s / s | CPU s per stream-second (ms) | publishers per core "
                   "| peak RSS MB | load 1m |")
        out.append("|---|---|---|---|---|---|---|---|")
        for k in pubs:
            rows = {s: by.get(("publishers", "600k", k, s)) for s in servers}
            for s in servers:
                r = rows[s]
                if not r or "server_cpu_s" not in r:
                    out.append(f"| {k} | {s} | failed: {r.get('error') if r else 'missing'} |")
                    continue
                per = r["cpu_per_s"] / k
                out.append(f"| {k} | {s} | {r['publishers_live_at_end']} | {r['cpu_per_s']:.3f} | {1000 * per:.3f} "
                           f"| {fmt(1 / per if per > 0 else None, 0)} | {r['server_rss_peak_kb'] / 1024:.1f} "
                           f"| {r['load_before']:.1f}→{r['load_after']:.1f} |")
            if all(rows.get(s) and "server_cpu_s" in rows[s] for s in ("ours", "nginx")):
                out.append(f"| {k} | **ours/nginx** | | {fmt(ratio(rows['ours']['cpu_per_s'], rows['nginx']['cpu_per_s']))} "
                           f"| | | | |")
    out.append("")
    for name, snap in snapshots:
        out.append(f"Machine at {name}:")
        out.append("```")
        out.append(snap)
        out.append("```")
    print("\n".join(out))


if __name__ == "__main__":
    main()
