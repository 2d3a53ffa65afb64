#!/usr/bin/env python3
"""Captures what real RTMP clients send and what nginx-rtmp answers, and
stores golden vectors in golden/captures/ (see golden/captures/README.md).

    python3 scripts/capture-golden.py [--out DIR] [--raw DIR] [--proxy-port N]

How: nginx-rtmp runs on a free loopback port (single process, chunk_size
4096, application `live`); a recording TCP proxy listens on --proxy-port
(default 19350, a free port if busy) and forwards to nginx, keeping the
exact client->server and server->client byte streams of every connection.
Each client (ffmpeg and GStreamer rtmp2sink publishers; ffmpeg, rtmp2src
and rtmpdump players, while an ffmpeg publisher feeds nginx directly) talks
through the proxy. The streams are then cut with a small chunk parser:

  <peer>-c0c1.bin    the 1537 bytes C0+C1 the client sent
  <peer>-c2.bin      the 1536 bytes C2 the client sent
  <peer>-s0s1s2.bin  nginx's 3073 bytes S0+S1+S2
  <peer>-c2s.bin     client chunk stream after the handshake, up to and
                     including the publish / play command
  <peer>-s2c.bin     nginx chunk stream after the handshake, up to and
                     including onStatus NetStream.Publish.Start (publish)
                     or, for players, the play answers plus metadata and
                     sequence headers, stopping before the first coded frame

Every cut is at a message boundary counted from the first chunk after the
handshake, so each file decodes from a fresh chunk reader (chunk size 128)
with no partial message left over. The README (message sequences, Set
Chunk Size positions, handshake facts, tool versions) is regenerated too.

This is a tool, not part of the product; its chunk/AMF0 parsing is minimal.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, 'tests', 'interop'))
import rtmptest  # noqa: E402

# ------------------------------------------------------------------ proxy


class RecordingProxy:
    """Forwards 127.0.0.1:port -> 127.0.0.1:upstream, recording each connection's
    byte streams per direction."""

    def __init__(self, upstream: int, port: int | None):
        self.upstream = upstream
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(('127.0.0.1', port or 0))
        except OSError:
            rtmptest.log(f'proxy port {port} busy, using a free one')
            self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.lock = threading.Lock()
        self.conns: list[dict] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            rec = {'c2s': bytearray(), 's2c': bytearray(), 'open': 2, 'done': threading.Event()}
            with self.lock:
                self.conns.append(rec)
            try:
                u = socket.create_connection(('127.0.0.1', self.upstream))
            except OSError:
                c.close()
                rec['done'].set()
                continue
            threading.Thread(target=self._pump, args=(c, u, rec, 'c2s'), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, rec, 's2c'), daemon=True).start()

    def _pump(self, src, dst, rec, key):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                with self.lock:
                    rec[key] += b
                dst.sendall(b)
        except OSError:
            pass
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass
        with self.lock:
            rec['open'] -= 1
            last = rec['open'] == 0
        if last:
            src.close()
            dst.close()
            rec['done'].set()

    def take(self, timeout=10.0) -> list[dict]:
        """Waits for all recorded connections to close and returns them (clearing the list)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            conns = list(self.conns)
        for r in conns:
            r['done'].wait(max(0.0, deadline - time.monotonic()))
        with self.lock:
            out = [{'c2s': bytes(r['c2s']), 's2c': bytes(r['s2c'])} for r in self.conns]
            self.conns.clear()
        return out

    def close(self):
        self.stopped = True
        self.sock.close()


# ------------------------------------------------------------------ AMF0


class AmfError(Exception):
    pass


