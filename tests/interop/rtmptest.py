"""Helpers for the project's end-to-end tests (stdlib only).

Tests are run as ``python3 tests/interop/<name>.py`` with GRTMP_BUILD_DIR and
GRTMP_SOURCE_DIR set (meson does this); the exit code is the verdict
(0 pass, 1 fail, 77 skip). A test module typically does::

    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from rtmptest import *

    def test_publish_play():
        with Nginx() as ngx:
            media = make_media(tmp_path('in.flv'), 3)
            pub = ffmpeg_publish(ngx.url('live', 'a'), media)
            try:
                r = ffmpeg_decode(ngx.url('live', 'a'), timeout=20, duration=2)
                check(r['video_frames'] > 20, f"video frames {r['video_frames']}")
            finally:
                stop_process(pub)

    if __name__ == '__main__':
        main([test_publish_play])

API summary
-----------
free_port(), wait_port(port, timeout, host)          -- sockets
run(cmd, timeout, ...) -> (rc, stdout, stderr)        -- kills the process group on timeout (rc = TIMEOUT_RC)
spawn(cmd, ...) -> Popen; stop_process(p) -> (rc, stderr)  -- background processes (own session)
Nginx(chunk_size=4096, app_conf='', apps=('live',))   -- context manager: .port, .url(app, name), .error_log()
make_media(path, seconds, ...) -> path                -- ffmpeg lavfi testsrc + sine
ffmpeg_publish(url, media, realtime, loop) -> Popen   -- ffmpeg -re -i media -c copy -f flv url
ffprobe_info(path_or_url, timeout, count_frames) -> dict
ffmpeg_decode(url_or_path, timeout, duration) -> dict -- decodes via -f framecrc, counts frames per stream
gst_launch(pipeline, timeout, ...) -> (rc, stdout, stderr)  -- GST_DEBUG=*:1 by default
rtmpdump(url, out_path, duration, timeout, live) -> (rc, stdout, stderr)  -- killed after duration
check(cond, msg), skip(reason), main(tests)           -- tiny runner: PASS/FAIL/SKIP lines + summary
build_dir(), source_dir(), tmp_path(name), have(tool), require(*tools)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

__all__ = [
    'TIMEOUT_RC', 'free_port', 'wait_port', 'run', 'spawn', 'stop_process', 'Nginx',
    'make_media', 'ffmpeg_publish', 'ffprobe_info', 'ffmpeg_decode', 'parse_framecrc',
    'gst_launch', 'gst_env', 'rtmpdump', 'check', 'skip', 'Skip', 'missing_peer', 'peers_required', 'main', 'build_dir',
    'source_dir', 'tmp_path', 'tmp_dir', 'have', 'require', 'log',
]

# A sanitized build's test env asks the gst-check tests to scan plugins
# in-process (tests/meson.build); the processes started here (launcher,
# gst-launch with the ASan runtime preloaded) use the normal scanner, and an
# in-process scan of every system plugin in a sanitized launcher is slow.
os.environ.pop('GST_REGISTRY_FORK', None)

TIMEOUT_RC = 124  # like coreutils timeout(1)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- paths

def build_dir() -> str:
    return os.environ.get('GRTMP_BUILD_DIR') or os.path.join(source_dir(), 'build')


def source_dir() -> str:
    return os.environ.get('GRTMP_SOURCE_DIR') or os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_TMP = None


def tmp_dir() -> str:
    """A per-process temporary directory, removed at exit (unless GRTMP_KEEP_TMP is set)."""
    global _TMP
    if _TMP is None:
        _TMP = tempfile.mkdtemp(prefix='grtmp-e2e-')
        if not os.environ.get('GRTMP_KEEP_TMP'):
            import atexit
            atexit.register(shutil.rmtree, _TMP, True)
    return _TMP


def tmp_path(name: str) -> str:
    return os.path.join(tmp_dir(), name)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None or os.path.exists(tool)


# ---------------------------------------------------------------- sockets

def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port that was free a moment ago (bind to port 0 and release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, host: str = '127.0.0.1', proc=None) -> bool:
    """Waits until something accepts TCP connections on host:port.

    Returns False on timeout, or early when `proc` (a Popen) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ---------------------------------------------------------------- processes

