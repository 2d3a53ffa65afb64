#!/usr/bin/env python3
"""End-to-end interop matrix: real publishers x real players through grtmp-test-server.

Publishers: ffmpeg (-re -c copy -f flv), GStreamer (filesrc ! flvdemux ! clocksync !
flvmux streamable=true ! rtmp2sink), grtmp-test-client publish --realtime.
Players (late joiners, started 1 s after the publish started): ffmpeg decode
(framecrc, -v error), ffprobe (codecs, size), GStreamer rtmp2src ! flvdemux !
avdec_h264/avdec_aac into raw files (frames counted from the byte counts),
rtmpdump -o file (then ffprobe -count_frames + decode), grtmp-test-client play
(then ffprobe + decode). Every cell checks content: codecs, frame counts
against what remained of the publish when the player joined (with the GOP
cache the player starts at the keyframe before its join point, so the count
is total - 25*k), and zero decode errors.

This file also holds the helpers the other e2e_*.py scripts share that are
not (yet) in rtmptest.py: GrtmpServer, the grtmp-test-client wrappers and an
FLV tag parser/comparator.
"""

from __future__ import annotations

import math
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtmptest  # noqa: E402
from rtmptest import (TIMEOUT_RC, build_dir, check, ffmpeg_decode, ffmpeg_publish,  # noqa: E402
                      ffprobe_info, gst_launch, log, main, run, spawn, stop_process, tmp_path)

# ============================================================================
# Shared helpers (missing from rtmptest.py; used by e2e_late_join.py,
# e2e_multi_stream.py, e2e_nginx_client.py and e2e_limits.py too).
# ============================================================================


def server_exe() -> str:
    return os.environ.get('GRTMP_TEST_SERVER') or os.path.join(build_dir(), 'tests', 'grtmp-test-server')


def client_exe() -> str:
    return os.environ.get('GRTMP_TEST_CLIENT') or os.path.join(build_dir(), 'tests', 'grtmp-test-client')


_LOG_TIME = re.compile(r'(\d\d):(\d\d):(\d\d)\.(\d{3}): ')


def time_of_day() -> float:
    """Local wall-clock seconds since midnight (the clock of the GLib log lines)."""
    t = time.time()
    lt = time.localtime(t)
    return lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + (t % 1.0)


