#!/usr/bin/env python3
"""Three streams at once, three players each, byte-exact delivery, no cross-talk.

Three different FLV files (different picture sizes, so every payload differs)
are published at the same time with grtmp-test-client --realtime; each
stream gets three grtmp-test-client players joining at different points
(1.0, 1.7 and 2.6 s in). Every player's recording must hold the published
onMetaData and sequence headers (byte-equal) before its first frame, and
then exactly the published audio/video payloads from a keyframe to the end
of the stream, in order (a contiguous suffix of the published frames), with
timestamps kept up to a constant offset. A payload of another stream in a
recording is cross-talk.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rtmptest import check, main, stop_process  # noqa: E402
from e2e_interop import (GrtmpServer, client_play_spawn, client_publish, compare_play_to_published,  # noqa: E402
                         gen_media, media_tags, read_flv, time_of_day, tmp_path, wait_client,
                         wait_publish_started)

STREAMS = [('s1', '320x240', 440), ('s2', '352x288', 660), ('s3', '256x192', 880)]
JOINS = [1.0, 1.7, 2.6]  # seconds into the publish
SECONDS = 6


def test_three_streams_three_players_each():
    files = {name: gen_media(f'multi-{name}.flv', SECONDS, 25, size=size, freq=freq) for name, size, freq in STREAMS}
    published = {name: read_flv(path)['tags'] for name, path in files.items()}
    payload_owner = {}
    for name, tags in published.items():
        for t, _, d in media_tags(tags):
            payload_owner.setdefault(d, set()).add(name)
    # Only a payload unique to one stream identifies it (e.g. AVC end-of-sequence tags are identical).
    payload_owner = {d: o for d, o in payload_owner.items() if len(o) == 1}
    with GrtmpServer('--keep-players', '0', name='server-multi') as srv:
        pubs, players = {}, []
        try:
            for name, *_ in STREAMS:
                pubs[name] = client_publish(srv.url('live', name), files[name], realtime=True, name=f'pub-{name}')
            t0 = {}
            for name, *_ in STREAMS:
                t0[name] = wait_publish_started(srv, f'live/{name}')
                check(t0[name] is not None, f'{name}: publish did not start')
            start = min(t for t in t0.values() if t is not None) if any(t0.values()) else time_of_day()
            for j, at in enumerate(JOINS):
                time.sleep(max(0.0, at - (time_of_day() - start)))
                for name, *_ in STREAMS:
                    out = tmp_path(f'multi-{name}-p{j}.flv')
                    players.append((name, j, out, client_play_spawn(srv.url('live', name), out, name=f'play-{name}-{j}')))
            results = [(name, j, out, wait_client(p, timeout=40)) for name, j, out, p in players]
            pres = {name: wait_client(p, timeout=30) for name, p in pubs.items()}
        finally:
            for p in list(pubs.values()) + [p for *_, p in players]:
                stop_process(p)
        check(srv.alive(), 'server died')
    st = srv.stats
    print(f'  server stats: {st}', flush=True)
    for name, r in pres.items():
        check(r['rc'] == 0 and r['sent'] == len(published[name]),
              f'{name}: publisher rc {r["rc"]} sent {r["sent"]} of {len(published[name])}: {r["output"][-200:]}')
    for name, j, out, r in results:
        who = f'{name}/player{j}'
        check(r['rc'] == 0, f'{who}: play rc {r["rc"]}: {r["output"][-300:]}')
        if not check(os.path.exists(out), f'{who}: no recording'):
            continue
        rec = read_flv(out)
        check(not rec['error'] and not rec['truncated'], f'{who}: recording {rec["error"] or "truncated"}')
        check(r['tags'] == len(rec['tags']), f'{who}: TAGS {r["tags"]} but {len(rec["tags"])} tags in the file')
        cmp = compare_play_to_published(published[name], rec['tags'])
        foreign = [o for t, _, d in media_tags(rec['tags']) for o in payload_owner.get(d, ()) if o != name]
        check(not foreign, f'{who}: {len(foreign)} frames of other streams ({sorted(set(foreign))})')
        check(cmp['ok'], f'{who}: ' + '; '.join(cmp['problems']))
        # docs/configuration.md: timestamps are the publisher's; the cached
        # sequence headers carry the first cached frame's timestamp and
        # onMetaData goes at 0 (where FLV readers expect script data).
        check(cmp['ts_offset'] == 0, f'{who}: timestamps shifted by {cmp["ts_offset"]} ms from the published ones')
        mt = media_tags(rec['tags'])
        first_ts = mt[0][1] if mt else None
        pre = rec['tags'][:rec['tags'].index(mt[0])] if mt else []
        header_ts = sorted({ts for t, ts, d in pre if t != 18})
        script_ts = sorted({ts for t, ts, d in pre if t == 18})
        check(header_ts == [first_ts], f'{who}: sequence header timestamps {header_ts}, first frame at {first_ts}')
        check(script_ts in ([0], []), f'{who}: onMetaData timestamps {script_ts} (want 0)')
        print(f'  {who}: {cmp["frames"]} frames ({cmp["video_frames"]} video, {cmp["audio_frames"]} audio) = '
              f'published frames {cmp["start_index"]}..{cmp["published_frames"] - 1}, '
              f'{"byte-equal" if cmp["ok"] else "MISMATCH"}, cross-talk {len(foreign)}', flush=True)
    check(st.get('dropped', 0) == 0, f'server dropped {st.get("dropped")} messages')
    check(st.get('connections_total') == len(STREAMS) * (1 + len(JOINS)),
          f'connections_total {st.get("connections_total")}, expected {len(STREAMS) * (1 + len(JOINS))}')


if __name__ == '__main__':
    main([test_three_streams_three_players_each])
