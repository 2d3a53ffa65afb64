#!/usr/bin/env python3
"""End-to-end tests of the gst-rtmp-server launcher ($GRTMP_LAUNCHER).

Each test starts the built binary on a free loopback port (with -record-all
and -metrics-addr where useful), publishes generated H.264/AAC with ffmpeg
and checks what players (ffmpeg, rtmpdump, GStreamer rtmp2src), the
recording, the relays (nginx-rtmp), the JSON logs and the HTTP metrics see.

Run one test: python3 tests/interop/e2e_launcher.py test_relay
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import *  # noqa: E402,F401,F403
from rtmptest import TIMEOUT_RC, gst_env  # noqa: E402


# ---------------------------------------------------------------- helpers

def launcher_path() -> str:
    return os.environ.get('GRTMP_LAUNCHER') or os.path.join(build_dir(), 'gst', 'launcher', 'gst-rtmp-server')


def launcher_env() -> dict:
    env = gst_env(system_plugins=True)
    env.setdefault('GST_PLUGIN_PATH_1_0', os.path.join(build_dir(), 'gst'))
    return env


_media_cache: dict = {}


def media(kind: str = 'av', seconds: float = 5.0) -> str:
    """Generated test media (cached per kind/duration): H.264 320x240 25 fps GOP 25, AAC 44.1 kHz."""
    key = (kind, seconds)
    if key not in _media_cache:
        path = tmp_path(f'media-{kind}-{seconds}.flv')
        make_media(path, seconds, video='v' in kind, audio='a' in kind)
        _media_cache[key] = path
    return _media_cache[key]


class Launcher:
    """gst-rtmp-server on a free port; stdout (JSON lines) to a file."""

    def __init__(self, *extra, record: bool = True, metrics: bool = True, name: str = 'launcher'):
        self.port = free_port()
        self.mport = free_port() if metrics else None
        self.record_dir = tmp_path(f'{name}-rec-{self.port}')
        self.args = [launcher_path(), '-listen', f'127.0.0.1:{self.port}', '-log-level', 'debug']
        if record:
            self.args += ['-record-all', '-record-dir', self.record_dir]
        if metrics:
            self.args += ['-metrics-addr', f'127.0.0.1:{self.mport}']
        self.args += list(extra)
        self.log_path = tmp_path(f'{name}-{self.port}.log')
        self.err_path = tmp_path(f'{name}-{self.port}.err')
        self.proc = None

    def start(self):
        self.out = open(self.log_path, 'wb')
        self.err = open(self.err_path, 'wb')
        log('launch:', ' '.join(self.args))
        self.proc = subprocess.Popen(self.args, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL,
                                     env=launcher_env(), start_new_session=True)
        # A healthy launcher listens within a second; the generous deadline
        # only matters on a loaded machine (the first start also builds the
        # GStreamer registry).
        if not wait_port(self.port, 30, proc=self.proc):
            raise RuntimeError(f'launcher did not listen (rc={self.proc.poll()}):\n{self.stdout()}\n{self.stderr()}')
        if self.mport and not wait_port(self.mport, 5, proc=self.proc):
            raise RuntimeError(f'metrics endpoint did not listen:\n{self.stdout()}')
        return self

    def url(self, app='live', name='test') -> str:
        return f'rtmp://127.0.0.1:{self.port}/{app}/{name}'

    def stdout(self) -> str:
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def stderr(self) -> str:
        try:
            with open(self.err_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')[-3000:]
        except OSError:
            return ''

    def records(self) -> list:
        """Every stdout line as a JSON object (a line that does not parse is a failure)."""
        out = []
        for line in self.stdout().splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                check(False, f'stdout line is not JSON: {line[:200]!r}')
        return out

    def find(self, msg: str, **fields) -> list:
        return [r for r in self.records()
                if r.get('msg') == msg and all(r.get(k) == v for k, v in fields.items())]

    def wait_log(self, msg: str, timeout: float = 10.0, count: int = 1, **fields) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(msg, **fields)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return self.find(msg, **fields)

    def http(self, path: str):
        with urllib.request.urlopen(f'http://127.0.0.1:{self.mport}{path}', timeout=5) as r:
            return r.status, r.headers.get('Content-Type', ''), r.read().decode('utf-8')

    def stats(self) -> dict:
        return json.loads(self.http('/stats')[2])

    def metrics(self) -> dict:
        vals = {}
        for line in self.http('/metrics')[2].splitlines():
            if line.startswith('#') or not line.strip():
                continue
            name, _, value = line.rpartition(' ')
            vals[name] = float(value)
        return vals

    def signal(self, sig) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(10) is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()
        self.err.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is not None or os.environ.get('GRTMP_E2E_VERBOSE'):
            log('--- launcher stdout (tail) ---\n' + '\n'.join(self.stdout().splitlines()[-60:]))
            log('--- launcher stderr (tail) ---\n' + self.stderr())
        self.rc = rc
        return False


def recordings(l: Launcher, app='live', name='test') -> list:
    return sorted(glob.glob(os.path.join(l.record_dir, f'{app}_{name}_*.flv')))


def wait_exit(p, timeout: float) -> int | None:
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def decode_errors(path: str) -> list:
    rc, out, err = run(['ffmpeg', '-nostdin', '-hide_banner', '-v', 'error', '-i', path, '-f', 'null', '-'],
                       timeout=60)
    return [l for l in err.splitlines() if l.strip()] + ([f'ffmpeg rc {rc}'] if rc != 0 else [])


def flv_flags(path: str) -> int:
    with open(path, 'rb') as f:
        head = f.read(9)
    return head[4] if len(head) >= 5 and head[:3] == b'FLV' else -1


class Bg(threading.Thread):
    """Runs fn(*args) in a thread; .result holds its return value."""

    def __init__(self, fn, *args, **kw):
        super().__init__(daemon=True)
        self.fn, self.args, self.kw, self.result, self.error = fn, args, kw, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn(*self.args, **self.kw)
        except Exception as e:  # noqa: BLE001
            self.error = e

    def get(self, timeout=60):
        self.join(timeout)
        if self.error:
            raise self.error
        return self.result


# ---------------------------------------------------------------- tests

def test_cli():
    exe = launcher_path()
    check(os.path.exists(exe), f'launcher binary missing: {exe}')
    rc, out, err = run([exe, '-version'], timeout=10)
    check(rc == 0, f'-version rc {rc}')
    check('gst-rtmp-server' in out and 'version' in out, f'-version output: {out!r}')
    rc2, out2, _ = run([exe, '--version'], timeout=10)
    check(rc2 == 0 and out2 == out, f'--version rc {rc2} {out2!r}')
    rc, out, err = run([exe, '--help'], timeout=10)
    check(rc == 0, f'--help rc {rc}')
    for flag, default in [('listen', 'localhost:1935'), ('log-level', 'info'), ('record-all', 'false'),
                          ('record-dir', './recordings'), ('relay-to', None), ('chunk-size', '4096'),
                          ('version', None), ('metrics-addr', None), ('gop-cache', 'true'),
                          ('handshake-timeout', '10s'), ('idle-timeout', '1m0s'), ('publisher-timeout', '15s'),
                          ('max-connections', '10000'), ('max-message-size', '16777216')]:
        entry = re.search(r'^  -' + re.escape(flag) + r'\b[^\n]*\n[^\n]*', out, re.M)
        check(entry, f'--help lists -{flag}')
        if default and entry:
            check(f'(default {default})' in entry.group(0) or f'(default "{default}")' in entry.group(0),
                  f'--help: -{flag} default {default}: {entry.group(0).strip()!r}')
    rc, out, err = run([exe, '-no-such-flag'], timeout=10)
    check(rc == 2, f'unknown flag rc {rc}')
    check('no-such-flag' in err, f'unknown flag message: {err[:200]!r}')
    for bad in (['-chunk-size', 'abc'], ['-log-level', 'loud'], ['-idle-timeout', '5 parsecs'],
                ['-listen', '127.0.0.1:99999'], ['-relay-to', 'http://x/y'], ['-chunk-size']):
        rc, _, err = run([exe] + bad, timeout=10)
        check(rc == 2, f'{bad} rc {rc}: {err[:150]!r}')
    # A taken port: a clear error and exit 1, not a hang.
    with Launcher(record=False, metrics=False, name='busy') as l:
        rc, out, err = run([exe, '-listen', f'127.0.0.1:{l.port}'], timeout=15, env=launcher_env())
        check(rc == 1, f'port in use rc {rc}')
        check('server failed to start' in out, f'port in use message: {out[-300:]!r}')


def test_publish_play_record():
    """5 s H.264/AAC publish; ffmpeg, rtmpdump and rtmp2src play it; the recording and stats match."""
    require('ffmpeg', 'ffprobe', 'rtmpdump', 'gst-launch-1.0')
    src = media('av', 5.0)
    with Launcher(name='main') as l:
        url = l.url('live', 'test')
        t0 = time.monotonic()
        pub = ffmpeg_publish(url, src)
        check(l.wait_log('publish started', 10), 'log: publish started')
        time.sleep(0.8)
        dump_path = tmp_path('rtmpdump.flv')
        players = [
            Bg(ffmpeg_decode, url, timeout=20, duration=2.5),
            Bg(rtmpdump, url, dump_path, duration=2.5, timeout=20),
            Bg(gst_launch, f'rtmp2src location={url} ! flvdemux name=d d.video ! h264parse ! avdec_h264 ! '
                           f'fakesink num-buffers=40', timeout=20),
        ]
        max_players, saw = 0, None
        while any(p.is_alive() for p in players):
            try:
                st = l.stats()
                streams = [s for s in st['streams'] if s['key'] == 'live/test']
                if streams:
                    max_players = max(max_players, streams[0]['players'])
                    saw = (st, streams[0])
            except Exception as e:  # noqa: BLE001
                log('stats poll failed:', e)
            time.sleep(0.25)
        m_during = l.metrics()
        dec, (drc, _, derr), (grc, gout, gerr) = [p.get() for p in players]
        log(f'players: ffmpeg {dec["video_frames"]} video / {dec["audio_frames"]} audio frames, errors '
            f'{dec["errors"][:3]}; rtmpdump rc {drc}; rtmp2src rc {grc}; max players seen {max_players}')
        check(dec['video_frames'] > 30, f"ffmpeg player video frames {dec['video_frames']}")
        check(dec['audio_frames'] > 50, f"ffmpeg player audio frames {dec['audio_frames']}")
        check(not dec['errors'], f"ffmpeg player decode errors: {dec['errors'][:5]}")
        check(rc_ok(grc), f'rtmp2src ! avdec_h264 rc {grc}: {gerr[-400:]}')
        dump = ffprobe_info(dump_path)
        check(dump['video'] and dump['video']['codec_name'] == 'h264', f'rtmpdump file video: {dump}')
        check(dump['audio'] and dump['audio']['codec_name'] == 'aac', f'rtmpdump file audio: {dump}')
        check(max_players >= 2, f'/stats players during 3 concurrent players: max {max_players}')
        if saw:
            st, s = saw
            log('stats during publish:', json.dumps(s))
            check(st['server']['publishers'] == 1, f"/stats publishers {st['server']['publishers']}")
            check(s['bytes_in'] > 0 and s['bitrate_kbps'] > 0, f'/stats bytes_in/bitrate {s}')
            check(s['video_codec'] == 'H264' and s['audio_codec'] == 'AAC', f'/stats codecs {s}')
            check(s['width'] == 320 and s['height'] == 240, f'/stats size {s}')
            check(s['recording'] is True and s['file'] and s['file'].endswith('.flv'), f'/stats recording {s}')
        else:
            check(False, '/stats never listed live/test')
        check(m_during.get('grtmp_publishers') == 1, f"/metrics grtmp_publishers {m_during.get('grtmp_publishers')}")
        check(m_during.get('grtmp_recordings_active') == 1, f"/metrics recordings {m_during.get('grtmp_recordings_active')}")
        check(m_during.get('grtmp_bytes_in_total', 0) > 0, '/metrics bytes in')

        rc = wait_exit(pub, 20)
        check(rc == 0, f'publisher rc {rc}: {pub.read_stderr()[-300:]}')
        closed = l.wait_log('recorder closed', 10, stream_key='live/test')
        check(closed, 'log: recorder closed')
        time.sleep(0.3)
        st = l.stats()
        m = l.metrics()
        log('stats after:', json.dumps(st['server']))
        check(st['server']['connections_total'] >= 4, f"/stats connections_total {st['server']['connections_total']}")
        check(st['server']['bytes_in'] > 50000, f"/stats bytes_in {st['server']['bytes_in']}")
        check(m.get('grtmp_publishers') == 0, f"/metrics publishers after {m.get('grtmp_publishers')}")
        check(m.get('grtmp_recordings_active') == 0, f"/metrics recordings after {m.get('grtmp_recordings_active')}")
        check(m.get('grtmp_connections_total', 0) >= 4, f"/metrics connections_total {m.get('grtmp_connections_total')}")
        status, ctype, body = l.http('/metrics')
        check('# TYPE grtmp_connections_total counter' in body and '# HELP grtmp_players' in body,
              'Prometheus HELP/TYPE lines')
        check(ctype.startswith('text/plain'), f'/metrics content type {ctype}')

        # Recording.
        files = recordings(l)
        check(len(files) == 1, f'one recording live_test_*.flv: {files}')
        if files:
            rec = files[0]
            info = ffprobe_info(rec, count_frames=True)
            log(f'recording {os.path.basename(rec)}: {os.path.getsize(rec)} bytes, duration {info["duration"]}, '
                f'video frames {info["video"] and info["video"]["frames"]}')
            check(info['video'] and info['video']['codec_name'] == 'h264', f'recording video {info["video"]}')
            check(info['audio'] and info['audio']['codec_name'] == 'aac', f'recording audio {info["audio"]}')
            check(info['duration'] is not None and abs(info['duration'] - 5.0) <= 0.5,
                  f'recording duration {info["duration"]} (5 s published)')
            check(info['video'] and info['video']['frames'] in range(120, 126), f'recording frames {info["video"]}')
            errs = decode_errors(rec)
            check(not errs, f'recording decode errors: {errs[:5]}')
            check(flv_flags(rec) == 0x05, f'recording FLV flags {flv_flags(rec):#x}')
            c = closed[0] if closed else {}
            check(c.get('file') == rec and c.get('size') == os.path.getsize(rec), f'recorder closed fields {c}')
            check(abs(c.get('duration', 0) - 5.0) <= 0.5, f"recorder closed duration {c.get('duration')}")
        log(f'publish->recorder closed: {time.monotonic() - t0:.1f} s')

    # Logs: every line JSON; the contract lines with their fields.
    recs = l.records()
    check(l.rc == 0, f'launcher exit code after SIGTERM {l.rc}')
    for r in recs:
        check(isinstance(r.get('time'), str) and r.get('level') in ('DEBUG', 'INFO', 'WARN', 'ERROR')
              and isinstance(r.get('msg'), str), f'log record shape {r}')
    acc = [r for r in recs if r.get('msg') == 'connection accepted']
    check(len(acc) >= 4, f'"connection accepted" lines {len(acc)}')
    check(all(r.get('conn_id') and r.get('remote', '').startswith('127.0.0.1:') for r in acc),
          f'connection accepted fields {acc[:1]}')
    for msg in ('RTMP server listening', 'server started', 'recorder initialized', 'publish started',
                'subscriber added', 'recorder closed', 'codecs detected', 'shutdown complete'):
        check(any(r.get('msg') == msg for r in recs), f'log has "{msg}"')
    started = [r for r in recs if r.get('msg') == 'server started']
    check(started and started[0].get('addr') == f'127.0.0.1:{l.port}' and started[0].get('version'),
          f'server started fields {started[:1]}')
    codecs = [r for r in recs if r.get('msg') == 'codecs detected']
    check(codecs and codecs[0].get('videoCodec') == 'H264' and codecs[0].get('audioCodec') == 'AAC'
          and codecs[0].get('stream_key') == 'live/test', f'codecs detected {codecs[:1]}')
    init = [r for r in recs if r.get('msg') == 'recorder initialized']
    check(init and init[0].get('stream_key') == 'live/test' and init[0].get('file', '').endswith('.flv'),
          f'recorder initialized {init[:1]}')


def rc_ok(rc):
    return rc == 0


def test_audio_video_only():
    """Audio-only and video-only publishes: the recordings' FLV header flags match."""
    require('ffmpeg', 'ffprobe')
    with Launcher(name='avonly', metrics=False) as l:
        for kind, name, flags in (('a', 'audioonly', 0x04), ('v', 'videoonly', 0x01)):
            pub = ffmpeg_publish(l.url('live', name), media(kind, 3.0))
            rc = wait_exit(pub, 20)
            check(rc == 0, f'{name}: publisher rc {rc}')
            check(l.wait_log('recorder closed', 10, stream_key=f'live/{name}'), f'{name}: recorder closed')
            files = recordings(l, 'live', name)
            check(len(files) == 1, f'{name}: recordings {files}')
            if files:
                got = flv_flags(files[0])
                info = ffprobe_info(files[0])
                log(f'{name}: flags {got:#x}, streams {[s["codec_name"] for s in info["streams"]]}, '
                    f'duration {info["duration"]}')
                check(got == flags, f'{name}: FLV flags {got:#x}, expected {flags:#x}')
                want = ['aac'] if kind == 'a' else ['h264']
                check([s['codec_name'] for s in info['streams']] == want, f'{name}: streams {info["streams"]}')
                check(not decode_errors(files[0]), f'{name}: decode errors')
        # A second session on the same key gets its own file.
        for i in range(2):
            pub = ffmpeg_publish(l.url('live', 'again'), media('a', 3.0) if i else media('v', 3.0))
            check(wait_exit(pub, 20) == 0, f'again #{i}: publisher')
            check(l.wait_log('recorder closed', 10, count=i + 1, stream_key='live/again'), f'again #{i}: closed')
        files = recordings(l, 'live', 'again')
        check(len(files) == 2, f'two sessions of one key -> two files: {files}')