def amf0_decode(b: bytes, off: int = 0):
    def rd(n):
        nonlocal off
        if off + n > len(b):
            raise AmfError('truncated')
        v = b[off:off + n]
        off += n
        return v

    def props():
        d = {}
        while True:
            (kl,) = struct.unpack('>H', rd(2))
            k = rd(kl).decode('utf-8', 'replace')
            if kl == 0 and b[off:off + 1] == b'\x09':
                rd(1)
                return d
            d[k] = val()

    def val():
        m = rd(1)[0]
        if m == 0x00:
            return struct.unpack('>d', rd(8))[0]
        if m == 0x01:
            return rd(1)[0] != 0
        if m == 0x02:
            (n,) = struct.unpack('>H', rd(2))
            return rd(n).decode('utf-8', 'replace')
        if m == 0x03:
            return props()
        if m in (0x05, 0x06):
            return None
        if m == 0x08:
            rd(4)
            return props()
        if m == 0x0a:
            (n,) = struct.unpack('>I', rd(4))
            return [val() for _ in range(n)]
        if m == 0x0b:
            t = struct.unpack('>d', rd(8))[0]
            rd(2)
            return t
        if m == 0x0c:
            (n,) = struct.unpack('>I', rd(4))
            return rd(n).decode('utf-8', 'replace')
        raise AmfError(f'marker {m:#x}')

    vals = []
    while off < len(b):
        vals.append(val())
    return vals


# ------------------------------------------------------------------ chunk parser


class Msg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def parse_chunks(data: bytes, chunk_size: int = 128):
    """Parses a chunk stream. Returns (messages, consumed_to) where each message
    has type, csid, msid, ts, payload, start/end offsets, the fmt of each of its
    chunks, whether it used an extended timestamp, and the chunk size in force
    when its first chunk started. Stops at the first incomplete chunk."""
    prev = {}      # csid -> header state
    partial = {}   # csid -> dict(buf, start, fmts, ...)
    msgs = []
    off = 0
    n = len(data)
    while off < n:
        start = off
        b0 = data[off]
        fmt = b0 >> 6
        cs = b0 & 0x3f
        p = off + 1
        if cs == 0:
            if p + 1 > n:
                break
            cs = 64 + data[p]
            p += 1
        elif cs == 1:
            if p + 2 > n:
                break
            cs = 64 + data[p] + 256 * data[p + 1]
            p += 2
        hl = (11, 7, 3, 0)[fmt]
        if p + hl > n:
            break
        st = dict(prev.get(cs, {'ts': 0, 'delta': 0, 'len': 0, 'type': 0, 'msid': 0, 'ext': False}))
        if fmt <= 2:
            t = int.from_bytes(data[p:p + 3], 'big')
        if fmt <= 1:
            st['len'] = int.from_bytes(data[p + 3:p + 6], 'big')
            st['type'] = data[p + 6]
        if fmt == 0:
            st['msid'] = int.from_bytes(data[p + 7:p + 11], 'little')
        p += hl
        ext = False
        if fmt <= 2:
            ext = t == 0xFFFFFF
            if ext:
                if p + 4 > n:
                    break
                t = int.from_bytes(data[p:p + 4], 'big')
                p += 4
        elif st['ext']:
            # continuation of an extended-timestamp chunk: the 4 bytes are
            # optional in practice (rtmpdump omits them); take them when they
            # repeat the value.
            if p + 4 <= n and int.from_bytes(data[p:p + 4], 'big') == st.get('ext_val'):
                p += 4
                ext = True
        cur = partial.get(cs)
        if cur is None:
            # a new message starts
            if fmt == 0:
                st['ts'] = t
                st['delta'] = 0
            elif fmt in (1, 2):
                st['delta'] = t
                st['ts'] = (st['ts'] + t) & 0xFFFFFFFF
            else:
                st['ts'] = (st['ts'] + st['delta']) & 0xFFFFFFFF
            if fmt <= 2:
                st['ext'] = ext
                st['ext_val'] = t if ext else None
            cur = {'buf': bytearray(), 'start': start, 'fmts': [], 'ext': ext,
                   'chunk_size': chunk_size}
        take = min(chunk_size, st['len'] - len(cur['buf']))
        if p + take > n:
            break
        cur['buf'] += data[p:p + take]
        cur['fmts'].append(fmt)
        off = p + take
        prev[cs] = st
        if len(cur['buf']) >= st['len']:
            partial.pop(cs, None)
            m = Msg(type=st['type'], csid=cs, msid=st['msid'], ts=st['ts'], payload=bytes(cur['buf']),
                    start=cur['start'], end=off, fmts=cur['fmts'], ext=cur['ext'],
                    chunk_size=cur['chunk_size'])
            msgs.append(m)
            if m.type == 1 and len(m.payload) >= 4:
                chunk_size = int.from_bytes(m.payload[:4], 'big') & 0x7FFFFFFF
            elif m.type == 2 and len(m.payload) >= 4:
                partial.pop(int.from_bytes(m.payload[:4], 'big'), None)
        else:
            partial[cs] = cur
    return msgs, off, partial