def _kill_group(p: subprocess.Popen, grace: float = 3.0, sig=signal.SIGTERM):
    """Signals the process group of `p` (started with start_new_session), then SIGKILL."""
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()


def _dec(b) -> str:
    if b is None:
        return ''
    if isinstance(b, str):
        return b
    return b.decode('utf-8', 'replace')


def run(cmd, timeout: float = 60.0, env: dict | None = None, input: bytes | None = None,
        cwd: str | None = None, binary: bool = False):
    """Runs `cmd` (list, or str for a shell command) and returns (rc, stdout, stderr).

    stdout/stderr are str (bytes when binary=True). On timeout the whole
    process group gets SIGTERM then SIGKILL, the output produced so far is
    returned, and rc is TIMEOUT_RC (124)."""
    shell = isinstance(cmd, str)
    p = subprocess.Popen(cmd, shell=shell, env=env, cwd=cwd, start_new_session=True,
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        _kill_group(p, grace=2.0)
        out, err = p.communicate()
        rc = TIMEOUT_RC
    if binary:
        return rc, out, err
    return rc, _dec(out), _dec(err)


def spawn(cmd, env: dict | None = None, cwd: str | None = None, stdout=None, name: str = 'proc'):
    """Starts a background process in its own session. stderr (and stdout unless
    given) go to a temp file so a chatty process never blocks on a pipe; read
    it with stop_process() or p.read_stderr()."""
    errf = tempfile.NamedTemporaryFile(prefix=f'{name}-', suffix='.log', dir=tmp_dir(), delete=False)
    p = subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=stdout if stdout is not None else errf, stderr=errf)
    p.stderr_path = errf.name
    errf.close()

    def read_stderr():
        try:
            with open(p.stderr_path, 'rb') as f:
                return _dec(f.read())
        except OSError:
            return ''
    p.read_stderr = read_stderr
    return p


def stop_process(p: subprocess.Popen, timeout: float = 5.0, sig=signal.SIGTERM):
    """Stops a process from spawn()/ffmpeg_publish() (its whole group) if still
    running; returns (returncode, stderr text)."""
    _kill_group(p, grace=timeout, sig=sig)
    err = p.read_stderr() if hasattr(p, 'read_stderr') else ''
    return p.returncode, err


# ---------------------------------------------------------------- nginx-rtmp

_NGINX_MODULE_CANDIDATES = [
    '/usr/lib/nginx/modules/ngx_rtmp_module.so',
    '/usr/share/nginx/modules/ngx_rtmp_module.so',
    '/usr/lib64/nginx/modules/ngx_rtmp_module.so',
]


def _find_nginx():
    exe = os.environ.get('GRTMP_NGINX') or shutil.which('nginx') or '/usr/sbin/nginx'
    mod = os.environ.get('GRTMP_NGINX_RTMP_MODULE')
    if not mod:
        mod = next((m for m in _NGINX_MODULE_CANDIDATES if os.path.exists(m)), None)
    return exe, mod