def test_sigterm_during_publish():
    """SIGTERM while publishing: exit 0 within a few seconds, the recording is complete and playable."""
    require('ffmpeg', 'ffprobe')
    l = Launcher(name='sigterm', metrics=False)
    l.start()
    pub = ffmpeg_publish(l.url('live', 'test'), media('av', 5.0), loop=True)
    try:
        check(l.wait_log('recorder initialized', 10), 'recorder initialized')
        time.sleep(3.0)
        t = time.monotonic()
        l.signal(signal.SIGTERM)
        rc = l.wait(10)
        took = time.monotonic() - t
        log(f'SIGTERM -> exit {rc} in {took:.2f} s')
        check(rc == 0, f'exit code after SIGTERM: {rc}')
        check(took < 6, f'shutdown took {took:.1f} s')
        check(l.find('shutdown complete'), 'log: shutdown complete')
        closed = l.find('recorder closed')
        check(closed and closed[0].get('reason') == 'shutdown', f'recorder closed on shutdown: {closed}')
    finally:
        stop_process(pub)
        l.stop()
    files = recordings(l)
    check(len(files) == 1, f'recordings {files}')
    if files:
        info = ffprobe_info(files[0])
        log(f'after SIGTERM: duration {info["duration"]}, size {os.path.getsize(files[0])}')
        check(info['duration'] and info['duration'] > 2.0, f'duration {info["duration"]}')
        check(info['video'] and info['audio'], 'audio and video')
        errs = decode_errors(files[0])
        check(not errs, f'decode errors after SIGTERM: {errs[:5]}')


