// FLV framing: golden headers and tags from ffmpeg (golden/flv), encode and
// parse both ways, and the incremental tag parser over every slicing.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "grtmp/error.h"
#include "grtmp/flv.h"

namespace flv = grtmp::flv;
using Buf = std::vector<uint8_t>;

namespace {

Buf golden(const std::string& name) {
  std::ifstream f(std::string(GOLDEN_DIR) + "/flv/" + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing golden/flv/" << name;
  return Buf(std::istreambuf_iterator<char>(f), {});
}

template <size_t N>
Buf vec(const std::array<uint8_t, N>& a) {
  return Buf(a.begin(), a.end());
}

struct Parsed {
  bool ok = true;
  int code = -1;
  std::vector<grtmp::Message> msgs;
};

// Feeds `in` in slices of `step` bytes (0: random sizes).
Parsed parse_all(flv::TagParser& p, const Buf& in, size_t step, uint32_t seed = 7) {
  Parsed r;
  std::mt19937 rng(seed);
  size_t pos = 0;
  while (pos < in.size()) {
    size_t n = step ? step : 1 + rng() % 97;
    n = std::min(n, in.size() - pos);
    GError* err = nullptr;
    if (!p.feed(in.data() + pos, n, r.msgs, &err)) {
      r.ok = false;
      r.code = err ? err->code : -1;
      EXPECT_EQ(err ? err->domain : 0, GRTMP_ERROR);
      if (err) g_error_free(err);
      return r;
    }
    pos += n;
  }
  return r;
}

// Expected tags of golden/flv/av_small.flv (type, timestamp, data size),
// listed with golden/media/make_vectors.py's flv_tags(); ffprobe counts 5
// video + 12 audio packets, plus onMetaData, two sequence headers and the
// AVC end of sequence.
struct Expect {
  uint8_t type;
  uint32_t ts;
  uint32_t size;
};
const Expect kAvSmall[] = {
    {18, 0, 293}, {9, 0, 52},    {8, 0, 7},     {9, 0, 2387},  {9, 100, 244}, {8, 154, 256}, {9, 200, 190},
    {8, 200, 253}, {8, 246, 185}, {8, 293, 195}, {9, 300, 224}, {8, 339, 214}, {8, 386, 167}, {9, 400, 20},
    {8, 432, 231}, {8, 479, 200}, {8, 525, 196}, {8, 572, 172}, {8, 618, 155}, {8, 664, 168}, {9, 400, 5},
};

void check_av_small(const flv::TagParser& p, const Parsed& r) {
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.msgs.size(), std::size(kAvSmall));
  for (size_t i = 0; i < r.msgs.size(); i++) {
    const auto& m = r.msgs[i];
    EXPECT_EQ(m.type, kAvSmall[i].type) << i;
    EXPECT_EQ(m.timestamp, kAvSmall[i].ts) << i;
    EXPECT_EQ(m.payload.size(), kAvSmall[i].size) << i;
    EXPECT_EQ(m.stream_id, 0u);
    uint32_t csid = m.type == 8 ? grtmp::kCsidAudio : m.type == 9 ? grtmp::kCsidVideo : grtmp::kCsidData;
    EXPECT_EQ(m.csid, csid) << i;
  }
  // Spot checks of payload bytes: onMetaData string, AVC sequence header,
  // AAC sequence header, AVC end of sequence.
  EXPECT_EQ(r.msgs[0].payload.view().substr(0, 13), std::string_view("\x02\x00\x0a" "onMetaData", 13));
  EXPECT_EQ(r.msgs[1].payload.data()[0], 0x17);
  EXPECT_EQ(r.msgs[1].payload.data()[1], 0x00);
  EXPECT_EQ(r.msgs[2].payload.data()[0], 0xaf);
  EXPECT_EQ(r.msgs[2].payload.data()[1], 0x00);
  EXPECT_EQ(r.msgs[20].payload.view(), std::string_view("\x17\x02\x00\x00\x00", 5));
  EXPECT_TRUE(p.header_seen());
  EXPECT_TRUE(p.header().has_audio);
  EXPECT_TRUE(p.header().has_video);
  EXPECT_EQ(p.header().version, 1);
  EXPECT_EQ(p.header().header_size, 9u);
  EXPECT_EQ(p.prev_size_mismatches(), 0u);
}

}  // namespace

