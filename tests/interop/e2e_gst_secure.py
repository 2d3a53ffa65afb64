#!/usr/bin/env python3
"""End-to-end tests of secure ingest on the GStreamer elements, over real
sockets with gst-launch-1.0 and the plugin from the build: RTMPS on
rtmpserversrc / rtmpserversink (tls, tls-cert-file, tls-key-file, tls-port)
and tls-validation-flags on rtmpclientsink / rtmpclientsrc, against ffmpeg,
GStreamer's rtmp2sink and each other. Recordings are checked with ffprobe.
A self-signed certificate (and a second key that does not belong to it) is
generated at test time with openssl.

    python3 tests/interop/e2e_gst_secure.py [test names]

(rtmpserversrc's "authorize" signal needs an application; it is tested with
real clients in tests/gst/test_secure.cpp.)
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import *  # noqa: E402,F401,F403
from rtmptest import TIMEOUT_RC  # noqa: E402
from e2e_gst_elements import FPS, FRAMES, SECONDS, check_flv, check_plugin, gst_spawn, media, wait_exit  # noqa: E402

TOKEN = 'n0t-in-logs-42'

_certs = None


def certs():
    """(cert, key, other_key): a self-signed certificate for localhost / 127.0.0.1
    and its key, plus the key of another certificate."""
    global _certs
    if _certs is None:
        files = {}
        for name in ('a', 'b'):
            crt, key = tmp_path(f'gst-secure-cert-{name}.pem'), tmp_path(f'gst-secure-key-{name}.pem')
            rc, _, err = run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                              '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
                              '-keyout', key, '-out', crt], timeout=60)
            if rc != 0:
                raise RuntimeError(f'openssl req failed: {err}')
            files[name] = (crt, key)
        _certs = (files['a'][0], files['a'][1], files['b'][1])
    return _certs


def tls_props(tls_port, key=None):
    crt, k, _ = certs()
    return f'tls=true tls-port={tls_port} tls-cert-file={crt} tls-key-file={key or k}'


def serversrc(port, tls_port, key, out):
    """rtmpserversrc with RTMPS ! filesink, in the background."""
    return gst_spawn(f'rtmpserversrc address=127.0.0.1 port={port} {tls_props(tls_port)} stream-key={key} '
                     f'! filesink location={out}')


def clientsink_pipeline(url, flags=None, frames=FRAMES):
    flags_prop = '' if flags is None else f' tls-validation-flags={flags}'
    return (f'videotestsrc num-buffers={frames} ! video/x-raw,width=320,height=240,framerate={FPS}/1 ! '
            f'x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! h264parse ! '
            f'flvmux name=m streamable=true ! rtmpclientsink location={url}{flags_prop} '
            f'audiotestsrc num-buffers={frames * 44100 // FPS // 1024} samplesperbuffer=1024 ! '
            f'audio/x-raw,rate=44100,channels=2 ! avenc_aac ! aacparse ! m.')


def serversink_pipeline(port, tls_port, key, seconds):
    frames = seconds * FPS
    return (f'videotestsrc is-live=true num-buffers={frames} ! video/x-raw,width=320,height=240,framerate={FPS}/1 ! '
            f'x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! h264parse ! '
            f'flvmux name=m streamable=true ! rtmpserversink address=127.0.0.1 port={port} {tls_props(tls_port)} '
            f'stream-key={key} audiotestsrc is-live=true num-buffers={frames * 44100 // FPS // 1024} '
            f'samplesperbuffer=1024 ! '
            f'audio/x-raw,rate=44100,channels=2 ! avenc_aac ! aacparse ! m.')


def certificate_refused(text, what):
    check('Unacceptable TLS certificate' in text, f'{what}: no certificate error on the bus: {text[-800:]}')
    check('unknown CA' in text, f'{what}: the error does not name the cause: {text[-800:]}')


# ------------------------------------------------------------------ rtmpserversrc

def test_ffmpeg_rtmps_to_serversrc_recording():
    """ffmpeg publishes rtmps:// -> rtmpserversrc tls=true ! filesink: h264 + aac, 100 frames, 4 s."""
    check_plugin()
    require('openssl')
    port, tls_port = free_port(), free_port()
    out = tmp_path('rtmps-serversrc.flv')
    gl = serversrc(port, tls_port, 'live/t', out)
    try:
        check(wait_port(tls_port, 10, proc=gl), 'rtmpserversrc did not listen for RTMPS')
        check(wait_port(port, 2, proc=gl), 'plain RTMP is still served beside RTMPS')
        pub = ffmpeg_publish(f'rtmps://127.0.0.1:{tls_port}/live/t', media())
        rc, err = wait_exit(pub, 30)
        check(rc == 0, f'ffmpeg rtmps publish rc={rc}: {err[-800:]}')
        rc, text = wait_exit(gl, 15)
        check(rc == 0, f'gst-launch did not end with EOS (rc={rc}): {text[-800:]}')
    finally:
        stop_process(gl)
    check_flv(out, video_frames=FRAMES, duration=SECONDS)


