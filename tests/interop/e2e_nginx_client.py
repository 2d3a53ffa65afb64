#!/usr/bin/env python3
"""grtmp-test-client (the library's Client) against nginx-rtmp.

nginx (libnginx-mod-rtmp) runs single-process on a free port with a temp
config: application `live` with `live on; wait_key on;` (so a late player's
first video frame is a keyframe, as our server does).

1. grtmp-test-client publish --realtime -> nginx -> grtmp-test-client play
   (joins 1 s in): the recording has h264/aac, decodes without an error, and
   its frames are byte-for-byte the published ones, contiguous to the end.
2. ffmpeg publishes (-re -c copy) -> nginx -> grtmp-test-client play: same checks.
3. A second publisher on a busy nginx stream: grtmp-test-client exits 5
   (NetStream.Publish.BadName) and the first publisher is not disturbed.

nginx sends StreamEOF (and no onStatus with play_restart off) when the
publisher leaves and keeps the player connected; Client::receive() keeps
waiting after that by contract, so grtmp-test-client play ends only at its
10 s receive timeout (exit 7, "timed out ... waiting for media"). That exit is
accepted here only when the recording reached the published end.
"""

from __future__ import annotations

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtmptest  # noqa: E402,F401
from rtmptest import Nginx, check, ffmpeg_decode, ffmpeg_publish, ffprobe_info, log, main, stop_process  # noqa: E402
from e2e_interop import (client_play, client_publish, compare_play_to_published, gen_media,  # noqa: E402
                         is_keyframe, is_seq_header, read_flv, tmp_path, wait_client, TAG_VIDEO)

SECONDS = 5


def nginx():
    return Nginx(chunk_size=4096, app_conf='wait_key on;')


def check_recording(what: str, published_path: str, out: str, play: dict):
    """Content checks of a grtmp-test-client recording of an nginx stream."""
    pub_tags = read_flv(published_path)['tags']
    if not check(os.path.exists(out) and os.path.getsize(out) > 13, f'{what}: no recording'):
        return
    rec = read_flv(out)
    check(not rec['error'] and not rec['truncated'], f'{what}: recording {rec["error"] or "truncated"}')
    # nginx rewrites onMetaData (meta on) and, with wait_key, may send audio
    # before the first keyframe: compare frames, not the metadata bytes.
    cmp = compare_play_to_published(pub_tags, rec['tags'], check_metadata_bytes=False, per_track=True)
    check(cmp['ok'], f'{what}: ' + '; '.join(cmp['problems']))
    first_v = next(((t, d) for t, _, d in rec['tags'] if t == TAG_VIDEO and not is_seq_header(t, d)), None)
    check(first_v is not None and is_keyframe(*first_v), f'{what}: first video frame is not a keyframe')
    info = ffprobe_info(out, count_frames=True)
    v, a = info['video'] or {}, info['audio'] or {}
    check(v.get('codec_name') == 'h264' and a.get('codec_name') == 'aac',
          f'{what}: codecs {v.get("codec_name")}/{a.get("codec_name")}')
    check(v.get('width') == 320 and v.get('height') == 240, f'{what}: size {v.get("width")}x{v.get("height")}')
    dec = ffmpeg_decode(out, timeout=60)
    check(not dec['errors'], f'{what}: decode errors {dec["errors"][:5]}')
    pictures = sum(1 for t, _, d in rec['tags'] if t == TAG_VIDEO and len(d) > 1 and d[1] == 1)
    check(dec['video_frames'] == pictures,
          f'{what}: decoded {dec["video_frames"]} video frames, the recording has {pictures} pictures')
    # End of play: exit 0, or the documented receive timeout after nginx's StreamEOF.
    ended_by_timeout = play['rc'] == 7 and 'waiting for media' in play['output']
    check(play['rc'] == 0 or (ended_by_timeout and cmp['ok']),
          f'{what}: grtmp-test-client play rc {play["rc"]}: {play["output"].strip()[-300:]}')
    print(f'  {what}: {cmp["frames"]} frames ({cmp["video_frames"]} video, {cmp["audio_frames"]} audio) = '
          f'published frames from {cmp["start_index"]} to the end '
          f'{"byte-equal" if cmp["ok"] else "MISMATCH"}; decoded {dec["video_frames"]} video / '
          f'{dec["audio_frames"]} audio, {len(dec["errors"])} errors; {v.get("codec_name")}/{a.get("codec_name")}; '
          f'play rc {play["rc"]}{" (receive timeout after StreamEOF)" if ended_by_timeout else ""}', flush=True)


def test_client_publish_client_play():
    media = gen_media('nginx-a.flv', SECONDS, 25)
    with nginx() as ngx:
        url = ngx.url('live', 'a')
        pub = client_publish(url, media, realtime=True)
        try:
            time.sleep(1.0)
            out = tmp_path('nginx-a-play.flv')
            play = client_play(url, out, timeout=40)
            pr = wait_client(pub, timeout=20)
        finally:
            stop_process(pub)
        errlog = ngx.error_log()
    check(pr['rc'] == 0 and pr['sent'] == len(read_flv(media)['tags']),
          f'publisher rc {pr["rc"]} sent {pr["sent"]}: {pr["output"][-300:]}')
    check_recording('client->nginx->client', media, out, play)
    if rtmptest._failures:
        log('--- nginx error.log ---\n' + '\n'.join(errlog.splitlines()[-30:]))


def test_ffmpeg_publish_client_play():
    media = gen_media('nginx-b.flv', SECONDS, 25)
    with nginx() as ngx:
        url = ngx.url('live', 'b')
        pub = ffmpeg_publish(url, media, realtime=True)
        try:
            time.sleep(1.0)
            out = tmp_path('nginx-b-play.flv')
            play = client_play(url, out, timeout=40)
            try:
                pub.wait(timeout=20)
            except Exception:
                pass
        finally:
            prc, perr = stop_process(pub)
        errlog = ngx.error_log()
    check(prc == 0, f'ffmpeg publisher rc {prc}: {perr[-300:]}')
    check_recording('ffmpeg->nginx->client', media, out, play)
    if rtmptest._failures:
        log('--- nginx error.log ---\n' + '\n'.join(errlog.splitlines()[-30:]))


def test_double_publish_bad_name():
    media = gen_media('nginx-c.flv', 4, 25)
    with nginx() as ngx:
        url = ngx.url('live', 'c')
        first = client_publish(url, media, realtime=True, name='pub-first')
        try:
            time.sleep(1.0)
            t = time.monotonic()
            second = wait_client(client_publish(url, media, realtime=True, name='pub-second'), timeout=20)
            dt = time.monotonic() - t
            r1 = wait_client(first, timeout=20)
        finally:
            stop_process(first)
    check(second['rc'] == 5, f'second publisher rc {second["rc"]} (want 5, BadName): {second["output"][-300:]}')
    check(dt < 5, f'second publisher took {dt:.1f} s to be refused')
    check(r1['rc'] == 0 and r1['sent'] == len(read_flv(media)['tags']),
          f'first publisher rc {r1["rc"]} sent {r1["sent"]}: {r1["output"][-300:]}')
    print(f'  second publisher: rc {second["rc"]} after {dt:.2f} s: '
          f'{(re.findall(r"error: .*", second["output"]) or [""])[-1]}; first publisher rc {r1["rc"]} '
          f'sent {r1["sent"]}', flush=True)


if __name__ == '__main__':
    main([test_client_publish_client_play, test_ffmpeg_publish_client_play, test_double_publish_bad_name])
