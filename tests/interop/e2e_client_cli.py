#!/usr/bin/env python3
"""End-to-end tests of gst-rtmp-client (gst/client-cli, docs/client.md).

publish (MP4 H.264/AAC, FLV as it is incl. Enhanced RTMP HEVC, MKV with B-frames, --loop) to
grtmp-test-server, gst-rtmp-server and nginx-rtmp, read
back with ffmpeg; play -o with --duration checked with ffprobe; probe --json
checked against the generated stream; every error exit code provoked.
"""

import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import *  # noqa: E402,F401,F403

WIDTH, HEIGHT, FPS, RATE = 320, 240, 25, 44100


# ---------------------------------------------------------------- helpers

def cli_exe() -> str:
    return os.environ.get('GRTMP_CLIENT_CLI') or os.path.join(build_dir(), 'gst', 'client-cli', 'gst-rtmp-client')


def cli_env() -> dict:
    # The project's plugin (rtmpclientsink/src) next to the system's
    # (parsebin, flvmux, h264parse, ...).
    return gst_env(system_plugins=True)


def cli(*args, timeout: float = 60.0):
    """Runs gst-rtmp-client; returns (rc, stdout, stderr)."""
    cmd = [cli_exe()] + [str(a) for a in args]
    t0 = time.monotonic()
    rc, out, err = run(cmd, timeout=timeout, env=cli_env())
    log(f'  $ {" ".join(cmd)} -> rc {rc} in {time.monotonic() - t0:.1f}s')
    if err.strip():
        log('    stderr: ' + err.strip().replace('\n', '\n    stderr: ')[-1500:])
    return rc, out, err


def cli_spawn(*args, name='gst-rtmp-client'):
    return spawn([cli_exe()] + [str(a) for a in args], env=cli_env(), name=name)


def server_exe() -> str:
    return os.environ.get('GRTMP_TEST_SERVER') or os.path.join(build_dir(), 'tests', 'grtmp-test-server')


class Server:
    """grtmp-test-server --port 0 (prints `PORT n`; GLib logs go to the same file)."""

    def __init__(self, *args):
        self.args = [str(a) for a in args]
        self.proc = None
        self.port = None

    def __enter__(self):
        self.proc = spawn([server_exe(), '--port', '0'] + self.args, name='grtmp-server')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(r'^PORT (\d+)\s*$', self.proc.read_stderr(), re.M)
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        rc, text = stop_process(self.proc)
        raise RuntimeError(f'grtmp-test-server did not start (rc={rc}):\n{text}')

    def __exit__(self, *exc):
        stop_process(self.proc)
        return False

    def url(self, app='live', name='test') -> str:
        return f'rtmp://127.0.0.1:{self.port}/{app}/{name}'