# ------------------------------------------------------------------ describing messages

UC_NAMES = {0: 'StreamBegin', 1: 'StreamEOF', 2: 'StreamDry', 3: 'SetBufferLength',
            4: 'StreamIsRecorded', 6: 'PingRequest', 7: 'PingResponse'}
TYPE_NAMES = {1: 'SetChunkSize', 2: 'Abort', 3: 'Ack', 4: 'UserControl', 5: 'WindowAckSize',
              6: 'SetPeerBandwidth', 8: 'Audio', 9: 'Video', 15: 'DataAMF3', 17: 'CommandAMF3',
              18: 'Data', 20: 'Command', 22: 'Aggregate'}


def amf_values(m):
    pl = m.payload[1:] if m.type in (15, 17) and m.payload[:1] == b'\x00' else m.payload
    try:
        return amf0_decode(pl)
    except (AmfError, struct.error, IndexError):
        return None


def short(v, keys=None):
    if isinstance(v, dict):
        items = [(k, x) for k, x in v.items() if keys is None or k in keys]
        return '{' + ', '.join(f'{k}: {short(x)}' for k, x in items) + '}'
    if isinstance(v, float):
        return str(int(v)) if v == int(v) else str(v)
    if isinstance(v, str):
        return repr(v)
    if v is None:
        return 'null'
    return str(v)


def describe(m) -> str:
    head = f'type {m.type} csid {m.csid} msid {m.msid} fmt {"/".join(str(f) for f in sorted(set(m.fmts)))}'
    if m.ext:
        head += ' ext-ts'
    p = m.payload
    if m.type == 1:
        body = f'SetChunkSize({int.from_bytes(p[:4], "big")})'
    elif m.type == 5:
        body = f'WindowAckSize({int.from_bytes(p[:4], "big")})'
    elif m.type == 6:
        lim = {0: 'hard', 1: 'soft', 2: 'dynamic'}.get(p[4] if len(p) > 4 else -1, '?')
        body = f'SetPeerBandwidth({int.from_bytes(p[:4], "big")}, {lim})'
    elif m.type == 3:
        body = f'Ack({int.from_bytes(p[:4], "big")})'
    elif m.type == 4:
        ev = int.from_bytes(p[:2], 'big')
        args = [int.from_bytes(p[i:i + 4], 'big') for i in range(2, len(p) - 3, 4)]
        body = f'UserControl {UC_NAMES.get(ev, ev)}({", ".join(map(str, args))})'
    elif m.type in (17, 20):
        v = amf_values(m)
        if not v:
            body = 'Command(?)'
        else:
            name, txn = v[0], v[1] if len(v) > 1 else None
            rest = v[2:]
            keys = ('app', 'tcUrl', 'tcurl', 'flashVer', 'type', 'fpad', 'objectEncoding', 'fmsVer',
                    'capabilities', 'mode', 'level', 'code', 'description', 'details')
            body = f'{name}({short(txn)}' + ''.join(', ' + short(x, keys) for x in rest) + ')'
    elif m.type in (15, 18):
        v = amf_values(m)
        if v:
            body = f'Data {short(v[0])}' + (f' {short(v[1])}' if len(v) > 1 and isinstance(v[1], str) else '')
        else:
            body = 'Data(?)'
    elif m.type == 9:
        kind = 'AVC sequence header' if len(p) > 1 and p[0] & 0x0f == 7 and p[1] == 0 else 'video frame'
        body = f'Video {kind} ({len(p)} bytes)'
    elif m.type == 8:
        kind = 'AAC sequence header' if len(p) > 1 and p[0] >> 4 == 10 and p[1] == 0 else 'audio frame'
        body = f'Audio {kind} ({len(p)} bytes)'
    else:
        body = f'{TYPE_NAMES.get(m.type, m.type)} ({len(p)} bytes)'
    return f'{head}: {body}'


def command_name(m):
    if m.type not in (17, 20):
        return None
    v = amf_values(m)
    return v[0] if v and isinstance(v[0], str) else None


def status_code(m):
    if m.type not in (17, 20):
        return None
    v = amf_values(m)
    if v and v[0] == 'onStatus':
        for x in v[2:]:
            if isinstance(x, dict) and 'code' in x:
                return x['code']
    return None


