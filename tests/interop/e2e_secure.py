#!/usr/bin/env python3
"""End-to-end tests of secure ingest with the gst-rtmp-server launcher:
RTMPS (-tls-listen), tokens (-auth-tokens, SIGHUP reload), HTTP callbacks
(-on-publish ... -auth-timeout), IP rules (-allow-/-deny-publish/play) and
access limits (-max-connections-per-ip, -max-streams, -max-players).

Every case checks what the peers get (decoded frames, codecs, recordings),
the refusal on the wire (client exit codes, onStatus codes in FFmpeg's
log) and the launcher's JSON log and metrics. A self-signed certificate is
generated at test time with openssl.

Run one test: python3 tests/interop/e2e_secure.py test_tokens
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import *  # noqa: E402,F401,F403
from rtmptest import TIMEOUT_RC  # noqa: E402
from e2e_launcher import (Bg, Launcher, decode_errors, launcher_env, launcher_path, media,  # noqa: E402
                          recordings, wait_exit)


# ---------------------------------------------------------------- helpers

_cert = None


def cert_files():
    """A self-signed certificate for localhost / 127.0.0.1 (generated once)."""
    global _cert
    if _cert is None:
        crt, key = tmp_path('cert.pem'), tmp_path('key.pem')
        rc, _, err = run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                          '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
                          '-keyout', key, '-out', crt], timeout=60)
        if rc != 0:
            raise RuntimeError(f'openssl req failed: {err}')
        _cert = (crt, key)
    return _cert


def client_path() -> str:
    return os.environ.get('GRTMP_TEST_CLIENT') or os.path.join(build_dir(), 'tests', 'grtmp-test-client')


def client(*args, timeout=30):
    """$GRTMP_TEST_CLIENT: (rc, stdout, stderr)."""
    return run([client_path()] + [str(a) for a in args], timeout=timeout)


class SecureLauncher(Launcher):
    """Launcher with -tls-listen 127.0.0.1:0 (its port read back from the
    'server started' log line) unless tls=False."""

    def __init__(self, *extra, tls: bool = True, record: bool = False, metrics: bool = True, name: str = 'sec'):
        args = list(extra)
        if tls:
            crt, key = cert_files()
            args = ['-tls-listen', '127.0.0.1:0', '-tls-cert', crt, '-tls-key', key] + args
        super().__init__(*args, record=record, metrics=metrics, name=name)
        self.tls = tls
        self.tls_port = None

    def start(self):
        super().start()
        started = self.wait_log('server started', 10)
        if not started:
            raise RuntimeError(f'no "server started" line:\n{self.stdout()}')
        if self.tls:
            addr = started[0].get('tls_addr', '')
            if not addr.startswith('127.0.0.1:'):
                raise RuntimeError(f'server started without tls_addr: {started[0]}')
            self.tls_port = int(addr.rsplit(':', 1)[1])
        return self

    def __exit__(self, *exc):
        # The launcher must still run when the test is done with it; if not, say how it ended.
        early = self.proc is not None and self.proc.poll() is not None
        super().__exit__(*exc)
        if early:
            check(False, f'launcher exited during the test (rc {self.rc})')
            log('--- launcher stdout (tail) ---\n' + '\n'.join(self.stdout().splitlines()[-40:]))
            log('--- launcher stderr (tail) ---\n' + self.stderr())
        elif self.rc != 0:
            check(False, f'launcher exit code after SIGTERM: {self.rc}')
        return False

    def surl(self, app='live', name='test') -> str:
        return f'rtmps://127.0.0.1:{self.tls_port}/{app}/{name}'


def ffmpeg_publish_logged(url: str, src: str, realtime=True, extra=None):
    """ffmpeg publish with -loglevel debug (its log then shows the onStatus codes)."""
    return ffmpeg_publish(url, src, realtime=realtime, extra_args=extra, loglevel='debug')


def frames_of(path: str) -> dict:
    """Decoded frames of a file: {'video', 'audio', 'errors', 'vcodec', 'acodec'}."""
    info = ffprobe_info(path)
    d = ffmpeg_decode(path, timeout=60)
    return {'video': d['video_frames'], 'audio': d['audio_frames'], 'errors': d['errors'],
            'vcodec': info['video'] and info['video']['codec_name'],
            'acodec': info['audio'] and info['audio']['codec_name']}


def play_with_client(url: str, seconds: float = 2.5, insecure: bool = False, name: str = 'play'):
    """Our client plays `url` for `seconds`; returns (rc, stderr, frames_of(out))."""
    out = tmp_path(f'{name}-{time.monotonic_ns()}.flv')
    args = ['play', url, out, '--seconds', seconds] + (['--insecure'] if insecure else [])
    rc, so, se = client(*args, timeout=seconds + 20)
    fr = frames_of(out) if rc == 0 and os.path.exists(out) else {'video': 0, 'audio': 0, 'errors': [],
                                                                    'vcodec': None, 'acodec': None}
    return rc, so + se, fr


def check_player_content(what: str, fr: dict, min_video: int = 20):
    check(fr['video'] >= min_video, f'{what}: video frames {fr["video"]}')
    check(fr['vcodec'] == 'h264', f'{what}: video codec {fr["vcodec"]}')
    check(fr['acodec'] == 'aac' and fr['audio'] > 0, f'{what}: audio {fr["acodec"]} / {fr["audio"]} frames')
    check(not fr['errors'], f'{what}: decode errors {fr["errors"][:3]}')


def metric(l: Launcher, name: str) -> float:
    return l.metrics().get(name, -1)


# RTMP C0 + C1 (version 3, time 0, zero, 1528 bytes of "random").
C0C1 = b'\x03' + b'\x00' * 8 + bytes(i % 251 for i in range(1528))


def rtmp_answer(sock, timeout: float = 3.0) -> bytes:
    """Sends C0+C1 and reads what comes back until S0+S1 (1537 bytes), EOF or timeout."""
    sock.settimeout(timeout)
    got = b''
    try:
        sock.sendall(C0C1)
        deadline = time.monotonic() + timeout
        while len(got) < 1537 and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    except (OSError, ssl.SSLError) as e:
        log(f'  rtmp_answer: {type(e).__name__}: {e}')
    return got


# ---------------------------------------------------------------- RTMPS

def test_rtmps():
    """RTMPS on the launcher: ffmpeg publishes and plays, rtmp2src decodes, rtmp2sink publishes,
    our client publishes and plays (--insecure); the recording of an rtmps publish is valid."""
    require('ffmpeg', 'ffprobe', 'gst-launch-1.0', 'openssl')
    src = media('av', 6.0)
    with SecureLauncher(record=True, name='rtmps') as l:
        # ffmpeg publishes over rtmps; ffmpeg, rtmp2src and our client play over rtmps at once.
        surl = l.surl('live', 's')
        pub = ffmpeg_publish(surl, src, extra_args=['-tls_verify', '0'])
        check(l.wait_log('publish started', 10, stream_key='live/s'), 'log: publish started (rtmps)')
        time.sleep(0.8)
        players = [
            Bg(ffmpeg_decode, surl, timeout=25, duration=2.5, extra_input_args=['-tls_verify', '0']),
            Bg(gst_launch, f'-v rtmp2src location={surl} tls-validation-flags=0 ! flvdemux name=d d.video ! '
                           f'h264parse ! avdec_h264 ! fakesink num-buffers=40', timeout=25),
            Bg(play_with_client, surl, 2.5, True, 'rtmps-client-play'),
        ]
        dec, (grc, gout, gerr), (crc, cerr, cfr) = [p.get(40) for p in players]
        log(f'rtmps players: ffmpeg {dec["video_frames"]} video / {dec["audio_frames"]} audio, errors '
            f'{dec["errors"][:3]}; rtmp2src rc {grc}; client rc {crc} {cfr}')
        check(dec['video_frames'] > 30 and dec['audio_frames'] > 50,
              f'ffmpeg rtmps player frames {dec["video_frames"]}/{dec["audio_frames"]}')
        check(not dec['errors'], f'ffmpeg rtmps player decode errors {dec["errors"][:5]}')
        check(grc == 0, f'rtmp2src (rtmps) ! avdec_h264 rc {grc}: {gerr[-400:]}')
        check('width=(int)320' in gout and 'height=(int)240' in gout and 'video/x-raw' in gout,
              f'rtmp2src decoded 320x240 raw video: {gout[-300:]}')
        check(crc == 0, f'our client play (rtmps) rc {crc}: {cerr[-300:]}')
        check_player_content('our client rtmps player', cfr, 30)
        check(wait_exit(pub, 25) == 0, f'ffmpeg rtmps publisher: {pub.read_stderr()[-300:]}')
        check(l.wait_log('recorder closed', 10, stream_key='live/s'), 'log: recorder closed')

        # The recording of the rtmps publish.
        files = recordings(l, 'live', 's')
        check(len(files) == 1, f'recording of live/s: {files}')
        if files:
            info = ffprobe_info(files[0], count_frames=True)
            log(f'rtmps recording: duration {info["duration"]}, video {info["video"]}')
            check(info['video'] and info['video']['codec_name'] == 'h264' and info['video']['width'] == 320,
                  f'recording video {info["video"]}')
            check(info['audio'] and info['audio']['codec_name'] == 'aac', f'recording audio {info["audio"]}')
            check(info['video'] and info['video']['frames'] in range(145, 151), f'recording frames {info["video"]}')
            errs = decode_errors(files[0])
            check(not errs, f'recording decode errors {errs[:5]}')

        # GStreamer rtmp2sink publishes over rtmps; ffmpeg reads it back (plain RTMP).
        gurl = l.surl('live', 'g')
        gpub = Bg(gst_launch, f'videotestsrc is-live=true num-buffers=150 ! video/x-raw,width=320,height=240,'
                              f'framerate=25/1 ! x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! '
                              f'h264parse ! flvmux streamable=true ! '
                              f'rtmp2sink location={gurl} tls-validation-flags=0', timeout=40)
        check(l.wait_log('publish started', 10, stream_key='live/g'), 'log: rtmp2sink publish started (rtmps)')
        time.sleep(0.5)
        back = ffmpeg_decode(l.url('live', 'g'), timeout=20, duration=2.0)
        log(f'rtmp2sink read back: {back["video_frames"]} frames, errors {back["errors"][:3]}')
        check(back['video_frames'] > 20, f'rtmp2sink (rtmps) read back: video frames {back["video_frames"]}')
        check(not back['errors'], f'rtmp2sink read back errors {back["errors"][:3]}')
        vs = [s for s in back['streams'].values() if s['type'] == 'video']
        check(vs, 'rtmp2sink read back has a video stream')
        grc2, _, gerr2 = gpub.get(60)
        check(grc2 == 0, f'rtmp2sink rc {grc2}: {gerr2[-300:]}')
        probe_g = recordings(l, 'live', 'g')
        if check(probe_g, 'recording of live/g'):
            pg = ffprobe_info(probe_g[0])
            check(pg['video'] and pg['video']['codec_name'] == 'h264', f'live/g recording {pg["video"]}')

        # Our client publishes over rtmps; ffmpeg plays it over rtmps.
        curl = l.surl('live', 'c')
        cpub = spawn([client_path(), 'publish', media('av', 4.0), curl, '--realtime', '--insecure'],
                     name='client-publish')
        check(l.wait_log('publish started', 10, stream_key='live/c'), 'log: our client publish started (rtmps)')
        time.sleep(0.5)
        cdec = ffmpeg_decode(curl, timeout=20, duration=2.0, extra_input_args=['-tls_verify', '0'])
        check(cdec['video_frames'] > 20 and cdec['audio_frames'] > 30,
              f'our client rtmps publish read back {cdec["video_frames"]}/{cdec["audio_frames"]}')
        check(wait_exit(cpub, 20) == 0, f'our client rtmps publish rc {cpub.returncode}: {cpub.read_stderr()[-300:]}')

        # TLS only on the TLS port: the connections were TLS.
        acc = [r for r in l.records() if r.get('msg') == 'connection accepted']
        check(any(r.get('tls') is True for r in acc), f'connection accepted tls=true: {acc[:2]}')
        st = l.stats()['server']
        check(st.get('tls_failures') == 0 and 'auth_denials' in st, f'/stats tls_failures/auth_denials {st}')


def test_bad_cert_is_fatal():
    """A missing or unreadable certificate: exit 1 with a JSON error line, nothing listens (no plain fallback)."""
    require('openssl')
    crt, key = cert_files()
    garbage = tmp_path('garbage.pem')
    with open(garbage, 'w') as f:
        f.write('-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n')
    other_key = tmp_path('other-key.pem')
    rc, _, err = run(['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048',
                      '-out', other_key], timeout=60)
    check(rc == 0, f'openssl genpkey: {err}')
    exe = launcher_path()
    for label, c, k in (('missing cert', tmp_path('nope.pem'), key), ('garbage cert', garbage, key),
                        ('missing key', crt, tmp_path('nokey.pem')), ('cert as key', crt, crt),
                        ('key of another certificate', crt, other_key)):
        port, tport = free_port(), free_port()
        p = subprocess.Popen([exe, '-listen', f'127.0.0.1:{port}', '-tls-listen', f'127.0.0.1:{tport}',
                              '-tls-cert', c, '-tls-key', k], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=launcher_env(), start_new_session=True)
        listened = False
        deadline = time.monotonic() + 10
        while p.poll() is None and time.monotonic() < deadline:
            for pt in (port, tport):
                try:
                    with socket.create_connection(('127.0.0.1', pt), timeout=0.2):
                        listened = True
                except OSError:
                    pass
            time.sleep(0.02)
        if p.poll() is None:
            p.kill()
        out, err = p.communicate()
        out = out.decode('utf-8', 'replace')
        recs = []
        for line in out.splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                check(False, f'{label}: stdout line not JSON: {line[:200]!r}')
        errs = [r for r in recs if r.get('level') == 'ERROR' and r.get('msg') == 'server failed to start']
        log(f'{label}: rc {p.returncode}, {errs[:1]}')
        check(p.returncode == 1, f'{label}: exit code {p.returncode}')
        check(errs and 'certificate' in errs[0].get('error', ''), f'{label}: JSON error line {recs[-2:]}')
        check(errs and errs[0].get('tls_addr') == f'127.0.0.1:{tport}', f'{label}: tls_addr field {errs[:1]}')
        check(not listened, f'{label}: something listened on {port} or {tport}')
        check(not any(r.get('msg') in ('RTMP server listening', 'server started') for r in recs),
              f'{label}: no listening line: {[r.get("msg") for r in recs]}')
    # Flag combinations that cannot work are command-line errors.
    for bad in (['-tls-listen', '127.0.0.1:0'], ['-tls-cert', crt, '-tls-key', key],
                ['-tls-listen', '127.0.0.1:0', '-tls-cert', crt]):
        rc, _, err = run([exe] + bad, timeout=10, env=launcher_env())
        check(rc == 2 and 'tls' in err.split('\n')[0], f'{bad}: rc {rc} {err[:120]!r}')


def test_tls_port_refuses_plain_and_old_tls():
    """Plain RTMP to the TLS port gets no RTMP answer; TLS 1.1 is refused, TLS 1.2 answers RTMP."""
    require('openssl')
    with SecureLauncher(name='tlsver') as l:
        # Plain RTMP handshake bytes to the TLS port: closed, never an S0.
        with socket.create_connection(('127.0.0.1', l.tls_port), timeout=5) as s:
            t = time.monotonic()
            got = rtmp_answer(s, 5.0)
            took = time.monotonic() - t
        log(f'plain C0C1 to the TLS port: {len(got)} bytes back {got[:8]!r} in {took:.2f} s')
        check(not got.startswith(b'\x03'), f'plain to TLS port: RTMP S0 came back: {got[:8]!r}')
        check(took < 4.5, f'plain to TLS port: connection not closed ({took:.1f} s)')
        rc, out = client('publish', media('av', 2.0), f'rtmp://127.0.0.1:{l.tls_port}/live/plain', timeout=20)[:2]
        check(rc != 0, f'our client plain rtmp:// to the TLS port: rc {rc}')
        check(not l.find('publish started', stream_key='live/plain'), 'plain publish on TLS port never started')

        # TLS 1.2: handshake completes and RTMP answers.
        rc, out, err = run(['openssl', 's_client', '-tls1_2', '-connect', f'127.0.0.1:{l.tls_port}'],
                           input=b'', timeout=15)
        check(rc == 0 and 'TLSv1.2' in out, f's_client -tls1_2 rc {rc}: {(out + err)[-300:]}')
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(('127.0.0.1', l.tls_port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                got = rtmp_answer(s, 5.0)
                version = s.version()
        check(version == 'TLSv1.2' and got[:1] == b'\x03' and len(got) >= 1537,
              f'TLS 1.2 + C0C1: {version}, {len(got)} bytes {got[:4]!r}')

        # TLS 1.1: s_client fails. At its default security level it cannot offer TLS 1.1 at all;
        # forced (SECLEVEL=0) the handshake may complete, but the server closes at once.
        rc11, out11, err11 = run(['openssl', 's_client', '-tls1_1', '-connect', f'127.0.0.1:{l.tls_port}'],
                                 input=b'', timeout=15)
        log(f's_client -tls1_1 rc {rc11}: {err11.strip().splitlines()[-1:] if err11.strip() else ""}')
        check(rc11 != 0 or 'Protocol  : TLSv1.1' not in out11, f's_client -tls1_1 succeeded: {out11[-300:]}')
        before = metric(l, 'grtmp_tls_failures_total')
        ctx11 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx11.check_hostname = False
        ctx11.verify_mode = ssl.CERT_NONE
        ctx11.set_ciphers('DEFAULT:@SECLEVEL=0')
        with warnings.catch_warnings():  # TLSv1_1 is deprecated: that is the point
            warnings.simplefilter('ignore', DeprecationWarning)
            ctx11.minimum_version = ctx11.maximum_version = ssl.TLSVersion.TLSv1_1
        got, version, hs_err = b'', None, None
        try:
            with socket.create_connection(('127.0.0.1', l.tls_port), timeout=5) as raw:
                with ctx11.wrap_socket(raw) as s:
                    version = s.version()
                    got = rtmp_answer(s, 5.0)
        except (OSError, ssl.SSLError) as e:
            hs_err = e
        log(f'forced TLS 1.1: version {version}, handshake error {hs_err}, {len(got)} bytes back')
        check(not got.startswith(b'\x03'), f'TLS 1.1 got an RTMP answer ({version})')
        if version == 'TLSv1.1':
            check(l.wait_log('connection closed', 5, reason='TLS version below 1.2 refused'),
                  'log: TLS version below 1.2 refused')
        time.sleep(0.3)
        after = metric(l, 'grtmp_tls_failures_total')
        check(after > before, f'grtmp_tls_failures_total {before} -> {after}')


# ---------------------------------------------------------------- tokens

def test_tokens():
    """Token file: the right token publishes (frames read back), a token off by its last byte is refused
    (our client exit 6, FFmpeg logs Unauthorized); SIGHUP reloads the file; a bad file keeps the old rules."""
    require('ffmpeg', 'ffprobe')
    tokfile = tmp_path('tokens.txt')
    good = 'pub-Secret-0123456789'
    bad = good[:-1] + chr(ord(good[-1]) + 1)
    with open(tokfile, 'w') as f:
        f.write(f'# publishers\npublish live/cam {good}\n\nplay live/* watch-me   # viewers\n')
    with SecureLauncher('-auth-tokens', tokfile, name='tokens') as l:
        acl = l.find('access control')
        check(acl and acl[0].get('token_rules') == 2, f'access control line {acl[:1]}')
        # Right token: published, a player with the play token gets the media.
        pub = ffmpeg_publish(l.url('live', f'cam?token={good}'), media('av', 5.0))
        check(l.wait_log('publish started', 10, stream_key='live/cam'), 'right token: publish started')
        time.sleep(0.5)
        rc, err, fr = play_with_client(l.url('live', 'cam?token=watch-me'), 2.5, name='tok-play')
        check(rc == 0, f'player with the play token rc {rc}: {err[-200:]}')
        check_player_content('player with the play token', fr)
        rc, err, _ = play_with_client(l.url('live', 'cam'), 1.0, name='tok-noplay')
        check(rc == 6, f'player without token: rc {rc} {err[-200:]}')
        rc, err, _ = play_with_client(l.surl('live', 'cam?token=watch-mf'), 1.0, insecure=True, name='tok-badplay')
        check(rc == 6, f'rtmps player with a wrong token: rc {rc} {err[-200:]}')
        check(wait_exit(pub, 20) == 0, f'publisher with the right token: {pub.read_stderr()[-300:]}')

        # Last byte off: refused, our client and FFmpeg.
        rc, out, err = client('publish', media('av', 2.0), l.url('live', f'cam?token={bad}'))
        check(rc == 6, f'our client with a token off by one byte: rc {rc} {err[-200:]}')
        check('NetStream.Publish.Unauthorized (invalid token)' in err, f'our client: onStatus code: {err[-200:]}')
        rc, out, err = client('publish', media('av', 2.0), l.url('live', 'cam'))
        check(rc == 6, f'our client without token: rc {rc}')
        fp = ffmpeg_publish_logged(l.url('live', f'cam?token={bad}'), media('av', 2.0))
        frc = wait_exit(fp, 20)
        ferr = fp.read_stderr()
        check(frc not in (0, None), f'ffmpeg with a wrong token: rc {frc}')
        # FFmpeg prints an error onStatus' description, not its code (which our client showed above).
        check('Server error: invalid token' in ferr, f'ffmpeg log has the refusal: {ferr[-500:]}')
        # The status code on the wire, as third-party clients report it.
        if have('gst-launch-1.0'):
            grc, gout, gerr = gst_launch(f'videotestsrc num-buffers=25 ! x264enc ! h264parse ! flvmux ! '
                                         f'rtmp2sink location={l.url("live", "cam?token=" + bad)}', timeout=30)
            check(grc not in (0, TIMEOUT_RC) and 'NetStream.Publish.Unauthorized' in gout + gerr,
                  f'rtmp2sink with a wrong token: rc {grc} {(gout + gerr)[-300:]}')
        if have('rtmpdump'):
            _, dout, derr = rtmpdump(l.url('live', 'cam?token=watch-mf'), duration=5, timeout=5, extra_args=['-V'])
            check('NetStream.Play.Unauthorized' in dout + derr, f'rtmpdump wrong play token: {(dout + derr)[-300:]}')
        refused = l.find('publish refused', stream_key='live/cam')
        check(refused and refused[0].get('reason') == 'invalid token', f'log: publish refused {refused[:1]}')
        check(not l.find('publish started', stream_key='live/cam')[1:], 'no second publish started')
        # A key without rules is open.
        rc, _, err = client('publish', media('av', 1.0), l.url('live', 'open'))
        check(rc == 0, f'key without rules: rc {rc} {err[-200:]}')

        # SIGHUP after editing the file: the new token works, the old one is refused.
        new = 'rotated-' + good
        with open(tokfile, 'w') as f:
            f.write(f'publish live/cam {new}\nplay live/* watch-me\nplay live/* second-viewer\n')
        l.signal(signal.SIGHUP)
        rel = l.wait_log('tokens reloaded', 10)
        check(rel and rel[0].get('rules') == 3, f'log: tokens reloaded rules=3: {rel[:1]}')
        rc, _, err = client('publish', media('av', 2.0), l.url('live', f'cam?token={good}'))
        check(rc == 6, f'old token after reload: rc {rc}')
        pub = ffmpeg_publish(l.url('live', f'cam?token={new}'), media('av', 4.0))
        check(l.wait_log('publish started', 10, count=2, stream_key='live/cam'), 'new token: publish started')
        time.sleep(0.5)
        rc, err, fr = play_with_client(l.url('live', 'cam?token=second-viewer'), 2.0, name='tok-play2')
        check(rc == 0, f'new play token rc {rc} {err[-200:]}')
        check_player_content('player after reload', fr)
        check(wait_exit(pub, 20) == 0, f'publisher with the new token: {pub.read_stderr()[-300:]}')

        # A file that does not load keeps the rules in force.
        with open(tokfile, 'w') as f:
            f.write('publish live/cam\n')
        l.signal(signal.SIGHUP)
        failed = l.wait_log('tokens reload failed', 10)
        check(failed and failed[0].get('rules') == 3 and 'expected' in failed[0].get('error', ''),
              f'log: tokens reload failed: {failed[:1]}')
        rc, _, _ = client('publish', media('av', 1.0), l.url('live', f'cam?token={new}'))
        check(rc == 0, f'token still valid after a failed reload: rc {rc}')
        rc, _, _ = client('publish', media('av', 1.0), l.url('live', 'cam?token=x'))
        check(rc == 6, f'wrong token after a failed reload: rc {rc}')

        st = l.stats()['server']
        m = l.metrics()
        log(f'after refusals: /stats auth_denials {st.get("auth_denials")}, '
            f'grtmp_auth_denials_total {m.get("grtmp_auth_denials_total")}')
        check(m.get('grtmp_auth_denials_total', 0) >= 6, f'grtmp_auth_denials_total {m.get("grtmp_auth_denials_total")}')
        check(st.get('auth_denials') == m.get('grtmp_auth_denials_total'), f'/stats auth_denials {st}')
        status, _, body = l.http('/metrics')
        check('# TYPE grtmp_auth_denials_total counter' in body and '# TYPE grtmp_tls_failures_total counter' in body,
              '/metrics HELP/TYPE for the new counters')
    # Token file missing at start: fatal.
    rc, out, _ = run([launcher_path(), '-listen', f'127.0.0.1:{free_port()}', '-auth-tokens', tmp_path('none.txt')],
                     timeout=15, env=launcher_env())
    check(rc == 1 and '"cannot load token file"' in out, f'missing token file: rc {rc} {out[-300:]}')


# ---------------------------------------------------------------- HTTP callbacks

class Callbacks:
    """An HTTP callback endpoint (nginx-rtmp on_publish style) on a free port.
    Decides by the stream name: 'deny*' -> 403, 'orig*' -> 302 to live/renamed,
    'slow*' -> 200 after 3 s, anything else -> 200. Every POST is recorded."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get('Content-Length', '0'))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode(), keep_blank_values=True))
                with outer.lock:
                    outer.calls.append({'path': self.path, 'form': form,
                                        'ctype': self.headers.get('Content-Type', '')})
                name = form.get('name', '')
                if name.startswith('slow'):
                    time.sleep(3)
                if name.startswith('deny'):
                    self.send_response(403)
                elif name.startswith('orig'):
                    self.send_response(302)
                    self.send_header('Location', 'rtmp://x/live/renamed')
                else:
                    self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f'http://127.0.0.1:{self.port}{path}'

    def find(self, **form):
        with self.lock:
            return [c for c in self.calls if all(c['form'].get(k) == v for k, v in form.items())]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_http_callbacks():
    """on_publish: 2xx allows, 403 refuses, 302 renames, a late answer (-auth-timeout 1s) refuses, a
    callback server that is down refuses; on_done is called when the publisher leaves."""
    require('ffmpeg', 'ffprobe')
    cb = Callbacks()
    try:
        with SecureLauncher('-on-publish', cb.url('/publish'), '-on-play', cb.url('/play'),
                            '-on-done', cb.url('/done'), '-auth-timeout', '1s', record=True, name='http') as l:
            # 2xx: allowed; the player (on_play 2xx) gets frames.
            pub = ffmpeg_publish(l.url('live', 'okcam?user=alice'), media('av', 4.0))
            check(l.wait_log('publish started', 10, stream_key='live/okcam'), '2xx: publish started')
            time.sleep(0.5)
            rc, err, fr = play_with_client(l.url('live', 'okcam'), 2.0, name='cb-play')
            check(rc == 0, f'2xx: player rc {rc} {err[-200:]}')
            check_player_content('2xx: player', fr)
            check(wait_exit(pub, 20) == 0, f'2xx: publisher {pub.read_stderr()[-300:]}')
            pubcalls = cb.find(call='publish', name='okcam')
            check(pubcalls, f'on_publish called: {cb.calls[:3]}')
            if pubcalls:
                c = pubcalls[0]
                log(f'on_publish form: {c["form"]}')
                check(c['path'] == '/publish' and c['ctype'].startswith('application/x-www-form-urlencoded'),
                      f'POST /publish form-encoded: {c["path"]} {c["ctype"]}')
                f = c['form']
                check(f.get('app') == 'live' and f.get('addr') == '127.0.0.1' and f.get('user') == 'alice'
                      and f.get('clientid') and f.get('tcurl', '').startswith('rtmp://127.0.0.1:'),
                      f'on_publish fields {f}')
            check(cb.find(call='play', name='okcam'), 'on_play called')
            # on_done when the publisher leaves.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not cb.find(call='done', name='okcam'):
                time.sleep(0.1)
            done = [c for c in cb.find(call='done', name='okcam') if c['path'] == '/done']
            check(done, f'on_done (call=done) for live/okcam: {[c["form"] for c in cb.calls]}')

            # 403: refused (exit 6), the log names the answer.
            rc, _, err = client('publish', media('av', 2.0), l.url('live', 'denycam'))
            check(rc == 6, f'403: our client rc {rc} {err[-200:]}')
            ref = l.find('publish refused', stream_key='live/denycam')
            check(ref and ref[0].get('reason') == 'callback answered 403', f'403: log {ref[:1]}')

            # 302 Location rtmp://x/live/renamed: published under live/renamed.
            pub = ffmpeg_publish(l.url('live', 'origcam'), media('av', 5.0))
            check(l.wait_log('publish started', 10, stream_key='live/renamed'), '302: publish started as live/renamed')
            time.sleep(0.5)
            rc, err, fr = play_with_client(l.url('live', 'renamed'), 2.0, name='cb-renamed')
            check(rc == 0, f'302: player of live/renamed rc {rc} {err[-200:]}')
            check_player_content('302: player of live/renamed', fr)
            keys = [s['key'] for s in l.stats()['streams']]
            check('live/renamed' in keys and 'live/origcam' not in keys, f'302: /stats keys {keys}')
            check(wait_exit(pub, 20) == 0, f'302: publisher {pub.read_stderr()[-300:]}')
            check(l.wait_log('recorder closed', 10, stream_key='live/renamed'), '302: recorded as live/renamed')
            check(recordings(l, 'live', 'renamed') and not recordings(l, 'live', 'origcam'),
                  f'302: recording names {os.listdir(l.record_dir)}')

            # Answer after the timeout (server sleeps 3 s, -auth-timeout 1s): refused.
            t = time.monotonic()
            rc, _, err = client('publish', media('av', 2.0), l.url('live', 'slowcam'))
            took = time.monotonic() - t
            check(rc == 6, f'late callback: rc {rc} {err[-200:]}')
            check(took < 2.9, f'late callback: refused after {took:.1f} s (timeout 1 s)')
            ref = l.find('publish refused', stream_key='live/slowcam')
            check(ref and ref[0].get('reason') == 'callback timed out', f'late callback: log {ref[:1]}')
            check(metric(l, 'grtmp_auth_denials_total') >= 2, 'grtmp_auth_denials_total after callback refusals')
    finally:
        cb.close()

    # Callback server down: refused (documented default: deny).
    dead = free_port()
    with SecureLauncher('-on-publish', f'http://127.0.0.1:{dead}/publish', tls=False, name='http-down') as l:
        rc, _, err = client('publish', media('av', 2.0), l.url('live', 'cam'))
        check(rc == 6, f'callback down: rc {rc} {err[-200:]}')
        ref = l.find('publish refused', stream_key='live/cam')
        check(ref and ref[0].get('reason', '').startswith('callback failed'), f'callback down: log {ref[:1]}')
        fp = ffmpeg_publish_logged(l.url('live', 'cam'), media('av', 2.0))
        check(wait_exit(fp, 20) not in (0, None), 'callback down: ffmpeg publish fails')
        check('Server error: callback failed' in fp.read_stderr(), 'callback down: ffmpeg log shows the refusal')
        check('NetStream.Publish.Unauthorized' in err, f'callback down: onStatus code {err[-200:]}')


