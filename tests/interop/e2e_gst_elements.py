"""End-to-end tests of the grtmp GStreamer elements against real peers:
ffmpeg/ffprobe, nginx-rtmp, rtmpdump and GStreamer's own rtmp2 elements,
all driven through gst-launch-1.0 with the plugin from the build.

    python3 tests/interop/e2e_gst_elements.py [test names]
"""
import os
import re
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import *  # noqa: E402,F401,F403

SECONDS = 4          # media length
FPS = 25
FRAMES = SECONDS * FPS


def media():
    path = tmp_path('in.flv')
    if not os.path.exists(path):
        make_media(path, SECONDS, fps=FPS, gop=FPS)
    return path


def gst_spawn(pipeline, name='gst-launch', debug=None):
    """gst-launch-1.0 -e <pipeline> in the background (own session)."""
    # gst-launch escapes spaces inside one argv element: pass tokens.
    return spawn(['gst-launch-1.0', '-e'] + shlex.split(pipeline), env=gst_env(debug=debug), name=name)


def wait_exit(p, timeout):
    """Waits for a spawned process; returns (returncode or TIMEOUT_RC, stderr/stdout log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    if p.poll() is None:
        rc, log_text = stop_process(p)
        return TIMEOUT_RC, log_text
    return p.returncode, p.read_stderr()


def check_plugin():
    require('gst-launch-1.0', 'ffmpeg', 'ffprobe')
    rc, out, err = run(['gst-inspect-1.0', 'rtmpserversrc'], env=gst_env(), timeout=60)
    if rc != 0:
        raise RuntimeError('rtmpserversrc not found (GST_PLUGIN_PATH_1_0=%s): %s'
                           % (os.environ.get('GST_PLUGIN_PATH_1_0'), err[-500:]))


def check_flv(path, video_frames=None, duration=None, audio=True, tolerance=0.5, exact=True):
    check(os.path.exists(path) and os.path.getsize(path) > 1000, f'{path} missing or tiny')
    info = ffprobe_info(path, count_frames=True)
    check(info['returncode'] == 0, f'ffprobe failed: {info["error"]}')
    v, a = info['video'], info['audio']
    check(v is not None and v['codec_name'] == 'h264', f'no h264 video in {path}: {info["streams"]}')
    if audio:
        check(a is not None and a['codec_name'] == 'aac', f'no aac audio in {path}: {info["streams"]}')
    if v and video_frames is not None:
        if exact:
            check(v['frames'] == video_frames, f'video frames {v["frames"]} != {video_frames}')
        else:
            check(v['frames'] is not None and v['frames'] >= video_frames,
                  f'video frames {v["frames"]} < {video_frames}')
    if duration is not None:
        d = info['duration']
        check(d is not None and abs(d - duration) <= tolerance, f'duration {d} not {duration}±{tolerance}')
    log(f'  {os.path.basename(path)}: duration={info["duration"]} streams='
        + ', '.join(f'{s["codec_type"]}:{s["codec_name"]}:{s["frames"]}' for s in info['streams']))
    return info


# ------------------------------------------------------------------ rtmpserversrc

def test_ffmpeg_to_serversrc_filesink():
    """ffmpeg publishes -> rtmpserversrc ! filesink: an FLV ffprobe reads."""
    check_plugin()
    port = free_port()
    out = tmp_path('serversrc.flv')
    gl = gst_spawn(f'rtmpserversrc address=127.0.0.1 port={port} stream-key=live/t ! filesink location={out}')
    try:
        check(wait_port(port, 10, proc=gl), 'rtmpserversrc did not listen')
        pub = ffmpeg_publish(f'rtmp://127.0.0.1:{port}/live/t', media())
        rc, err = wait_exit(pub, 30)
        check(rc == 0, f'ffmpeg publish rc={rc}: {err[-800:]}')
        rc, text = wait_exit(gl, 15)
        check(rc == 0, f'gst-launch did not end with EOS (rc={rc}): {text[-800:]}')
        check('Got EOS from element' in text or rc == 0, 'no EOS')
    finally:
        stop_process(gl)
    check_flv(out, video_frames=FRAMES, duration=SECONDS)


def test_ffmpeg_to_serversrc_decode():
    """ffmpeg publishes -> rtmpserversrc ! flvdemux ! h264parse ! avdec_h264: every frame decodes."""
    check_plugin()
    port = free_port()
    gl = gst_spawn(f'rtmpserversrc address=127.0.0.1 port={port} stream-key=live/d ! flvdemux name=d '
                   f'd.video ! queue ! h264parse ! avdec_h264 ! fakesink sync=true '
                   f'd.audio ! queue ! aacparse ! avdec_aac ! fakesink sync=true', debug='*:1')
    try:
        check(wait_port(port, 10, proc=gl), 'rtmpserversrc did not listen')
        pub = ffmpeg_publish(f'rtmp://127.0.0.1:{port}/live/d', media())
        wait_exit(pub, 30)
        rc, text = wait_exit(gl, 15)
    finally:
        stop_process(gl)
    check(rc == 0, f'gst-launch rc={rc}: {text[-800:]}')
    check('ERROR' not in text, f'errors: {text[-800:]}')


def test_rtmp2sink_to_serversrc():
    """GStreamer's own rtmp2sink publishes to rtmpserversrc."""
    check_plugin()
    rc, _, _ = run(['gst-inspect-1.0', 'rtmp2sink'], env=gst_env())
    if rc != 0:
        missing_peer('GStreamer rtmp2sink (gstreamer1.0-plugins-bad)')
    port = free_port()
    out = tmp_path('rtmp2.flv')
    gl = gst_spawn(f'rtmpserversrc address=127.0.0.1 port={port} stream-key=live/r2 ! filesink location={out}')
    try:
        check(wait_port(port, 10, proc=gl), 'rtmpserversrc did not listen')
        rc, o, e = gst_launch(f'filesrc location={media()} ! flvdemux name=d ! queue ! h264parse ! flvmux name=m '
                              f'streamable=true ! rtmp2sink location=rtmp://127.0.0.1:{port}/live/r2 '
                              f'd.audio ! queue ! aacparse ! m.', timeout=60)
        check(rc == 0, f'rtmp2sink pipeline rc={rc}: {(o + e)[-800:]}')
        rc, text = wait_exit(gl, 15)
        check(rc == 0, f'rtmpserversrc pipeline rc={rc}: {text[-800:]}')
    finally:
        stop_process(gl)
    check_flv(out, video_frames=FRAMES)