def test_kill9_leaves_playable_file():
    """kill -9 during a publish: the FLV written so far still plays (streamable format)."""
    require('ffmpeg', 'ffprobe')
    l = Launcher(name='kill9', metrics=False)
    l.start()
    pub = ffmpeg_publish(l.url('live', 'test'), media('av', 5.0), loop=True)
    try:
        check(l.wait_log('recorder initialized', 10), 'recorder initialized')
        time.sleep(3.0)
        os.kill(l.proc.pid, signal.SIGKILL)
        l.wait(5)
    finally:
        stop_process(pub)
        l.stop()
    files = recordings(l)
    check(len(files) == 1, f'recordings {files}')
    if files:
        info = ffprobe_info(files[0])
        d = ffmpeg_decode(files[0], timeout=60)
        log(f'after kill -9: duration {info["duration"]}, size {os.path.getsize(files[0])}, '
            f'{d["video_frames"]} video frames, errors {d["errors"][:3]}')
        check(info['duration'] and info['duration'] > 1.0, f'ffprobe duration {info["duration"]} {info["error"]}')
        check(d['video_frames'] > 25, f'decoded video frames {d["video_frames"]}')


def test_relay():
    """-relay-to nginx-rtmp (read back from nginx) plus a closed port: recording and players unaffected."""
    require('ffmpeg', 'ffprobe')
    closed_port = free_port()
    with Nginx() as ngx:
        good = f'rtmp://127.0.0.1:{ngx.port}/live'
        bad = f'rtmp://127.0.0.1:{closed_port}/live'
        with Launcher('-relay-to', good, '-relay-to', bad, name='relay') as l:
            pub = ffmpeg_publish(l.url('live', 'relayed'), media('av', 8.0))
            check(l.wait_log('relay connected', 10, url=f'{good}/relayed'), 'log: relay connected (nginx)')
            time.sleep(1.0)
            from_nginx = Bg(ffmpeg_decode, ngx.url('live', 'relayed'), timeout=20, duration=3)
            direct = Bg(ffmpeg_decode, l.url('live', 'relayed'), timeout=20, duration=3)
            time.sleep(1.5)
            st = l.stats()
            rn, rd = from_nginx.get(), direct.get()
            log(f'relay: nginx player {rn["video_frames"]} video / {rn["audio_frames"]} audio, errors '
                f'{rn["errors"][:3]}; direct player {rd["video_frames"]} video, errors {rd["errors"][:3]}')
            log('relays:', json.dumps(st['relays']))
            check(rn['video_frames'] > 25 and rn['audio_frames'] > 40, f'read back from nginx: {rn["video_frames"]}')
            check(rd['video_frames'] > 25 and not rd['errors'], f'direct player with a dead relay: {rd["video_frames"]} {rd["errors"][:3]}')
            relays = {r['url']: r for r in st['relays']}
            g, b = relays.get(f'{good}/relayed'), relays.get(f'{bad}/relayed')
            check(g and g['state'] == 'connected' and g['stream_key'] == 'live/relayed', f'/stats good relay {g}')
            check(b and b['state'] in ('retrying', 'failed', 'connecting') and b['retries'] >= 1, f'/stats bad relay {b}')
            check(wait_exit(pub, 20) == 0, 'publisher rc')
            check(l.wait_log('recorder closed', 10, stream_key='live/relayed'), 'recorder closed')
            fails = l.find('relay failed', url=f'{bad}/relayed')
            retries = l.find('relay retrying', url=f'{bad}/relayed')
            log(f'dead relay: {len(fails)} failures, retry delays {[r.get("delay_s") for r in retries]}')
            check(fails and all(r.get('level') == 'WARN' for r in fails), 'log: relay failed (WARN)')
            check(len(retries) >= 2, f'relay retrying lines {len(retries)}')
            delays = [r.get('delay_s') for r in retries]
            check(delays[:3] == [1, 2, 4][:len(delays[:3])], f'backoff delays {delays}')
            check(l.wait_log('relay stopped', 5, url=f'{good}/relayed'), 'good relay stopped after unpublish')
            check(not l.find('gstreamer error'), 'no pipeline error')
        check(l.rc == 0, f'launcher rc {l.rc}')
    files = recordings(l, 'live', 'relayed')
    check(len(files) == 1, f'recording {files}')
    if files:
        info = ffprobe_info(files[0])
        log(f'relay-test recording: duration {info["duration"]}')
        check(info['duration'] and abs(info['duration'] - 8.0) <= 0.5, f'recording duration {info["duration"]}')
        check(not decode_errors(files[0]), 'recording decodes without errors')