// ---- file header -----------------------------------------------------------

TEST(FlvHeader, EncodeMatchesFfmpeg) {
  EXPECT_EQ(vec(flv::file_header(true, true)), golden("header_av.bin"));
  EXPECT_EQ(vec(flv::file_header(true, false)), golden("header_a.bin"));
  EXPECT_EQ(vec(flv::file_header(false, true)), golden("header_v.bin"));
  EXPECT_EQ(flv::file_header(false, false)[4], 0);
}

TEST(FlvHeader, ParseGolden) {
  struct { const char* file; bool a, v; } cases[] = {
      {"header_av.bin", true, true}, {"header_a.bin", true, false}, {"header_v.bin", false, true}};
  for (auto& c : cases) {
    Buf b = golden(c.file);
    flv::FileHeader h;
    ASSERT_TRUE(flv::parse_file_header(b.data(), b.size(), h, nullptr)) << c.file;
    EXPECT_EQ(h.version, 1);
    EXPECT_EQ(h.has_audio, c.a) << c.file;
    EXPECT_EQ(h.has_video, c.v) << c.file;
    EXPECT_EQ(h.header_size, 9u);
  }
}

TEST(FlvHeader, ParseErrors) {
  Buf b = golden("header_av.bin");
  flv::FileHeader h;
  GError* err = nullptr;
  EXPECT_FALSE(flv::parse_file_header(b.data(), 8, h, &err));
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->code, GRTMP_ERROR_MALFORMED);
  g_clear_error(&err);
  Buf bad = b;
  bad[2] = 'X';
  EXPECT_FALSE(flv::parse_file_header(bad.data(), bad.size(), h, &err));
  EXPECT_EQ(err->code, GRTMP_ERROR_MALFORMED);
  g_clear_error(&err);
  bad = b;
  bad[8] = 8;  // DataOffset < 9
  EXPECT_FALSE(flv::parse_file_header(bad.data(), bad.size(), h, &err));
  EXPECT_EQ(err->code, GRTMP_ERROR_MALFORMED);
  g_clear_error(&err);
}

// ---- tags ------------------------------------------------------------------

TEST(FlvTag, VideoSequenceHeaderRoundTrip) {
  Buf t = golden("tag_video_avc_seq.bin");
  flv::TagHeader h;
  ASSERT_TRUE(flv::parse_tag_header(t.data(), t.size(), h, nullptr));
  EXPECT_EQ(h.type, flv::kTagVideo);
  EXPECT_FALSE(h.filter);
  EXPECT_EQ(h.data_size, 52u);
  EXPECT_EQ(h.timestamp, 0u);
  EXPECT_EQ(h.stream_id, 0u);
  EXPECT_EQ(t.size(), flv::kTagHeaderSize + 52 + flv::kPrevTagSizeSize);
  EXPECT_EQ(vec(flv::encode_tag_header(h.type, h.data_size, h.timestamp)), Buf(t.begin(), t.begin() + 11));
  EXPECT_EQ(flv::encode_tag(h.type, h.timestamp, t.data() + 11, h.data_size), t);
  EXPECT_EQ(vec(flv::encode_prev_tag_size(63)), Buf(t.end() - 4, t.end()));
}

TEST(FlvTag, ExtendedTimestampRoundTrip) {
  // ffmpeg -output_ts_offset 20000: 20,000,000 ms needs the extended byte.
  Buf t = golden("tag_audio_ext_ts.bin");
  flv::TagHeader h;
  ASSERT_TRUE(flv::parse_tag_header(t.data(), t.size(), h, nullptr));
  EXPECT_EQ(h.type, flv::kTagAudio);
  EXPECT_GE(h.timestamp, 1u << 24);
  EXPECT_EQ(h.timestamp, 20000000u);  // 0x01312d00: lower 24 bits 0x312d00, extended byte 0x01
  EXPECT_EQ(h.data_size, t.size() - 15);
  EXPECT_EQ(t[7], 0x01);
  EXPECT_EQ(flv::encode_tag(h.type, h.timestamp, t.data() + 11, h.data_size), t);
}