def is_config_media(m):
    p = m.payload
    if m.type == 9:
        return len(p) > 1 and p[0] & 0x0f == 7 and p[1] == 0
    if m.type == 8:
        return len(p) > 1 and p[0] >> 4 == 10 and p[1] == 0
    return False


# ------------------------------------------------------------------ handshake facts

FP_KEY = b'Genuine Adobe Flash Player 001'
FMS_KEY = b'Genuine Adobe Flash Media Server 001'


def digest_scheme(pkt: bytes, key: bytes):
    """Which digest offset scheme (0: offset base 8, 1: base 772) validates, or None."""
    for scheme, base in ((0, 8), (1, 772)):
        off = sum(pkt[base:base + 4]) % 728 + base + 4
        msg = pkt[:off] + pkt[off + 32:]
        if hmac.new(key, msg, hashlib.sha256).digest() == pkt[off:off + 32]:
            return scheme
    return None


def hs_facts(c0c1: bytes, s0s1s2: bytes, c2: bytes) -> dict:
    c1 = c0c1[1:]
    s1 = s0s1s2[1:1537]
    s2 = s0s1s2[1537:]
    f = {
        'c0': c0c1[0],
        'c1_time': int.from_bytes(c1[0:4], 'big'),
        'c1_version': c1[4:8].hex(),
        'c1_scheme': digest_scheme(c1, FP_KEY),
        's1_version': s1[4:8].hex(),
        's1_scheme': digest_scheme(s1, FMS_KEY),
        's2_echoes_c1': s2 == c1,
        'c2_echoes_s1': c2 == s1,
    }
    return f


# ------------------------------------------------------------------ sessions


def tool_versions() -> dict:
    def first(cmd, stream='out', pick=None):
        rc, out, err = rtmptest.run(cmd, timeout=20)
        text = out if stream == 'out' else err
        lines = [l.strip() for l in text.splitlines() if l.strip()]
        if pick:
            lines = [l for l in lines if pick in l] or lines
        return lines[0] if lines else '?'

    def dpkg(pkg):
        rc, out, _ = rtmptest.run(['dpkg-query', '-W', '-f', '${Version}', pkg], timeout=10)
        return out.strip() if rc == 0 else '?'
    return {
        'nginx': first(['nginx', '-v'], 'err') + f' (nginx-light {dpkg("nginx-light")}, '
                 f'libnginx-mod-rtmp {dpkg("libnginx-mod-rtmp")})',
        'ffmpeg': first(['ffmpeg', '-hide_banner', '-version']),
        'gstreamer': first(['gst-launch-1.0', '--version'], pick='GStreamer')
                     + f' (gstreamer1.0-plugins-bad {dpkg("gstreamer1.0-plugins-bad")})',
        'rtmpdump': first(['rtmpdump', '-h'], 'err', pick='RTMPDump') + f' (rtmpdump {dpkg("rtmpdump")})',
    }


def wait_process(p, timeout):
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    return rtmptest.stop_process(p)


def capture(proxy, name, cmd, timeout, kill_after=None, env=None):
    """Runs one client command through the proxy; returns its first connection."""
    rtmptest.log(f'[{name}] {" ".join(cmd)}')
    p = rtmptest.spawn(cmd, name=name, env=env)
    rc, err = wait_process(p, kill_after if kill_after is not None else timeout)
    conns = proxy.take(timeout=10)
    if not conns:
        raise RuntimeError(f'{name}: no connection recorded (rc {rc})\n{err[-2000:]}')
    if len(conns) > 1:
        rtmptest.log(f'[{name}] {len(conns)} connections; keeping the first')
    c = conns[0]
    rtmptest.log(f'[{name}] rc {rc}; c2s {len(c["c2s"])} bytes, s2c {len(c["s2c"])} bytes')
    c['rc'] = rc
    c['stderr'] = err
    c['note'] = (f'stopped with SIGTERM after {kill_after:g} s' if kill_after is not None else '')
    return c


