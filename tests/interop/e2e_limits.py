#!/usr/bin/env python3
"""Documented limits and policies of the server, over real sockets.

- A wrong version byte in C0 (0x06 RTMPE, 0x09) closes the connection at
  once (well before the handshake timeout).
- A connection that never completes the handshake (sends nothing, or never
  sends C2) is closed after --handshake-timeout (1000 ms: between 1 and 3 s).
- --max-connections 3: a 4th connection is closed immediately, the first
  three stay open and working; once one leaves, a new one is accepted.
- A chunk announcing a message longer than --max-message-size closes that
  connection, while a publisher -> player stream running beside it is
  delivered complete and byte-exact.
- Publish conflicts: the default (reject) answers BadName (grtmp-test-client
  exit 5) and leaves the first publisher alone; --conflict takeover lets the
  second publisher in, the first sees its connection end, and a player keeps
  receiving (the new publisher's stream).
- --missing notfound: playing a missing key fails with StreamNotFound (exit 4).
- --stats-on-exit: handshake_failures, rejected and protocol_errors count
  exactly the connections above.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import check, log, main, stop_process  # noqa: E402
from e2e_interop import (GrtmpServer, client_play, client_play_spawn, client_publish,  # noqa: E402
                         compare_play_to_published, gen_media, is_seq_header, media_tags,
                         read_flv, time_of_day, tmp_path, wait_client, wait_publish_started,
                         TAG_SCRIPT)

HS_SIZE = 1536

# ------------------------------------------------------------ raw RTMP


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def c1() -> bytes:
    return struct.pack('>II', int(time.monotonic() * 1000) & 0xffffffff, 0) + os.urandom(HS_SIZE - 8)


def recv_exact(s: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f'closed after {len(buf)} of {n} bytes')
        buf += chunk
    return buf


def handshake(s: socket.socket, send_c2: bool = True) -> bytes:
    """Simple handshake as a client; returns S1."""
    s.sendall(b'\x03' + c1())
    s0s1s2 = recv_exact(s, 1 + 2 * HS_SIZE)
    if s0s1s2[0] != 3:
        raise ConnectionError(f'S0 version {s0s1s2[0]}')
    s1 = s0s1s2[1:1 + HS_SIZE]
    if send_c2:
        s.sendall(s1)  # C2 echoes S1
    return s1


def wait_closed(s: socket.socket, timeout: float, since: float | None = None):
    """Seconds until the peer closes (EOF or reset), counted from `since`
    (time.monotonic(); default: now), reading and discarding whatever
    arrives; None if still open after `timeout` (counted from now)."""
    start = time.monotonic()
    t0 = start if since is None else since
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
        if not data:
            return time.monotonic() - t0


def amf_str(v: str) -> bytes:
    b = v.encode()
    return b'\x02' + struct.pack('>H', len(b)) + b


def amf_num(v: float) -> bytes:
    return b'\x00' + struct.pack('>d', v)


def amf_obj(d: dict) -> bytes:
    out = b'\x03'
    for k, v in d.items():
        kb = k.encode()
        out += struct.pack('>H', len(kb)) + kb + (amf_str(v) if isinstance(v, str) else amf_num(v))
    return out + b'\x00\x00\x09'


def chunked(csid: int, type_id: int, payload: bytes, stream_id: int = 0, chunk_size: int = 128,
            length: int | None = None) -> bytes:
    """One message as fmt-0 + fmt-3 chunks (csid < 64). `length` overrides the
    announced message length."""
    n = len(payload) if length is None else length
    out = bytes([csid]) + b'\x00\x00\x00' + n.to_bytes(3, 'big') + bytes([type_id]) + struct.pack('<I', stream_id)
    for i in range(0, len(payload), chunk_size):
        if i:
            out += bytes([0xC0 | csid])
        out += payload[i:i + chunk_size]
    return out


def rtmp_connect_works(s: socket.socket, port: int, timeout: float = 3.0) -> bool:
    """Sends an AMF0 connect command; True when a `_result` comes back."""
    cmd = amf_str('connect') + amf_num(1) + amf_obj({
        'app': 'live', 'type': 'nonprivate', 'flashVer': 'FMLE/3.0 (compatible; e2e)',
        'tcUrl': f'rtmp://127.0.0.1:{port}/live', 'objectEncoding': 0})
    s.sendall(chunked(3, 20, cmd))
    buf = b''
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s.settimeout(max(0.05, timeout - (time.monotonic() - t0)))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        buf += data
        if b'_result' in buf and b'NetConnection.Connect.Success' in buf:
            return True
    return False


# ------------------------------------------------------------ handshake limits

HS = {}  # the shared server for the handshake tests


def hs_server() -> GrtmpServer:
    if 'srv' not in HS:
        HS['srv'] = GrtmpServer('--handshake-timeout', '1000', name='server-handshake').start()
    return HS['srv']


def test_wrong_version_byte_closed_at_once():
    srv = hs_server()
    for v in (0x06, 0x09):
        s = connect(srv.port)
        try:
            t0 = time.monotonic()
            s.sendall(bytes([v]) + c1())
            dt = wait_closed(s, 5.0)
        finally:
            s.close()
        print(f'  C0=0x{v:02x}: closed after {dt if dt is None else f"{dt * 1000:.0f} ms"}', flush=True)
        # Well under the 1000 ms handshake timeout: refused on C0, not timed out.
        check(dt is not None and dt < 0.5, f'C0=0x{v:02x}: connection closed after {dt} s (want < 0.5 s)')
    check(srv.alive(), 'server died')


def test_stalled_handshake_times_out():
    srv = hs_server()
    t_silent = time.monotonic()
    silent = connect(srv.port)          # sends nothing at all
    t_half = time.monotonic()
    half = connect(srv.port)            # C0+C1, reads S0S1S2, never sends C2
    try:
        handshake(half, send_c2=False)
        res = {}
        th = threading.Thread(target=lambda: res.update(silent=wait_closed(silent, 6.0, since=t_silent)))
        th.start()
        half_dt = wait_closed(half, 6.0, since=t_half)
        th.join()
        silent_dt = res['silent']
    finally:
        silent.close()
        half.close()
    fmt = lambda dt: 'never' if dt is None else f'{dt * 1000:.0f} ms'  # noqa: E731
    print(f'  no handshake bytes: closed after {fmt(silent_dt)}; no C2: closed after {fmt(half_dt)} '
          f'(--handshake-timeout 1000)', flush=True)
    check(silent_dt is not None and 0.9 <= silent_dt <= 3.0, f'silent connection closed after {silent_dt} s (want 1..3)')
    check(half_dt is not None and 0.9 <= half_dt <= 3.0, f'connection without C2 closed after {half_dt} s (want 1..3)')
    check(srv.alive(), 'server died')


def test_handshake_stats():
    srv = hs_server()
    # A complete, well-behaved connection is not a failure.
    s = connect(srv.port)
    try:
        handshake(s)
        check(rtmp_connect_works(s, srv.port), 'a normal connection after the bad ones: no connect _result')
    finally:
        s.close()
    time.sleep(0.2)
    srv.stop()
    st = srv.stats
    print(f'  STATS {st}', flush=True)
    check(st.get('handshake_failures') == 4,
          f'handshake_failures {st.get("handshake_failures")}, want 4 (2 bad versions + 2 stalled)')
    check(st.get('connections_total') == 5, f'connections_total {st.get("connections_total")}, want 5')
    check(st.get('rejected') == 0, f'rejected {st.get("rejected")}, want 0')


# ------------------------------------------------------------ max connections

def test_max_connections():
    with GrtmpServer('--max-connections', '3', name='server-maxconn') as srv:
        socks = [connect(srv.port) for _ in range(3)]
        extra = None
        try:
            for s in socks:
                handshake(s)
            time.sleep(0.2)
            extra = connect(srv.port)
            try:
                extra.sendall(b'\x03' + c1())
            except OSError:
                pass
            dt = wait_closed(extra, 3.0)
            print(f'  4th connection closed after {dt if dt is None else f"{dt * 1000:.0f} ms"}', flush=True)
            check(dt is not None and dt < 0.5, f'4th connection closed after {dt} s (want at once)')
            alive = [wait_closed(s, 0.2) is None and rtmp_connect_works(s, srv.port) for s in socks]
            check(all(alive), f'first three connections open and answering connect: {alive}')
            # A slot frees when one leaves.
            socks[0].close()
            time.sleep(0.3)
            again = connect(srv.port)
            socks.append(again)
            try:
                handshake(again)
                ok = rtmp_connect_works(again, srv.port)
            except (OSError, ConnectionError) as e:
                ok = False
                log(f'  new connection after one left: {e}')
            check(ok, 'a new connection after one of the three left was not served')
        finally:
            for s in socks + ([extra] if extra else []):
                s.close()
        time.sleep(0.2)
    st = srv.stats
    print(f'  STATS {st}', flush=True)
    check(st.get('rejected') == 1, f'rejected {st.get("rejected")}, want 1')
    check(st.get('connections_total') == 4, f'connections_total {st.get("connections_total")}, want 4 (rejected not counted)')
    check(st.get('handshake_failures') == 0, f'handshake_failures {st.get("handshake_failures")}, want 0')


# ------------------------------------------------------------ max message size

MAX_MSG = 1 << 20


def test_oversized_message_closed_innocent_stream_intact():
    media = gen_media('limits-innocent.flv', 5, 25)
    published = read_flv(media)['tags']
    with GrtmpServer('--max-message-size', str(MAX_MSG), '--missing', 'wait', '--keep-players', '0',
                     name='server-maxmsg') as srv:
        url = srv.url('live', 'innocent')
        out = tmp_path('limits-innocent-play.flv')
        # The player waits for the publisher (--missing wait): it gets everything.
        play = client_play_spawn(url, out)
        time.sleep(0.5)
        pub = client_publish(url, media, realtime=True)
        try:
            check(wait_publish_started(srv, 'live/innocent') is not None, 'innocent publish did not start')
            time.sleep(1.0)
            results = []
            # 0xFFFFFF is the largest length a chunk header can announce (24 bits; a
            # "64 MB" message cannot be announced): 16 MiB - 1 > --max-message-size.
            for csid, type_id, length, label in ((4, 9, 0xFFFFFF, 'video 16 MiB-1'),
                                                 (3, 20, MAX_MSG + 1, 'command max+1')):
                s = connect(srv.port)
                try:
                    handshake(s)
                    t0 = time.monotonic()
                    s.sendall(chunked(csid, type_id, os.urandom(128), length=length))
                    dt = wait_closed(s, 5.0)
                finally:
                    s.close()
                results.append((label, dt))
                print(f'  message length {length} ({label}) > {MAX_MSG}: closed after '
                      f'{dt if dt is None else f"{dt * 1000:.0f} ms"}', flush=True)
                check(dt is not None and dt < 1.0, f'{label}: connection closed after {dt} s (want < 1 s)')
            # A message of exactly the limit is accepted (announced, then abandoned).
            s = connect(srv.port)
            try:
                handshake(s)
                s.sendall(chunked(4, 9, os.urandom(128), length=MAX_MSG))
                dt = wait_closed(s, 0.7)
                check(dt is None, f'a message of exactly --max-message-size closed the connection after {dt} s')
            finally:
                s.close()
            pr = wait_client(pub, timeout=20)
            r = wait_client(play, timeout=20)
        finally:
            stop_process(pub)
            stop_process(play)
        check(srv.alive(), 'server died')
    st = srv.stats
    print(f'  STATS {st}', flush=True)
    check(pr['rc'] == 0 and pr['sent'] == len(published), f'innocent publisher rc {pr["rc"]} sent {pr["sent"]}')
    check(r['rc'] == 0, f'innocent player rc {r["rc"]}: {r["output"][-300:]}')
    rec = read_flv(out)
    cmp = compare_play_to_published(published, rec['tags'])
    check(cmp['ok'] and cmp['start_index'] == 0 and cmp['frames'] == cmp['published_frames'],
          f'innocent player: {cmp["frames"]} of {cmp["published_frames"]} frames from {cmp["start_index"]}: '
          + '; '.join(cmp['problems']))
    check(r['tags'] == len(published), f'innocent player TAGS {r["tags"]}, published {len(published)} tags')
    print(f'  innocent stream: published {pr["sent"]} tags, player TAGS {r["tags"]}, '
          f'{cmp["frames"]}/{cmp["published_frames"]} frames byte-equal={cmp["ok"]}', flush=True)
    check(st.get('protocol_errors') == 2, f'protocol_errors {st.get("protocol_errors")}, want 2')
    check(st.get('dropped') == 0, f'dropped {st.get("dropped")}, want 0')


# ------------------------------------------------------------ publish conflicts

def test_conflict_reject_bad_name():
    media = gen_media('limits-conflict.flv', 4, 25)
    n = len(read_flv(media)['tags'])
    with GrtmpServer(name='server-reject') as srv:
        url = srv.url('live', 'busy')
        first = client_publish(url, media, realtime=True, name='pub-first')
        try:
            check(wait_publish_started(srv, 'live/busy') is not None, 'first publish did not start')
            time.sleep(0.5)
            t0 = time.monotonic()
            second = wait_client(client_publish(url, media, realtime=True, name='pub-second'), timeout=15)
            dt = time.monotonic() - t0
            r1 = wait_client(first, timeout=15)
        finally:
            stop_process(first)
    print(f'  second publisher rc {second["rc"]} after {dt:.2f} s; first publisher rc {r1["rc"]} SENT {r1["sent"]}',
          flush=True)
    check(second['rc'] == 5, f'second publisher rc {second["rc"]} (want 5 BadName): {second["output"][-300:]}')
    check(dt < 3, f'refusal took {dt:.1f} s')
    check(r1['rc'] == 0 and r1['sent'] == n, f'first publisher rc {r1["rc"]} sent {r1["sent"]} of {n}')
    check('NetStream.Publish.BadName' in srv.log() or 'BadName' in second['output'],
          'no BadName in the server log or the client output')


def test_conflict_takeover():
    long_media = gen_media('limits-takeover-1.flv', 8, 25)
    new_media = gen_media('limits-takeover-2.flv', 3, 25, size='352x288', freq=660)
    new_tags = read_flv(new_media)['tags']
    old_payloads = {d for _, _, d in media_tags(read_flv(long_media)['tags'])}
    new_payloads = {d for _, _, d in media_tags(new_tags)} - old_payloads
    with GrtmpServer('--conflict', 'takeover', name='server-takeover') as srv:
        url = srv.url('live', 'busy')
        first = client_publish(url, long_media, realtime=True, name='pub-first')
        play = None
        try:
            t_pub = wait_publish_started(srv, 'live/busy')
            check(t_pub is not None, 'first publish did not start')
            out = tmp_path('limits-takeover-play.flv')
            play = client_play_spawn(url, out)
            time.sleep(max(0.0, 1.5 - (time_of_day() - (t_pub or time_of_day()))))
            second = wait_client(client_publish(url, new_media, realtime=True, name='pub-second'), timeout=20)
            r1 = wait_client(first, timeout=10)
            # The player is kept (default) across the takeover; it ends at its
            # receive timeout after the second publisher left.
            r = wait_client(play, timeout=30)
        finally:
            stop_process(first)
            if play is not None:
                stop_process(play)
    print(f'  first publisher rc {r1["rc"]} SENT {r1["sent"]}: '
          f'{[l for l in r1["output"].splitlines() if "error" in l][-1:]}; second rc {second["rc"]} '
          f'SENT {second["sent"]}', flush=True)
    check(second['rc'] == 0 and second['sent'] == len(new_tags),
          f'second publisher rc {second["rc"]} sent {second["sent"]}: {second["output"][-300:]}')
    check(r1['rc'] not in (0, None) and r1['sent'] is None,
          f'first publisher was not cut off (rc {r1["rc"]}, SENT {r1["sent"]})')
    check('took over' in srv.log() or 'evict' in srv.log().lower() or r1['rc'] != 0,
          'no sign of the takeover in the server log')
    rec = read_flv(out)['tags'] if os.path.exists(out) else []
    idx = next((i for i, (t, _, d) in enumerate(rec) if d in new_payloads), None)
    if check(idx is not None, f'the player got no frame of the new publisher (rc {r["rc"]}, {len(rec)} tags)'):
        j = idx
        while j > 0 and (rec[j - 1][0] == TAG_SCRIPT or is_seq_header(rec[j - 1][0], rec[j - 1][2])):
            j -= 1
        cmp = compare_play_to_published(new_tags, rec[j:])
        old_before = sum(1 for _, _, d in rec[:j] if d in old_payloads)
        check(cmp['ok'], 'player after the takeover: ' + '; '.join(cmp['problems']))
        print(f'  player: {old_before} frames of the first publisher, then {cmp["frames"]} of the new one '
              f'(from published frame {cmp["start_index"]}), byte-equal={cmp["ok"]}; play rc {r["rc"]}', flush=True)
    check(r['rc'] in (0, 7), f'player rc {r["rc"]}: {r["output"][-300:]}')


def test_missing_notfound():
    with GrtmpServer('--missing', 'notfound', name='server-notfound') as srv:
        t0 = time.monotonic()
        r = client_play(srv.url('live', 'nothing-here'), tmp_path('notfound.flv'), timeout=15)
        dt = time.monotonic() - t0
    print(f'  play of a missing key: rc {r["rc"]} after {dt:.2f} s', flush=True)
    check(r['rc'] == 4, f'play rc {r["rc"]} (want 4 StreamNotFound): {r["output"][-300:]}')
    check(dt < 3, f'StreamNotFound took {dt:.1f} s')


if __name__ == '__main__':
    main([test_wrong_version_byte_closed_at_once, test_stalled_handshake_times_out, test_handshake_stats,
          test_max_connections, test_oversized_message_closed_innocent_stream_intact,
          test_conflict_reject_bad_name, test_conflict_takeover, test_missing_notfound])