class Nginx:
    """nginx with the RTMP module on a free loopback port (single process:
    daemon off, master_process off), application(s) `live` with live on.

        with Nginx(chunk_size=4096) as ngx:
            ngx.port, ngx.url('live', 'name'), ngx.error_log()

    `app_conf` is extra directives placed inside every application block
    (e.g. 'wait_key on;'), `server_conf` extra directives in the server
    block. Raises RuntimeError with error.log content if it does not start."""

    def __init__(self, chunk_size: int = 4096, apps=('live',), app_conf: str = '',
                 server_conf: str = '', port: int | None = None, host: str = '127.0.0.1',
                 start_timeout: float = 10.0):
        self.chunk_size = chunk_size
        self.apps = tuple(apps)
        self.app_conf = app_conf
        self.server_conf = server_conf
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.proc = None
        self.dir = None

    def url(self, app: str = 'live', name: str = 'test') -> str:
        return f'rtmp://{self.host}:{self.port}/{app}/{name}'

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.dir, 'error.log'), 'rb') as f:
                return _dec(f.read())
        except (OSError, TypeError):
            return ''

    def config(self) -> str:
        exe, mod = _find_nginx()
        load = f'load_module {mod};\n' if mod else ''
        apps = ''.join(
            f'    application {a} {{ live on; record off; {self.app_conf} }}\n' for a in self.apps)
        return (f'{load}'
                f'daemon off;\nmaster_process off;\nworker_processes 1;\n'
                f'error_log {self.dir}/error.log info;\npid {self.dir}/nginx.pid;\n'
                f'events {{ worker_connections 256; }}\n'
                f'rtmp {{\n  server {{\n    listen {self.host}:{self.port};\n'
                f'    chunk_size {self.chunk_size};\n    {self.server_conf}\n{apps}  }}\n}}\n')

    def start(self):
        exe, mod = _find_nginx()
        if not have(exe):
            raise RuntimeError(f'nginx not found ({exe})')
        self.dir = tempfile.mkdtemp(prefix='nginx-', dir=tmp_dir())
        os.makedirs(os.path.join(self.dir, 'logs'), exist_ok=True)
        for attempt in range(3):
            if self.port is None or attempt > 0:
                self.port = free_port(self.host)
            conf = os.path.join(self.dir, 'nginx.conf')
            with open(conf, 'w') as f:
                f.write(self.config())
            self.proc = spawn([exe, '-p', self.dir + '/', '-c', conf], name='nginx')
            if wait_port(self.port, self.start_timeout, self.host, proc=self.proc):
                return self
            rc, err = stop_process(self.proc)
            text = self.error_log()
            if 'Address already in use' in text + err and attempt < 2:
                continue
            raise RuntimeError(f'nginx-rtmp failed to start (rc={rc}) on port {self.port}\n'
                               f'--- config ---\n{self.config()}\n--- error.log ---\n{text}\n'
                               f'--- stderr ---\n{err}')
        return self

    def stop(self):
        if self.proc is not None:
            # SIGTERM is nginx's fast shutdown; SIGQUIT (graceful) would wait for
            # connected RTMP clients.
            stop_process(self.proc, timeout=5.0, sig=signal.SIGTERM)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# ---------------------------------------------------------------- media

def make_media(path: str, seconds: float, video: bool = True, audio: bool = True,
               size: str = '320x240', fps: int = 25, gop: int = 25, vcodec: str = 'libx264',
               acodec: str = 'aac', fmt: str = 'flv', sample_rate: int = 44100,
               extra_args=None, timeout: float = 120.0) -> str:
    """Generates test media (lavfi testsrc + 440 Hz sine) with ffmpeg; returns path.
    Raises RuntimeError with ffmpeg's stderr on failure."""
    if not (video or audio):
        raise ValueError('make_media: need video or audio')
    cmd = ['ffmpeg', '-nostdin', '-hide_banner', '-loglevel', 'error', '-y']
    if video:
        cmd += ['-f', 'lavfi', '-i', f'testsrc=size={size}:rate={fps}']
    if audio:
        cmd += ['-f', 'lavfi', '-i', f'sine=frequency=440:sample_rate={sample_rate}']
    cmd += ['-t', str(seconds)]
    if video:
        cmd += ['-c:v', vcodec, '-g', str(gop), '-pix_fmt', 'yuv420p']
        if vcodec == 'libx264':
            cmd += ['-preset', 'veryfast']
    else:
        cmd += ['-vn']
    if audio:
        cmd += ['-c:a', acodec]
    else:
        cmd += ['-an']
    cmd += list(extra_args or [])
    cmd += ['-f', fmt, path]
    rc, out, err = run(cmd, timeout=timeout)
    if rc != 0 or not os.path.exists(path):
        raise RuntimeError(f'make_media failed (rc={rc}): {" ".join(cmd)}\n{err}')
    return path