def cut(stream: bytes, hs_len: int, stop):
    """Parses the chunk stream after `hs_len` handshake bytes; returns (bytes up to
    and including the message for which stop(msgs, i) says so, messages)."""
    body = stream[hs_len:]
    msgs, _, _ = parse_chunks(body)
    for i, m in enumerate(msgs):
        if stop(msgs, i):
            kept = msgs[:i + 1]
            return body[:m.end], kept
    raise RuntimeError('cut point not found; messages: ' + '; '.join(describe(m) for m in msgs[:40]))


def stop_at_command(names):
    return lambda msgs, i: command_name(msgs[i]) in names


def stop_publish_s2c(msgs, i):
    return status_code(msgs[i]) == 'NetStream.Publish.Start'


def stop_play_s2c(msgs, i):
    """After Play.Start: keep |RtmpSampleAccess, onMetaData and both sequence
    headers. nginx (live, no wait_video) sends the AAC header and audio frames
    first and the AVC header only with the next video keyframe, so the file
    runs up to and including the AVC sequence header (some AAC frames
    included), provided that stays small; otherwise it stops before the first
    coded frame."""
    if not any(status_code(m) == 'NetStream.Play.Start' for m in msgs[:i + 1]):
        return False
    m = msgs[i]
    if m.type == 9 and is_config_media(m) and m.end <= PLAY_CUT_BUDGET:
        return True
    later_avc = any(x.type == 9 and is_config_media(x) and x.end <= PLAY_CUT_BUDGET
                    for x in msgs[i + 1:])
    if later_avc:
        return False
    nxt = msgs[i + 1] if i + 1 < len(msgs) else None
    if nxt is None:
        return True
    return nxt.type in (8, 9) and not is_config_media(nxt)


PLAY_CUT_BUDGET = 16000


