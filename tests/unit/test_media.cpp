// Media inspection: real x264 / AAC / x265 / libopus headers from
// golden/media, hand-built Enhanced RTMP headers, and hand-built SPS that
// exercise the scaling-list, cropping, interlace and emulation-prevention
// paths of the SPS parser.
#include <gtest/gtest.h>

#include <glib.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "grtmp/media.h"

using namespace grtmp::media;
using Buf = std::vector<uint8_t>;

namespace {

Buf golden(const std::string& name) {
  std::ifstream f(std::string(GOLDEN_DIR) + "/media/" + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing golden/media/" << name;
  return Buf(std::istreambuf_iterator<char>(f), {});
}

Buf cat(std::initializer_list<Buf> parts) {
  Buf out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Buf fcc(const char* s) { return Buf(s, s + 4); }

VideoInfo video(const Buf& b) {
  VideoInfo v;
  inspect_video(b.data(), b.size(), v);
  return v;
}

AudioInfo audio(const Buf& b) {
  AudioInfo a;
  inspect_audio(b.data(), b.size(), a);
  return a;
}

// MSB-first bit writer with exp-Golomb codes (the test's own encoder).
struct BitWriter {
  Buf out;
  size_t nbits = 0;
  void bit(uint32_t b) {
    if (nbits % 8 == 0) out.push_back(0);
    if (b) out.back() |= uint8_t(0x80 >> (nbits % 8));
    nbits++;
  }
  void u(int n, uint32_t v) {
    for (int i = n - 1; i >= 0; i--) bit((v >> i) & 1);
  }
  void ue(uint32_t v) {
    uint64_t x = uint64_t(v) + 1;
    int len = 64 - __builtin_clzll(x);
    u(len - 1, 0);
    for (int i = len - 1; i >= 0; i--) bit(uint32_t(x >> i) & 1);
  }
  void se(int32_t v) { ue(v > 0 ? uint32_t(2 * v - 1) : uint32_t(-2 * int64_t(v))); }
  void trailing() {
    bit(1);
    while (nbits % 8) bit(0);
  }
};

// Inserts emulation prevention bytes (00 00 0x -> 00 00 03 0x for x <= 3).
Buf escape(const Buf& rbsp) {
  Buf out;
  int zeros = 0;
  for (uint8_t b : rbsp) {
    if (zeros >= 2 && b <= 3) {
      out.push_back(3);
      zeros = 0;
    }
    out.push_back(b);
    zeros = b == 0 ? zeros + 1 : 0;
  }
  return out;
}

struct Sps {
  uint8_t profile = 100;
  uint32_t chroma = 1;
  bool separate_planes = false;
  bool scaling = false;
  uint32_t poc_type = 0;
  uint32_t w_mbs = 80, h_units = 45;
  bool frame_mbs_only = true;
  uint32_t crop[4] = {0, 0, 0, 0};  // left right top bottom
};

bool high_profile(uint8_t p) {
  for (int h : {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
    if (p == h) return true;
  return false;
}

// Writes one scaling list with deltas; kind 0: explicit varied values,
// 1: "use default" (next scale 0 at once), 2: stops midway (next scale 0).
void scaling_list(BitWriter& w, int size, int kind) {
  int last = 8, next = 8;
  for (int j = 0; j < size; j++) {
    if (next != 0) {
      int delta = kind == 1 ? -8 : kind == 2 ? (j == 0 ? 4 : j == 1 ? -12 : 0) : (j % 5) - 2 + (j % 7 == 3 ? 100 : 0);
      if (delta > 127) delta -= 256;
      w.se(delta);
      next = (last + delta + 256) % 256;
    }
    last = next == 0 ? last : next;
  }
}

// GRTMP_DUMP_SPS=path: appends each hand-built SPS as Annex B (for checking
// them with an independent parser, e.g. ffmpeg -bsf:v trace_headers).
void dump_sps(const Buf& sps) {
  const char* path = g_getenv("GRTMP_DUMP_SPS");
  if (!path) return;
  FILE* f = fopen(path, "ab");
  if (!f) return;
  const uint8_t sc[4] = {0, 0, 0, 1};
  fwrite(sc, 1, 4, f);
  fwrite(sps.data(), 1, sps.size(), f);
  fclose(f);
}

// Returns a whole SPS NAL unit (header byte 0x67 + escaped RBSP).
Buf make_sps(const Sps& s, size_t* rbsp_size = nullptr) {
  BitWriter w;
  w.u(8, s.profile);
  w.u(8, 0);   // constraint flags
  w.u(8, 31);  // level
  w.ue(0);     // sps id
  if (high_profile(s.profile)) {
    w.ue(s.chroma);
    if (s.chroma == 3) w.bit(s.separate_planes);
    w.ue(0);
    w.ue(0);
    w.bit(0);
    w.bit(s.scaling);
    if (s.scaling) {
      int lists = s.chroma != 3 ? 8 : 12;
      for (int i = 0; i < lists; i++) {
        bool present = i % 3 != 1;
        w.bit(present);
        if (present) scaling_list(w, i < 6 ? 16 : 64, i % 3 == 2 ? (i % 2 ? 1 : 2) : 0);
      }
    }
  }
  w.ue(0);  // log2_max_frame_num_minus4
  w.ue(s.poc_type);
  if (s.poc_type == 0) {
    w.ue(2);
  } else if (s.poc_type == 1) {
    w.bit(0);
    w.se(16384);  // ue(32767): 15 zeros, 1, 15 zeros ...
    w.se(16384);  // ... so 30 zero bits in a row: needs emulation prevention
    w.ue(2);
    w.se(1);
    w.se(-1);
  }
  w.ue(4);  // max_num_ref_frames
  w.bit(0);
  w.ue(s.w_mbs - 1);
  w.ue(s.h_units - 1);
  w.bit(s.frame_mbs_only);
  if (!s.frame_mbs_only) w.bit(1);
  w.bit(1);  // direct_8x8_inference
  bool crop = s.crop[0] || s.crop[1] || s.crop[2] || s.crop[3];
  w.bit(crop);
  if (crop)
    for (uint32_t c : s.crop) w.ue(c);
  w.bit(0);  // vui
  w.trailing();
  if (rbsp_size) *rbsp_size = w.out.size();
  Buf nal = cat({Buf{0x67}, escape(w.out)});
  dump_sps(nal);
  return nal;
}

Buf avc_config(const std::vector<Buf>& sps, const std::vector<Buf>& pps) {
  Buf c = {1, sps.empty() ? uint8_t(66) : sps[0][1], 0, 31, 0xff, uint8_t(0xe0 | sps.size())};
  for (auto& s : sps) {
    c.push_back(uint8_t(s.size() >> 8));
    c.push_back(uint8_t(s.size()));
    c.insert(c.end(), s.begin(), s.end());
  }
  c.push_back(uint8_t(pps.size()));
  for (auto& p : pps) {
    c.push_back(uint8_t(p.size() >> 8));
    c.push_back(uint8_t(p.size()));
    c.insert(c.end(), p.begin(), p.end());
  }
  return c;
}

AvcConfig avc_of(const Buf& config) {
  AvcConfig c;
  EXPECT_TRUE(parse_avc_config(config.data(), config.size(), c));
  return c;
}

}  // namespace

// ---- legacy AVC from x264 --------------------------------------------------

TEST(MediaAvc, X264SequenceHeader1280x720) {
  Buf b = golden("avc_seq_header_1280x720.bin");
  VideoInfo v = video(b);
  EXPECT_TRUE(v.valid);
  EXPECT_FALSE(v.enhanced);
  EXPECT_EQ(v.frame_type, FrameType::Key);
  EXPECT_EQ(v.codec_id, kVideoAvc);
  EXPECT_EQ(v.fourcc, fourcc('a', 'v', 'c', '1'));
  EXPECT_EQ(v.packet_type, 0);
  EXPECT_TRUE(v.sequence_header);
  EXPECT_FALSE(v.keyframe);
  EXPECT_FALSE(v.end_of_sequence);
  EXPECT_EQ(v.composition_time, 0);
  EXPECT_EQ(v.header_size, 5u);
  EXPECT_EQ(video_codec_name(v), "H264");
  AvcConfig c;
  ASSERT_TRUE(parse_avc_config(b.data() + v.header_size, b.size() - v.header_size, c));
  EXPECT_EQ(c.profile, 244);  // testsrc is RGB: x264 picks High 4:4:4 Predictive
  EXPECT_EQ(c.compatibility, 0);
  EXPECT_EQ(c.level, 31);
  EXPECT_EQ(c.nal_length_size, 4);
  EXPECT_EQ(c.sps_count, 1);
  EXPECT_EQ(c.pps_count, 1);
  EXPECT_EQ(c.width, 1280u);
  EXPECT_EQ(c.height, 720u);
}

TEST(MediaAvc, X264CroppedAndInterlaced) {
  Buf b = golden("avc_seq_header_1920x1080_crop.bin");
  AvcConfig c;
  ASSERT_TRUE(parse_avc_config(b.data() + 5, b.size() - 5, c));
  EXPECT_EQ(c.profile, 100);
  EXPECT_EQ(c.level, 40);
  EXPECT_EQ(c.width, 1920u);
  EXPECT_EQ(c.height, 1080u);  // 1088 coded rows, 8 cropped
  b = golden("avc_seq_header_720x576_interlaced.bin");
  ASSERT_TRUE(parse_avc_config(b.data() + 5, b.size() - 5, c));
  EXPECT_EQ(c.profile, 100);
  EXPECT_EQ(c.level, 30);
  EXPECT_EQ(c.width, 720u);
  EXPECT_EQ(c.height, 576u);  // frame_mbs_only_flag 0: 18 map units of 32 rows
}

TEST(MediaAvc, X264KeyframeHead) {
  Buf b = golden("avc_keyframe_head.bin");
  VideoInfo v = video(b);
  EXPECT_TRUE(v.valid);
  EXPECT_TRUE(v.keyframe);
  EXPECT_FALSE(v.sequence_header);
  EXPECT_EQ(v.packet_type, 1);
  EXPECT_EQ(v.composition_time, 67);  // B-frames: 2 frames at 30 fps
  EXPECT_EQ(v.header_size, 5u);
  // The payload starts with a 4-byte NALU length, then an SEI NAL (type 6).
  EXPECT_EQ(b[v.header_size + 4] & 0x1f, 6);
}

TEST(MediaAvc, HandMadeVariants) {
  VideoInfo v = video({0x27, 0x01, 0xff, 0xff, 0xfe, 0x00});
  EXPECT_TRUE(v.valid);
  EXPECT_EQ(v.frame_type, FrameType::Inter);
  EXPECT_FALSE(v.keyframe);
  EXPECT_EQ(v.composition_time, -2);
  v = video({0x17, 0x01, 0x7f, 0xff, 0xff});
  EXPECT_EQ(v.composition_time, 0x7fffff);
  v = video({0x17, 0x02, 0x00, 0x00, 0x00});
  EXPECT_TRUE(v.end_of_sequence);
  EXPECT_FALSE(v.keyframe);
  EXPECT_FALSE(v.sequence_header);
  v = video({0x37, 0x01, 0, 0, 0});
  EXPECT_EQ(v.frame_type, FrameType::DisposableInter);
  // Legacy HEVC (codec id 12, the pre-E-RTMP extension) has the AVC layout.
  v = video({0x1c, 0x00, 0, 0, 0, 1});
  EXPECT_TRUE(v.sequence_header);
  EXPECT_EQ(v.fourcc, fourcc('h', 'v', 'c', '1'));
  EXPECT_EQ(video_codec_name(v), "HEVC");
  EXPECT_EQ(v.header_size, 5u);
  // Truncated, empty, reserved frame types.
  EXPECT_FALSE(video({0x17, 0x01, 0x00}).valid);
  VideoInfo e;
  EXPECT_FALSE(inspect_video(nullptr, 0, e));
  EXPECT_FALSE(video({0x07, 0x01, 0, 0, 0}).valid);
  EXPECT_FALSE(video({0x67, 0x01, 0, 0, 0}).valid);
}

TEST(MediaVideo, CommandFrameIsNotAKeyframe) {
  VideoInfo v = video({0x57, 0x00});
  EXPECT_TRUE(v.valid);
  EXPECT_EQ(v.frame_type, FrameType::Command);
  EXPECT_FALSE(v.keyframe);
  EXPECT_FALSE(v.sequence_header);
  EXPECT_EQ(v.header_size, 1u);
  v = video({0x52, 0x01});  // H.263 command frame
  EXPECT_FALSE(v.keyframe);
  // Enhanced: frame type 5, a command byte and no FourCC.
  v = video({0xd1, 0x00});
  EXPECT_TRUE(v.valid);
  EXPECT_TRUE(v.enhanced);
  EXPECT_EQ(v.frame_type, FrameType::Command);
  EXPECT_FALSE(v.keyframe);
  EXPECT_EQ(v.fourcc, 0u);
  EXPECT_EQ(v.header_size, 1u);
  EXPECT_FALSE(video({0xd1}).valid);
}

TEST(MediaVideo, OtherLegacyCodecs) {
  struct { uint8_t b0; const char* name; bool key; } cases[] = {
      {0x12, "H263", true}, {0x22, "H263", false}, {0x14, "VP6", true}, {0x24, "VP6", false},
      {0x15, "VP6A", true}, {0x13, "ScreenVideo", true}, {0x16, "ScreenVideo2", true},
      {0x19, "unknown(9)", true},
  };
  for (auto& c : cases) {
    VideoInfo v = video({c.b0, 0x00, 0x11});
    EXPECT_TRUE(v.valid) << c.name;
    EXPECT_EQ(v.header_size, 1u) << c.name;
    EXPECT_EQ(v.keyframe, c.key) << c.name;
    EXPECT_EQ(v.codec_id, c.b0 & 0x0f);
    EXPECT_EQ(video_codec_name(v), c.name);
  }
}

// ---- SPS parser on hand-built SPS ------------------------------------------

TEST(MediaSps, ScalingListsPocType1AndEmulationPrevention) {
  Sps s;
  s.scaling = true;
  s.poc_type = 1;
  s.w_mbs = 80;
  s.h_units = 68;
  s.crop[1] = 4;  // right: 4 * 2 = 8 px
  s.crop[3] = 4;  // bottom: 4 * 2 = 8 rows
  size_t rbsp = 0;
  Buf sps = make_sps(s, &rbsp);
  ASSERT_GT(sps.size(), rbsp + 1) << "the SPS should need emulation prevention bytes";
  AvcConfig c = avc_of(avc_config({sps}, {{0x68, 0xce, 0x38, 0x80}}));
  EXPECT_EQ(c.profile, 100);
  EXPECT_EQ(c.width, 1272u);
  EXPECT_EQ(c.height, 1080u);
}

TEST(MediaSps, Chroma444With12ScalingLists) {
  Sps s;
  s.profile = 244;
  s.chroma = 3;
  s.scaling = true;
  s.w_mbs = 80;
  s.h_units = 45;
  s.crop[1] = 3;  // 4:4:4: crop unit 1
  AvcConfig c = avc_of(avc_config({make_sps(s)}, {{0x68, 0xee}}));
  EXPECT_EQ(c.width, 1277u);
  EXPECT_EQ(c.height, 720u);
}

TEST(MediaSps, SeparateColourPlanesInterlaced) {
  Sps s;
  s.chroma = 3;
  s.separate_planes = true;  // ChromaArrayType 0: crop unit 1 x (2 - frame_mbs_only)
  s.w_mbs = 45;
  s.h_units = 18;
  s.frame_mbs_only = false;
  s.crop[1] = 2;
  s.crop[3] = 2;
  AvcConfig c = avc_of(avc_config({make_sps(s)}, {{0x68}}));
  EXPECT_EQ(c.width, 718u);
  EXPECT_EQ(c.height, 572u);
}

TEST(MediaSps, BaselineInterlaced420AndHigh422) {
  Sps s;
  s.profile = 66;  // no chroma_format_idc in the SPS: 4:2:0
  s.poc_type = 2;
  s.w_mbs = 45;
  s.h_units = 18;
  s.frame_mbs_only = false;
  s.crop[0] = 1;
  s.crop[3] = 2;  // unit 2 * 2 rows
  AvcConfig c = avc_of(avc_config({make_sps(s)}, {{0x68}}));
  EXPECT_EQ(c.width, 718u);
  EXPECT_EQ(c.height, 568u);

  Sps h;
  h.profile = 122;
  h.chroma = 2;  // 4:2:2: SubWidthC 2, SubHeightC 1
  h.w_mbs = 120;
  h.h_units = 68;
  h.crop[3] = 8;
  c = avc_of(avc_config({make_sps(h)}, {{0x68}}));
  EXPECT_EQ(c.width, 1920u);
  EXPECT_EQ(c.height, 1080u);
}

TEST(MediaSps, CountsAndBadInput) {
  Sps s;
  Buf sps = make_sps(s);
  AvcConfig c = avc_of(avc_config({sps, sps}, {{0x68, 1}, {0x68, 2}, {0x68, 3}}));
  EXPECT_EQ(c.sps_count, 2);
  EXPECT_EQ(c.pps_count, 3);
  EXPECT_EQ(c.width, 1280u);
  EXPECT_EQ(c.height, 720u);
  // An SPS that cannot be parsed: the record still parses, size unknown.
  c = avc_of(avc_config({{0x67, 0x64, 0x00}}, {{0x68}}));
  EXPECT_EQ(c.sps_count, 1);
  EXPECT_EQ(c.width, 0u);
  EXPECT_EQ(c.height, 0u);
  // Bad version, truncated records.
  Buf good = avc_config({sps}, {{0x68, 0xce}});
  Buf bad = good;
  bad[0] = 0;
  AvcConfig d;
  EXPECT_FALSE(parse_avc_config(bad.data(), bad.size(), d));
  for (size_t n = 0; n < good.size(); n++)
    EXPECT_FALSE(parse_avc_config(good.data(), n, d)) << n;
  EXPECT_TRUE(parse_avc_config(good.data(), good.size(), d));
}

// ---- Enhanced RTMP video ---------------------------------------------------

TEST(MediaExVideo, HevcSequenceStartFromX265) {
  Buf b = golden("hevc_ex_seq_start.bin");
  VideoInfo v = video(b);
  EXPECT_TRUE(v.valid);
  EXPECT_TRUE(v.enhanced);
  EXPECT_EQ(v.frame_type, FrameType::Key);
  EXPECT_EQ(v.codec_id, 0);
  EXPECT_EQ(v.fourcc, fourcc('h', 'v', 'c', '1'));
  EXPECT_EQ(v.packet_type, uint8_t(ExVideoPacketType::SequenceStart));
  EXPECT_TRUE(v.sequence_header);
  EXPECT_FALSE(v.keyframe);
  EXPECT_FALSE(v.multitrack);
  EXPECT_EQ(v.header_size, 5u);
  EXPECT_EQ(video_codec_name(v), "HEVC");
  // HEVCDecoderConfigurationRecord: configurationVersion 1; general_profile_idc
  // 4 (format range extensions: testsrc is RGB, so x265 encodes 4:4:4).
  EXPECT_EQ(b[5], 1);
  EXPECT_EQ(b[6] & 0x1f, 4);
}

TEST(MediaExVideo, CodedFramesCompositionTime) {
  Buf nal = {0, 0, 0, 2, 0x26, 0x01};
  // hvc1 CodedFrames: SI24 composition time follows the FourCC.
  VideoInfo v = video(cat({{0x91}, fcc("hvc1"), {0x00, 0x00, 0x21}, nal}));
  EXPECT_TRUE(v.valid);
  EXPECT_TRUE(v.keyframe);
  EXPECT_EQ(v.composition_time, 33);
  EXPECT_EQ(v.header_size, 8u);
  v = video(cat({{0xa1}, fcc("hvc1"), {0xff, 0xff, 0xdf}, nal}));
  EXPECT_FALSE(v.keyframe);
  EXPECT_EQ(v.frame_type, FrameType::Inter);
  EXPECT_EQ(v.composition_time, -33);
  // CodedFramesX: no composition time.
  v = video(cat({{0x93}, fcc("hvc1"), nal}));
  EXPECT_TRUE(v.keyframe);
  EXPECT_EQ(v.composition_time, 0);
  EXPECT_EQ(v.header_size, 5u);
  // avc1 through the enhanced header also carries it.
  v = video(cat({{0x91}, fcc("avc1"), {0x00, 0x00, 0x43}, nal}));
  EXPECT_EQ(v.composition_time, 67);
  EXPECT_EQ(video_codec_name(v), "H264");
  // AV1 / VP9 / VP8 CodedFrames: no composition time.
  for (auto [f, name] : {std::pair{"av01", "AV1"}, {"vp09", "VP9"}, {"vp08", "VP8"}}) {
    v = video(cat({{0x91}, fcc(f), {0x12, 0x00}}));
    EXPECT_TRUE(v.valid) << name;
    EXPECT_EQ(v.header_size, 5u) << name;
    EXPECT_EQ(v.composition_time, 0) << name;
    EXPECT_TRUE(v.keyframe) << name;
    EXPECT_EQ(video_codec_name(v), name);
  }
  // Truncated: FourCC or composition time cut short.
  EXPECT_FALSE(video(cat({{0x91}, Buf{'h', 'v'}})).valid);
  EXPECT_FALSE(video(cat({{0x91}, fcc("hvc1"), {0x00, 0x00}})).valid);
  EXPECT_EQ(video_codec_name(video(cat({{0x90}, fcc("xyz1")}))), "unknown(xyz1)");
}

TEST(MediaExVideo, SequenceEndMetadataAndMpeg2Ts) {
  VideoInfo v = video(cat({{0x92}, fcc("av01")}));
  EXPECT_TRUE(v.end_of_sequence);
  EXPECT_FALSE(v.keyframe);
  // Metadata with frame type bits 5 is not a command frame.
  v = video(cat({{0xd4}, fcc("hvc1"), {0x02, 0x00, 0x09}}));
  EXPECT_TRUE(v.valid);
  EXPECT_EQ(v.packet_type, uint8_t(ExVideoPacketType::Metadata));
  EXPECT_EQ(v.fourcc, fourcc('h', 'v', 'c', '1'));
  EXPECT_FALSE(v.keyframe);
  EXPECT_EQ(v.header_size, 5u);
  v = video(cat({{0x95}, fcc("av01"), {0x80}}));
  EXPECT_TRUE(v.sequence_header);  // MPEG2TSSequenceStart
}

TEST(MediaExVideo, Multitrack) {
  // OneTrack, CodedFrames, hvc1, track 0, composition time.
  VideoInfo v = video(cat({{0x96, 0x01}, fcc("hvc1"), {0x00}, {0x00, 0x00, 0x10}, {0, 0, 0, 1, 0x26}}));
  EXPECT_TRUE(v.valid);
  EXPECT_TRUE(v.multitrack);
  EXPECT_EQ(v.fourcc, fourcc('h', 'v', 'c', '1'));
  EXPECT_EQ(v.packet_type, uint8_t(ExVideoPacketType::CodedFrames));
  EXPECT_EQ(v.composition_time, 16);
  EXPECT_TRUE(v.keyframe);
  EXPECT_EQ(v.header_size, 10u);
  EXPECT_EQ(video_codec_name(v), "HEVC");
  // ManyTracks, SequenceStart, av01, track 1 with a UI24 size.
  v = video(cat({{0x96, 0x10}, fcc("av01"), {0x01, 0x00, 0x00, 0x04}, {0x81, 0, 0, 0}}));
  EXPECT_TRUE(v.multitrack);
  EXPECT_TRUE(v.sequence_header);
  EXPECT_EQ(v.fourcc, fourcc('a', 'v', '0', '1'));
  EXPECT_EQ(v.header_size, 10u);
  // ManyTracksManyCodecs: no shared FourCC.
  v = video(cat({{0xa6, 0x23}, fcc("vp09"), {0x00, 0x00, 0x00, 0x02}, {0xaa, 0xbb}}));
  EXPECT_TRUE(v.valid);
  EXPECT_TRUE(v.multitrack);
  EXPECT_EQ(v.fourcc, 0u);
  EXPECT_EQ(v.packet_type, uint8_t(ExVideoPacketType::CodedFramesX));
  EXPECT_FALSE(v.keyframe);
  EXPECT_EQ(v.header_size, 10u);
  EXPECT_EQ(video_codec_name(v), "multitrack");
  // Multitrack inside multitrack is invalid; so is a cut header.
  EXPECT_FALSE(video(cat({{0x96, 0x06}, fcc("hvc1"), {0x00}})).valid);
  EXPECT_FALSE(video(cat({{0x96, 0x11}, fcc("hvc1"), {0x00, 0x00}})).valid);
}

TEST(MediaExVideo, ModExIsSkipped) {
  // ModEx (7): size-1 = 0 -> 1 byte of data, then modExType/packet type byte.
  VideoInfo v = video(cat({{0x97, 0x00, 0xaa, 0x01}, fcc("av01"), {0x12}}));
  EXPECT_TRUE(v.valid);
  EXPECT_EQ(v.packet_type, uint8_t(ExVideoPacketType::CodedFrames));
  EXPECT_EQ(v.fourcc, fourcc('a', 'v', '0', '1'));
  EXPECT_EQ(v.header_size, 8u);
  EXPECT_TRUE(v.keyframe);
  // 16-bit size form: 0xff then UI16 size-1 = 0x0001 -> 2 bytes.
  v = video(cat({{0x97, 0xff, 0x00, 0x01, 0xaa, 0xbb, 0x03}, fcc("hvc1")}));
  EXPECT_TRUE(v.valid);
  EXPECT_EQ(v.packet_type, uint8_t(ExVideoPacketType::CodedFramesX));
  EXPECT_EQ(v.header_size, 11u);
  EXPECT_FALSE(video({0x97, 0x05, 0x00}).valid);
}

// ---- audio -----------------------------------------------------------------

TEST(MediaAudio, AacSequenceHeaderFromFfmpeg) {
  Buf b = golden("aac_seq_header_44100_mono.bin");
  AudioInfo a = audio(b);
  EXPECT_TRUE(a.valid);
  EXPECT_FALSE(a.enhanced);
  EXPECT_EQ(a.sound_format, kAudioAac);
  EXPECT_EQ(a.sound_rate, 3);
  EXPECT_EQ(a.sound_size, 1);
  EXPECT_EQ(a.sound_type, 1);  // AAC always signals 44 kHz stereo in the FLV byte
  EXPECT_EQ(a.fourcc, fourcc('m', 'p', '4', 'a'));
  EXPECT_EQ(a.packet_type, 0);
  EXPECT_TRUE(a.sequence_header);
  EXPECT_EQ(a.header_size, 2u);
  EXPECT_EQ(audio_codec_name(a), "AAC");
  AacConfig c;
  ASSERT_TRUE(parse_aac_config(b.data() + 2, b.size() - 2, c));
  EXPECT_EQ(c.object_type, 2);  // AAC LC
  EXPECT_EQ(c.sample_rate_index, 4);
  EXPECT_EQ(c.sample_rate, 44100u);
  EXPECT_EQ(c.channels, 1);

  Buf raw = golden("aac_raw_frame_head.bin");
  a = audio(raw);
  EXPECT_TRUE(a.valid);
  EXPECT_FALSE(a.sequence_header);
  EXPECT_EQ(a.packet_type, 1);
}

TEST(MediaAudio, AacConfigEscapesAndExplicitRate) {
  // Object type 42 via the escape (31, then 6 bits = 10), index 3 (48 kHz), 2 ch.
  BitWriter w;
  w.u(5, 31);
  w.u(6, 10);
  w.u(4, 3);
  w.u(4, 2);
  w.u(8, 0);
  AacConfig c;
  ASSERT_TRUE(parse_aac_config(w.out.data(), w.out.size(), c));
  EXPECT_EQ(c.object_type, 42);
  EXPECT_EQ(c.sample_rate, 48000u);
  EXPECT_EQ(c.channels, 2);
  // Explicit 24-bit rate (index 15), 6 channels.
  BitWriter x;
  x.u(5, 2);
  x.u(4, 15);
  x.u(24, 12345);
  x.u(4, 6);
  x.trailing();
  ASSERT_TRUE(parse_aac_config(x.out.data(), x.out.size(), c));
  EXPECT_EQ(c.object_type, 2);
  EXPECT_EQ(c.sample_rate_index, 15);
  EXPECT_EQ(c.sample_rate, 12345u);
  EXPECT_EQ(c.channels, 6);
  // HE-AAC explicit (object type 5), 24 kHz core, stereo.
  BitWriter he;
  he.u(5, 5);
  he.u(4, 6);   // core 24 kHz
  he.u(4, 2);
  he.u(4, 3);   // extension 48 kHz
  he.u(5, 2);   // then AAC LC
  he.trailing();
  ASSERT_TRUE(parse_aac_config(he.out.data(), he.out.size(), c));
  EXPECT_EQ(c.object_type, 5);
  EXPECT_EQ(c.sample_rate, 24000u);
  EXPECT_EQ(c.channels, 2);
  // Reserved index 13, object type 0, truncated.
  BitWriter r;
  r.u(5, 2);
  r.u(4, 13);
  r.u(4, 2);
  r.u(3, 0);
  EXPECT_FALSE(parse_aac_config(r.out.data(), r.out.size(), c));
  Buf zero = {0x00, 0x10};
  EXPECT_FALSE(parse_aac_config(zero.data(), zero.size(), c));
  EXPECT_FALSE(parse_aac_config(x.out.data(), 3, c));
  EXPECT_FALSE(parse_aac_config(nullptr, 0, c));
}

TEST(MediaAudio, LegacyFormats) {
  struct { uint8_t b0; const char* name; } cases[] = {
      {0x0e, "PCM"},        {0x3f, "PCM"},        {0x1a, "ADPCM"},      {0x2f, "MP3"},  {0xe2, "MP3"},
      {0x42, "Nellymoser"}, {0x52, "Nellymoser"}, {0x62, "Nellymoser"}, {0x72, "G711A"}, {0x82, "G711U"},
      {0xb2, "Speex"},      {0xf2, "unknown(15)"},
  };
  for (auto& c : cases) {
    AudioInfo a = audio({c.b0, 0x00});
    EXPECT_TRUE(a.valid) << c.name;
    EXPECT_EQ(a.header_size, 1u);
    EXPECT_FALSE(a.sequence_header);
    EXPECT_EQ(audio_codec_name(a), c.name) << int(c.b0);
  }
  AudioInfo a = audio({0x2e});  // MP3 44 kHz 16-bit mono
  EXPECT_EQ(a.sound_format, kAudioMp3);
  EXPECT_EQ(a.sound_rate, 3);
  EXPECT_EQ(a.sound_size, 1);
  EXPECT_EQ(a.sound_type, 0);
  a = audio({0xb2});  // Speex 5.5 kHz 16-bit mono
  EXPECT_EQ(a.sound_rate, 0);
  EXPECT_FALSE(audio({0xaf}).valid);  // AAC without its packet type
  AudioInfo e;
  EXPECT_FALSE(inspect_audio(nullptr, 0, e));
}

TEST(MediaExAudio, OpusSequenceStartFromLibopus) {
  Buf b = golden("opus_ex_seq_start.bin");
  AudioInfo a = audio(b);
  EXPECT_TRUE(a.valid);
  EXPECT_TRUE(a.enhanced);
  EXPECT_EQ(a.sound_format, kAudioExHeader);
  EXPECT_EQ(a.fourcc, fourcc('O', 'p', 'u', 's'));
  EXPECT_EQ(a.packet_type, uint8_t(ExAudioPacketType::SequenceStart));
  EXPECT_TRUE(a.sequence_header);
  EXPECT_EQ(a.header_size, 5u);
  EXPECT_EQ(audio_codec_name(a), "Opus");
  // The body is the OpusHead: version 1, 2 channels, pre-skip 312, 48 kHz.
  ASSERT_EQ(b.size(), 5u + 19u);
  EXPECT_EQ(std::string(b.begin() + 5, b.begin() + 13), "OpusHead");
  EXPECT_EQ(b[13], 1);
  EXPECT_EQ(b[14], 2);
  EXPECT_EQ(b[15] | b[16] << 8, 312);
  EXPECT_EQ(b[17] | b[18] << 8 | b[19] << 16, 48000);
}

TEST(MediaExAudio, FourCcsMultitrackAndModEx) {
  for (auto [f, name] : {std::pair{"fLaC", "FLAC"}, {"mp4a", "AAC"}, {"ac-3", "AC3"}, {"ec-3", "EAC3"},
                         {".mp3", "MP3"}, {"Opus", "Opus"}}) {
    AudioInfo a = audio(cat({{0x91}, fcc(f), {0x01, 0x02}}));
    EXPECT_TRUE(a.valid) << name;
    EXPECT_EQ(a.packet_type, uint8_t(ExAudioPacketType::CodedFrames));
    EXPECT_FALSE(a.sequence_header);
    EXPECT_EQ(a.header_size, 5u);
    EXPECT_EQ(audio_codec_name(a), name);
  }
  AudioInfo a = audio(cat({{0x92}, fcc("Opus")}));
  EXPECT_EQ(a.packet_type, uint8_t(ExAudioPacketType::SequenceEnd));
  // Multitrack OneTrack CodedFrames fLaC, track 0.
  a = audio(cat({{0x95, 0x01}, fcc("fLaC"), {0x00, 0xff, 0xf8}}));
  EXPECT_TRUE(a.valid);
  EXPECT_TRUE(a.multitrack);
  EXPECT_EQ(a.fourcc, fourcc('f', 'L', 'a', 'C'));
  EXPECT_EQ(a.packet_type, 1);
  EXPECT_EQ(a.header_size, 7u);
  // ManyTracksManyCodecs SequenceStart.
  a = audio(cat({{0x95, 0x20}, fcc("Opus"), {0x00, 0x00, 0x00, 0x13}}));
  EXPECT_TRUE(a.valid);
  EXPECT_TRUE(a.sequence_header);
  EXPECT_EQ(a.fourcc, 0u);
  EXPECT_EQ(a.header_size, 10u);
  EXPECT_EQ(audio_codec_name(a), "multitrack");
  EXPECT_FALSE(audio(cat({{0x95, 0x05}, fcc("Opus"), {0}})).valid);
  // ModEx, then CodedFrames.
  a = audio(cat({{0x97, 0x00, 0x10, 0x01}, fcc("Opus")}));
  EXPECT_TRUE(a.valid);
  EXPECT_EQ(a.packet_type, 1);
  EXPECT_EQ(a.header_size, 8u);
  EXPECT_FALSE(audio({0x90, 'O', 'p'}).valid);
  EXPECT_EQ(audio_codec_name(audio(cat({{0x90}, fcc("abcd")}))), "unknown(abcd)");
}

TEST(MediaRobustness, EveryPrefixAndRandomBytesAreSafe) {
  // Exact-size copies so that a sanitizer build catches any over-read.
  std::vector<Buf> inputs;
  for (const char* f : {"avc_seq_header_1280x720.bin", "avc_seq_header_1920x1080_crop.bin",
                        "avc_seq_header_720x576_interlaced.bin", "avc_keyframe_head.bin",
                        "aac_seq_header_44100_mono.bin", "hevc_ex_seq_start.bin", "opus_ex_seq_start.bin"})
    inputs.push_back(golden(f));
  Buf mt = cat({{0x96, 0x11}, fcc("hvc1"), {0x00, 0x00, 0x00, 0x05, 0, 0, 0x10}});
  inputs.push_back(mt);
  inputs.push_back(cat({{0x97, 0xff, 0x00, 0x01, 0xaa, 0xbb, 0x01}, fcc("hvc1"), {0, 0, 1}}));
  uint32_t x = 12345;
  for (int i = 0; i < 2000; i++) {
    Buf r(1 + i % 40);
    for (auto& b : r) {
      x = x * 1664525u + 1013904223u;
      b = uint8_t(x >> 24);
    }
    inputs.push_back(r);
  }
  for (const Buf& in : inputs) {
    for (size_t n = 0; n <= std::min<size_t>(in.size(), 80); n++) {
      Buf p(in.begin(), in.begin() + ptrdiff_t(n));
      VideoInfo v;
      AudioInfo a;
      AacConfig ac;
      AvcConfig vc;
      bool ok = inspect_video(p.data(), p.size(), v);
      EXPECT_EQ(ok, v.valid);
      if (ok) EXPECT_LE(v.header_size, p.size());
      ok = inspect_audio(p.data(), p.size(), a);
      EXPECT_EQ(ok, a.valid);
      if (ok) EXPECT_LE(a.header_size, p.size());
      parse_aac_config(p.data(), p.size(), ac);
      if (p.size() > 5) parse_avc_config(p.data() + 5, p.size() - 5, vc);
      video_codec_name(v);
      audio_codec_name(a);
    }
  }
}