def test_rtmp2sink_rtmps_to_serversrc():
    """GStreamer's rtmp2sink (tls-validation-flags=0) publishes rtmps:// into rtmpserversrc."""
    check_plugin()
    require('openssl')
    rc, _, _ = run(['gst-inspect-1.0', 'rtmp2sink'], env=gst_env())
    if rc != 0:
        missing_peer('GStreamer rtmp2sink (gstreamer1.0-plugins-bad)')
    port, tls_port = free_port(), free_port()
    out = tmp_path('rtmps-rtmp2sink.flv')
    gl = serversrc(port, tls_port, 'live/r2', out)
    try:
        check(wait_port(tls_port, 10, proc=gl), 'rtmpserversrc did not listen for RTMPS')
        rc, o, e = gst_launch(f'filesrc location={media()} ! flvdemux name=d ! queue ! h264parse ! flvmux name=m '
                              f'streamable=true ! rtmp2sink location=rtmps://127.0.0.1:{tls_port}/live/r2 '
                              f'tls-validation-flags=0 d.audio ! queue ! aacparse ! m.', timeout=60)
        check(rc == 0, f'rtmp2sink pipeline rc={rc}: {(o + e)[-800:]}')
        rc, text = wait_exit(gl, 15)
        check(rc == 0, f'rtmpserversrc pipeline rc={rc}: {text[-800:]}')
    finally:
        stop_process(gl)
    check_flv(out, video_frames=FRAMES)


def test_serversrc_certificate_errors():
    """A missing certificate or a key of another certificate: a bus error at start, nothing listens."""
    check_plugin()
    require('openssl')
    crt, key, other_key = certs()
    cases = [
        ('key of another certificate', f'tls-cert-file={crt} tls-key-file={other_key}',
         'does not belong to certificate'),
        ('missing certificate', f'tls-cert-file={tmp_path("missing.pem")} tls-key-file={key}',
         'Could not load TLS certificate'),
        ('tls without files', '', 'tls=true needs tls-cert-file and tls-key-file'),
    ]
    for what, files, expect in cases:
        port, tls_port = free_port(), free_port()
        rc, o, e = gst_launch(f'rtmpserversrc address=127.0.0.1 port={port} tls=true tls-port={tls_port} {files} '
                              f'! fakesink', timeout=20)
        text = o + e
        check(rc != 0 and rc != TIMEOUT_RC, f'{what}: gst-launch rc={rc}: {text[-600:]}')
        check(expect in text, f'{what}: expected "{expect}" on the bus: {text[-600:]}')
        check(not wait_port(port, 0.3) and not wait_port(tls_port, 0.3), f'{what}: something listens')


# ------------------------------------------------------------------ rtmpclientsink

def test_clientsink_rtmps_validation_off():
    """rtmpclientsink tls-validation-flags=0 publishes rtmps:// to rtmpserversrc; the recording is complete."""
    check_plugin()
    require('openssl')
    port, tls_port = free_port(), free_port()
    out = tmp_path('rtmps-clientsink.flv')
    gl = serversrc(port, tls_port, 'live/x', out)
    try:
        check(wait_port(tls_port, 10, proc=gl), 'rtmpserversrc did not listen for RTMPS')
        rc, o, e = gst_launch(clientsink_pipeline(f'rtmps://127.0.0.1:{tls_port}/live/x?token={TOKEN}', flags=0),
                              timeout=60)
        check(rc == 0, f'publishing pipeline rc={rc}: {(o + e)[-800:]}')
        rc, text = wait_exit(gl, 15)
        check(rc == 0, f'receiving pipeline did not end with EOS (rc={rc}): {text[-800:]}')
    finally:
        stop_process(gl)
    check_flv(out, video_frames=FRAMES, duration=SECONDS)