# ------------------------------------------------------------------ rtmpclientsink

def encode_pipeline(url, frames=FRAMES):
    return (f'videotestsrc num-buffers={frames} ! video/x-raw,width=320,height=240,framerate={FPS}/1 ! '
            f'x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! h264parse ! '
            f'flvmux name=m streamable=true ! rtmpclientsink location={url} '
            f'audiotestsrc num-buffers={frames * 44100 // FPS // 1024} samplesperbuffer=1024 ! '
            f'audio/x-raw,rate=44100,channels=2 ! avenc_aac ! aacparse ! m.')


class RecordingNginx(Nginx):
    """nginx-rtmp that records the `live` application to record_dir/<name>.flv."""

    def __init__(self, record_dir, **kw):
        super().__init__(**kw)
        self.record_dir = record_dir

    def config(self):
        return super().config().replace(
            'record off;', f'record all; record_path {self.record_dir}; record_unique off;')


def test_clientsink_to_nginx():
    """videotestsrc ! x264enc ! flvmux ! rtmpclientsink -> nginx-rtmp; nginx's recording read by ffprobe."""
    check_plugin()
    require('nginx')
    rec = tmp_path('nginx-rec')
    os.makedirs(rec, exist_ok=True)
    with RecordingNginx(rec) as ngx:
        rc, o, e = gst_launch(encode_pipeline(ngx.url('live', 'x')), timeout=60)
        check(rc == 0, f'publishing pipeline rc={rc}: {(o + e)[-800:]}')
        time.sleep(1.0)  # nginx closes the recording on deleteStream
        check_flv(os.path.join(rec, 'x.flv'), video_frames=FRAMES, duration=SECONDS)