class SilentListener:
    """A TCP listener that accepts and never answers (for timeouts)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()
        return False


_MEDIA = {}


def media(seconds=5, fmt='mp4') -> str:
    """Generated H.264/AAC test media (320x240, 25 fps, 44.1 kHz mono sine), cached."""
    key = (seconds, fmt)
    if key not in _MEDIA:
        _MEDIA[key] = make_media(tmp_path(f'in_{seconds}s.{fmt}'), seconds, size=f'{WIDTH}x{HEIGHT}', fps=FPS,
                                 gop=FPS, sample_rate=RATE, fmt=fmt)
    return _MEDIA[key]


def wait_stream(url, timeout=10.0) -> bool:
    """Waits until `url` plays (probe succeeds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rc, out, err = run([cli_exe(), 'probe', url, '--json', '--timeout', '2'], timeout=10, env=cli_env())
        if rc == 0:
            return True
        time.sleep(0.3)
    return False


def decode_while_publishing(url, what):
    """ffmpeg plays `url` (waiting for the publisher: both servers let a
    player wait) while our publish of a 5 s MP4 runs: frames, no errors."""
    path = media(5)
    result = {}
    reader = threading.Thread(target=lambda: result.update(ffmpeg_decode(url, timeout=40, duration=3)))
    reader.start()
    time.sleep(1.0)
    pub = cli_spawn('publish', path, url)
    reader.join(60)
    try:
        rc = pub.wait(timeout=20)  # a 5 s file in real time
    except subprocess.TimeoutExpired:
        rc = None
    _, err = stop_process(pub)
    r = result
    log(f'  {what}: ffmpeg decoded {r.get("video_frames")} video, {r.get("audio_frames")} audio frames, '
        f'rc {r.get("returncode")}, errors {r.get("errors", [])[:3]}')
    check(r.get('video_frames', 0) > 2 * FPS, f'{what}: video frames decoded {r.get("video_frames")}')
    check(r.get('audio_frames', 0) > 0, f'{what}: audio frames decoded {r.get("audio_frames")}')
    check(not r.get('errors'), f'{what}: decode errors {r.get("errors", [])[:3]}')
    check(r.get('returncode') == 0, f'{what}: ffmpeg rc {r.get("returncode")}')
    check(rc == 0, f'{what}: publish rc {rc}: {err[-500:]}')
    return r


def check_recording(path, what):
    info = ffprobe_info(path)
    log(f'  {what}: ffprobe {path}: {info["format_name"]} duration {info["duration"]} '
        f'{[(s["codec_name"], s["width"], s["height"], s["sample_rate"]) for s in info["streams"]]} {info["error"]}')
    check(info['returncode'] == 0, f'{what}: ffprobe rc {info["returncode"]}: {info["error"]}')
    # live_flv: ffmpeg's name for an FLV whose metadata says "NGINX RTMP".
    check(info['format_name'] in ('flv', 'live_flv'), f'{what}: format {info["format_name"]}')
    check(info['video'] and info['video']['codec_name'] == 'h264', f'{what}: video {info["video"]}')
    check(info['audio'] and info['audio']['codec_name'] == 'aac', f'{what}: audio {info["audio"]}')
    d = info['duration']
    check(d is not None and 2.5 <= d <= 3.5, f'{what}: duration {d} (want 2.5-3.5 s)')
    r = ffmpeg_decode(path, timeout=30)
    check(r['video_frames'] > 0 and not r['errors'], f'{what}: file decode {r["video_frames"]} frames, {r["errors"][:3]}')


# ---------------------------------------------------------------- tests

def test_help_and_usage():
    require(cli_exe())
    rc, out, err = cli('--help')
    check(rc == 0 and 'publish' in out and 'probe' in out and 'Exit codes' in out, f'--help rc {rc}')
    for args in (['-help'], ['help'], ['help', 'publish'], ['probe', '--help'], ['play', '-h']):
        rc, out, _ = cli(*args)
        check(rc == 0 and 'Usage' in out, f'{args} rc {rc}')
    rc, out, _ = cli('--version')
    check(rc == 0 and re.search(r'\d+\.\d+\.\d+', out), f'--version rc {rc} {out!r}')
    rc, out, _ = cli('-version')
    check(rc == 0, f'-version rc {rc}')
    for args in ([], ['frobnicate'], ['probe'], ['publish', 'x.mp4'], ['probe', 'rtmp://h/a/s', '--bogus'],
                 ['play', 'rtmp://h/a/s', '--duration', 'soon'], ['probe', 'http://h/a/s'],
                 ['probe', 'rtmp://h/app'], ['publish', 'x', 'rtmp://h/a/s', '--json']):
        rc, out, err = cli(*args)
        check(rc == 2, f'{args}: usage error rc {rc} (want 2)')
        check(args == [] or len(err.strip().splitlines()) <= 2, f'{args}: short error {err!r}')


def test_publish_mp4_to_our_server():
    require('ffmpeg', cli_exe())
    with Server() as srv:
        decode_while_publishing(srv.url('live', 'pub'), 'our server')


def test_publish_mp4_to_nginx():
    require('ffmpeg', 'nginx', cli_exe())
    with Nginx() as ngx:
        decode_while_publishing(ngx.url('live', 'pub'), 'nginx-rtmp')


def test_publish_other_containers():
    """FLV and MPEG-TS inputs (flvdemux / tsdemux behind parsebin), --no-realtime."""
    require('ffmpeg', cli_exe())
    with Server('--gop-cache', '1') as srv:
        for fmt in ('flv', 'mpegts'):
            path = media(3, fmt)
            url = srv.url('live', 'c' + fmt)
            rc, out, err = cli('publish', path, url, '--no-realtime', timeout=30)
            check(rc == 0, f'{fmt}: publish rc {rc}: {err[-300:]}')
            # "published 00:00:03.0 of media in 00:00:00.1 (...)"
            m = re.search(r'published (\d+):(\d+):([\d.]+) of media in (\d+):(\d+):([\d.]+)', out)
            check(m, f'{fmt}: summary line {out!r}')
            if m:
                media_s = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
                wall_s = int(m.group(4)) * 3600 + int(m.group(5)) * 60 + float(m.group(6))
                check(media_s >= 2.8, f'{fmt}: published {media_s} s of a 3 s file')
                check(wall_s < 2.0, f'{fmt}: --no-realtime took {wall_s} s for 3 s of media')
        # Real time by default: 3 s of media take about 3 s.
        t0 = time.monotonic()
        rc, out, err = cli('publish', media(3, 'mp4'), srv.url('live', 'rt'), timeout=30)
        dt = time.monotonic() - t0
        check(rc == 0 and 2.7 <= dt <= 15, f'realtime publish rc {rc} in {dt:.1f}s (3 s of media)')


def publish_loop(fmt):
    with Server() as srv:
        url = srv.url('live', 'loop')
        pub = cli_spawn('publish', media(2, fmt), url, '--loop')
        try:
            time.sleep(0.5)
            r = ffmpeg_decode(url, timeout=30, duration=6)
        finally:
            rc, err = stop_process(pub, sig=2)  # SIGINT: stops cleanly
        log(f'  {fmt} loop: decoded {r["video_frames"]} video, {r["audio_frames"]} audio frames, errors {r["errors"][:3]}')
        check(rc == 0, f'loop publisher rc {rc} after SIGINT: {err[-300:]}')
        check(r['video_frames'] >= 6 * FPS * 0.8, f'{fmt} loop: {r["video_frames"]} video frames in 6 s of a 2 s file')
        check(not r['errors'], f'{fmt} loop: decode errors {r["errors"][:3]}')
        for idx, s in r['streams'].items():
            pts = s['pts']
            back = [(a, b) for a, b in zip(pts, pts[1:]) if b < a]
            check(not back, f'{fmt} loop: stream {idx} ({s["type"]}) timestamps go back: {back[:3]}')
            if s['type'] == 'video' and pts:
                check(pts[-1] - pts[0] >= 5 * FPS * 0.8, f'{fmt} loop: video spans {pts[0]}..{pts[-1]} frames')


def test_publish_loop():
    """--loop (an MP4 remuxed, an FLV as it is): one connection, timestamps keep increasing across passes."""
    require('ffmpeg', cli_exe())
    for fmt in ('mp4', 'flv'):
        publish_loop(fmt)


# ---------------------------------------------------------------- FLV as it is

def read_flv(path) -> list:
    """[(tag type, timestamp ms, data bytes)] of an FLV file (asserts its framing)."""
    with open(path, 'rb') as f:
        d = f.read()
    check(d[:3] == b'FLV', f'{path}: FLV signature')
    pos = int.from_bytes(d[5:9], 'big') + 4
    tags = []
    while pos + 11 <= len(d):
        size = int.from_bytes(d[pos + 1:pos + 4], 'big')
        ts = int.from_bytes(d[pos + 4:pos + 7], 'big') | (d[pos + 7] << 24)
        tags.append((d[pos] & 0x1f, ts, d[pos + 11:pos + 11 + size]))
        pos += 11 + size + 4
    check(pos == len(d), f'{path}: tags end at {pos} of {len(d)} bytes')
    return tags


def amf0_string(v: str) -> bytes:
    b = v.encode()
    return len(b).to_bytes(2, 'big') + b


def on_metadata(fields: dict) -> bytes:
    """An AMF0 onMetaData script tag payload (an ECMA array of numbers and strings)."""
    out = b'\x02' + amf0_string('onMetaData') + b'\x08' + len(fields).to_bytes(4, 'big')
    for k, v in fields.items():
        out += amf0_string(k)
        out += b'\x02' + amf0_string(v) if isinstance(v, str) else b'\x00' + struct.pack('>d', float(v))
    return out + b'\x00\x00\x09'


def hevc_access_units(stream: bytes) -> list:
    """Annex B HEVC -> [[NAL units]] per access unit."""
    starts = [m.end() for m in re.finditer(b'\x00\x00\x01', stream)]
    nals = []
    for i, st in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(stream)
        nals.append(stream[st:end].rstrip(b'\x00'))
    aus, cur, cur_vcl = [], [], False
    for n in nals:
        t = (n[0] >> 1) & 0x3f
        vcl = t < 32
        new_au = cur_vcl and ((vcl and n[2] & 0x80) or t in (32, 33, 34, 35, 39))
        if new_au:
            aus.append(cur)
            cur, cur_vcl = [], False
        cur.append(n)
        cur_vcl = cur_vcl or vcl
    if cur:
        aus.append(cur)
    return aus


def hvcc(vps: bytes, sps: bytes, pps: bytes) -> bytes:
    """HEVCDecoderConfigurationRecord from the parameter sets (4:2:0, 8 bit, 4-byte lengths)."""
    rbsp = re.sub(b'\x00\x00\x03', b'\x00\x00', sps[2:])
    sub_layers = ((rbsp[0] >> 1) & 7) + 1
    nesting = rbsp[0] & 1
    ptl = rbsp[1:13]
    out = bytes([1]) + ptl[:12] + bytes([0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0])
    out += bytes([(sub_layers & 7) << 3 | nesting << 2 | 3, 3])
    for t, nal in ((32, vps), (33, sps), (34, pps)):
        out += bytes([0x80 | t]) + (1).to_bytes(2, 'big') + len(nal).to_bytes(2, 'big') + nal
    return out


def make_enhanced_hevc_flv(path, seconds, title):
    """An Enhanced RTMP FLV (FourCC 'hvc1': SequenceStart + CodedFramesX) from ffmpeg's libx265
    Annex B output, written here (ffmpeg 5.1 writes no enhanced FLV). Returns (hvcC, [frames])."""
    raw = tmp_path('hevc.h265')
    rc, _, err = run(['ffmpeg', '-nostdin', '-hide_banner', '-v', 'error', '-y', '-f', 'lavfi', '-i',
                      f'testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}', '-t', str(seconds), '-c:v', 'libx265',
                      '-x265-params', f'bframes=0:keyint={FPS}:log-level=error', '-pix_fmt', 'yuv420p',
                      '-f', 'hevc', raw], timeout=120)
    if rc != 0:
        skip(f'ffmpeg cannot encode HEVC with libx265: {err[-200:]}')
    with open(raw, 'rb') as f:
        aus = hevc_access_units(f.read())
    first = {(n[0] >> 1) & 0x3f: n for n in aus[0]}
    config = hvcc(first[32], first[33], first[34])
    frames = []
    for au in aus:
        key = any(16 <= (n[0] >> 1) & 0x3f <= 21 for n in au)
        body = b''.join(len(n).to_bytes(4, 'big') + n for n in au)
        frames.append(bytes([0x80 | (1 if key else 2) << 4 | 3]) + b'hvc1' + body)
    meta = on_metadata({'duration': seconds, 'width': WIDTH, 'height': HEIGHT, 'framerate': FPS,
                        'videocodecid': int.from_bytes(b'hvc1', 'big'), 'title': title})

    def tag(t, ts, data):
        return (bytes([t]) + len(data).to_bytes(3, 'big') + (ts & 0xffffff).to_bytes(3, 'big') + bytes([ts >> 24])
                + b'\x00\x00\x00' + data + (11 + len(data)).to_bytes(4, 'big'))
    out = b'FLV\x01\x01' + (9).to_bytes(4, 'big') + b'\x00\x00\x00\x00'
    out += tag(18, 0, meta) + tag(9, 0, bytes([0x80 | 1 << 4 | 0]) + b'hvc1' + config)
    for i, fr in enumerate(frames):
        out += tag(9, i * 1000 // FPS, fr)
    with open(path, 'wb') as f:
        f.write(out)
    return bytes([0x80 | 1 << 4 | 0]) + b'hvc1' + config, frames, meta


def launcher_recording(rec_dir, srv):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not srv.records('recorder closed'):
        time.sleep(0.1)
    check(srv.records('recorder closed'), 'launcher: recorder closed')
    files = [os.path.join(rec_dir, f) for f in sorted(os.listdir(rec_dir))] if os.path.isdir(rec_dir) else []
    check(len(files) == 1, f'one recording: {files}')
    return files[0] if files else None


def test_publish_flv_as_is():
    """An FLV (ffmpeg, H.264/AAC, -metadata title=...) goes as it is: a player (ffprobe) of the stream and
    the launcher's recording see the file's own onMetaData (title, ffmpeg's encoder), H.264/AAC, every
    frame, no decode errors."""
    require('ffmpeg', 'ffprobe', cli_exe(), launcher_exe())
    title = 'grtmp flv as it is'
    path = make_media(tmp_path('titled.flv'), 3, size=f'{WIDTH}x{HEIGHT}', fps=FPS, gop=FPS, sample_rate=RATE,
                      fmt='flv', extra_args=['-metadata', f'title={title}'])
    src = read_flv(path)
    src_meta = [t[2] for t in src if t[0] == 18][0]
    rec_dir = tmp_path('launcher-rec-flv')
    with LauncherServer('-record-all', 'true', '-record-dir', rec_dir) as srv:
        url = srv.url('live', 'flv')
        probe = {}
        reader = threading.Thread(target=lambda: probe.update(ffprobe_info(url, timeout=20)))
        reader.start()
        time.sleep(0.5)
        rc, out, err = cli('publish', path, url, timeout=30)
        reader.join(30)
        check(rc == 0, f'publish FLV rc {rc}: {err[-300:]}')
        media_s, wall_s = published_summary(out)
        check(media_s is not None and media_s >= 2.8 and wall_s >= 2.7, f'FLV: {media_s} s of media in {wall_s} s')
        tags = (probe.get('raw') or {}).get('format', {}).get('tags', {})
        log(f'  player: {tags} {[(s["codec_name"]) for s in probe.get("streams", [])]}')
        check(tags.get('title') == title, f'player onMetaData title {tags.get("title")!r}')
        check(str(tags.get('encoder', '')).startswith('Lavf'), f'player onMetaData encoder {tags.get("encoder")!r}')
        check(probe.get('video') and probe['video']['codec_name'] == 'h264', f'player video {probe.get("video")}')
        check(probe.get('audio') and probe['audio']['codec_name'] == 'aac', f'player audio {probe.get("audio")}')
        rec = launcher_recording(rec_dir, srv)
    if rec:
        info = ffprobe_info(rec, count_frames=True)
        log(f'  recording: {info["duration"]} s, {[(s["codec_name"], s["frames"]) for s in info["streams"]]}')
        check(info['video'] and info['video']['codec_name'] == 'h264', f'recording video {info["video"]}')
        check(info['audio'] and info['audio']['codec_name'] == 'aac', f'recording audio {info["audio"]}')
        check(info['video'] and info['video']['frames'] == 3 * FPS, f'recording video frames {info["video"]}')
        rec_tags = read_flv(rec)
        # The launcher's recorder rewrites duration/filesize; the file's other fields stay.
        rec_meta = b''.join(t[2] for t in rec_tags if t[0] == 18)
        for field in (amf0_string('title') + b'\x02' + amf0_string(title), b'\x07encoder\x02\x00\x0dLavf'):
            check(field in src_meta and field in rec_meta, f'recording onMetaData has {field!r}')
        # Every audio/video tag of the file, in order, byte for byte.
        check([t[2] for t in rec_tags if t[0] in (8, 9)] == [t[2] for t in src if t[0] in (8, 9)],
              'recording media tags = file media tags')
        r = ffmpeg_decode(rec, timeout=30)
        check(not r['errors'] and r['video_frames'] == 3 * FPS, f'recording decode {r["video_frames"]} {r["errors"][:3]}')


def test_publish_flv_enhanced_hevc():
    """An Enhanced RTMP FLV with HEVC (FourCC tags, which flvmux/flvdemux in GStreamer 1.22 do not
    carry) goes as it is: the launcher's recording has the same onMetaData, sequence start and every
    coded frame byte for byte, keyframes flagged, timestamps 40 ms apart."""
    require('ffmpeg', cli_exe(), launcher_exe())
    path = tmp_path('hevc.flv')
    title = 'grtmp enhanced hevc'
    seq, frames, meta = make_enhanced_hevc_flv(path, 2, title)
    check(len(frames) == 2 * FPS, f'{len(frames)} HEVC access units')
    rec_dir = tmp_path('launcher-rec-hevc')
    with LauncherServer('-record-all', 'true', '-record-dir', rec_dir) as srv:
        # In real time (the default): the recorder keeps up with a 2 s file pushed at once too, but
        # the launcher starts recording asynchronously after the publish.
        rc, out, err = cli('publish', path, srv.url('live', 'hevc'), timeout=30)
        check(rc == 0, f'publish HEVC FLV rc {rc}: {err[-300:]}')
        rec = launcher_recording(rec_dir, srv)
    if rec:
        tags = read_flv(rec)
        video = [t for t in tags if t[0] == 9]
        coded = [t for t in video if t[2] != seq]
        log(f'  recording: {len(tags)} tags, {len(video)} video, first {[(t[0], t[1], t[2][:5]) for t in tags[:3]]}')
        rec_meta = b''.join(t[2] for t in tags if t[0] == 18)
        for field in (amf0_string('title') + b'\x02' + amf0_string(title),
                      amf0_string('videocodecid') + b'\x00' + struct.pack('>d', int.from_bytes(b'hvc1', 'big'))):
            check(field in meta and field in rec_meta, f'recording onMetaData has {field!r}')
        check([t[2] for t in video if t[2] == seq], 'recording has the hvc1 sequence start')
        missing = [i for i, fr in enumerate(frames) if fr not in [t[2] for t in coded]]
        check([t[2] for t in coded] == frames,
              f'recording coded frames = file frames ({len(coded)} of {len(frames)}, missing {missing[:12]})')
        ts = [t[1] for t in coded]
        check(all(b - a == 40 for a, b in zip(ts, ts[1:])), f'recording timestamps 40 ms apart: {ts[:5]}')


def test_publish_flv_truncated():
    """A truncated FLV and one with a bad tag: exit 2 before connecting, one line naming the byte."""
    require('ffmpeg', cli_exe())
    with open(media(3, 'flv'), 'rb') as f:
        data = f.read()
    # Cut inside the data of the first tag past the middle of the file.
    pos = int.from_bytes(data[5:9], 'big') + 4
    while pos < len(data) // 2:
        pos += 11 + int.from_bytes(data[pos + 1:pos + 4], 'big') + 4
    cut = tmp_path('cut.flv')
    with open(cut, 'wb') as f:
        f.write(data[:pos + 11 + int.from_bytes(data[pos + 1:pos + 4], 'big') // 2])
    bad = tmp_path('badtag.flv')
    with open(bad, 'wb') as f:
        f.write(data[:13] + b'\x07' + data[14:])
    port = free_port()
    for path, what in ((cut, 'truncated tag'), (bad, 'unknown tag type')):
        rc, out, err = cli('publish', path, f'rtmp://127.0.0.1:{port}/live/x')
        check(rc == 2, f'{what}: rc {rc} (want 2)')
        one_line_error(err, what, path)
        check('at byte' in err, f'{what}: names the byte: {err!r}')


def test_play_record_our_server():
    require('ffmpeg', 'ffprobe', cli_exe())
    with Server() as srv:
        url = srv.url('live', 'rec')
        pub = ffmpeg_publish(url, media(5), realtime=True, loop=True)
        try:
            check(wait_stream(url), 'stream did not start')
            out = tmp_path('rec_ours.flv')
            rc, so, err = cli('play', url, '-o', out, '--duration', '3', timeout=30)
            check(rc == 0, f'play rc {rc}: {err[-300:]}')
            check('recorded' in so, f'summary line {so!r}')
            check_recording(out, 'our server')
        finally:
            stop_process(pub)


def test_play_record_nginx():
    require('ffmpeg', 'ffprobe', 'nginx', cli_exe())
    with Nginx() as ngx:
        url = ngx.url('live', 'rec')
        pub = ffmpeg_publish(url, media(5), realtime=True, loop=True)
        try:
            check(wait_stream(url), 'stream did not start')
            out = tmp_path('rec_nginx.flv')
            rc, so, err = cli('play', url, '-o', out, '-duration', '3', timeout=30)  # one-dash flags
            check(rc == 0, f'play rc {rc}: {err[-300:]}')
            check_recording(out, 'nginx-rtmp')
        finally:
            stop_process(pub)


def test_play_until_the_end():
    """play -o without --duration: a player waiting before the publisher
    records the whole 3 s publish and exits 0 when the stream ends."""
    require('ffprobe', cli_exe())
    for kind in ('ours', 'nginx'):
        if kind == 'nginx' and not have('nginx'):
            continue
        ctx = Server() if kind == 'ours' else Nginx()
        with ctx as srv:
            url = srv.url('live', 'whole')
            out = tmp_path(f'whole_{kind}.flv')
            player = spawn([cli_exe(), 'play', url, '-o', out, '--timeout', '3'], env=cli_env(), name='player')
            time.sleep(1.0)
            rc, _, err = cli('publish', media(3), url, '-q', timeout=30)
            check(rc == 0, f'{kind}: publish rc {rc}: {err[-300:]}')
            try:
                prc = player.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prc = None
            _, perr = stop_process(player)
            check(prc == 0, f'{kind}: play rc {prc} after the publisher left: {perr[-300:]}')
            d = ffprobe_info(out)['duration']
            check(d is not None and 2.5 <= d <= 3.5, f'{kind}: recorded duration {d} (want about 3 s)')


def test_play_window():
    """Without -o: decodebin to a window (on Xvfb when it is installed)."""
    require('Xvfb', 'ffmpeg', cli_exe())
    display = None
    for n in range(90, 110):
        if not os.path.exists(f'/tmp/.X11-unix/X{n}') and not os.path.exists(f'/tmp/.X{n}-lock'):
            display = f':{n}'
            break
    if display is None:
        skip('no free X display number')
    xvfb = spawn(['Xvfb', display, '-screen', '0', '640x480x24', '-nolisten', 'tcp'], name='xvfb')
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(f'/tmp/.X11-unix/X{display[1:]}') and time.monotonic() < deadline:
            time.sleep(0.05)
        with Server() as srv:
            url = srv.url('live', 'window')
            pub = ffmpeg_publish(url, media(5), realtime=True, loop=True)
            try:
                check(wait_stream(url), 'stream did not start')
                env = cli_env()
                env['DISPLAY'] = display
                env.pop('WAYLAND_DISPLAY', None)
                if env.get('GRTMP_ASAN_PRELOAD'):
                    # scripts/sanitize.sh: glimagesink on Xvfb renders with
                    # Mesa's llvmpipe, whose JIT registers unwind tables;
                    # ASan's slow unwinder (fast_unwind_on_malloc=0) then
                    # deadlocks in libgcc (_Unwind_Find_FDE holds its lock
                    # and mallocs). softpipe renders the same without a JIT.
                    env['GALLIUM_DRIVER'] = 'softpipe'
                rc, out, err = run([cli_exe(), 'play', url, '--duration', '2'], timeout=30, env=env)
                log(f'  window: rc {rc} {out.strip()!r}')
                check(rc == 0 and 'played' in out, f'window play rc {rc}: {err[-400:]}')
                m = re.search(r'\((\d+) video', out)
                check(m and int(m.group(1)) >= 40, f'window: video frames {out!r}')
            finally:
                stop_process(pub)
    finally:
        stop_process(xvfb)


def test_play_without_display():
    require(cli_exe())
    env = cli_env()
    env.pop('DISPLAY', None)
    env.pop('WAYLAND_DISPLAY', None)
    rc, out, err = run([cli_exe(), 'play', 'rtmp://127.0.0.1:1/live/x'], timeout=20, env=env)
    check(rc != 0 and 'no display: use -o FILE.flv' in err, f'no display: rc {rc} {err!r}')


def check_probe(j, what):
    v, a = j.get('video') or {}, j.get('audio') or {}
    check(v.get('codec') == 'H264', f'{what}: video codec {v.get("codec")}')
    check((v.get('width'), v.get('height')) == (WIDTH, HEIGHT), f'{what}: size {v.get("width")}x{v.get("height")}')
    check(v.get('fps') is not None and abs(v['fps'] - FPS) < 1, f'{what}: fps {v.get("fps")}')
    check(a.get('codec') == 'AAC', f'{what}: audio codec {a.get("codec")}')
    check(a.get('sample_rate') == RATE, f'{what}: sample rate {a.get("sample_rate")}')
    check(a.get('channels') == 1, f'{what}: channels {a.get("channels")} (the sine is mono)')
    k = j.get('first_keyframe_ms')
    check(isinstance(k, int) and 0 <= k <= 5000, f'{what}: first keyframe ms {k}')
    check(j.get('connect_ms') is not None and j['connect_ms'] <= k, f'{what}: connect_ms {j.get("connect_ms")}')
    b = j.get('bitrate_kbps')
    check(b is not None and 20 < b < 5000, f'{what}: bitrate {b} kbit/s')
    check(j.get('complete') is True, f'{what}: complete {j.get("complete")} ({j.get("note")})')


def test_probe_json():
    require('ffmpeg', cli_exe())
    with Server() as srv:
        url = srv.url('live', 'probe')
        # Our own publisher, looping: the probe sees the generated stream.
        pub = cli_spawn('publish', media(5), url, '--loop', '-q')
        try:
            check(wait_stream(url), 'stream did not start')
            rc, out, err = cli('probe', url, '--json', '--timeout', '5', timeout=30)
            check(rc == 0, f'probe rc {rc}: {err}')
            j = json.loads(out)
            log('  probe: ' + out.strip()[:600])
            check_probe(j, 'our server')
            rc, out, err = cli('probe', url, timeout=30)
            check(rc == 0 and 'H264 320x240' in out and 'AAC' in out and '44100 Hz' in out,
                  f'probe text rc {rc}: {out!r}')
        finally:
            stop_process(pub, sig=2)
    with Nginx() as ngx:
        url = ngx.url('live', 'probe')
        pub = ffmpeg_publish(url, media(5), realtime=True, loop=True)
        try:
            check(wait_stream(url), 'nginx stream did not start')
            rc, out, err = cli('probe', url, '-json', timeout=30)
            check(rc == 0, f'nginx probe rc {rc}: {err}')
            check_probe(json.loads(out or '{}'), 'nginx-rtmp')
        finally:
            stop_process(pub)


def one_line_error(err, want, what):
    lines = [l for l in err.strip().splitlines() if l.startswith('gst-rtmp-client: error:')]
    check(len(lines) == 1, f'{what}: one error line, got {err!r}')
    if want:
        check(lines and want in lines[0], f'{what}: error names {want!r}: {err!r}')


def test_exit_3_refused():
    require(cli_exe())
    port = free_port()
    url = f'rtmp://127.0.0.1:{port}/live/x'
    for args in (['probe', url], ['play', url, '-o', tmp_path('refused.flv')], ['publish', media(5), url]):
        rc, out, err = cli(*args, timeout=30)
        check(rc == 3, f'{args[0]}: closed port rc {rc} (want 3)')
        one_line_error(err, 'refused', args[0])


def test_exit_4_not_found():
    require(cli_exe())
    with Server('--missing', 'notfound') as srv:
        url = srv.url('live', 'missing')
        for args in (['probe', url], ['play', url, '-o', tmp_path('nf.flv')]):
            rc, out, err = cli(*args, timeout=30)
            check(rc == 4, f'{args[0]}: missing stream rc {rc} (want 4)')
            one_line_error(err, 'NetStream.Play.StreamNotFound', args[0])


def test_exit_5_bad_name():
    require('ffmpeg', cli_exe())
    with Server() as srv:
        url = srv.url('live', 'busy')
        pub = ffmpeg_publish(url, media(5), realtime=True, loop=True)
        try:
            check(wait_stream(url), 'stream did not start')
            rc, out, err = cli('publish', media(5), url, timeout=30)
            check(rc == 5, f'publish to a busy key rc {rc} (want 5)')
            one_line_error(err, 'NetStream.Publish.BadName', 'publish busy')
        finally:
            stop_process(pub)


def test_exit_6_unauthorized():
    require(cli_exe())
    rules = tmp_path('tokens.txt')
    with open(rules, 'w') as f:
        f.write('publish live/secure goodtoken\nplay live/secure viewer\n')
    with Server('--tokens', rules) as srv:
        base = srv.url('live', 'secure')
        rc, out, err = cli('publish', media(5), base + '?token=wrong', timeout=30)
        check(rc == 6, f'publish with a wrong token rc {rc} (want 6)')
        one_line_error(err, 'NetStream.Publish.Unauthorized', 'publish token')
        check('wrong' not in err + out, f'the token is not printed: {err!r} {out!r}')
        rc, out, err = cli('probe', base + '?token=wrong', timeout=30)
        check(rc == 6, f'probe with a wrong token rc {rc} (want 6)')
        one_line_error(err, 'NetStream.Play.Unauthorized', 'probe token')
        check('wrong' not in err + out, f'the token is not printed: {err!r} {out!r}')
        # The right token publishes.
        pub = cli_spawn('publish', media(5), base + '?token=goodtoken', '-q')
        try:
            check(wait_stream(base + '?token=viewer'), 'publish with the right token did not start')
        finally:
            stop_process(pub, sig=2)


def test_exit_2_bad_input():
    require(cli_exe())
    port = free_port()
    url = f'rtmp://127.0.0.1:{port}/live/x'
    rc, out, err = cli('publish', tmp_path('does-not-exist.mp4'), url)
    check(rc == 2, f'missing file rc {rc} (want 2)')
    one_line_error(err, 'does-not-exist.mp4', 'missing file')
    junk = tmp_path('junk.mp4')
    with open(junk, 'wb') as f:
        f.write(b'this is not a media file\n' * 100)
    rc, out, err = cli('publish', junk, url)
    check(rc == 2, f'unsupported file rc {rc} (want 2)')
    one_line_error(err, 'junk.mp4', 'junk file')
    rc, out, err = cli('publish', tmp_dir(), url)
    check(rc == 2, f'directory rc {rc} (want 2)')


def test_exit_7_timeout():
    require(cli_exe())
    with SilentListener() as l:
        url = f'rtmp://127.0.0.1:{l.port}/live/x'
        for args in (['probe', url, '--timeout', '2'], ['play', url, '-o', tmp_path('to.flv'), '--timeout', '2'],
                     ['publish', media(5), url, '--timeout', '2']):
            t0 = time.monotonic()
            rc, out, err = cli(*args, timeout=30)
            dt = time.monotonic() - t0
            check(rc == 7, f'{args[0]}: silent server rc {rc} (want 7)')
            check(dt < 8, f'{args[0]}: --timeout 2 took {dt:.1f}s')
            one_line_error(err, 'timed out', args[0])


def launcher_exe() -> str:
    return os.environ.get('GRTMP_LAUNCHER') or os.path.join(build_dir(), 'gst', 'launcher', 'gst-rtmp-server')


class LauncherServer:
    """gst-rtmp-server on a free loopback port (with its extra flags); JSON log to a file."""

    def __init__(self, *args):
        self.port = free_port()
        self.args = [launcher_exe(), '-listen', f'127.0.0.1:{self.port}'] + [str(a) for a in args]
        self.log_path = tmp_path(f'launcher-{self.port}.log')

    def __enter__(self):
        self.out = open(self.log_path, 'wb')
        env = gst_env(system_plugins=True)
        env.setdefault('GST_PLUGIN_PATH_1_0', os.path.join(build_dir(), 'gst'))
        self.proc = subprocess.Popen(self.args, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        if not wait_port(self.port, 30, proc=self.proc):
            self.__exit__()
            raise RuntimeError(f'gst-rtmp-server did not listen: {self.log()[-1000:]}')
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        return False

    def url(self, app, name):
        return f'rtmp://127.0.0.1:{self.port}/{app}/{name}'

    def log(self) -> str:
        with open(self.log_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def records(self, msg) -> list:
        out = []
        for line in self.log().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get('msg') == msg:
                out.append(r)
        return out


class RefusingCallback:
    """An HTTP server that answers every POST (the launcher's -on-connect callback) with 403."""

    def __init__(self):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get('Content-Length') or 0))
                self.send_response(403)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        return False


def published_summary(out):
    """(media seconds, wall seconds) from "published HH:MM:SS.s of media in HH:MM:SS.s"."""
    m = re.search(r'published (\d+):(\d+):([\d.]+) of media in (\d+):(\d+):([\d.]+)', out)
    if not m:
        return None, None
    return (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)),
            int(m.group(4)) * 3600 + int(m.group(5)) * 60 + float(m.group(6)))


def video_packets(path) -> list:
    """[(dts or None, pts, flags)] of the first video stream's packets (ffprobe -show_packets), in file order."""
    rc, out, err = run(['ffprobe', '-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts,dts,flags',
                        '-of', 'json', path], timeout=60)
    try:
        packets = json.loads(out).get('packets', [])
    except ValueError:
        packets = []
    return [(p.get('dts'), p['pts'], p.get('flags')) for p in packets if p.get('pts') is not None]


def test_publish_mkv_realtime_to_launcher():
    """A Matroska file with B-frames (made with ffmpeg now; Matroska stores no DTS) published with an
    explicit --realtime to gst-rtmp-server: paced at the media rate, and the launcher's recording has
    H.264/AAC of the file's duration, every frame, DTS strictly increasing and ≤ PTS, and remuxes and
    decodes without a warning."""
    require('ffmpeg', 'ffprobe', cli_exe(), launcher_exe())
    path = make_media(tmp_path('in_4s_bf.mkv'), 4, size=f'{WIDTH}x{HEIGHT}', fps=FPS, gop=FPS, sample_rate=RATE,
                      fmt='matroska', extra_args=['-bf', '2'])
    check(ffprobe_info(path)['format_name'].startswith('matroska'), f'{path} is Matroska')
    # The input really reorders: PTS go back in decoding (file) order.
    src = video_packets(path)
    check(any(b[1] < a[1] for a, b in zip(src, src[1:])), f'{path} has B-frames (PTS reordered): {src[:8]}')
    rec_dir = tmp_path('launcher-rec')
    with LauncherServer('-record-all', 'true', '-record-dir', rec_dir) as srv:
        t0 = time.monotonic()
        rc, out, err = cli('publish', path, srv.url('live', 'mkv'), '--realtime', timeout=40)
        wall = time.monotonic() - t0
        check(rc == 0, f'publish MKV rc {rc}: {err[-300:]}')
        media_s, wall_s = published_summary(out)
        log(f'  MKV --realtime: {media_s} s of media in {wall_s} s (process {wall:.1f} s)')
        check(media_s is not None and abs(media_s - 4.0) <= 0.3, f'published media {media_s} s of a 4 s file')
        check(3.7 <= wall <= 20, f'--realtime took {wall:.1f} s for 4 s of media')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not srv.records('recorder closed'):
            time.sleep(0.1)
        closed = srv.records('recorder closed')
        check(closed, 'launcher: recorder closed')
    files = [os.path.join(rec_dir, f) for f in sorted(os.listdir(rec_dir))] if os.path.isdir(rec_dir) else []
    check(len(files) == 1, f'one recording: {files}')
    if files:
        info = ffprobe_info(files[0], count_frames=True)
        log(f'  recording: {info["duration"]} s, {[(s["codec_name"], s["frames"]) for s in info["streams"]]}')
        check(info['video'] and info['video']['codec_name'] == 'h264' and info['video']['width'] == WIDTH,
              f'recording video {info["video"]}')
        check(info['audio'] and info['audio']['codec_name'] == 'aac', f'recording audio {info["audio"]}')
        check(info['duration'] is not None and abs(info['duration'] - 4.0) <= 0.5, f'recording duration {info["duration"]}')
        check(info['video'] and info['video']['frames'] == 4 * FPS, f'recording video frames {info["video"]}')
        pkts = video_packets(files[0])
        back = [(a, b) for a, b in zip(pkts, pkts[1:]) if a[0] is None or b[0] is None or b[0] <= a[0]]
        late = [p for p in pkts if p[0] is None or p[0] > p[1]]
        log(f'  recording: {len(pkts)} video packets, first {pkts[:6]}')
        check(len(pkts) == 4 * FPS, f'recording video packets {len(pkts)}')
        check(not back, f'recording DTS not strictly increasing: {back[:3]}')
        check(not late, f'recording DTS after PTS: {late[:3]}')
        check(any(b[1] < a[1] for a, b in zip(pkts, pkts[1:])), 'recording keeps the B-frames (PTS reordered)')
        # Presentation times as in the file (FLV has whole milliseconds: dts + cts may round by 1).
        rec_pts = sorted(p[1] - pkts[0][1] for p in pkts)
        src_pts = sorted(p[1] - src[0][1] for p in src)
        off = [(a, b) for a, b in zip(rec_pts, src_pts) if abs(a - b) > 1]
        check(len(rec_pts) == len(src_pts) and not off, f'recording PTS != file PTS: {off[:3]}')
        for args in (['-c', 'copy', '-f', 'flv', '-y', tmp_path('remux.flv')], ['-f', 'null', '-']):
            rc, _, err = run(['ffmpeg', '-nostdin', '-hide_banner', '-v', 'warning', '-i', files[0]] + args, timeout=60)
            check(rc == 0 and not err.strip(), f'recording {args[-1]}: rc {rc} warnings {err[-300:]!r}')


def test_publish_re_alias():
    """-re is --realtime: 3 s of MP4 take about 3 s (against --no-realtime, which takes well under)."""
    require('ffmpeg', cli_exe())
    with Server() as srv:
        rc, out, err = cli('publish', media(3), srv.url('live', 're'), '-re', timeout=30)
        media_s, wall_s = published_summary(out)
        check(rc == 0, f'-re publish rc {rc}: {err[-300:]}')
        check(media_s is not None and media_s >= 2.8 and wall_s is not None and wall_s >= 2.7,
              f'-re: {media_s} s of media in {wall_s} s')


def test_exit_1_connect_rejected():
    """The server rejects connect (gst-rtmp-server -on-connect answered 403): exit 1, one line
    naming NetConnection.Connect.Rejected, for probe, play and publish."""
    require(cli_exe(), launcher_exe())
    with RefusingCallback() as cb, LauncherServer('-on-connect', f'http://127.0.0.1:{cb.port}/on_connect') as srv:
        url = srv.url('live', 'x')
        for args in (['probe', url], ['play', url, '-o', tmp_path('rejected.flv')], ['publish', media(5), url]):
            rc, out, err = cli(*args, timeout=30)
            check(rc == 1, f'{args[0]}: connect rejected rc {rc} (want 1)')
            one_line_error(err, 'NetConnection.Connect.Rejected', args[0])
        refused = [r for r in srv.records('connection closed') if r.get('reason') == 'connect not authorized']
        check(len(refused) == 3, f'launcher refused 3 connects: {refused}')


if __name__ == '__main__':
    main([
        test_help_and_usage,
        test_publish_mp4_to_our_server,
        test_publish_mp4_to_nginx,
        test_publish_other_containers,
        test_publish_loop,
        test_publish_flv_as_is,
        test_publish_flv_enhanced_hevc,
        test_publish_flv_truncated,
        test_play_record_our_server,
        test_play_record_nginx,
        test_play_until_the_end,
        test_play_window,
        test_play_without_display,
        test_probe_json,
        test_exit_3_refused,
        test_exit_4_not_found,
        test_exit_5_bad_name,
        test_exit_6_unauthorized,
        test_exit_2_bad_input,
        test_exit_7_timeout,
        test_publish_mkv_realtime_to_launcher,
        test_publish_re_alias,
        test_exit_1_connect_rejected,
    ])