def ffmpeg_publish(url: str, media_path: str, realtime: bool = True, loop: bool = False,
                   extra_args=None, loglevel: str = 'warning'):
    """Publishes `media_path` to `url` in the background (ffmpeg [-re] [-stream_loop -1]
    -i media -c copy -f flv url). Returns the Popen; stop it with stop_process(p),
    which also returns ffmpeg's stderr."""
    cmd = ['ffmpeg', '-nostdin', '-hide_banner', '-loglevel', loglevel]
    if realtime:
        cmd += ['-re']
    if loop:
        cmd += ['-stream_loop', '-1']
    cmd += ['-i', media_path, '-c', 'copy'] + list(extra_args or []) + ['-f', 'flv', url]
    p = spawn(cmd, name='ffmpeg-publish')
    p.cmd = cmd
    return p


def ffprobe_info(path_or_url: str, timeout: float = 30.0, count_frames: bool = False,
                 extra_args=None) -> dict:
    """ffprobe -show_streams -show_format as a dict:

        {'returncode', 'error', 'format_name', 'duration' (float|None),
         'streams': [{'index', 'codec_type', 'codec_name', 'width', 'height',
                      'sample_rate', 'channels', 'frames' (with count_frames), ...}],
         'video': first video stream dict or None, 'audio': first audio or None}

    For live URLs, count_frames reads until the stream ends (or the timeout)."""
    cmd = ['ffprobe', '-hide_banner', '-v', 'error', '-print_format', 'json',
           '-show_streams', '-show_format']
    if count_frames:
        cmd += ['-count_frames']
    cmd += list(extra_args or []) + [path_or_url]
    rc, out, err = run(cmd, timeout=timeout)
    info = {'returncode': rc, 'error': err.strip(), 'format_name': None, 'duration': None,
            'streams': [], 'video': None, 'audio': None, 'raw': None}
    try:
        j = json.loads(out) if out.strip() else {}
    except ValueError:
        j = {}
    info['raw'] = j
    fmt = j.get('format', {})
    info['format_name'] = fmt.get('format_name')
    try:
        info['duration'] = float(fmt['duration'])
    except (KeyError, TypeError, ValueError):
        pass
    for s in j.get('streams', []):
        d = {
            'index': s.get('index'),
            'codec_type': s.get('codec_type'),
            'codec_name': s.get('codec_name'),
            'profile': s.get('profile'),
            'width': s.get('width'),
            'height': s.get('height'),
            'pix_fmt': s.get('pix_fmt'),
            'sample_rate': int(s['sample_rate']) if s.get('sample_rate') else None,
            'channels': s.get('channels'),
            'avg_frame_rate': s.get('avg_frame_rate'),
            'duration': float(s['duration']) if s.get('duration') not in (None, 'N/A') else None,
            'frames': int(s['nb_read_frames']) if s.get('nb_read_frames') not in (None, 'N/A') else None,
        }
        info['streams'].append(d)
        if d['codec_type'] == 'video' and info['video'] is None:
            info['video'] = d
        if d['codec_type'] == 'audio' and info['audio'] is None:
            info['audio'] = d
    return info


def parse_framecrc(text: str) -> dict:
    """Parses ffmpeg -f framecrc output into {index: {'type', 'count', 'first_pts',
    'last_pts', 'tb', 'pts'}} (pts list in stream time base)."""
    streams = {}

    def st(i):
        return streams.setdefault(i, {'type': None, 'count': 0, 'first_pts': None,
                                      'last_pts': None, 'tb': None, 'pts': []})
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith('#'):
            m = re.match(r'#(\w+)\s+(\d+):\s*(.*)', line)
            if m:
                key, idx, val = m.group(1), int(m.group(2)), m.group(3).strip()
                if key == 'media_type':
                    st(idx)['type'] = val
                elif key == 'tb':
                    st(idx)['tb'] = val
            continue
        parts = [p.strip() for p in line.split(',')]
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        s = st(int(parts[0]))
        s['count'] += 1
        try:
            pts = int(parts[2])
        except ValueError:
            pts = None
        if pts is not None:
            if s['first_pts'] is None:
                s['first_pts'] = pts
            s['last_pts'] = pts
            s['pts'].append(pts)
    return streams