def test_chunk_size_and_concurrent_streams():
    """-chunk-size reaches players (rtmpdump sees Set Chunk Size 1000); two streams at once: two good files."""
    require('ffmpeg', 'ffprobe', 'rtmpdump')
    with Launcher('-chunk-size', '1000', name='chunk', metrics=False) as l:
        pubs = [ffmpeg_publish(l.url('live', name), media('av', 4.0)) for name in ('one', 'two')]
        check(l.wait_log('recorder initialized', 10, count=2), 'two recorders')
        rc, out, err = rtmpdump(l.url('live', 'one'), '/dev/null', duration=1.5, extra_args=['-V'])
        check('chunk size change to 1000' in err, f'rtmpdump did not see chunk size 1000: {err[-400:]}')
        for p in pubs:
            check(wait_exit(p, 20) == 0, 'publisher rc')
        for name in ('one', 'two'):
            check(l.wait_log('recorder closed', 10, stream_key=f'live/{name}'), f'{name}: recorder closed')
            files = recordings(l, 'live', name)
            check(len(files) == 1, f'{name}: {files}')
            if files:
                info = ffprobe_info(files[0])
                log(f'{name}: duration {info["duration"]}')
                check(info['duration'] and abs(info['duration'] - 4.0) <= 0.5, f'{name}: duration {info["duration"]}')
                check(not decode_errors(files[0]), f'{name}: decode errors')