def test_clientsink_to_serversrc():
    """rtmpclientsink -> rtmpserversrc ! filesink (two gst-launch processes)."""
    check_plugin()
    port = free_port()
    out = tmp_path('client_to_server.flv')
    gl = gst_spawn(f'rtmpserversrc address=127.0.0.1 port={port} stream-key=live/x ! filesink location={out}')
    try:
        check(wait_port(port, 10, proc=gl), 'rtmpserversrc did not listen')
        rc, o, e = gst_launch(encode_pipeline(f'rtmp://127.0.0.1:{port}/live/x'), timeout=60)
        check(rc == 0, f'publishing pipeline rc={rc}: {(o + e)[-800:]}')
        rc, text = wait_exit(gl, 15)
        check(rc == 0, f'receiving pipeline did not end with EOS (rc={rc}): {text[-800:]}')
    finally:
        stop_process(gl)
    check_flv(out, video_frames=FRAMES, duration=SECONDS)


# ffmpeg plays the stream back over RTMP while rtmpclientsink publishes it.

_STREAM_LINE = re.compile(r'Stream #\d+:\d+.*?: (Video|Audio): (\w+)(.*)')


def ffmpeg_play(url, duration, timeout=40):
    """Plays `url` with ffmpeg for `duration` s of media, decoding everything
    (-f framecrc): {'vcodec', 'acodec', 'size', 'video_frames',
    'audio_frames', 'errors', 'returncode'}. Codecs come from ffmpeg's input
    description; errors are every line ffmpeg logs at error level or worse
    (-loglevel level+info prefixes them), decoder errors included."""
    cmd = ['ffmpeg', '-nostdin', '-hide_banner', '-loglevel', 'level+info', '-i', url,
           '-t', str(duration), '-f', 'framecrc', '-']
    rc, out, err = run(cmd, timeout=timeout)
    r = {'vcodec': None, 'acodec': None, 'size': None, 'returncode': rc, 'errors': [], 'cmd': ' '.join(cmd)}
    in_input = False
    for line in err.splitlines():
        if 'Input #0' in line:
            in_input = True
        elif 'Output #0' in line or 'Stream mapping' in line:
            in_input = False
        m = _STREAM_LINE.search(line)
        if in_input and m:
            if m.group(1) == 'Video' and r['vcodec'] is None:
                r['vcodec'] = m.group(2)
                size = re.search(r' (\d+)x(\d+)[ ,]', m.group(3))
                r['size'] = (int(size.group(1)), int(size.group(2))) if size else None
            elif m.group(1) == 'Audio' and r['acodec'] is None:
                r['acodec'] = m.group(2)
        if '[error]' in line or '[fatal]' in line:
            r['errors'].append(line)
    streams = parse_framecrc(out)
    r['video_frames'] = sum(s['count'] for s in streams.values() if s['type'] == 'video')
    r['video_pts'] = next((s['pts'] for s in streams.values() if s['type'] == 'video'), [])
    r['audio_frames'] = sum(s['count'] for s in streams.values() if s['type'] == 'audio')
    return r


def live_encode_pipeline(url, seconds):
    """encode_pipeline() at the pace of the clock, so a player joins a live stream."""
    frames = seconds * FPS
    return (f'videotestsrc is-live=true num-buffers={frames} ! video/x-raw,width=320,height=240,framerate={FPS}/1 ! '
            f'x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! h264parse ! '
            f'flvmux name=m streamable=true ! rtmpclientsink location={url} '
            f'audiotestsrc is-live=true num-buffers={frames * 44100 // FPS // 1024} samplesperbuffer=1024 ! '
            f'audio/x-raw,rate=44100,channels=2 ! avenc_aac ! aacparse ! m.')