TEST(FlvTag, TimestampLayoutAndFilterBit) {
  auto h = flv::encode_tag_header(flv::kTagScript, 0x123456, 0xA1B2C3D4);
  Buf expect = {0x12, 0x12, 0x34, 0x56, 0xB2, 0xC3, 0xD4, 0xA1, 0, 0, 0};
  EXPECT_EQ(vec(h), expect);
  flv::TagHeader p;
  ASSERT_TRUE(flv::parse_tag_header(h.data(), h.size(), p, nullptr));
  EXPECT_EQ(p.timestamp, 0xA1B2C3D4u);
  EXPECT_EQ(p.data_size, 0x123456u);
  EXPECT_EQ(p.type, 18);
  Buf f = {0x29, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7};  // filter bit + video, stream id 7
  ASSERT_TRUE(flv::parse_tag_header(f.data(), f.size(), p, nullptr));
  EXPECT_TRUE(p.filter);
  EXPECT_EQ(p.type, 9);
  EXPECT_EQ(p.stream_id, 7u);
  GError* err = nullptr;
  EXPECT_FALSE(flv::parse_tag_header(f.data(), 10, p, &err));
  EXPECT_EQ(err->code, GRTMP_ERROR_MALFORMED);
  g_clear_error(&err);
}

TEST(FlvTag, TagTypeForMessage) {
  EXPECT_EQ(flv::tag_type_for_message(grtmp::kMsgAudio), flv::kTagAudio);
  EXPECT_EQ(flv::tag_type_for_message(grtmp::kMsgVideo), flv::kTagVideo);
  EXPECT_EQ(flv::tag_type_for_message(grtmp::kMsgDataAmf0), flv::kTagScript);
}

TEST(FlvTag, EmptyTag) {
  Buf t = flv::encode_tag(flv::kTagAudio, 5, nullptr, 0);
  Buf expect = {8, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 11};
  EXPECT_EQ(t, expect);
}

// ---- parser ----------------------------------------------------------------

TEST(FlvParser, FfmpegFileAnySlicing) {
  Buf file = golden("av_small.flv");
  for (size_t step : {size_t(0), size_t(1), size_t(2), size_t(10), size_t(13), size_t(4096), file.size()}) {
    SCOPED_TRACE(step);
    flv::TagParser p;
    Parsed r = parse_all(p, file, step);
    check_av_small(p, r);
  }
}

TEST(FlvParser, ReEncodedTagsMatchTheFile) {
  Buf file = golden("av_small.flv");
  flv::TagParser p;
  Parsed r = parse_all(p, file, 0);
  ASSERT_TRUE(r.ok);
  Buf out = vec(flv::file_header(p.header().has_audio, p.header().has_video));
  for (auto& m : r.msgs) {
    Buf t = flv::encode_tag(m.type, m.timestamp, m.payload.data(), m.payload.size());
    out.insert(out.end(), t.begin(), t.end());
  }
  EXPECT_EQ(out, file);
}

TEST(FlvParser, HeaderlessTagStream) {
  Buf file = golden("av_small.flv");
  Buf tags(file.begin() + 13, file.end());  // no header, no PreviousTagSize0
  flv::TagParser p;
  Parsed r = parse_all(p, tags, 1);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.msgs.size(), std::size(kAvSmall));
  EXPECT_FALSE(p.header_seen());
  // With a bare PreviousTagSize0 in front.
  Buf with0(file.begin() + 9, file.end());
  flv::TagParser p2;
  Parsed r2 = parse_all(p2, with0, 3);
  ASSERT_TRUE(r2.ok);
  EXPECT_EQ(r2.msgs.size(), std::size(kAvSmall));
  EXPECT_FALSE(p2.header_seen());
  EXPECT_EQ(p2.prev_size_mismatches(), 0u);
}

TEST(FlvParser, LongerDataOffsetIsSkipped) {
  Buf file = golden("av_small.flv");
  Buf f2(file.begin(), file.begin() + 9);
  f2[8] = 15;  // 6 extra header bytes
  f2.insert(f2.end(), 6, 0xee);
  f2.insert(f2.end(), file.begin() + 9, file.end());
  flv::TagParser p;
  Parsed r = parse_all(p, f2, 1);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.msgs.size(), std::size(kAvSmall));
  EXPECT_EQ(p.header().header_size, 15u);
}