def connection_notes(name, stream, hs_len, kept):
    """Facts about the whole recorded direction (not only the kept prefix)."""
    msgs, consumed, partial = parse_chunks(stream[hs_len:])
    by = {}
    for m in msgs:
        key = (m.type, m.csid)
        by.setdefault(key, set()).update(m.fmts)
    parts = [f'{TYPE_NAMES.get(t, t)}@cs{c}: fmt {"/".join(map(str, sorted(f)))}'
             for (t, c), f in sorted(by.items())]
    notes = [f'{len(msgs)} messages in {len(stream) - hs_len} bytes'
             + ('' if consumed == len(stream) - hs_len else f' ({len(stream) - hs_len - consumed} trailing bytes of an incomplete chunk)')
             + '; header types: ' + ', '.join(parts)]
    ext = sum(1 for m in msgs if m.ext)
    notes.append(f'extended timestamps: {ext}')
    scs = [m for m in msgs if m.type == 1]
    if scs:
        notes.append('Set Chunk Size: ' + ', '.join(
            f'{int.from_bytes(m.payload[:4], "big")} at byte {m.start} (msg #{msgs.index(m) + 1}, fmt {m.fmts[0]})'
            for m in scs))
    first3 = [m for m in msgs if m.fmts[0] == 3]
    if first3:
        notes.append('messages starting with a fmt 3 chunk (inherit length/type/delta): ' + ', '.join(
            f'#{msgs.index(m) + 1} {describe(m).split(": ", 1)[1]}' for m in first3[:4]))
    after = [m for m in msgs[len(kept):] if m.type not in (8, 9)]
    if after:
        notes.append('after the cut (non-media): ' + '; '.join(
            describe(m).split(': ', 1)[1][:110] for m in after[:8]))
    back = []
    last_ts = None
    for m in msgs:
        if m.type in (8, 9) and last_ts is not None and m.ts < last_ts:
            back.append((m, last_ts))
        if m.type in (8, 9):
            last_ts = m.ts if last_ts is None else max(last_ts, m.ts)
    if back:
        m, lt = back[0]
        notes.append(f'{len(back)} media messages with a timestamp below one already sent on another '
                     f'chunk stream (first: {describe(m).split(": ", 1)[1]} ts {m.ts} after ts {lt})')
    return notes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=os.path.join(SRC, 'golden', 'captures'))
    ap.add_argument('--raw', default=None, help='also save the full recorded streams here')
    ap.add_argument('--proxy-port', type=int, default=19350)
    args = ap.parse_args()
    for tool in ('nginx', 'ffmpeg', 'gst-launch-1.0', 'rtmpdump'):
        if not rtmptest.have(tool) and not os.path.exists('/usr/sbin/' + tool):
            sys.exit(f'missing {tool}')

    versions = tool_versions()
    media = rtmptest.make_media(rtmptest.tmp_path('feed.flv'), 4)
    results = []  # (name, role, conn, cmdline)

    with rtmptest.Nginx(chunk_size=4096) as ngx:
        proxy = RecordingProxy(ngx.port, args.proxy_port)
        base = f'rtmp://127.0.0.1:{proxy.port}/live'
        try:
            cmd = ['ffmpeg', '-nostdin', '-hide_banner', '-loglevel', 'error', '-re',
                   '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25',
                   '-f', 'lavfi', '-i', 'sine=frequency=440', '-t', '2',
                   '-c:v', 'libx264', '-g', '25', '-c:a', 'aac', '-f', 'flv', f'{base}/test']
            results.append(('ffmpeg-publish', 'publish', capture(proxy, 'ffmpeg-publish', cmd, 60), cmd))

            cmd = ['gst-launch-1.0', '-e', 'videotestsrc', 'num-buffers=50', '!', 'x264enc', '!',
                   'flvmux', 'streamable=true', '!', 'rtmp2sink', f'location={base}/gst']
            results.append(('rtmp2sink-publish', 'publish',
                            capture(proxy, 'rtmp2sink-publish', cmd, 60, env=rtmptest.gst_env()), cmd))

            # players, while an ffmpeg publisher feeds nginx directly (not via the proxy)
            pub = rtmptest.ffmpeg_publish(ngx.url('live', 'test'), media, realtime=True, loop=True)
            try:
                time.sleep(2.0)
                cmd = ['ffmpeg', '-nostdin', '-hide_banner', '-loglevel', 'error',
                       '-i', f'{base}/test', '-t', '1', '-f', 'null', '-']
                results.append(('ffmpeg-play', 'play', capture(proxy, 'ffmpeg-play', cmd, 30), cmd))
                cmd = ['gst-launch-1.0', 'rtmp2src', f'location={base}/test', '!',
                       'fakesink', 'num-buffers=50']
                results.append(('rtmp2src-play', 'play',
                                capture(proxy, 'rtmp2src-play', cmd, 30, env=rtmptest.gst_env()), cmd))
                # rtmpdump's --stop/-B is a play() duration that nginx ignores for
                # live streams: stop it after 2 s instead.
                cmd = ['rtmpdump', '-q', '-r', f'{base}/test', '--live', '-o', '/dev/null']
                results.append(('rtmpdump-play', 'play',
                                capture(proxy, 'rtmpdump-play', cmd, 30, kill_after=2.0), cmd))
            finally:
                rtmptest.stop_process(pub)
        finally:
            proxy.close()
        proxy_port = proxy.port
        ngx_conf = ngx.config()

    out = args.out
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f.endswith('.bin'):
            os.remove(os.path.join(out, f))
    if args.raw:
        os.makedirs(args.raw, exist_ok=True)

    entries = []
    for name, role, conn, cmdline in results:
        c2s, s2c = conn['c2s'], conn['s2c']
        if args.raw:
            for k in ('c2s', 's2c'):
                with open(os.path.join(args.raw, f'{name}-{k}.full.bin'), 'wb') as f:
                    f.write(conn[k])
        if len(c2s) < 3073 or len(s2c) < 3073:
            raise RuntimeError(f'{name}: handshake incomplete (c2s {len(c2s)}, s2c {len(s2c)})')
        c0c1, c2 = c2s[:1537], c2s[1537:3073]
        s0s1s2 = s2c[:3073]
        facts = hs_facts(c0c1, s0s1s2, c2)
        if role == 'publish':
            c2s_cut, c2s_msgs = cut(c2s, 3073, stop_at_command({'publish'}))
            s2c_cut, s2c_msgs = cut(s2c, 3073, stop_publish_s2c)
        else:
            c2s_cut, c2s_msgs = cut(c2s, 3073, stop_at_command({'play', 'play2'}))
            s2c_cut, s2c_msgs = cut(s2c, 3073, stop_play_s2c)
        files = {
            f'{name}-c0c1.bin': c0c1,
            f'{name}-c2.bin': c2,
            f'{name}-s0s1s2.bin': s0s1s2,
            f'{name}-c2s.bin': c2s_cut,
            f'{name}-s2c.bin': s2c_cut,
        }
        for fn, data in files.items():
            if len(data) > 20000:
                raise RuntimeError(f'{fn}: {len(data)} bytes, over the 20 KB budget')
            with open(os.path.join(out, fn), 'wb') as f:
                f.write(data)
        # re-parse the written files: whole messages only
        for fn in (f'{name}-c2s.bin', f'{name}-s2c.bin'):
            msgs, consumed, partial = parse_chunks(files[fn])
            assert consumed == len(files[fn]) and not partial, fn
        notes = {'c2s': connection_notes(name, c2s, 3073, c2s_msgs),
                 's2c': connection_notes(name, s2c, 3073, s2c_msgs)}
        entries.append({'name': name, 'role': role, 'cmd': cmdline, 'facts': facts, 'notes': notes,
                        'c2s': c2s_msgs, 's2c': s2c_msgs, 'sizes': {k: len(v) for k, v in files.items()},
                        'total': (len(c2s), len(s2c)), 'rc': conn['rc'], 'note': conn['note']})

    write_readme(out, entries, versions, ngx_conf, proxy_port)
    rtmptest.log(f'wrote {sum(len(e["sizes"]) for e in entries)} files to {out}')


