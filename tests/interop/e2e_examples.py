"""Runs the example programs (examples/*.cpp, built by meson) end to end
with ffmpeg publishing into them.

    python3 tests/interop/e2e_examples.py [test names]
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import *  # noqa: E402,F401,F403

SECONDS = 4
FPS = 25
FRAMES = SECONDS * FPS


def media():
    path = tmp_path('in.flv')
    if not os.path.exists(path):
        make_media(path, SECONDS, fps=FPS, gop=FPS)
    return path


def example(name):
    path = os.path.join(build_dir(), 'examples', name)
    if not os.path.exists(path):
        if peers_required():  # the README's test command builds every example
            raise AssertionError(f'{path} not built')
        skip(f'{path} not built')
    require('ffmpeg', 'ffprobe')
    return path


def start_example(name, *args):
    """Starts an example on an ephemeral port; returns (process, port)."""
    p = spawn([example(name), '--address', '127.0.0.1', '--port', '0'] + list(args), env=gst_env(), name=name)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        m = re.search(r'listening on port (\d+)', p.read_stderr())
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    rc, text = stop_process(p)
    raise RuntimeError(f'{name} did not start (rc={rc}): {text[-800:]}')


def wait_exit(p, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    if p.poll() is None:
        stop_process(p)
        return TIMEOUT_RC, p.read_stderr()
    return p.returncode, p.read_stderr()


def test_receive_decode():
    """receive-decode decodes every frame ffmpeg publishes and reports the size."""
    p, port = start_example('receive-decode', '--stream-key', 'live/t', '--timeout', '60')
    try:
        pub = ffmpeg_publish(f'rtmp://127.0.0.1:{port}/live/t', media())
        rc, err = wait_exit(pub, 30)
        check(rc == 0, f'ffmpeg rc={rc}: {err[-500:]}')
        rc, out = wait_exit(p, 20)
    finally:
        stop_process(p)
    log('  ' + ' | '.join(out.strip().splitlines()[-3:]))
    check(rc == 0, f'receive-decode rc={rc}: {out[-800:]}')
    check('end of stream' in out, 'no end of stream')
    m = re.search(r'video: (\d+) frames (\d+)x(\d+)', out)
    check(m is not None, f'no video summary: {out[-500:]}')
    if m:
        check(int(m.group(1)) == FRAMES, f'decoded {m.group(1)} video frames, published {FRAMES}')
        check((m.group(2), m.group(3)) == ('320', '240'), f'size {m.group(2)}x{m.group(3)}')
    m = re.search(r'audio: (\d+) buffers (\d+) Hz', out)
    check(m is not None and int(m.group(1)) > 100 and m.group(2) == '44100', f'audio summary: {m and m.group(0)}')


def test_record_two_streams():
    """record writes one FLV per published stream; ffprobe reads both."""
    rec = tmp_path('recordings')
    os.makedirs(rec, exist_ok=True)
    p, port = start_example('record', '--dir', rec, '--max-files', '2', '--duration', '60')
    try:
        a = ffmpeg_publish(f'rtmp://127.0.0.1:{port}/live/a', media())
        b = ffmpeg_publish(f'rtmp://127.0.0.1:{port}/other/b', media())
        wait_exit(a, 30)
        wait_exit(b, 30)
        rc, out = wait_exit(p, 20)
    finally:
        stop_process(p)
    check(rc == 0, f'record rc={rc}: {out[-800:]}')
    for name in ('live_a.flv', 'other_b.flv'):
        path = os.path.join(rec, name)
        check(f'finished' in out and name in out, f'{name} not reported finished: {out[-500:]}')
        info = ffprobe_info(path, count_frames=True)
        v, a = info['video'], info['audio']
        check(v is not None and v['codec_name'] == 'h264' and v['frames'] == FRAMES, f'{name} video: {v}')
        check(a is not None and a['codec_name'] == 'aac', f'{name} audio: {a}')
        d = info['duration']
        check(d is not None and abs(d - SECONDS) <= 0.5, f'{name} duration {d}')


class RecordingNginx(Nginx):
    def __init__(self, record_dir, **kw):
        super().__init__(**kw)
        self.record_dir = record_dir

    def config(self):
        return super().config().replace(
            'record off;', f'record all; record_path {self.record_dir}; record_unique off;')


def test_republish_to_nginx():
    """ffmpeg -> republish (rtmpserversrc ! rtmpclientsink) -> nginx-rtmp, recorded by nginx."""
    require('nginx')
    rec = tmp_path('nginx-republish')
    os.makedirs(rec, exist_ok=True)
    with RecordingNginx(rec) as ngx:
        p, port = start_example('republish', '--stream-key', 'live/in', '--to', ngx.url('live', 'out'))
        try:
            pub = ffmpeg_publish(f'rtmp://127.0.0.1:{port}/live/in', media())
            rc, err = wait_exit(pub, 30)
            check(rc == 0, f'ffmpeg rc={rc}: {err[-500:]}')
            rc, out = wait_exit(p, 20)
        finally:
            stop_process(p)
        check(rc == 0, f'republish rc={rc}: {out[-800:]}')
        time.sleep(1.0)
        info = ffprobe_info(os.path.join(rec, 'out.flv'), count_frames=True)
        v, a = info['video'], info['audio']
        log(f'  nginx recorded video={v and v["frames"]} audio={a and a["frames"]} duration={info["duration"]}')
        check(v is not None and v['frames'] == FRAMES, f'video relayed: {v}')
        check(a is not None and a['codec_name'] == 'aac', f'audio relayed: {a}')


if __name__ == '__main__':
    main([test_receive_decode, test_record_two_streams, test_republish_to_nginx])