# ---------------------------------------------------------------- IP rules

def test_ip_rules():
    """-deny-publish all: publish refused, play allowed; -allow-publish 127.0.0.1 -deny-publish all: allowed;
    -deny-play 127.0.0.0/8: players refused while publishing works."""
    require('ffmpeg', 'ffprobe')
    with SecureLauncher('-deny-publish', 'all', tls=False, name='ip-deny') as l:
        rc, _, err = client('publish', media('av', 2.0), l.url('live', 'x'))
        check(rc == 6, f'-deny-publish all: our client rc {rc} {err[-200:]}')
        fp = ffmpeg_publish_logged(l.url('live', 'x'), media('av', 2.0))
        check(wait_exit(fp, 20) not in (0, None), '-deny-publish all: ffmpeg publish fails')
        check('Server error: address not allowed' in fp.read_stderr(), '-deny-publish all: ffmpeg log shows the refusal')
        check('NetStream.Publish.Unauthorized (address not allowed)' in err, f'-deny-publish all: onStatus {err[-200:]}')
        ref = l.find('publish refused')
        check(ref and ref[0].get('reason') == 'address not allowed', f'log: publish refused {ref[:1]}')
        # Play is not covered by the rule: accepted (the player waits for a publisher).
        rc, err, _ = play_with_client(l.url('live', 'x'), 1.5, name='ip-play')
        check(rc in (0, 7), f'-deny-publish all: play accepted, rc {rc} {err[-200:]}')
        check(l.wait_log('subscriber added', 5), 'play accepted: subscriber added')
        check(not l.find('play refused'), 'no play refused')
    with SecureLauncher('-allow-publish', '127.0.0.1', '-deny-publish', 'all', '-deny-play', '127.0.0.0/8',
                        tls=False, name='ip-allow') as l:
        pub = ffmpeg_publish(l.url('live', 'y'), media('av', 4.0))
        check(l.wait_log('publish started', 10, stream_key='live/y'), '-allow-publish 127.0.0.1: publish started')
        time.sleep(0.5)
        rc, err, _ = play_with_client(l.url('live', 'y'), 1.0, name='ip-denyplay')
        check(rc == 6, f'-deny-play 127.0.0.0/8: player rc {rc} {err[-200:]}')
        check(wait_exit(pub, 20) == 0, f'allowed publisher: {pub.read_stderr()[-300:]}')
        closed = l.find('publish stopped', stream_key='live/y')
        check(closed and closed[0].get('bytes_in', 0) > 50000, f'allowed publisher sent its media: {closed[:1]}')
    with SecureLauncher('-allow-publish', '127.0.0.1', '-deny-publish', 'all', tls=False, name='ip-allow2') as l:
        pub = ffmpeg_publish(l.url('live', 'z'), media('av', 4.0))
        check(l.wait_log('publish started', 10, stream_key='live/z'), 'allowed: publish started')
        time.sleep(0.5)
        rc, err, fr = play_with_client(l.url('live', 'z'), 2.0, name='ip-allowed-play')
        check(rc == 0, f'allowed: player rc {rc} {err[-200:]}')
        check_player_content('allowed: player', fr)
        check(wait_exit(pub, 20) == 0, 'allowed: publisher rc')


