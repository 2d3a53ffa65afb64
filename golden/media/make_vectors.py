#!/usr/bin/env python3
"""Regenerates the golden/media vectors (and golden/flv/av_small.flv).

Needs ffmpeg with libx264, libx265, libopus (Debian 12: ffmpeg 5.1). Run from
anywhere: python3 golden/media/make_vectors.py. Outputs are byte-exact only
for the same encoder versions; the tests check fields, not encoder bytes.
"""
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FLV_DIR = os.path.join(HERE, "..", "flv")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def flv_tags(path):
    """Yields (type, timestamp, data, raw_tag_with_prev_size) for each tag."""
    b = open(path, "rb").read()
    assert b[:3] == b"FLV"
    pos = struct.unpack(">I", b[5:9])[0] + 4
    while pos + 11 <= len(b):
        t = b[pos] & 0x1F
        size = int.from_bytes(b[pos + 1:pos + 4], "big")
        ts = int.from_bytes(b[pos + 4:pos + 7], "big") | (b[pos + 7] << 24)
        data = b[pos + 11:pos + 11 + size]
        yield t, ts, data, b[pos:pos + 11 + size + 4]
        pos += 11 + size + 4


def write(name, data, folder=HERE):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")


def main():
    tmp = tempfile.mkdtemp()
    x = os.path.join(tmp, "x.flv")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30", "-t", "1", "-c:v", "libx264", "-f", "flv", x)
    video = [t for t in flv_tags(x) if t[0] == 9]
    write("avc_seq_header_1280x720.bin", video[0][2])
    write("avc_keyframe_head.bin", video[1][2][:64])  # first coded frame (an IDR), first 64 bytes

    # More SPS shapes: 4:2:0 with frame cropping (1080 -> 1088 coded rows) and
    # interlaced (frame_mbs_only_flag 0). (x264 puts custom scaling matrices in
    # the PPS, so SPS scaling lists are covered by a hand-built SPS in the test.)
    for name, size, extra in [
        ("avc_seq_header_1920x1080_crop.bin", "1920x1080", ["-pix_fmt", "yuv420p"]),
        ("avc_seq_header_720x576_interlaced.bin", "720x576",
         ["-pix_fmt", "yuv420p", "-flags", "+ildct+ilme", "-x264-params", "tff=1"]),
    ]:
        v = os.path.join(tmp, "v.flv")
        ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate=25", "-t", "0.2", "-c:v", "libx264",
               *extra, "-f", "flv", v)
        write(name, [t for t in flv_tags(v) if t[0] == 9][0][2])

    a = os.path.join(tmp, "a.flv")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100", "-t", "1", "-c:a", "aac", "-f", "flv", a)
    audio = [t for t in flv_tags(a) if t[0] == 8]
    write("aac_seq_header_44100_mono.bin", audio[0][2])
    write("aac_raw_frame_head.bin", audio[1][2][:16])

    # HEVC: Enhanced RTMP SequenceStart header (hand-made: 0x90 = IsExHeader |
    # FrameType 1 << 4 | PacketType 0, FourCC 'hvc1') + the hvcC record that
    # libx265 wrote into an MP4.
    m = os.path.join(tmp, "h.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-t", "0.2", "-c:v", "libx265",
           "-x265-params", "log-level=error", "-tag:v", "hvc1", m)
    mp4 = open(m, "rb").read()
    i = mp4.index(b"hvcC")
    size = struct.unpack(">I", mp4[i - 4:i])[0]
    hvcc = mp4[i + 4:i - 4 + size]
    write("hevc_ex_seq_start.bin", bytes([0x90]) + b"hvc1" + hvcc)

    # Opus: Enhanced audio SequenceStart (hand-made: 0x90 = SoundFormat 9 << 4 |
    # AudioPacketType 0, FourCC 'Opus') + the OpusHead that libopus wrote into Ogg.
    o = os.path.join(tmp, "o.ogg")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000", "-ac", "2", "-t", "0.2",
           "-c:a", "libopus", o)
    ogg = open(o, "rb").read()
    j = ogg.index(b"OpusHead")
    write("opus_ex_seq_start.bin", bytes([0x90]) + b"Opus" + ogg[j:j + 19])

    # A small A/V FLV for the tag parser (golden/flv).
    f = os.path.join(tmp, "av.flv")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=22050", "-t", "0.5", "-c:v", "libx264", "-g", "5",
           "-c:a", "aac", "-b:a", "32k", "-f", "flv", f)
    write("av_small.flv", open(f, "rb").read(), FLV_DIR)
    # FLV file headers (+ PreviousTagSize0) as ffmpeg writes them.
    write("header_av.bin", open(f, "rb").read()[:13], FLV_DIR)
    write("header_a.bin", open(a, "rb").read()[:13], FLV_DIR)
    write("header_v.bin", open(x, "rb").read()[:13], FLV_DIR)
    # An audio tag whose timestamp needs the extended byte (>= 2^24 ms).
    e = os.path.join(tmp, "e.flv")
    ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "0.1", "-c:a", "aac",
           "-output_ts_offset", "20000", "-f", "flv", e)
    tags = [t for t in flv_tags(e) if t[0] == 8]
    ext = [t for t in tags if t[1] >= (1 << 24)]
    write("tag_audio_ext_ts.bin", ext[1][3] if len(ext) > 1 else ext[0][3], FLV_DIR)
    write("tag_video_avc_seq.bin", video[0][3], FLV_DIR)


if __name__ == "__main__":
    main()