_ERROR_IGNORE = (
    # harmless at -v error when a live decode starts mid-GOP or is cut by -t
    'Last message repeated',
)


def ffmpeg_decode(url_or_path: str, timeout: float = 30.0, duration: float | None = None,
                  extra_input_args=None) -> dict:
    """Decodes everything with `ffmpeg -v error -i X -f framecrc -` (one line per
    decoded frame) and counts frames per stream. For live URLs give `duration`
    (output -t) or rely on the publisher ending; on timeout the partial
    counts are returned with timed_out=True.

        {'video_frames', 'audio_frames', 'errors': [stderr lines], 'returncode',
         'timed_out', 'streams': parse_framecrc(...)}"""
    cmd = ['ffmpeg', '-nostdin', '-hide_banner', '-v', 'error']
    cmd += list(extra_input_args or [])
    cmd += ['-i', url_or_path]
    if duration is not None:
        cmd += ['-t', str(duration)]
    cmd += ['-f', 'framecrc', '-']
    rc, out, err = run(cmd, timeout=timeout)
    streams = parse_framecrc(out)
    video = sum(s['count'] for s in streams.values() if s['type'] == 'video')
    audio = sum(s['count'] for s in streams.values() if s['type'] == 'audio')
    errors = [l for l in err.splitlines() if l.strip() and not any(i in l for i in _ERROR_IGNORE)]
    return {'video_frames': video, 'audio_frames': audio, 'errors': errors, 'returncode': rc,
            'timed_out': rc == TIMEOUT_RC, 'streams': streams, 'cmd': cmd}


# ---------------------------------------------------------------- gstreamer / rtmpdump

def gst_env(system_plugins: bool = True, debug: str | None = None, extra_env: dict | None = None) -> dict:
    """Environment for gst-launch. meson's test env sets GST_PLUGIN_SYSTEM_PATH_1_0=''
    (only the project's plugins); with system_plugins=True that is undone so
    system elements (x264enc, flvmux, rtmp2src, ...) are found next to the
    project's, and a separate registry file is used so the C++ gst tests'
    registry is not rebuilt back and forth."""
    env = dict(os.environ)
    if system_plugins and env.get('GST_PLUGIN_SYSTEM_PATH_1_0', None) == '':
        del env['GST_PLUGIN_SYSTEM_PATH_1_0']
        reg = env.get('GST_REGISTRY_1_0')
        if reg:
            env['GST_REGISTRY_1_0'] = os.path.splitext(reg)[0] + '-e2e.bin'
    if debug is not None:
        env['GST_DEBUG'] = debug
    elif 'GST_DEBUG' not in (extra_env or {}):
        env['GST_DEBUG'] = '*:1'
    env.setdefault('GST_DEBUG_NO_COLOR', '1')
    # scripts/sanitize.sh: gst-launch-1.0 and gst-inspect-1.0 are not built
    # with ASan, so the runtime is preloaded for them to load the sanitized
    # plugin. Memory errors and undefined behaviour are still fatal; leaks
    # are not checked in these processes (GStreamer's own one-time
    # allocations, the plugin scanner): our binaries check them.
    preload = env.get('GRTMP_ASAN_PRELOAD')
    if preload:
        env['LD_PRELOAD'] = preload
        env['ASAN_OPTIONS'] = env.get('ASAN_OPTIONS', '') + ':detect_leaks=0'
        # libproxy (GIO's proxy resolver module) throws C++ exceptions, which
        # a preloaded ASan runtime cannot intercept: resolve no proxies.
        env['GIO_USE_PROXY_RESOLVER'] = 'dummy'
    if extra_env:
        env.update(extra_env)
    return env