def check_played_back(url, publish_seconds=8, play_seconds=4):
    """rtmpclientsink publishes live to `url`; meanwhile ffmpeg plays it back
    over RTMP: h264 320x240 + aac, play_seconds of frames, no decode error."""
    gl = gst_spawn(live_encode_pipeline(url, publish_seconds), name='rtmpclientsink')
    try:
        time.sleep(1.5)  # x264enc started and the stream is on the server
        check(gl.poll() is None, f'publishing pipeline ended early: {gl.read_stderr()[-800:]}')
        r = ffmpeg_play(url, play_seconds, timeout=publish_seconds + 30)
        log(f'  ffmpeg played {r["vcodec"]} {r["size"]} + {r["acodec"]}: {r["video_frames"]} video, '
            f'{r["audio_frames"]} audio frames, {len(r["errors"])} errors')
        rc, text = wait_exit(gl, publish_seconds + 30)
    finally:
        stop_process(gl)
    check(rc == 0, f'publishing pipeline rc={rc}: {text[-800:]}')
    check(r['returncode'] == 0, f'ffmpeg rc={r["returncode"]}: {r["errors"][-5:]}')
    check(r['vcodec'] == 'h264', f'video codec {r["vcodec"]}')
    check(r['acodec'] == 'aac', f'audio codec {r["acodec"]}')
    check(r['size'] == (320, 240), f'video size {r["size"]}')
    # The player may start at the next keyframe (1 s GOP), then every frame.
    want = play_seconds * FPS
    check(want - FPS - 2 <= r['video_frames'] <= want + 2,
          f'video frames {r["video_frames"]}, want {want - FPS}..{want}')
    pts = r['video_pts']
    steps = sorted(b - a for a, b in zip(pts, pts[1:]))
    check(steps and steps[0] > 0 and steps[-1] <= 2 * steps[len(steps) // 2],
          f'video frames missing or out of order: pts steps {steps[:3]}..{steps[-3:]}')
    want_audio = play_seconds * 44100 // 1024
    check(r['audio_frames'] >= want_audio * 9 // 10, f'audio frames {r["audio_frames"]}, want ~{want_audio}')
    check(not r['errors'], f'decode errors: {r["errors"][:5]}')


def test_clientsink_played_back_from_nginx():
    """rtmpclientsink -> nginx-rtmp; ffmpeg plays it back over RTMP while it is published."""
    check_plugin()
    require('nginx')
    # wait_key: a player starts at a keyframe (else h264 decode errors are expected).
    with Nginx(app_conf='wait_key on;') as ngx:
        check_played_back(ngx.url('live', 'back'))


def test_clientsink_played_back_from_grtmp_server():
    """rtmpclientsink -> grtmp-test-server (the library); ffmpeg plays it back over RTMP."""
    check_plugin()
    exe = os.environ.get('GRTMP_TEST_SERVER') or os.path.join(build_dir(), 'tests', 'grtmp-test-server')
    if not os.path.exists(exe):
        if peers_required():  # the README's test command builds it
            raise AssertionError(f'{exe} not built')
        skip(f'{exe} not built')
    srv = spawn([exe, '--port', '0'], name='grtmp-test-server')
    try:
        port = None
        deadline = time.monotonic() + 10
        while port is None and time.monotonic() < deadline and srv.poll() is None:
            m = re.search(r'^PORT (\d+)\s*$', srv.read_stderr(), re.M)
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        check(port is not None, f'grtmp-test-server did not start: {srv.read_stderr()[-800:]}')
        check_played_back(f'rtmp://127.0.0.1:{port}/live/back')
        check(srv.poll() is None, 'grtmp-test-server died')
    finally:
        stop_process(srv)


def test_serversrc_to_serversink_played_back():
    """rtmpclientsink -> rtmpserversrc ! rtmpserversink (one gst-launch relaying); ffmpeg plays
    the relayed stream over RTMP."""
    check_plugin()
    port_in, port_out = free_port(), free_port()
    relay = gst_spawn(f'rtmpserversrc address=127.0.0.1 port={port_in} stream-key=live/in ! queue ! '
                      f'rtmpserversink address=127.0.0.1 port={port_out} stream-key=live/out', name='relay')
    try:
        check(wait_port(port_in, 10, proc=relay) and wait_port(port_out, 10, proc=relay), 'relay did not listen')
        gl = gst_spawn(live_encode_pipeline(f'rtmp://127.0.0.1:{port_in}/live/in', 8), name='rtmpclientsink')
        try:
            time.sleep(2.0)
            r = ffmpeg_play(f'rtmp://127.0.0.1:{port_out}/live/out', 4, timeout=40)
            log(f'  ffmpeg played {r["vcodec"]} {r["size"]} + {r["acodec"]}: {r["video_frames"]} video, '
                f'{r["audio_frames"]} audio frames, {len(r["errors"])} errors')
            rc, text = wait_exit(gl, 40)
        finally:
            stop_process(gl)
        check(rc == 0, f'publishing pipeline rc={rc}: {text[-800:]}')
        check(r['vcodec'] == 'h264' and r['acodec'] == 'aac', f'codecs {r["vcodec"]}/{r["acodec"]}')
        check(3 * FPS - 2 <= r['video_frames'] <= 4 * FPS + 2, f'video frames {r["video_frames"]}')
        check(not r['errors'], f'decode errors: {r["errors"][:5]}')
    finally:
        stop_process(relay)


def test_clientsink_refused():
    """A busy stream key: rtmpclientsink fails with the server's code in the error."""
    check_plugin()
    require('nginx')
    with Nginx() as ngx:
        url = ngx.url('live', 'busy')
        pub = ffmpeg_publish(url, media(), loop=True)
        try:
            time.sleep(1.5)
            rc, o, e = gst_launch(encode_pipeline(url), timeout=60)
        finally:
            stop_process(pub)
        text = o + e
        check(rc != 0, f'expected a failure, rc={rc}')
        check('NetStream.Publish.BadName' in text or 'refused' in text.lower(),
              f'no server code in the error: {text[-800:]}')


# ------------------------------------------------------------------ rtmpclientsrc

def test_clientsrc_from_nginx():
    """ffmpeg -> nginx-rtmp -> rtmpclientsrc ! filesink, checked by ffprobe."""
    check_plugin()
    require('nginx')
    with Nginx() as ngx:
        url = ngx.url('live', 'y')
        out = tmp_path('clientsrc.flv')
        gl = gst_spawn(f'rtmpclientsrc location={url} timeout=3 ! filesink location={out}')
        try:
            time.sleep(1.0)
            pub = ffmpeg_publish(url, media())
            rc, err = wait_exit(pub, 30)
            check(rc == 0, f'ffmpeg publish rc={rc}: {err[-800:]}')
            rc, text = wait_exit(gl, 20)
            check(rc == 0, f'rtmpclientsrc pipeline did not end with EOS (rc={rc}): {text[-800:]}')
        finally:
            stop_process(gl)
        check_flv(out, video_frames=FRAMES, duration=SECONDS)


# ------------------------------------------------------------------ rtmpserversink

def serversink_pipeline(port, key, seconds=8):
    frames = seconds * FPS
    return (f'videotestsrc is-live=true num-buffers={frames} ! video/x-raw,width=320,height=240,framerate={FPS}/1 ! '
            f'x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! h264parse ! '
            f'flvmux name=m streamable=true ! rtmpserversink address=127.0.0.1 port={port} stream-key={key} '
            f'audiotestsrc is-live=true samplesperbuffer=1024 ! audio/x-raw,rate=44100,channels=2 ! '
            f'avenc_aac ! aacparse ! m.')


def test_serversink_played_by_ffmpeg():
    """rtmpserversink played by ffmpeg: frames decode without errors."""
    check_plugin()
    port = free_port()
    gl = gst_spawn(serversink_pipeline(port, 'live/s'))
    try:
        check(wait_port(port, 10, proc=gl), 'rtmpserversink did not listen')
        time.sleep(1.0)
        r = ffmpeg_decode(f'rtmp://127.0.0.1:{port}/live/s', timeout=30, duration=3)
        log(f'  ffmpeg decoded {r["video_frames"]} video, {r["audio_frames"]} audio frames')
        check(r['video_frames'] > 2 * FPS, f'video frames {r["video_frames"]}')
        check(r['audio_frames'] > 0, f'audio frames {r["audio_frames"]}')
        check(not r['errors'], f'decode errors: {r["errors"][:5]}')
    finally:
        stop_process(gl)


def test_serversink_played_by_rtmpdump():
    """rtmpserversink played by rtmpdump: the FLV it writes is h264 + aac."""
    check_plugin()
    require('rtmpdump')
    port = free_port()
    gl = gst_spawn(serversink_pipeline(port, 'live/dump'))
    try:
        check(wait_port(port, 10, proc=gl), 'rtmpserversink did not listen')
        # Join after the second keyframe (1 s GOP): the late-join replay then
        # starts past 0, where a wrongly stamped onMetaData would show up.
        time.sleep(1.6)
        out = tmp_path('rtmpdump.flv')
        rc, o, e = rtmpdump(f'rtmp://127.0.0.1:{port}/live/dump', out, duration=3, timeout=20)
        check(rc in (0, 2, TIMEOUT_RC), f'rtmpdump rc={rc}: {(o + e)[-800:]}')
        info = check_flv(out)
        v = info['video']
        check(v and v['width'] == 320 and v['height'] == 240, f'video size {v}')
        kinds = sorted(s['codec_type'] for s in info['streams'])
        check(kinds == ['audio', 'video'], f'streams {kinds} (metadata updates must not become a data stream)')
    finally:
        stop_process(gl)


def test_serversink_played_by_rtmp2src():
    """rtmpserversink played by GStreamer's rtmp2src."""
    check_plugin()
    rc, _, _ = run(['gst-inspect-1.0', 'rtmp2src'], env=gst_env())
    if rc != 0:
        missing_peer('GStreamer rtmp2src (gstreamer1.0-plugins-bad)')
    port = free_port()
    gl = gst_spawn(serversink_pipeline(port, 'live/r2s'))
    try:
        check(wait_port(port, 10, proc=gl), 'rtmpserversink did not listen')
        time.sleep(1.0)
        # Decode for 5 s; fakesink's last-message (-v) shows every decoded frame.
        rc, o, e = gst_launch(['-v'] + shlex.split(
                                  f'rtmp2src location=rtmp://127.0.0.1:{port}/live/r2s ! flvdemux name=d '
                                  f'd.video ! queue ! h264parse ! avdec_h264 ! fakesink name=vs silent=false'),
                              timeout=5, eos_on_shutdown=False)
        frames = sum(1 for line in (o + e).splitlines() if 'vs:sink' in line and 'chain' in line)
        log(f'  rtmp2src decoded {frames} frames in 5 s')
        check(frames > 2 * FPS, f'rtmp2src decoded {frames} frames (rc={rc}): {(o + e)[-600:]}')
        check('ERROR' not in e, f'errors: {e[-600:]}')
    finally:
        stop_process(gl)


if __name__ == '__main__':
    main([
        test_ffmpeg_to_serversrc_filesink,
        test_ffmpeg_to_serversrc_decode,
        test_rtmp2sink_to_serversrc,
        test_clientsink_to_nginx,
        test_clientsink_to_serversrc,
        test_clientsink_played_back_from_nginx,
        test_clientsink_played_back_from_grtmp_server,
        test_serversrc_to_serversink_played_back,
        test_clientsink_refused,
        test_clientsrc_from_nginx,
        test_serversink_played_by_ffmpeg,
        test_serversink_played_by_rtmpdump,
        test_serversink_played_by_rtmp2src,
    ])