# ---------------------------------------------------------------- limits

def test_limit_connections_per_ip():
    """-max-connections-per-ip 2: the 3rd connection is closed at once, the others are served."""
    with SecureLauncher('-max-connections-per-ip', '2', '-handshake-timeout', '30s', tls=False, name='perip') as l:
        # The start-up probe's connection (wait_port) must be gone first: it counts while open.
        deadline = time.monotonic() + 5
        while l.stats()['server']['connections_current'] and time.monotonic() < deadline:
            time.sleep(0.05)
        a = socket.create_connection(('127.0.0.1', l.port), timeout=5)
        b = socket.create_connection(('127.0.0.1', l.port), timeout=5)
        # Both must be accepted (counted) before the third arrives; a fixed
        # sleep was not always enough on a loaded machine.
        deadline = time.monotonic() + 10
        while l.stats()['server']['connections_current'] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        c = socket.create_connection(('127.0.0.1', l.port), timeout=5)
        t = time.monotonic()
        got = rtmp_answer(c, 3.0)
        took = time.monotonic() - t
        check(got == b'' and took < 1.0, f'3rd connection: {len(got)} bytes, closed after {took:.2f} s')
        got_a = rtmp_answer(a, 3.0)
        check(got_a[:1] == b'\x03' and len(got_a) >= 1537, f'1st connection still served: {len(got_a)} bytes')
        ref = l.find('connection refused')
        check(ref and ref[0].get('reason') == 'max_connections_per_ip reached', f'log: connection refused {ref[:1]}')
        check(metric(l, 'grtmp_rejected_connections_total') >= 1, 'grtmp_rejected_connections_total')
        c.close()
        b.close()
        time.sleep(0.3)
        d = socket.create_connection(('127.0.0.1', l.port), timeout=5)
        got_d = rtmp_answer(d, 3.0)
        check(got_d[:1] == b'\x03', f'after one closed, a new connection is served: {len(got_d)} bytes')
        a.close()
        d.close()