def test_relay_reconnect_and_shutdown():
    """The relay destination restarts: the relay comes back (backoff) and serves again; a stream name in
    -relay-to is used as is; SIGTERM while relaying exits 0 and unpublishes cleanly."""
    require('ffmpeg')
    ngx = Nginx().start()
    port = ngx.port
    l = Launcher('-relay-to', f'rtmp://127.0.0.1:{port}/live', '-relay-to', f'rtmp://127.0.0.1:{port}/live/fixed',
                 name='reconnect', record=True)
    l.start()
    pub = ffmpeg_publish(l.url('live', 're'), media('av', 5.0), loop=True)
    ngx2 = None
    try:
        re_url, fixed_url = f'rtmp://127.0.0.1:{port}/live/re', f'rtmp://127.0.0.1:{port}/live/fixed'
        check(l.wait_log('relay connected', 10, url=re_url), 'relay connected (appended name)')
        check(l.wait_log('relay connected', 10, url=fixed_url), 'relay connected (name from -relay-to)')
        r = ffmpeg_decode(ngx.url('live', 'fixed'), timeout=20, duration=1.5)
        check(r['video_frames'] > 10, f'nginx live/fixed frames {r["video_frames"]}')
        ngx.stop()
        t = time.monotonic()
        check(l.wait_log('relay failed', 10, url=re_url), 'relay failed after nginx stopped')
        time.sleep(2.0)
        ngx2 = Nginx(port=port).start()
        back = l.wait_log('relay connected', 40, count=2, url=re_url)
        log(f'relay back {time.monotonic() - t:.1f} s after the destination went away '
            f'(retries logged: {len(l.find("relay retrying", url=re_url))})')
        check(len(back) >= 2, 'relay reconnected after the destination came back')
        time.sleep(1.0)
        r = ffmpeg_decode(ngx2.url('live', 're'), timeout=20, duration=2)
        check(r['video_frames'] > 10, f'read back after reconnect: {r["video_frames"]} frames {r["errors"][:3]}')
        d = ffmpeg_decode(l.url('live', 're'), timeout=20, duration=1.5)
        check(d['video_frames'] > 10 and not d['errors'], f'direct player {d["video_frames"]} {d["errors"][:3]}')
        t = time.monotonic()
        l.signal(signal.SIGTERM)
        rc = l.wait(10)
        log(f'SIGTERM while relaying: rc {rc} in {time.monotonic() - t:.2f} s')
        check(rc == 0, f'rc {rc}')
        stopped = l.find('relay stopped', url=re_url)
        check(stopped and stopped[-1].get('reason') == 'shutdown', f'relay stopped on shutdown {stopped[-1:]}')
        check(not l.find('gstreamer error'), 'no pipeline error')
    finally:
        stop_process(pub)
        l.stop()
        if ngx2:
            ngx2.stop()
        ngx.stop()
    files = recordings(l, 'live', 're')
    check(len(files) == 1 and ffprobe_info(files[0])['duration'], f'recording while the relay flapped: {files}')


if __name__ == '__main__':
    if not os.path.exists(launcher_path()):
        print(f'SKIP: launcher not built ({launcher_path()})')
        sys.exit(77)
    main([test_cli, test_publish_play_record, test_audio_video_only, test_sigterm_during_publish,
          test_kill9_leaves_playable_file, test_relay, test_chunk_size_and_concurrent_streams,
          test_relay_reconnect_and_shutdown])