TEST(FlvParser, TagOverLimit) {
  Buf file = golden("av_small.flv");
  flv::TagParser p(1000);  // the 2387-byte keyframe is too big
  Parsed r = parse_all(p, file, 0);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, GRTMP_ERROR_LIMIT);
  EXPECT_EQ(r.msgs.size(), 3u);  // the tags before it came out
  // Known from the 11-byte header alone, before the data arrives.
  flv::TagParser p2(100);
  auto h = flv::encode_tag_header(flv::kTagVideo, 101, 0);
  std::vector<grtmp::Message> out;
  GError* err = nullptr;
  EXPECT_FALSE(p2.feed(h.data(), h.size(), out, &err));
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->code, GRTMP_ERROR_LIMIT);
  g_clear_error(&err);
  // And the parser stays failed.
  EXPECT_FALSE(p2.feed(h.data(), 1, out, &err));
  g_clear_error(&err);
  p2.reset();
  Buf small = flv::encode_tag(flv::kTagAudio, 1, h.data(), 10);
  EXPECT_TRUE(p2.feed(small.data(), small.size(), out, nullptr));
  EXPECT_EQ(out.size(), 1u);
}

TEST(FlvParser, BadSignature) {
  Buf file = golden("av_small.flv");
  Buf bad = file;
  bad[1] = 'X';  // "FXV"
  flv::TagParser p;
  Parsed r = parse_all(p, bad, 1);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, GRTMP_ERROR_MALFORMED);
  // Not FLV at all (an MP4 box header).
  Buf mp4 = {0, 0, 0, 0x20, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0};
  flv::TagParser p2;
  Parsed r2 = parse_all(p2, mp4, 0);
  EXPECT_FALSE(r2.ok);
  EXPECT_EQ(r2.code, GRTMP_ERROR_MALFORMED);
  Buf text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '\n'};
  flv::TagParser p3;
  EXPECT_EQ(parse_all(p3, text, 0).code, GRTMP_ERROR_MALFORMED);
}

TEST(FlvParser, PrevTagSizeMismatchToleratedAndCounted) {
  Buf file = golden("av_small.flv");
  // Corrupt the PreviousTagSize after the first tag (13 + 11 + 293).
  size_t at = 13 + 11 + 293;
  file[at + 3] ^= 0x10;
  file[9] = 0x7f;  // and PreviousTagSize0
  flv::TagParser p;
  Parsed r = parse_all(p, file, 0);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.msgs.size(), std::size(kAvSmall));
  EXPECT_EQ(p.prev_size_mismatches(), 2u);
}

TEST(FlvParser, ResetExpectsAHeaderAgain) {
  Buf file = golden("av_small.flv");
  flv::TagParser p;
  std::vector<grtmp::Message> out;
  ASSERT_TRUE(p.feed(file.data(), 100, out, nullptr));  // part of a first stream
  p.reset();
  EXPECT_FALSE(p.header_seen());
  Parsed r = parse_all(p, file, 0);
  check_av_small(p, r);
}

TEST(FlvParser, PayloadSharesNoStateWithInput) {
  Buf file = golden("av_small.flv");
  flv::TagParser p;
  std::vector<grtmp::Message> out;
  {
    Buf copy = file;
    ASSERT_TRUE(p.feed(copy.data(), copy.size(), out, nullptr));
    std::fill(copy.begin(), copy.end(), 0);
  }
  ASSERT_EQ(out.size(), std::size(kAvSmall));
  EXPECT_EQ(out[1].payload.data()[0], 0x17);
}

TEST(FlvParser, RandomGarbageNeverCrashes) {
  Buf file = golden("av_small.flv");
  std::mt19937 rng(99);
  for (int i = 0; i < 300; i++) {
    Buf b = file;
    for (int k = 0; k < 1 + i % 4; k++) b[rng() % b.size()] = uint8_t(rng());
    flv::TagParser p(4096);
    Parsed r = parse_all(p, b, 0, uint32_t(i));
    if (r.ok) EXPECT_LE(r.msgs.size(), std::size(kAvSmall) + 1);
  }
}