def scs_positions(msgs):
    out = []
    for m in msgs:
        if m.type == 1:
            out.append(f'SetChunkSize({int.from_bytes(m.payload[:4], "big")}) at bytes '
                       f'{m.start}..{m.end} (applies from byte {m.end})')
    return '; '.join(out) if out else 'none (128 throughout)'


def write_readme(out, entries, versions, ngx_conf, proxy_port):
    L = []
    w = L.append
    w('# Golden captures: real RTMP peers against nginx-rtmp')
    w('')
    w('Generated by `python3 scripts/capture-golden.py` (re-runnable: it rebuilds every')
    w('`*.bin` here and this README; options `--out DIR`, `--raw DIR` to also keep the')
    w('full recorded streams, `--proxy-port N`). Do not edit by hand.')
    w('')
    w('How: nginx-rtmp runs as a plain background process (`nginx -p TMP -c TMP/nginx.conf`,')
    w('daemon off, master_process off, one worker, `chunk_size 4096`, application `live`')
    w('with `live on; record off;`). A Python TCP proxy on 127.0.0.1:%d forwards to nginx and' % proxy_port)
    w('records the exact byte stream of each direction. The URLs the clients used are')
    w('`rtmp://127.0.0.1:%d/live/<name>`, so every tcUrl below carries that port (a re-run' % proxy_port)
    w('on a different proxy port changes it: tests should match the tcUrl loosely).')
    w('Players ran while an ffmpeg publisher (4 s of testsrc 320x240@25 H.264 gop 25 +')
    w('sine AAC 44.1 kHz mono, `-re -stream_loop -1 -c copy`) fed `live/test` directly.')
    w('')
    w('Tool versions:')
    w('')
    for k, v in versions.items():
        w(f'- {k}: {v}')
    w('')
    w('## Files')
    w('')
    w('For each peer `<p>`:')
    w('')
    w('- `<p>-c0c1.bin`: the 1537 bytes C0+C1 the client sent.')
    w('- `<p>-c2.bin`: the 1536 bytes C2 the client sent (echoes nginx\'s S1 for a simple')
    w('  handshake; a digest answer otherwise).')
    w('- `<p>-s0s1s2.bin`: nginx\'s 3073 bytes S0+S1+S2 to that client.')
    w('- `<p>-c2s.bin`: the client\'s chunk stream after the handshake (after C2), up to and')
    w('  including the `publish` / `play` command message; media cut off.')
    w('- `<p>-s2c.bin`: nginx\'s chunk stream after the handshake (after S2), up to and')
    w('  including onStatus `NetStream.Publish.Start` (publishers), or for players the')
    w('  play answers, `|RtmpSampleAccess`, `onMetaData`, the AAC sequence header and the')
    w('  AVC sequence header. nginx (live, default `wait_video off`) sends the AAC header')
    w('  and audio frames at once but the AVC header only with the next video keyframe,')
    w('  so the AAC frames in between are included; the file ends right after the AVC')
    w('  sequence header, before the first coded video frame (which timing-dependent')
    w('  AAC frame count precedes it varies between runs).')
    w('')
    w('Every `c2s`/`s2c` file starts at a chunk boundary with chunk size 128 and no')
    w('header state, and ends at a message boundary (no partial message). A Set Chunk')
    w('Size inside a file applies from the next chunk on (a conforming reader handles')
    w('it itself). Offsets below are byte offsets inside the file. `fmt` lists the chunk')
    w('header types used by the message\'s chunks; `ext-ts` marks an extended timestamp.')
    w('')
    w('One line per capture:')
    w('')
    for e in entries:
        cmd = ' '.join(a if ' ' not in a else repr(a) for a in e['cmd'])
        w(f'- **{e["name"]}** ({e["role"]}): `{cmd}` — recorded {e["total"][0]} bytes c2s / '
          f'{e["total"][1]} bytes s2c in total, client exit {e["rc"]}'
          + (f' ({e["note"]}: rtmpdump\'s --stop/-B is only a play() duration, which nginx '
             f'ignores for live streams)' if e['note'] else '') + '; kept c2s '
          f'{e["sizes"][e["name"] + "-c2s.bin"]} B, s2c {e["sizes"][e["name"] + "-s2c.bin"]} B.')
    w('')
    w('Every file (sizes in bytes; tools as listed above, captured through the proxy):')
    w('')
    what = {
        'c0c1': 'C0+C1 sent by {peer}',
        'c2': 'C2 sent by {peer}',
        's0s1s2': "nginx's S0+S1+S2 answering {peer}",
        'c2s': '{peer} chunk stream after C2, up to and including {last}',
        's2c': "nginx's chunk stream to {peer} after S2, up to and including {last_s}",
    }
    for e in entries:
        peer = e['name'].rsplit('-', 1)[0]
        last = 'publish' if e['role'] == 'publish' else 'play'
        last_s = ('onStatus NetStream.Publish.Start' if e['role'] == 'publish'
                  else 'the AVC sequence header (Play.Start, |RtmpSampleAccess, onMetaData, AAC header, AAC frames before it)')
        for kind in ('c0c1', 'c2', 's0s1s2', 'c2s', 's2c'):
            fn = f'{e["name"]}-{kind}.bin'
            w(f'- `{fn}` ({e["sizes"][fn]}): ' + what[kind].format(peer=peer, last=last, last_s=last_s)
              + f' ({e["role"]} of live/{"gst" if peer == "rtmp2sink" else "test"}).')
    w('')
    w('## Handshake facts')
    w('')
    w('Digest detection: HMAC-SHA256 keyed with "Genuine Adobe Flash Player 001" (C1) /')
    w('"Genuine Adobe Flash Media Server 001" (S1), scheme 0 = digest offset base 8,')
    w('scheme 1 = base 772.')
    w('')
    w('| peer | C0 | C1 version field | C1 digest | nginx S1 version | S1 digest | S2 == C1 | C2 == S1 |')
    w('|---|---|---|---|---|---|---|---|')
    for e in entries:
        f = e['facts']

        def sch(s):
            return 'simple (none)' if s is None else f'scheme {s}'
        w(f'| {e["name"]} | {f["c0"]} | {f["c1_version"]} | {sch(f["c1_scheme"])} | {f["s1_version"]} | '
          f'{sch(f["s1_scheme"])} | {"yes" if f["s2_echoes_c1"] else "no"} | '
          f'{"yes" if f["c2_echoes_s1"] else "no"} |')
    w('')
    w('## Message sequences')
    for e in entries:
        for d in ('c2s', 's2c'):
            msgs = e[d]
            fn = f'{e["name"]}-{d}.bin'
            w('')
            w(f'### {fn} ({e["sizes"][fn]} bytes, {len(msgs)} messages)')
            w('')
            w(f'Chunk size at start 128; {scs_positions(msgs)}.')
            w('')
            for i, m in enumerate(msgs):
                w(f'{i + 1}. [{m.start}..{m.end}) ts {m.ts} {describe(m)}')
            w('')
            w('Whole recorded connection, this direction:')
            w('')
            for n in e['notes'][d]:
                w(f'- {n}')
    w('')
    with open(os.path.join(out, 'README.md'), 'w') as f:
        f.write('\n'.join(L))


if __name__ == '__main__':
    main()
