#!/usr/bin/env python3
"""Late join: players joining 2.5 s into a stream with a keyframe every 2 s.

With the GOP cache (default) a late player gets metadata, the sequence
headers and then the cached GOP starting at the keyframe at 2 s: its first
video frame is a keyframe, it decodes from the very first frame with zero
errors (`ffmpeg -v error` prints nothing), and its first keyframe arrives
well under 500 ms after it started connecting (grtmp-test-client
FIRST_KEYFRAME_MS: TCP connect -> first video keyframe, the join time a
viewer sees).
With --gop-cache 0 the player waits for the next keyframe (at 4 s, i.e.
~1.5 s after joining): still no decode error, but a longer join time.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import check, ffmpeg_decode, main, run, stop_process  # noqa: E402
from e2e_interop import (GrtmpServer, client_play, client_publish, describe_tag, gen_media,  # noqa: E402
                         is_keyframe, is_seq_header, log_line_time, media_tags, read_flv, tmp_path,
                         time_of_day, wait_client, wait_publish_started, TAG_VIDEO)

FPS = 25
GOP = 50           # keyframe every 2 s
SECONDS = 8
TOTAL = FPS * SECONDS
JOIN_AT = 2.5      # seconds into the publish

MEASURED = {}      # 'on'/'off' -> FIRST_KEYFRAME_MS


def expected_frames(join_s: float, gop_cache: bool) -> int:
    """Video frames from the player's first keyframe to the end: with the GOP
    cache the keyframe at or before its join point, without it the next one."""
    gop_s = GOP // FPS
    key_s = (join_s // gop_s) * gop_s if gop_cache else (join_s // gop_s + 1) * gop_s
    return max(0, TOTAL - int(key_s) * FPS)


def first_video_frame_info(path: str) -> dict:
    """ffprobe -show_frames of the first decoded video frame of a file."""
    rc, out, err = run(['ffprobe', '-v', 'error', '-select_streams', 'v', '-show_frames',
                        '-read_intervals', '%+#1', '-print_format', 'json', path], timeout=30)
    try:
        frames = json.loads(out).get('frames', [])
    except ValueError:
        frames = []
    return frames[0] if frames else {'error': err.strip() or f'ffprobe rc {rc}'}


def late_join(gop_cache: bool):
    mode = 'on' if gop_cache else 'off'
    media = gen_media('latejoin.flv', SECONDS, GOP)
    key = f'live/late-{mode}'
    with GrtmpServer('--gop-cache', '1' if gop_cache else '0', '--keep-players', '0',
                     name=f'server-late-{mode}') as srv:
        url = srv.url('live', f'late-{mode}')
        pub = client_publish(url, media, realtime=True)
        try:
            t_pub = wait_publish_started(srv, key)
            if not check(t_pub is not None, f'publish did not start: {srv.log_tail(10)}'):
                return
            time.sleep(max(0.0, JOIN_AT - (time_of_day() - t_pub)))
            # Two late joiners at once: ffmpeg straight from the server, and
            # grtmp-test-client recording every tag it receives.
            out = tmp_path(f'late-{mode}.flv')
            dec = {}
            th = threading.Thread(target=lambda: dec.update(ffmpeg_decode(url, timeout=30)))
            th.start()
            c = client_play(url, out, timeout=30)
            th.join()
            pr = wait_client(pub, timeout=20)
        finally:
            stop_process(pub)
        joins = srv.log_lines(r'subscriber added .*stream_key=' + re.escape(key))
        # Which subscriber is ffmpeg (flashVer 'LNX ...')?
        def join_of(flash_ver_rx):
            conns = [m.group(1) for m in re.finditer(r'client connected conn_id=(\S+) .*flash_ver=' + flash_ver_rx,
                                                     srv.log())]
            return [l for l in joins if any(f'conn_id={c} ' in l for c in conns)]
        ff_join = join_of('LNX')                      # ffmpeg's flashVer
        our_join = join_of(r'FMLE/3\.0 \(compatible; grtmp\)')
    # --- the recording
    check(pr['rc'] == 0 and pr['sent'], f'publisher rc {pr["rc"]}: {pr["output"][-300:]}')
    check(c['rc'] == 0, f'grtmp-test-client play rc {c["rc"]}: {c["output"][-300:]}')
    fk = c['first_key_ms']
    MEASURED[mode] = fk
    m = re.search(r'FIRST_KEYFRAME_MS (-?[\d.]+) CONNECT_MS (-?[\d.]+) PLAY_MS (-?[\d.]+)', c['output'])
    if check(m is not None, f'grtmp-test-client printed no join times: {c["output"][-300:]}'):
        print(f'  gop-cache {mode}: join time (TCP connect -> first keyframe) {m.group(1)} ms '
              f'(connected after {m.group(2)} ms, play started after {m.group(3)} ms)', flush=True)
    join_s = None
    if our_join and t_pub is not None:
        join_s = log_line_time(our_join[0]) - t_pub
    print(f'  gop-cache {mode}: joined {join_s:.2f} s into the stream; FIRST_KEYFRAME_MS {fk}'
          if join_s is not None else f'  gop-cache {mode}: FIRST_KEYFRAME_MS {fk}', flush=True)
    if not check(os.path.exists(out), 'no recording'):
        return
    f = read_flv(out)
    tags = f['tags']
    mt = media_tags(tags)
    vids = [(t, d) for t, ts, d in tags if t == TAG_VIDEO]
    first_v = next(((t, d) for t, d in vids if not is_seq_header(t, d)), None)
    check(vids and is_seq_header(*vids[0]), f'first video tag is not the sequence header: '
          f'{describe_tag(*vids[0]) if vids else "no video"}')
    check(first_v is not None and is_keyframe(*first_v),
          f'first video frame after the sequence header is not a keyframe (byte0>>4 = '
          f'{first_v[1][0] >> 4 if first_v else None})')
    # With the GOP cache the replay starts at the keyframe; without it the
    # player may get audio (decodable on its own) before the next video
    # keyframe, but never a video frame that needs an earlier picture.
    if gop_cache:
        check(mt and mt[0][0] == TAG_VIDEO and is_keyframe(mt[0][0], mt[0][2]),
              f'first media tag is not the video keyframe: {describe_tag(mt[0][0], mt[0][2]) if mt else None}')
    else:
        first_media_video = next(((t, d) for t, _, d in mt if t == TAG_VIDEO), None)
        check(first_media_video is not None and is_keyframe(*first_media_video),
              'first video frame sent is not a keyframe')
    ff = first_video_frame_info(out)
    check(ff.get('key_frame') == 1 and ff.get('pict_type') == 'I',
          f'first decoded video frame of the recording: key_frame={ff.get("key_frame")} '
          f'pict_type={ff.get("pict_type")} {ff.get("error", "")}')
    fdec = ffmpeg_decode(out, timeout=60)
    check(not fdec['errors'], f'decoding the recording printed errors: {fdec["errors"][:5]}')
    # Pictures only (an AVC end-of-sequence tag, packet type 2, ends ffmpeg's files).
    nv = sum(1 for t, _, d in mt if t == TAG_VIDEO and len(d) > 1 and d[1] == 1)
    # on: the cached GOP from the keyframe at 2 s; off: from the keyframe at 4 s.
    exp = TOTAL - (2 if gop_cache else 4) * FPS
    if join_s is not None:
        exp = expected_frames(join_s, gop_cache)
    check(nv == exp and fdec['video_frames'] == exp,
          f'recorded {nv} video frames, decoded {fdec["video_frames"]}, expected {exp}')
    # --- ffmpeg straight from the server: nothing printed at -v error
    check(dec.get('returncode') == 0, f'ffmpeg player rc {dec.get("returncode")}')
    check(not dec.get('errors'), f'ffmpeg -v error printed: {dec.get("errors", [])[:5]}')
    # ffmpeg starts slower than our client: its own join point decides its GOP.
    exp_ff = exp
    if ff_join and t_pub is not None:
        ff_s = log_line_time(ff_join[0]) - t_pub
        exp_ff = expected_frames(ff_s, gop_cache)
        print(f'  gop-cache {mode}: ffmpeg player joined {ff_s:.2f} s into the stream', flush=True)
    check(dec.get('video_frames') == exp_ff,
          f'ffmpeg decoded {dec.get("video_frames")} video frames, expected {exp_ff}')
    print(f'  gop-cache {mode}: recording {nv} video frames ({fdec["video_frames"]} decoded), first frame '
          f'key_frame={ff.get("key_frame")} pict_type={ff.get("pict_type")}; ffmpeg player '
          f'{dec.get("video_frames")} frames, {len(dec.get("errors", []))} error lines', flush=True)
    if fk is None:
        check(False, 'no FIRST_KEYFRAME_MS printed')
    elif gop_cache:
        check(0 <= fk < 500, f'first keyframe {fk} ms after connecting with the GOP cache (want < 500)')
    else:
        # The next keyframe is at 4 s; the player joined at ~2.5 s.
        check(fk >= 800, f'first keyframe {fk} ms after connecting without the GOP cache (want >= 800: '
                         f'the next keyframe is ~1.5 s away)')


def test_late_join_gop_cache():
    late_join(True)


def test_late_join_no_gop_cache():
    late_join(False)


def test_join_times_compared():
    on, off = MEASURED.get('on'), MEASURED.get('off')
    print(f'  join time (TCP connect -> first keyframe): GOP cache on {on} ms, off {off} ms', flush=True)
    check(on is not None and off is not None and off > on,
          f'join time with the GOP cache ({on} ms) is not below the one without ({off} ms)')


if __name__ == '__main__':
    main([test_late_join_gop_cache, test_late_join_no_gop_cache, test_join_times_compared])