def gst_launch(pipeline, timeout: float = 60.0, eos_on_shutdown: bool = True,
               system_plugins: bool = True, debug: str | None = None, extra_env: dict | None = None):
    """Runs gst-launch-1.0 on a pipeline description: a str is split like a shell
    would (shlex; gst-launch escapes spaces inside one argv element, so the
    pipeline cannot be passed as a single argument), or a list of tokens.
    GST_DEBUG=*:1 unless `debug` is given. Returns (rc, stdout, stderr);
    rc TIMEOUT_RC on timeout."""
    cmd = ['gst-launch-1.0']
    if eos_on_shutdown:
        cmd.append('-e')
    cmd += shlex.split(pipeline) if isinstance(pipeline, str) else list(pipeline)
    return run(cmd, timeout=timeout, env=gst_env(system_plugins, debug, extra_env))


def rtmpdump(url: str, out_path: str = '/dev/null', duration: float | None = 2.0,
             timeout: float = 30.0, live: bool = True, extra_args=None):
    """rtmpdump -r url -o out [--live]. Returns (rc, stdout, stderr).

    rtmpdump's --stop is only a play() duration request, which nginx-rtmp (and
    most live servers) ignore, so `duration` is wall-clock: rtmpdump is killed
    after `duration` seconds and rc is then TIMEOUT_RC (expected for live).
    With duration=None it runs until the stream ends or `timeout`. rtmpdump
    itself exits 0 when complete, 2 when incomplete, 1 on error."""
    cmd = ['rtmpdump', '-r', url, '-o', out_path, '-m', str(int(max(timeout, 1)))]
    if live:
        cmd += ['--live']
    cmd += list(extra_args or [])
    return run(cmd, timeout=min(timeout, duration) if duration is not None else timeout)


# ---------------------------------------------------------------- runner

class Skip(Exception):
    pass


def skip(reason: str):
    """Ends the current test as skipped."""
    raise Skip(reason)


def peers_required() -> bool:
    """True when a missing peer must fail rather than skip: the README's test
    command (scripts/bootstrap.sh test, run by CI) installs every peer, so
    there a missing one is a broken setup, not an optional extra."""
    return os.environ.get('GRTMP_REQUIRE_PEERS', '') not in ('', '0')


def missing_peer(what: str):
    """Ends the current test because a peer (tool, GStreamer element) is not
    installed: a skip on a developer's machine, a failure under
    GRTMP_REQUIRE_PEERS=1."""
    if peers_required():
        raise AssertionError(f'missing peer: {what} (GRTMP_REQUIRE_PEERS=1: '
                             'scripts/bootstrap.sh deps installs it)')
    raise Skip(f'missing {what}')


def require(*tools):
    """Skips the current test unless every tool is on PATH (fails instead
    under GRTMP_REQUIRE_PEERS=1, see missing_peer)."""
    missing = [t for t in tools if not have(t)]
    if missing:
        missing_peer(', '.join(missing))


_failures: list = []


def check(cond, msg: str = 'check failed') -> bool:
    """Records a failure (does not stop the test) when cond is false."""
    if not cond:
        _failures.append(str(msg))
        log(f'  check failed: {msg}')
    return bool(cond)


def main(tests, argv=None):
    """Runs test functions (list of callables, or dict name -> callable), prints
    `PASS name`, `FAIL name: reason` or `SKIP name: reason` for each and a final
    `e2e: N passed, M failed[, K skipped]`. Names on the command line select
    tests. Exits 1 if any failed, 77 if all were skipped, else 0."""
    global _failures
    items = list(tests.items()) if isinstance(tests, dict) else [(t.__name__, t) for t in tests]
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        items = [(n, f) for n, f in items if n in argv]
    passed = failed = skipped = 0
    for name, fn in items:
        _failures = []
        t0 = time.monotonic()
        reason = None
        try:
            fn()
        except Skip as e:
            print(f'SKIP {name}: {e}', flush=True)
            skipped += 1
            continue
        except Exception as e:  # noqa: BLE001 - report any failure
            traceback.print_exc()
            reason = f'{type(e).__name__}: {e}'
        if reason is None and _failures:
            reason = '; '.join(_failures)
        dt = time.monotonic() - t0
        if reason is None:
            print(f'PASS {name} ({dt:.1f}s)', flush=True)
            passed += 1
        else:
            reason = reason.replace('\n', ' | ')
            print(f'FAIL {name}: {reason}', flush=True)
            failed += 1
    summary = f'e2e: {passed} passed, {failed} failed'
    if skipped:
        summary += f', {skipped} skipped'
    print(summary, flush=True)
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(77)
    sys.exit(0)