def test_limit_streams():
    """-max-streams 1: a second stream's publish is refused (BadName, our client exit 5); the first plays on."""
    require('ffmpeg', 'ffprobe')
    with SecureLauncher('-max-streams', '1', tls=False, name='maxstreams') as l:
        pub = ffmpeg_publish(l.url('live', 'one'), media('av', 5.0))
        check(l.wait_log('publish started', 10, stream_key='live/one'), 'first stream published')
        rc, _, err = client('publish', media('av', 2.0), l.url('live', 'two'))
        check(rc == 5, f'second stream: our client rc {rc} (5 = BadName) {err[-200:]}')
        fp = ffmpeg_publish_logged(l.url('live', 'three'), media('av', 2.0))
        check(wait_exit(fp, 20) not in (0, None), 'second stream: ffmpeg publish fails')
        check('Server error: Server stream limit reached' in fp.read_stderr(), 'second stream: ffmpeg log')
        check('NetStream.Publish.BadName (Server stream limit reached)' in err, f'second stream: onStatus {err[-200:]}')
        ref = l.find('publish refused', stream_key='live/two')
        check(ref and ref[0].get('reason') == 'max_streams reached', f'log: {ref[:1]}')
        rc, err, fr = play_with_client(l.url('live', 'one'), 2.0, name='maxstreams-play')
        check(rc == 0, f'first stream still plays: rc {rc}')
        check_player_content('first stream', fr)
        check(wait_exit(pub, 20) == 0, 'first publisher rc')
        # The key is free again: a new stream may publish.
        time.sleep(0.3)
        rc, _, err = client('publish', media('av', 1.0), l.url('live', 'two'))
        check(rc == 0, f'after the first stream ended: rc {rc} {err[-200:]}')