def log_line_time(line: str):
    """Seconds since midnight of a GLib log line ('grtmp-INFO: 12:34:56.789: ...')."""
    m = _LOG_TIME.search(line)
    if not m:
        return None
    h, mi, s, ms = (int(x) for x in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000.0


class GrtmpServer:
    """grtmp-test-server on an ephemeral port (it prints `PORT n`).

    GLib writes INFO/DEBUG log lines to stdout and warnings to stderr; both go
    to one log file, read with .log(). .stop() sends SIGTERM and parses the
    `STATS k=v ...` line (with stats=True) into .stats."""

    def __init__(self, *args, log_level: str = 'debug', stats: bool = True, name: str = 'grtmp-server'):
        self.args = [str(a) for a in args]
        self.log_level = log_level
        self.want_stats = stats
        self.name = name
        self.proc = None
        self.port = None
        self.stats = {}
        self.returncode = None
        self._final_log = None

    def start(self, timeout: float = 10.0):
        cmd = [server_exe(), '--port', '0', '--log-level', self.log_level]
        if self.want_stats:
            cmd.append('--stats-on-exit')
        cmd += self.args
        self.cmd = cmd
        self.proc = spawn(cmd, name=self.name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r'^PORT (\d+)\s*$', self.log(), re.M)
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        rc, text = stop_process(self.proc)
        raise RuntimeError(f'grtmp-test-server did not start (rc={rc}): {" ".join(cmd)}\n{text}')

    def url(self, app: str = 'live', name: str = 'test') -> str:
        return f'rtmp://127.0.0.1:{self.port}/{app}/{name}'

    def log(self) -> str:
        if self._final_log is not None:
            return self._final_log
        return self.proc.read_stderr() if self.proc is not None else ''

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_lines(self, pattern: str):
        rx = re.compile(pattern)
        return [l for l in self.log().splitlines() if rx.search(l)]

    def wait_log(self, pattern: str, timeout: float = 10.0, count: int = 1):
        """Waits until `count` log lines match `pattern`; returns the last of
        them (str) or None on timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            hits = [l for l in self.log().splitlines() if rx.search(l)]
            if len(hits) >= count:
                return hits[count - 1]
            if time.monotonic() >= deadline or not self.alive():
                return None
            time.sleep(0.02)

    def log_tail(self, n: int = 40) -> str:
        return '\n'.join(self.log().splitlines()[-n:])

    def stop(self, timeout: float = 5.0):
        if self.proc is None:
            return self.returncode
        rc, text = stop_process(self.proc, timeout=timeout)
        self.returncode = rc
        self._final_log = text
        m = re.search(r'^STATS (.*)$', text, re.M)
        if m:
            for kv in m.group(1).split():
                k, _, v = kv.partition('=')
                try:
                    self.stats[k] = int(v)
                except ValueError:
                    self.stats[k] = v
        self.proc_done = self.proc
        self.proc = None
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# ------------------------------------------------------------ grtmp-test-client

def client_publish(url: str, flv_path: str, realtime: bool = True, name: str = 'client-publish'):
    """Starts `grtmp-test-client publish FILE URL [--realtime]` in the background."""
    cmd = [client_exe(), 'publish', flv_path, url] + (['--realtime'] if realtime else [])
    p = spawn(cmd, name=name)
    p.cmd = cmd
    return p


def client_play_spawn(url: str, out_path: str, seconds: float | None = None, max_tags: int | None = None,
                      name: str = 'client-play'):
    cmd = [client_exe(), 'play', url, out_path]
    if seconds:
        cmd += ['--seconds', str(seconds)]
    if max_tags:
        cmd += ['--max-tags', str(max_tags)]
    p = spawn(cmd, name=name)
    p.cmd = cmd
    return p


def parse_client_output(text: str) -> dict:
    r = {'sent': None, 'tags': None, 'first_key_ms': None}
    m = re.search(r'^SENT (\d+)', text, re.M)
    if m:
        r['sent'] = int(m.group(1))
    m = re.search(r'^TAGS (\d+) FIRST_KEYFRAME_MS (-?[\d.]+)', text, re.M)
    if m:
        r['tags'] = int(m.group(1))
        r['first_key_ms'] = float(m.group(2))
    return r


def wait_client(p, timeout: float = 30.0) -> dict:
    """Waits for a client process from client_publish/client_play_spawn (kills it
    after `timeout`); returns {'rc', 'output', 'sent', 'tags', 'first_key_ms',
    'timed_out', 'cmd'}."""
    timed_out = False
    try:
        p.wait(timeout=timeout)
    except Exception:  # subprocess.TimeoutExpired
        timed_out = True
    rc, text = stop_process(p)
    r = parse_client_output(text)
    r.update({'rc': TIMEOUT_RC if timed_out else rc, 'output': text, 'timed_out': timed_out,
              'cmd': ' '.join(getattr(p, 'cmd', []))})
    return r


def client_play(url: str, out_path: str, seconds: float | None = None, max_tags: int | None = None,
                timeout: float = 30.0) -> dict:
    return wait_client(client_play_spawn(url, out_path, seconds, max_tags), timeout)


# ------------------------------------------------------------ FLV

TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT = 8, 9, 18


def read_flv(path: str) -> dict:
    """Parses an FLV file: {'has_audio', 'has_video', 'tags': [(type, ts_ms, data)],
    'truncated': bool, 'error': str|None}."""
    with open(path, 'rb') as f:
        b = f.read()
    r = {'has_audio': False, 'has_video': False, 'tags': [], 'truncated': False, 'error': None}
    if len(b) < 13 or b[:3] != b'FLV':
        r['error'] = f'not an FLV file ({len(b)} bytes)'
        return r
    r['has_audio'] = bool(b[4] & 4)
    r['has_video'] = bool(b[4] & 1)
    off = struct.unpack('>I', b[5:9])[0] + 4
    while off < len(b):
        if off + 11 > len(b):
            r['truncated'] = True
            break
        ttype = b[off] & 0x1f
        size = int.from_bytes(b[off + 1:off + 4], 'big')
        ts = int.from_bytes(b[off + 4:off + 7], 'big') | (b[off + 7] << 24)
        end = off + 11 + size
        if end + 4 > len(b):
            r['truncated'] = True
            break
        prev = struct.unpack('>I', b[end:end + 4])[0]
        if prev != size + 11:
            r['error'] = f'bad PreviousTagSize at {end}: {prev} != {size + 11}'
        r['tags'].append((ttype, ts, b[off + 11:end]))
        off = end + 4
    return r


def is_video_seq_header(t, d) -> bool:
    return t == TAG_VIDEO and len(d) >= 2 and (d[0] & 0x0f) == 7 and d[1] == 0


def is_audio_seq_header(t, d) -> bool:
    return t == TAG_AUDIO and len(d) >= 2 and (d[0] >> 4) == 10 and d[1] == 0


def is_seq_header(t, d) -> bool:
    return is_video_seq_header(t, d) or is_audio_seq_header(t, d)


def is_keyframe(t, d) -> bool:
    """A video keyframe picture (for AVC: a NALU packet, not a sequence header or end of sequence)."""
    if t != TAG_VIDEO or len(d) < 2 or (d[0] >> 4) != 1:
        return False
    return d[1] == 1 if (d[0] & 0x0f) == 7 else True


def script_name(d: bytes):
    if len(d) >= 3 and d[0] == 2:
        n = int.from_bytes(d[1:3], 'big')
        return d[3:3 + n].decode('utf-8', 'replace')
    return None


def media_tags(tags):
    """(type, ts, data) of audio/video frames (no sequence headers, no script data)."""
    return [(t, ts, d) for t, ts, d in tags if t in (TAG_AUDIO, TAG_VIDEO) and not is_seq_header(t, d)]


def describe_tag(t, d) -> str:
    kind = {TAG_AUDIO: 'audio', TAG_VIDEO: 'video', TAG_SCRIPT: 'script'}.get(t, f'type{t}')
    if t == TAG_SCRIPT:
        return f'script {script_name(d)!r} {len(d)}B'
    extra = ' seqhdr' if is_seq_header(t, d) else (' key' if is_keyframe(t, d) else '')
    if t == TAG_VIDEO and len(d) >= 2 and (d[0] & 0x0f) == 7 and d[1] == 2:
        extra = ' end-of-sequence'
    return f'{kind}{extra} {len(d)}B'


def compare_play_to_published(published_tags, played_tags, require_keyframe_start: bool = True,
                              check_metadata_bytes: bool = True, require_end: bool = True,
                              per_track: bool = False) -> dict:
    """Compares what a player recorded with what was published (see
    _compare_tags). per_track=True compares the video and the audio track
    each on its own (for servers that, like nginx-rtmp with wait_key, pass
    audio while they skip video up to a keyframe); the video track must then
    start at a keyframe when require_keyframe_start."""
    if not per_track:
        return _compare_tags(published_tags, played_tags, require_keyframe_start, check_metadata_bytes,
                             require_end)
    res = {'ok': True, 'problems': [], 'start_index': {}, 'frames': 0, 'published_frames': 0,
           'ts_offset_ok': True, 'video_frames': 0, 'audio_frames': 0}
    for track, name in ((TAG_VIDEO, 'video'), (TAG_AUDIO, 'audio')):
        keep = (TAG_SCRIPT, track)
        r = _compare_tags([x for x in published_tags if x[0] in keep], [x for x in played_tags if x[0] in keep],
                          require_keyframe_start and track == TAG_VIDEO, check_metadata_bytes, require_end)
        res['ok'] = res['ok'] and r['ok']
        res['problems'] += [f'{name} track: {p}' for p in r['problems']]
        res['start_index'][name] = r['start_index']
        for k in ('frames', 'published_frames', 'video_frames', 'audio_frames'):
            res[k] += r[k]
        res['ts_offset_ok'] = res['ts_offset_ok'] and bool(r['ts_offset_ok'])
    return res


def _compare_tags(published_tags, played_tags, require_keyframe_start: bool = True,
                  check_metadata_bytes: bool = True, require_end: bool = True) -> dict:
    """Compares what a player recorded with what was published.

    The player's audio/video frames (sequence headers and script data excluded)
    must be a contiguous run of the published frames, byte for byte and in
    order, ending at the published end (require_end), starting at a video
    keyframe (require_keyframe_start); before the first frame the player must
    have received both sequence headers (byte-equal to the published ones)
    and onMetaData. Returns {'ok', 'problems': [..], 'start_index', 'frames',
    'published_frames', 'ts_offset_ok'}."""
    problems = []
    pub = media_tags(published_tags)
    ply = media_tags(played_tags)
    res = {'ok': False, 'problems': problems, 'start_index': None, 'frames': len(ply),
           'published_frames': len(pub), 'ts_offset_ok': None, 'ts_offset': None,
           'video_frames': sum(1 for t, _, _ in ply if t == TAG_VIDEO),
           'audio_frames': sum(1 for t, _, _ in ply if t == TAG_AUDIO)}
    if not ply:
        problems.append(f'player recorded no audio/video frames ({len(played_tags)} tags in all)')
        return res
    # Where does the player's first frame sit in the published list?
    first = (ply[0][0], ply[0][2])
    candidates = [i for i, (t, _, d) in enumerate(pub) if (t, d) == first]
    if not candidates:
        problems.append(f'first played frame ({describe_tag(*first)}) is not any published frame')
        return res
    best = None
    for k in candidates:
        n = 0
        while n < len(ply) and k + n < len(pub) and (pub[k + n][0], pub[k + n][2]) == (ply[n][0], ply[n][2]):
            n += 1
        if best is None or n > best[1]:
            best = (k, n)
    k, n = best
    res['start_index'] = k
    if n < len(ply):
        exp = describe_tag(pub[k + n][0], pub[k + n][2]) if k + n < len(pub) else 'end of published stream'
        problems.append(f'played frames diverge from the published ones at played frame {n} '
                        f'(published index {k + n}): got {describe_tag(ply[n][0], ply[n][2])}, expected {exp}')
    elif require_end and k + n != len(pub):
        problems.append(f'player stopped {len(pub) - (k + n)} frames before the published end '
                        f'(got published frames {k}..{k + n - 1} of {len(pub)})')
    if require_keyframe_start and not is_keyframe(ply[0][0], ply[0][2]):
        problems.append(f'first played frame is not a video keyframe: {describe_tag(ply[0][0], ply[0][2])}')
    # Timestamps: preserved up to one constant offset.
    offs = {(ply[i][1] - pub[k + i][1]) & 0xffffffff for i in range(min(n, len(ply)))}
    res['ts_offset_ok'] = len(offs) <= 1
    res['ts_offset'] = next(iter(offs)) if len(offs) == 1 else None
    if len(offs) > 1:
        problems.append(f'timestamps not preserved up to a constant offset ({len(offs)} different offsets)')
    # Preamble: everything before the first frame.
    first_media_idx = next(i for i, (t, ts, d) in enumerate(played_tags)
                           if t in (TAG_AUDIO, TAG_VIDEO) and not is_seq_header(t, d))
    pre = played_tags[:first_media_idx]
    pub_vsh = next((d for t, _, d in published_tags if is_video_seq_header(t, d)), None)
    pub_ash = next((d for t, _, d in published_tags if is_audio_seq_header(t, d)), None)
    pre_vsh = [d for t, _, d in pre if is_video_seq_header(t, d)]
    pre_ash = [d for t, _, d in pre if is_audio_seq_header(t, d)]
    pre_meta = [d for t, _, d in pre if t == TAG_SCRIPT and script_name(d) == 'onMetaData']
    if pub_vsh is not None and pub_vsh not in pre_vsh:
        problems.append('no byte-equal video sequence header before the first frame'
                        f' ({len(pre_vsh)} video seq headers in the preamble)')
    if pub_ash is not None and pub_ash not in pre_ash:
        problems.append('no byte-equal audio sequence header before the first frame'
                        f' ({len(pre_ash)} audio seq headers in the preamble)')
    if not pre_meta:
        problems.append('no onMetaData before the first frame (preamble: '
                        + ', '.join(describe_tag(t, d) for t, _, d in pre) + ')')
    elif check_metadata_bytes:
        pub_meta = next((d for t, _, d in published_tags if t == TAG_SCRIPT and script_name(d) == 'onMetaData'), None)
        if pub_meta is not None and pre_meta[0] != pub_meta:
            problems.append(f'onMetaData differs from the published one ({len(pre_meta[0])}B vs {len(pub_meta)}B)')
    res['ok'] = not problems
    return res


# ------------------------------------------------------------ misc

def wait_publish_started(srv: GrtmpServer, key: str, timeout: float = 15.0):
    """Waits for the server's 'publish started ... stream_key=KEY' log line;
    returns its log time (seconds since midnight) or None."""
    line = srv.wait_log(r'publish started .*stream_key=' + re.escape(key) + r'(\s|$)', timeout)
    return log_line_time(line) if line else None


def log_time_of(srv: GrtmpServer, pattern: str, nth: int = 1):
    lines = srv.log_lines(pattern)
    return log_line_time(lines[nth - 1]) if len(lines) >= nth else None


def gen_media(name: str, seconds: float = 5, gop: int = 25, size: str = '320x240', fps: int = 25,
              freq: int = 440) -> str:
    """H.264 (libx264, fixed GOP: scene cuts off) + AAC (sine at `freq` Hz, 44.1 kHz)
    in FLV, generated with lavfi (cached per name)."""
    path = tmp_path(name)
    if os.path.exists(path):
        return path
    cmd = ['ffmpeg', '-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
           '-f', 'lavfi', '-i', f'testsrc=size={size}:rate={fps}',
           '-f', 'lavfi', '-i', f'sine=frequency={freq}:sample_rate=44100',
           '-t', str(seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
           '-g', str(gop), '-sc_threshold', '0', '-c:a', 'aac', '-f', 'flv', path]
    rc, out, err = run(cmd, timeout=120)
    if rc != 0 or not os.path.exists(path):
        raise RuntimeError(f'media generation failed (rc={rc}): {" ".join(cmd)}\n{err}')
    return path


def file_counts(path: str) -> dict:
    """Frame counts and codecs of a media file (ffprobe -count_frames) plus an
    ffmpeg -v error decode: {'vcodec','acodec','width','height','video','audio',
    'decoded_video','decoded_audio','errors'}"""
    info = ffprobe_info(path, count_frames=True, timeout=60)
    d = ffmpeg_decode(path, timeout=60)
    v, a = info['video'] or {}, info['audio'] or {}
    return {'vcodec': v.get('codec_name'), 'acodec': a.get('codec_name'), 'width': v.get('width'),
            'height': v.get('height'), 'video': v.get('frames'), 'audio': a.get('frames'),
            'decoded_video': d['video_frames'], 'decoded_audio': d['audio_frames'],
            'errors': d['errors'] + ([info['error']] if info['error'] else [])}


# ============================================================================
# The matrix
# ============================================================================

FPS = 25
GOP = 25
SECONDS = 6
TOTAL_VIDEO = FPS * SECONDS  # 150
JOIN_AFTER = 1.0             # players start 1 s after the publish started
WIDTH, HEIGHT = 320, 240

PUBLISHERS = ['ffmpeg', 'gstreamer', 'grtmp-client']
PLAYERS = ['ffmpeg', 'ffprobe', 'gstreamer', 'rtmpdump', 'grtmp-client']

RESULTS = {}  # (publisher, player) -> (ok, summary)


def media() -> str:
    return gen_media('matrix.flv', SECONDS, GOP)


def start_publisher(kind: str, url: str):
    src = media()
    if kind == 'ffmpeg':
        return ffmpeg_publish(url, src, realtime=True)
    if kind == 'gstreamer':
        pipeline = (f'filesrc location={src} ! flvdemux name=d '
                    f'd.video ! queue ! h264parse ! clocksync ! m.video '
                    f'd.audio ! queue ! aacparse ! clocksync ! m.audio '
                    f'flvmux name=m streamable=true ! rtmp2sink location={url}')
        from rtmptest import gst_env
        import shlex
        cmd = ['gst-launch-1.0', '-e'] + shlex.split(pipeline)
        p = spawn(cmd, env=gst_env(), name='gst-publish')
        p.cmd = cmd
        return p
    if kind == 'grtmp-client':
        return client_publish(url, src, realtime=True)
    raise ValueError(kind)


def expected_video(join_stream_s: float | None, slack: float = 0.35):
    """Video frames a late joiner should get with the GOP cache: everything from
    the keyframe at or before its join point. Join times near a keyframe are
    ambiguous; returns the set of acceptable counts and 'what remained'."""
    if join_stream_s is None:
        return set(range(0, TOTAL_VIDEO + 1, GOP)), None
    remaining = max(0, TOTAL_VIDEO - int(round(join_stream_s * FPS)))
    ks = {int(math.floor((join_stream_s + dt) * FPS / GOP)) for dt in (-slack, 0.0, slack)}
    return {max(0, TOTAL_VIDEO - GOP * k) for k in ks if k >= 0}, remaining


def count_ok(got, allowed, slack=0) -> bool:
    return got is not None and any(abs(got - a) <= slack for a in allowed)


def play_cell(player: str, url: str, tag: str) -> dict:
    """Runs one player until the stream ends; returns the measurements."""
    r = {'video': None, 'audio': None, 'errors': [], 'notes': [], 'rc': None}
    if player == 'ffmpeg':
        d = ffmpeg_decode(url, timeout=40)
        r.update(rc=d['returncode'], video=d['video_frames'], audio=d['audio_frames'], errors=d['errors'])
        r['cmd'] = ' '.join(d['cmd'])
    elif player == 'ffprobe':
        info = ffprobe_info(url, timeout=30)
        v, a = info['video'] or {}, info['audio'] or {}
        r.update(rc=info['returncode'], vcodec=v.get('codec_name'), acodec=a.get('codec_name'),
                 width=v.get('width'), height=v.get('height'), sample_rate=a.get('sample_rate'),
                 errors=[info['error']] if info['error'] else [])
    elif player == 'gstreamer':
        vraw, araw = tmp_path(f'{tag}.yuv'), tmp_path(f'{tag}.pcm')
        pipeline = (f'rtmp2src location={url} ! flvdemux name=d '
                    f'd.video ! queue ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! '
                    f'filesink location={vraw} sync=false '
                    f'd.audio ! queue ! aacparse ! avdec_aac ! audioconvert ! '
                    f'audio/x-raw,format=S16LE,channels=1 ! filesink location={araw} sync=false')
        rc, out, err = gst_launch(pipeline, timeout=40, eos_on_shutdown=False)
        frame = WIDTH * HEIGHT * 3 // 2
        vb = os.path.getsize(vraw) if os.path.exists(vraw) else 0
        ab = os.path.getsize(araw) if os.path.exists(araw) else 0
        r.update(rc=rc, video=vb // frame if vb % frame == 0 else vb / frame,
                 audio=round(ab / 2 / 1024, 1),
                 errors=[l for l in err.splitlines() if 'ERROR' in l or 'WARN' in l])
        r['cmd'] = 'gst-launch-1.0 ' + pipeline
    elif player == 'rtmpdump':
        out = tmp_path(f'{tag}.flv')
        cmd = ['rtmpdump', '-r', url, '-o', out, '--live', '-m', '30']
        rc, so, se = run(cmd, timeout=40)
        r['rc'] = rc
        r['cmd'] = ' '.join(cmd)
        if rc not in (0, 2):  # 2 = "download may be incomplete" (live stream, no duration)
            r['errors'].append(f'rtmpdump rc {rc}: {se.strip()[-300:]}')
        if os.path.exists(out) and os.path.getsize(out) > 13:
            c = file_counts(out)
            r.update(video=c['decoded_video'], audio=c['decoded_audio'], vcodec=c['vcodec'],
                     acodec=c['acodec'], width=c['width'], height=c['height'], probe_video=c['video'])
            r['errors'] += c['errors']
        else:
            r['errors'].append('rtmpdump wrote no file')
    elif player == 'grtmp-client':
        out = tmp_path(f'{tag}.flv')
        c = client_play(url, out, timeout=40)
        r['rc'] = c['rc']
        r['cmd'] = c['cmd']
        r['tags'] = c['tags']
        if c['rc'] != 0:
            r['errors'].append(f"grtmp-test-client play rc {c['rc']}: {c['output'].strip()[-300:]}")
        if os.path.exists(out) and os.path.getsize(out) > 13:
            f = read_flv(out)
            if f['error'] or f['truncated']:
                r['errors'].append(f"recorded FLV: {f['error'] or 'truncated'}")
            cf = file_counts(out)
            r.update(video=cf['decoded_video'], audio=cf['decoded_audio'], vcodec=cf['vcodec'],
                     acodec=cf['acodec'], width=cf['width'], height=cf['height'])
            r['errors'] += cf['errors']
            mt = media_tags(f['tags'])
            if mt and not is_keyframe(mt[0][0], mt[0][2]):
                r['errors'].append(f'first recorded frame is not a keyframe: {describe_tag(mt[0][0], mt[0][2])}')
        else:
            r['errors'].append('grtmp-test-client wrote no file')
    return r


def run_cell(pub: str, player: str):
    tag = f'{pub}-{player}'
    key = f'live/{tag}'
    summary = '?'
    # grtmp-test-client play ends when the connection closes, not at
    # UnpublishNotify: for it the server closes players after the publisher
    # left (--keep-players 0). The other players end at UnpublishNotify with
    # the default policy (players kept for a republish).
    srv = GrtmpServer(*(['--keep-players', '0'] if player == 'grtmp-client' else []), name=f'server-{tag}')
    srv.start()
    p = None
    r = {}
    try:
        url = srv.url('live', tag)
        p = start_publisher(pub, url)
        t_pub = wait_publish_started(srv, key, timeout=15)
        if not check(t_pub is not None, f'{pub} publish did not start: {srv.log_tail(15)} | {p.read_stderr()[-500:]}'):
            return
        # Let the publisher run 1 s (measured on the server's clock), then join.
        time.sleep(max(0.0, JOIN_AFTER - max(0.0, time_of_day() - t_pub)))
        r = play_cell(player, url, tag)
        try:
            p.wait(timeout=20)
        except Exception:
            pass
        prc, perr = stop_process(p)
        t_sub = log_time_of(srv, r'subscriber added .*stream_key=' + re.escape(key))
        join = (t_sub - t_pub) if (t_sub is not None and t_pub is not None) else None
        # The server's 'publish started' is only roughly stream time 0: rtmp2sink
        # connects while the pipeline already runs, and then sends what queued.
        allowed, remaining = expected_video(join, slack=0.6 if pub == 'gstreamer' else 0.35)
        check(prc == 0, f'{pub} publisher rc {prc}: {perr.strip()[-300:]}')
        check(srv.alive(), 'server died')
        errs = r['errors']
        if player == 'ffprobe':
            ok = (r['vcodec'] == 'h264' and r['acodec'] == 'aac' and r['width'] == WIDTH
                  and r['height'] == HEIGHT and r['sample_rate'] == 44100 and r['rc'] == 0 and not errs)
            summary = f"{r['vcodec']}/{r['acodec']} {r['width']}x{r['height']} {r['sample_rate']}Hz"
            check(ok, f'{tag}: ffprobe rc {r["rc"]} {summary} errors {errs[:3]}')
        else:
            # Every player reads to the end of the stream: the count is the
            # GOP-cache start (a keyframe before the join point) to the end.
            vok = count_ok(r['video'], allowed)
            # ~43 AAC frames/s; the audio starts near the same keyframe.
            aud_exp = None if join is None else (SECONDS - math.floor(join + 0.35)) * 44100 / 1024
            aok = r['audio'] is not None and (aud_exp is None or aud_exp - 50 <= r['audio'] <= aud_exp + 50)
            summary = (f"video {r['video']} (remaining {remaining}, exp {'/'.join(map(str, sorted(allowed)))}) "
                       f"audio {r['audio']} errors {len(errs)}")
            if 'vcodec' in r:
                summary += f" {r.get('vcodec')}/{r.get('acodec')} {r.get('width')}x{r.get('height')}"
                check(r.get('vcodec') == 'h264' and r.get('acodec') == 'aac'
                      and r.get('width') == WIDTH and r.get('height') == HEIGHT,
                      f'{tag}: codecs/size {r.get("vcodec")}/{r.get("acodec")} {r.get("width")}x{r.get("height")}')
            check(r['rc'] in (0, 2) if player == 'rtmpdump' else r['rc'] == 0, f'{tag}: player rc {r["rc"]}')
            check(vok, f'{tag}: video frames {r["video"]}, expected one of {sorted(allowed)} '
                       f'(joined {join if join is None else round(join, 3)} s into the publish)')
            check(aok, f'{tag}: audio frames {r["audio"]}, expected about {aud_exp}')
            check(not errs, f'{tag}: decode/player errors: {errs[:5]}')
        print(f'  cell {pub:>12} -> {player:<12} joined {join if join is None else f"{join:.2f}"} s: {summary}',
              flush=True)
    finally:
        if p is not None:
            stop_process(p)
        srv.stop()
        ok = not rtmptest._failures  # the runner's per-test failure list
        RESULTS[(pub, player)] = (ok, summary)
        if not ok:
            log(f'--- server log tail ({tag}) ---\n{srv.log_tail(40)}')
            if r.get('cmd'):
                log(f'player command: {r.get("cmd")}')


def matrix_table():
    width = 31
    lines = ['', 'interop matrix (publisher x player): PASS/FAIL, v=video frames decoded (expected: GOP-cache start to end), a=audio frames',
             'publisher'.ljust(14) + ''.join(p.ljust(width) for p in PLAYERS)]
    for pub in PUBLISHERS:
        row = pub.ljust(14)
        for pl in PLAYERS:
            ok, summary = RESULTS.get((pub, pl), (None, 'not run'))
            if pl == 'ffprobe':
                short = summary.split(' ')[0] + ' ' + (summary.split(' ')[1] if ' ' in summary else '')
            else:
                m = re.match(r'video (\S+) \(remaining \S+, exp (\S+)\) audio (\S+)', summary)
                short = f'v{m.group(1)} (exp {m.group(2).replace("/", "|")}) a{m.group(3)}' if m else summary[:20]
            cell = ('PASS ' if ok else ('FAIL ' if ok is False else '---- ')) + short
            row += cell[:width - 1].ljust(width)
        lines.append(row)
    print('\n'.join(lines) + '\n', flush=True)
    check(len(RESULTS) == len(PUBLISHERS) * len(PLAYERS), f'only {len(RESULTS)} cells ran')


def _make_cell(pub, player):
    def fn():
        run_cell(pub, player)
    return fn


def gst_warmup():
    """Builds the GStreamer registry once (meson's environment points it at a
    fresh file): otherwise the first gst-launch spends seconds scanning
    plugins and joins far later than the other players."""
    from rtmptest import gst_env
    rc, out, err = run(['gst-inspect-1.0', 'rtmp2src'], timeout=180, env=gst_env())
    if rc != 0:
        log(f'gst-inspect-1.0 rtmp2src rc {rc}: {err[-300:]}')
    # ... and loads the decoders once (cold page cache on a busy machine).
    gst_launch('videotestsrc num-buffers=2 ! x264enc ! h264parse ! avdec_h264 ! fakesink '
               'audiotestsrc num-buffers=2 ! avenc_aac ! aacparse ! avdec_aac ! fakesink', timeout=120)


def tests():
    gst_warmup()
    t = {}
    for pub in PUBLISHERS:
        for pl in PLAYERS:
            t[f'{pub}->{pl}'] = _make_cell(pub, pl)
    t['matrix_table'] = matrix_table
    return t


if __name__ == '__main__':
    main(tests())