def test_clientsink_rtmps_default_flags_refuse_self_signed():
    """rtmpclientsink with the default tls-validation-flags: a certificate error on the bus, nothing published."""
    check_plugin()
    require('openssl')
    port, tls_port = free_port(), free_port()
    out = tmp_path('rtmps-refused.flv')
    gl = serversrc(port, tls_port, 'live/v', out)
    try:
        check(wait_port(tls_port, 10, proc=gl), 'rtmpserversrc did not listen for RTMPS')
        rc, o, e = gst_launch(clientsink_pipeline(f'rtmps://127.0.0.1:{tls_port}/live/v?token={TOKEN}'),
                              timeout=60)
        text = o + e
        check(rc != 0 and rc != TIMEOUT_RC, f'expected a failure, rc={rc}')
        certificate_refused(text, 'rtmpclientsink')
        check(f'rtmps://127.0.0.1:{tls_port}/live/v?...' in text, f'URL with a redacted query: {text[-600:]}')
        check(TOKEN not in text, 'the token appears in the output')
        check(gl.poll() is None, 'the server pipeline ended')
    finally:
        stop_process(gl)
    check(not os.path.exists(out) or os.path.getsize(out) == 0, 'something was recorded')


# ------------------------------------------------------------------ rtmpclientsrc

def test_clientsrc_plays_rtmps_from_serversink():
    """rtmpserversink tls=true serves; rtmpclientsrc tls-validation-flags=0 plays rtmps:// ! filesink until EOS."""
    check_plugin()
    require('openssl')
    port, tls_port = free_port(), free_port()
    # The live stream must outlast two client start-ups: a sanitized
    # gst-launch-1.0 (scripts/sanitize.sh) takes 3-4 s each to start, and the
    # second client still needs 3 s of stream.
    seconds = 15 if os.environ.get('GRTMP_ASAN_PRELOAD') else 6
    server = gst_spawn(serversink_pipeline(port, tls_port, 'live/s', seconds))
    out = tmp_path('rtmps-clientsrc.flv')
    try:
        check(wait_port(tls_port, 10, proc=server), 'rtmpserversink did not listen for RTMPS')
        # Default flags first: refused, naming the cause.
        rc, o, e = gst_launch(f'rtmpclientsrc location=rtmps://127.0.0.1:{tls_port}/live/s?token={TOKEN} '
                              f'timeout=3 ! fakesink', timeout=20)
        check(rc != 0 and rc != TIMEOUT_RC, f'default flags: expected a failure, rc={rc}')
        certificate_refused(o + e, 'rtmpclientsrc')
        check(TOKEN not in o + e, 'the token appears in the output')
        # Validation off: plays until the server's stream ends (EOS after timeout=3).
        rc, o, e = gst_launch(f'rtmpclientsrc location=rtmps://127.0.0.1:{tls_port}/live/s tls-validation-flags=0 '
                              f'timeout=3 ! filesink location={out}', timeout=seconds + 20)
        check(rc == 0, f'rtmpclientsrc pipeline did not end with EOS (rc={rc}): {(o + e)[-800:]}')
        rc, text = wait_exit(server, 15)
        check(rc == 0, f'rtmpserversink pipeline rc={rc}: {text[-800:]}')
    finally:
        stop_process(server)
    info = check_flv(out)
    v = info['video']
    check(v and v['frames'] is not None and v['frames'] >= 3 * FPS, f'video frames {v and v["frames"]}')
    d = ffmpeg_decode(out, timeout=60)
    check(not d['errors'], f'decode errors: {d["errors"][:5]}')


if __name__ == '__main__':
    main([
        test_ffmpeg_rtmps_to_serversrc_recording,
        test_rtmp2sink_rtmps_to_serversrc,
        test_serversrc_certificate_errors,
        test_clientsink_rtmps_validation_off,
        test_clientsink_rtmps_default_flags_refuse_self_signed,
        test_clientsrc_plays_rtmps_from_serversink,
    ])