def test_limit_players():
    """-max-players 1: the first player gets the media, the second gets NetStream.Play.Failed (exit 1)."""
    require('ffmpeg', 'ffprobe')
    with SecureLauncher('-max-players', '1', tls=False, name='maxplayers') as l:
        pub = ffmpeg_publish(l.url('live', 'p'), media('av', 6.0))
        check(l.wait_log('publish started', 10, stream_key='live/p'), 'publish started')
        time.sleep(0.5)
        first = Bg(play_with_client, l.url('live', 'p'), 3.0, False, 'maxplayers-1')
        check(l.wait_log('subscriber added', 5, count=1), 'first player attached')
        time.sleep(0.5)
        rc2, err2, _ = play_with_client(l.url('live', 'p'), 1.0, name='maxplayers-2')
        rc1, err1, fr1 = first.get(30)
        log(f'-max-players 1: first player rc {rc1} ({err1.strip()[-120:]}), second rc {rc2} ({err2.strip()[-160:]})')
        check(rc1 == 0, f'first player rc {rc1}: {err1[-200:]}')
        check_player_content('first player', fr1)
        # (With the launcher, rtmpserversrc's own pad is attached to every live stream: it must not count
        # as a player. If the first player is refused, the library counts subscribers, not players.)
        check(rc2 == 1 and 'NetStream.Play.Failed' in err2, f'second player: rc {rc2} {err2[-200:]}')
        ref = l.find('play refused')
        check(len(ref) == 1 and ref[0].get('reason') == 'max_players_per_stream reached', f'log: {ref}')
        check(wait_exit(pub, 20) == 0, 'publisher rc')


if __name__ == '__main__':
    main([test_rtmps, test_bad_cert_is_fatal, test_tls_port_refuses_plain_and_old_tls, test_tokens,
          test_http_callbacks, test_ip_rules, test_limit_connections_per_ip, test_limit_streams,
          test_limit_players])