# ---------------------------------------------------------------- self-check

def _selfcheck():
    require('ffmpeg', 'ffprobe')

    def nginx_roundtrip():
        media = make_media(tmp_path('selfcheck.flv'), 3)
        fi = ffprobe_info(media, count_frames=True)
        print('media file:', {k: fi[k] for k in ('format_name', 'duration')},
              [(s['codec_name'], s['width'], s['height'], s['sample_rate'], s['channels'], s['frames'])
               for s in fi['streams']])
        check(fi['video'] and fi['video']['codec_name'] == 'h264', 'file: h264 video')
        check(fi['audio'] and fi['audio']['codec_name'] == 'aac', 'file: aac audio')
        check(fi['video'] and fi['video']['frames'] == 75, f"file: 75 video frames: {fi['video']}")
        d = ffmpeg_decode(media, timeout=60)
        print('file decode:', d['video_frames'], 'video,', d['audio_frames'], 'audio frames, errors', d['errors'])
        check(d['video_frames'] == 75, 'file decode: 75 video frames')
        with Nginx(chunk_size=4096) as ngx:
            print('nginx on port', ngx.port)
            url = ngx.url('live', 'selfcheck')
            pub = ffmpeg_publish(url, media, realtime=True, loop=True)
            try:
                time.sleep(1.0)
                info = ffprobe_info(url, timeout=20)
                print('live probe:', [(s['codec_name'], s['width'], s['height'], s['sample_rate'],
                                       s['channels']) for s in info['streams']], info['error'])
                check(info['video'] and info['video']['width'] == 320, 'live probe: 320 wide video')
                check(info['audio'] and info['audio']['sample_rate'] == 44100, 'live probe: 44100 Hz audio')
                r = ffmpeg_decode(url, timeout=30, duration=3)
                print('live decode (3 s):', r['video_frames'], 'video,', r['audio_frames'],
                      'audio frames, rc', r['returncode'], 'errors', r['errors'][:5])
                check(r['returncode'] == 0, f"live decode rc {r['returncode']}")
                # nginx starts a late player at the current frame (no wait_key): the
                # frames before the next keyframe do not decode.
                check(r['video_frames'] >= 40, f"live decode video frames {r['video_frames']}")
                check(r['audio_frames'] >= 100, f"live decode audio frames {r['audio_frames']}")
                if have('gst-launch-1.0'):
                    rc, out, err = gst_launch(
                        f'rtmp2src location={url} ! fakesink num-buffers=50',
                        timeout=30)
                    print('gst rtmp2src rc', rc, err.strip()[:200])
                    check(rc == 0, f'gst_launch rtmp2src rc {rc}: {err[-300:]}')
                if have('rtmpdump'):
                    out = tmp_path('dump.flv')
                    rc, _, err = rtmpdump(url, out, duration=1.5)
                    size = os.path.getsize(out) if os.path.exists(out) else 0
                    print('rtmpdump rc', rc, 'bytes', size)
                    check(size > 1000, f'rtmpdump wrote {size} bytes (rc {rc}) {err[-300:]}')
            finally:
                rc, err = stop_process(pub)
                print('publisher stopped rc', rc, err.strip()[-200:])
        rc, out, err = run(['sleep', '5'], timeout=0.5)
        check(rc == TIMEOUT_RC, f'run timeout rc {rc}')

    main([nginx_roundtrip])


if __name__ == '__main__':
    _selfcheck()
