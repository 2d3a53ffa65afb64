// ChunkReader / WireQueue / ChunkWriter: golden vectors both ways, any
// slicing, randomized round trips, garbage, and every error path.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "grtmp/chunk.h"
#include "grtmp/control.h"
#include "grtmp/error.h"

using namespace grtmp;

namespace {

using ByteVec = std::vector<uint8_t>;

// Same pattern as the generator of golden/chunk (see its README).
ByteVec pat(size_t n, int seed) {
  ByteVec v(n);
  for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>((seed * 17 + i * 31) & 0xff);
  return v;
}

ByteVec u32be(uint32_t x) { return {uint8_t(x >> 24), uint8_t(x >> 16), uint8_t(x >> 8), uint8_t(x)}; }

ByteVec load(const std::string& rel) {
  std::string path = std::string(GOLDEN_DIR) + "/" + rel;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  return ByteVec(std::istreambuf_iterator<char>(f), {});
}

struct M {
  uint8_t type;
  uint32_t ts;
  uint32_t msid;
  uint32_t csid;
  ByteVec payload;
};

Message to_msg(const M& m) {
  Message r;
  r.type = m.type;
  r.timestamp = m.ts;
  r.stream_id = m.msid;
  r.csid = m.csid;
  r.payload = Bytes::copy(m.payload);
  return r;
}

ByteVec payload_of(const Message& m) { return ByteVec(m.payload.data(), m.payload.data() + m.payload.size()); }

void expect_messages(const std::vector<Message>& got, const std::vector<M>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); i++) {
    SCOPED_TRACE(what + " message " + std::to_string(i));
    EXPECT_EQ(got[i].type, want[i].type);
    EXPECT_EQ(got[i].timestamp, want[i].ts);
    EXPECT_EQ(got[i].stream_id, want[i].msid);
    EXPECT_EQ(got[i].csid, want[i].csid);
    EXPECT_EQ(payload_of(got[i]), want[i].payload);
    EXPECT_TRUE(got[i].payload.get() != nullptr) << "payload must be a real (maybe empty) GBytes";
  }
}

void expect_same(const std::vector<Message>& got, const std::vector<Message>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); i++) {
    SCOPED_TRACE(what + " message " + std::to_string(i));
    EXPECT_EQ(got[i].type, want[i].type);
    EXPECT_EQ(got[i].timestamp, want[i].timestamp);
    EXPECT_EQ(got[i].stream_id, want[i].stream_id);
    EXPECT_EQ(got[i].csid, want[i].csid);
    ASSERT_EQ(got[i].payload.size(), want[i].payload.size());
    if (want[i].payload.size()) {
      EXPECT_EQ(0, memcmp(got[i].payload.data(), want[i].payload.data(), want[i].payload.size()));
    }
  }
}

// slice == 0: one feed; otherwise feeds of `slice` bytes.
std::vector<Message> decode(const ByteVec& in, size_t slice = 0, ChunkReaderLimits limits = {}) {
  ChunkReader r(limits);
  std::vector<Message> out;
  GError* err = nullptr;
  if (slice == 0) slice = in.size() ? in.size() : 1;
  for (size_t off = 0; off < in.size(); off += slice) {
    size_t n = std::min(slice, in.size() - off);
    bool ok = r.feed(in.data() + off, n, out, &err);
    EXPECT_TRUE(ok) << (err ? err->message : "");
    if (!ok) {
      g_clear_error(&err);
      break;
    }
  }
  EXPECT_EQ(r.bytes_read(), in.size());
  EXPECT_EQ(r.buffered_bytes(), 0u);
  return out;
}

std::vector<Message> decode_random(const ByteVec& in, std::mt19937& rng, ChunkReaderLimits limits = {}) {
  ChunkReader r(limits);
  std::vector<Message> out;
  GError* err = nullptr;
  size_t off = 0;
  while (off < in.size()) {
    size_t n = std::uniform_int_distribution<size_t>(0, std::min<size_t>(in.size() - off, 700))(rng);
    bool ok = r.feed(in.data() + off, n, out, &err);
    EXPECT_TRUE(ok) << (err ? err->message : "");
    if (!ok) {
      g_clear_error(&err);
      break;
    }
    off += n;
  }
  return out;
}

// Feeds `in` and expects failure with the given code; returns the message.
std::string decode_error(const ByteVec& in, GrtmpError code, ChunkReaderLimits limits = {}) {
  ChunkReader r(limits);
  std::vector<Message> out;
  GError* err = nullptr;
  bool ok = r.feed(in.data(), in.size(), out, &err);
  EXPECT_FALSE(ok);
  if (!err) {
    ADD_FAILURE() << "no GError set";
    return "";
  }
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, code)) << err->message;
  std::string msg = err->message;
  g_error_free(err);
  // The reader stays failed.
  err = nullptr;
  uint8_t b = 0xc3;
  EXPECT_FALSE(r.feed(&b, 1, out, &err));
  EXPECT_NE(err, nullptr);
  g_clear_error(&err);
  return msg;
}

// Writes messages through one writer; after a Set Chunk Size message the
// writer switches to the announced size (the way a session uses it).
ByteVec encode(const std::vector<M>& msgs, uint32_t chunk_size = kDefaultChunkSize) {
  ChunkWriter w;
  w.set_chunk_size(chunk_size);
  WireQueue q;
  for (const M& m : msgs) {
    Message msg = to_msg(m);
    w.write(msg, q);
    if (m.type == kMsgSetChunkSize) {
      uint32_t size = 0;
      EXPECT_TRUE(control::parse_set_chunk_size(msg, size, nullptr));
      w.set_chunk_size(size);
    }
  }
  return q.flatten();
}

// ---- hand-made header helpers (for error and edge cases) ----

ByteVec basic(uint8_t fmt, uint32_t csid) {
  if (csid < 64) return {uint8_t(fmt << 6 | csid)};
  if (csid < 320) return {uint8_t(fmt << 6), uint8_t(csid - 64)};
  uint32_t v = csid - 64;
  return {uint8_t(fmt << 6 | 1), uint8_t(v & 0xff), uint8_t(v >> 8)};
}
void put24(ByteVec& v, uint32_t x) {
  v.push_back(uint8_t(x >> 16));
  v.push_back(uint8_t(x >> 8));
  v.push_back(uint8_t(x));
}
ByteVec h0(uint32_t csid, uint32_t ts, uint32_t len, uint8_t type, uint32_t msid) {
  ByteVec v = basic(0, csid);
  put24(v, ts >= 0xffffff ? 0xffffff : ts);
  put24(v, len);
  v.push_back(type);
  for (int i = 0; i < 4; i++) v.push_back(uint8_t(msid >> (8 * i)));
  if (ts >= 0xffffff) {
    ByteVec e = u32be(ts);
    v.insert(v.end(), e.begin(), e.end());
  }
  return v;
}
ByteVec cat(std::initializer_list<ByteVec> parts) {
  ByteVec r;
  for (const auto& p : parts) r.insert(r.end(), p.begin(), p.end());
  return r;
}

// ---------------------------------------------------------------------------
// Golden vectors

struct Vector {
  const char* file;
  bool writer_style;  // ChunkWriter must reproduce the bytes
  std::vector<M> msgs;
};

std::vector<Vector> vectors() {
  std::vector<Vector> v;
  v.push_back({"fmt0_cont_csid3.bin", true, {{20, 0, 0, 3, pat(300, 1)}}});
  v.push_back({"fmt0123_audio.bin",
               true,
               {{8, 1000, 1, 6, pat(10, 2)},
                {8, 1023, 1, 6, pat(12, 3)},
                {8, 1047, 1, 6, pat(12, 4)},
                {8, 1071, 1, 6, pat(12, 5)},
                {8, 1095, 1, 6, pat(12, 6)},
                {8, 1095, 1, 6, pat(12, 7)},
                {8, 1000, 1, 6, pat(12, 8)},
                {8, 1010, 2, 6, pat(12, 9)}}});
  v.push_back({"csid_2byte.bin",
               true,
               {{9, 5, 1, 64, pat(200, 10)}, {8, 6, 1, 319, pat(20, 11)}, {9, 45, 1, 64, pat(200, 12)}}});
  v.push_back({"csid_3byte.bin",
               true,
               {{9, 0, 1, 320, pat(200, 13)}, {9, 0, 1, 65599, pat(200, 14)}, {8, 7, 1, 1000, pat(10, 15)}}});
  v.push_back({"ext_fmt0.bin", true, {{9, 0x01000000, 1, 4, pat(300, 16)}, {9, 0xffffff, 1, 4, pat(10, 17)}}});
  v.push_back({"ext_fmt1_delta.bin",
               true,
               {{8, 0x10, 1, 6, pat(20, 18)},
                {8, 0x01000010, 1, 6, pat(300, 19)},
                {8, 0x02000010, 1, 6, pat(300, 20)},
                {8, 0x02000015, 1, 6, pat(300, 21)},
                {8, 0x0200001a, 1, 6, pat(300, 22)}}});
  v.push_back({"set_chunk_size_mid.bin",
               true,
               {{1, 0, 0, 2, u32be(4096)},
                {9, 0, 1, 7, pat(3000, 23)},
                {1, 0, 0, 2, u32be(200)},
                {9, 33, 1, 7, pat(3000, 24)}}});
  v.push_back({"zero_length.bin", true, {{18, 0, 1, 5, {}}, {18, 10, 1, 5, {}}, {18, 20, 1, 5, pat(5, 25)}}});
  v.push_back({"ts_wrap.bin",
               true,
               {{8, 0xfffffff0, 1, 6, pat(10, 26)}, {8, 0x10, 1, 6, pat(10, 27)}, {8, 0x30, 1, 6, pat(10, 28)}}});
  v.push_back({"ext_fmt3_omitted.bin", false, {{9, 0x01234567, 1, 4, pat(259, 29)}, {18, 0x01234567, 1, 5, pat(5, 30)}}});
  v.push_back({"ext_fmt3_newmsg_ffmpeg.bin",
               false,
               {{8, 0, 1, 6, pat(10, 31)}, {8, 0x01000000, 1, 6, pat(10, 32)}, {8, 0x02000007, 1, 6, pat(10, 33)}}});
  v.push_back({"fmt3_after_fmt0.bin",
               false,
               {{8, 40, 1, 6, pat(10, 34)}, {8, 80, 1, 6, pat(10, 35)}, {8, 120, 1, 6, pat(10, 36)}}});
  // Completion order: audio 0, audio 23, then the video.
  v.push_back({"interleave_av.bin",
               false,
               {{8, 0, 1, 6, pat(100, 38)}, {8, 23, 1, 6, pat(100, 39)}, {9, 0, 1, 7, pat(400, 37)}}});
  v.push_back({"abort.bin", false, {{2, 0, 0, 2, u32be(7)}, {9, 33, 1, 7, pat(50, 41)}}});
  return v;
}

class GoldenChunk : public ::testing::TestWithParam<Vector> {};

TEST_P(GoldenChunk, DecodeWhole) {
  const Vector& v = GetParam();
  ByteVec in = load(std::string("chunk/") + v.file);
  ASSERT_FALSE(in.empty());
  expect_messages(decode(in), v.msgs, "whole");
}

TEST_P(GoldenChunk, DecodeByteAtATime) {
  const Vector& v = GetParam();
  ByteVec in = load(std::string("chunk/") + v.file);
  expect_messages(decode(in, 1), v.msgs, "1-byte feeds");
}

TEST_P(GoldenChunk, DecodeEverySliceSize) {
  const Vector& v = GetParam();
  ByteVec in = load(std::string("chunk/") + v.file);
  for (size_t s = 2; s <= 20; s++) expect_messages(decode(in, s), v.msgs, std::to_string(s) + "-byte feeds");
  std::mt19937 rng(1234);
  for (int i = 0; i < 20; i++) expect_messages(decode_random(in, rng), v.msgs, "random feeds");
}

class GoldenChunkEncode : public ::testing::TestWithParam<Vector> {};

TEST_P(GoldenChunkEncode, ByteExact) {
  const Vector& v = GetParam();
  ByteVec in = load(std::string("chunk/") + v.file);
  EXPECT_EQ(encode(v.msgs), in);
}

std::string vector_name(const ::testing::TestParamInfo<Vector>& i) {
  std::string n = i.param.file;
  n = n.substr(0, n.find('.'));
  for (char& c : n)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

std::vector<Vector> writer_vectors() {
  std::vector<Vector> r;
  for (auto& v : vectors())
    if (v.writer_style) r.push_back(v);
  return r;
}

INSTANTIATE_TEST_SUITE_P(Vectors, GoldenChunk, ::testing::ValuesIn(vectors()), vector_name);
// Peer-style vectors (rtmpdump, FFmpeg, spec-only forms) are decode-only;
// interleave_av is reproduced by InterleavedPiecesReproduceGolden.
INSTANTIATE_TEST_SUITE_P(WriterVectors, GoldenChunkEncode, ::testing::ValuesIn(writer_vectors()), vector_name);

// Pops exactly the front piece (header, then payload if any) as bytes.
ByteVec pop_piece(WireQueue& q) {
  ByteVec r;
  size_t before = q.pieces();
  while (!q.empty() && q.pieces() == before) {
    const void* b;
    size_t l;
    EXPECT_EQ(q.gather(&b, &l, 1), 1u);
    auto p = static_cast<const uint8_t*>(b);
    r.insert(r.end(), p, p + l);
    q.consume(l);
  }
  return r;
}

TEST(ChunkWriter, InterleavedPiecesReproduceGolden) {
  ChunkWriter w;
  WireQueue qv, qa;
  w.write(to_msg({9, 0, 1, 7, pat(400, 37)}), qv);
  w.write(to_msg({8, 0, 1, 6, pat(100, 38)}), qa);
  w.write(to_msg({8, 23, 1, 6, pat(100, 39)}), qa);
  ASSERT_EQ(qv.pieces(), 4u);
  ASSERT_EQ(qa.pieces(), 2u);
  ByteVec out;
  for (WireQueue* q : {&qv, &qa, &qv, &qa, &qv, &qv}) {
    ByteVec p = pop_piece(*q);
    out.insert(out.end(), p.begin(), p.end());
  }
  EXPECT_TRUE(qv.empty());
  EXPECT_TRUE(qa.empty());
  EXPECT_EQ(out, load("chunk/interleave_av.bin"));
}

// ---------------------------------------------------------------------------
// A real peer: FFmpeg 5.1 publishing with timestamps past 0xFFFFFF

void check_ffmpeg_capture(const std::vector<Message>& out) {
  ASSERT_EQ(out.size(), 86u);
  int commands = 0, data = 0, audio = 0, video = 0;
  std::map<uint32_t, uint32_t> last_ts;
  for (size_t i = 0; i < out.size(); i++) {
    const Message& m = out[i];
    ASSERT_GT(m.payload.size(), 0u) << i;
    const uint8_t b0 = m.payload.data()[0];
    switch (m.type) {
      case kMsgCommandAmf0:
        commands++;
        EXPECT_EQ(b0, 0x02) << i;  // AMF0 string: the command name
        EXPECT_TRUE(m.csid == 3 || m.csid == 8) << i;
        break;
      case kMsgDataAmf0:
        data++;
        EXPECT_EQ(m.payload.view().substr(3, 13), "@setDataFrame");
        break;
      case kMsgAudio:
        audio++;
        EXPECT_EQ(m.csid, 4u);
        EXPECT_EQ(b0, 0xaf) << i;  // AAC 44.1 kHz 16-bit stereo
        break;
      case kMsgVideo:
        video++;
        EXPECT_EQ(m.csid, 6u);
        EXPECT_TRUE(b0 == 0x17 || b0 == 0x27) << i;  // AVC key / inter frame
        break;
      default:
        ADD_FAILURE() << "unexpected type " << int(m.type) << " at " << i;
    }
    // Media timestamps never go backwards on a chunk stream.
    if (m.type == kMsgAudio || m.type == kMsgVideo) {
      EXPECT_GE(m.timestamp, last_ts[m.csid]) << i;
      last_ts[m.csid] = m.timestamp;
    }
  }
  EXPECT_EQ(commands, 7);
  EXPECT_EQ(data, 1);
  EXPECT_EQ(audio, 46);
  EXPECT_EQ(video, 32);
  EXPECT_EQ(out[0].payload.view().substr(3, 7), "connect");
  // Sequence headers at 0; the first frames come with fmt 1 and an
  // extended delta (16777977 = 0x010002f9 for audio, 16778000 for video).
  EXPECT_EQ(out[8].type, kMsgAudio);
  EXPECT_EQ(out[8].timestamp, 16777977u);
  EXPECT_EQ(out[8].payload.size(), 282u);
  EXPECT_EQ(out[9].type, kMsgVideo);
  EXPECT_EQ(out[9].timestamp, 16778000u);
  EXPECT_EQ(out[9].payload.size(), 4483u);
  EXPECT_EQ(out[9].payload.data()[0], 0x17);
  EXPECT_EQ(last_ts[6], 16778000u + 967u);  // 30th frame at 30 fps (29 * 33.3 ms)
}

TEST(ChunkPeers, Ffmpeg51PublishWithExtendedTimestamps) {
  ByteVec in = load("chunk/ffmpeg51_publish_ext.bin");
  ASSERT_EQ(in.size(), 24706u);
  check_ffmpeg_capture(decode(in));
  check_ffmpeg_capture(decode(in, 1));
  std::mt19937 rng(3);
  for (int i = 0; i < 5; i++) check_ffmpeg_capture(decode_random(in, rng));
}

TEST(ChunkPeers, Ffmpeg51CaptureSurvivesOurWriter) {
  // What we decode from FFmpeg re-encodes and decodes to the same messages
  // (a relay's path), at both chunk sizes.
  auto msgs = decode(load("chunk/ffmpeg51_publish_ext.bin"));
  for (uint32_t cs : {128u, 4096u}) {
    ChunkWriter w;
    w.set_chunk_size(cs);
    WireQueue q;
    for (const auto& m : msgs) w.write(m, q);
    ByteVec wire = q.flatten();
    ChunkReader r;
    r.set_chunk_size(cs);
    std::vector<Message> got;
    ASSERT_TRUE(r.feed(wire.data(), wire.size(), got, nullptr));
    expect_same(got, msgs, "chunk size " + std::to_string(cs));
  }
}

// nginx-rtmp as a server writing to a player.
void check_nginx_capture(const std::vector<Message>& out) {
  ASSERT_EQ(out.size(), 95u);
  // Server preamble: Window Ack Size, Set Peer Bandwidth, Set Chunk Size.
  EXPECT_EQ(out[0].type, kMsgWindowAckSize);
  EXPECT_EQ(out[1].type, kMsgSetPeerBandwidth);
  ASSERT_EQ(out[2].type, kMsgSetChunkSize);
  uint32_t cs = 0;
  ASSERT_TRUE(control::parse_set_chunk_size(out[2], cs, nullptr));
  EXPECT_EQ(cs, 4096u);
  std::map<std::pair<uint32_t, uint8_t>, int> counts;
  std::map<uint32_t, uint32_t> first_ts, last_ts;
  for (const Message& m : out) {
    counts[{m.csid, m.type}]++;
    if (m.type == kMsgAudio || m.type == kMsgVideo) {
      if (!first_ts.count(m.csid)) first_ts[m.csid] = m.timestamp;
      EXPECT_GE(m.timestamp, last_ts[m.csid]);
      last_ts[m.csid] = m.timestamp;
      EXPECT_EQ(m.payload.data()[0], m.type == kMsgAudio ? 0xaf : (m.payload.data()[0] == 0x17 ? 0x17 : 0x27));
    }
  }
  EXPECT_EQ((counts[{6, kMsgAudio}]), 53);
  EXPECT_EQ((counts[{7, kMsgVideo}]), 32);
  EXPECT_EQ((counts[{2, kMsgUserControl}]), 2);
  EXPECT_EQ((counts[{5, kMsgDataAmf0}]), 2);
  // fmt 0 with extended absolute timestamps (> 0xFFFFFF).
  EXPECT_EQ(first_ts[6], 16780786u);
  EXPECT_EQ(first_ts[7], 16780967u);
  // The 4537-byte keyframe spans two 4096-byte chunks.
  bool key = false;
  for (const Message& m : out) key |= (m.type == kMsgVideo && m.payload.size() == 4537 && m.timestamp == 16781000);
  EXPECT_TRUE(key);
  // nginx announces the end of the publisher with StreamEOF(1).
  control::UserControl uc;
  ASSERT_TRUE(control::parse_user_control(out.back(), uc, nullptr));
  EXPECT_EQ(uc.event, control::UserControlEvent::StreamEOF);
  EXPECT_EQ(uc.value, 1u);
}

TEST(ChunkPeers, NginxRtmpPlayWithExtendedTimestamps) {
  ByteVec in = load("chunk/nginx_rtmp_play.bin");
  ASSERT_EQ(in.size(), 25608u);
  check_nginx_capture(decode(in));
  check_nginx_capture(decode(in, 1));
  std::mt19937 rng(4);
  for (int i = 0; i < 5; i++) check_nginx_capture(decode_random(in, rng));
}

// ---------------------------------------------------------------------------
// Reader behaviour

TEST(ChunkReader, SetChunkSizeAppliesMidFeedAndIsEmitted) {
  ChunkReader r;
  std::vector<Message> out;
  ByteVec in = load("chunk/set_chunk_size_mid.bin");
  ASSERT_TRUE(r.feed(in.data(), in.size(), out, nullptr));
  EXPECT_EQ(r.chunk_size(), 200u);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].type, kMsgSetChunkSize);
}

TEST(ChunkReader, AbortDiscardsPartial) {
  ChunkReader r;
  std::vector<Message> out;
  ByteVec in = load("chunk/abort.bin");
  // Up to the end of the partial video chunk: 300 bytes are buffered.
  size_t first = 12 + 128;
  ASSERT_TRUE(r.feed(in.data(), first, out, nullptr));
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(r.buffered_bytes(), 300u);
  ASSERT_TRUE(r.feed(in.data() + first, 16, out, nullptr));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, kMsgAbort);
  EXPECT_EQ(r.buffered_bytes(), 0u);
  ASSERT_TRUE(r.feed(in.data() + first + 16, in.size() - first - 16, out, nullptr));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].timestamp, 33u);
}

TEST(ChunkReader, AbortOfUnknownCsidIsHarmless) {
  ByteVec in = cat({h0(2, 0, 4, kMsgAbort, 0), u32be(42)});
  auto out = decode(in);
  ASSERT_EQ(out.size(), 1u);
}

TEST(ChunkReader, NewHeaderAbandonsPartialMessage) {
  // First chunk of a 300-byte message on csid 7, then a fmt 0 on csid 7.
  ByteVec in = cat({h0(7, 0, 300, 9, 1), pat(128, 1), h0(7, 40, 5, 9, 1), pat(5, 2)});
  auto out = decode(in);
  expect_messages(out, {{9, 40, 1, 7, pat(5, 2)}}, "abandon");
  expect_messages(decode(in, 1), {{9, 40, 1, 7, pat(5, 2)}}, "abandon bytewise");
}

TEST(ChunkReader, ZeroLengthPayloadIsRealEmptyBytes) {
  auto out = decode(h0(5, 0, 0, 18, 1));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(out[0].payload.get(), nullptr);
  EXPECT_EQ(out[0].payload.size(), 0u);
}

TEST(ChunkReader, OmittedExtendedOnContinuationAtManyChunkSizes) {
  // rtmpdump style at various sizes and remainders: field on the first
  // chunk only. Also the repeated style; both must decode identically.
  for (uint32_t len : {1u, 3u, 4u, 5u, 127u, 128u, 129u, 131u, 132u, 133u, 256u, 259u, 260u, 1000u}) {
    for (bool repeat : {false, true}) {
      ByteVec payload = pat(len, int(len));
      ByteVec in = h0(4, 0x01234567, len, 9, 1);
      for (uint32_t off = 0; off < len; off += 128) {
        if (off) {
          in.push_back(0xc4);
          if (repeat) {
            ByteVec e = u32be(0x01234567);
            in.insert(in.end(), e.begin(), e.end());
          }
        }
        in.insert(in.end(), payload.begin() + off, payload.begin() + std::min(len, off + 128));
      }
      ByteVec tail = cat({h0(5, 9, 2, 18, 1), pat(2, 3)});
      in.insert(in.end(), tail.begin(), tail.end());
      std::vector<M> want = {{9, 0x01234567, 1, 4, payload}, {18, 9, 1, 5, pat(2, 3)}};
      std::string what = "len " + std::to_string(len) + (repeat ? " repeated" : " omitted");
      expect_messages(decode(in), want, what);
      expect_messages(decode(in, 1), want, what + " bytewise");
    }
  }
}

TEST(ChunkReader, Fmt3NewMessageAfterExtendedReadsField) {
  // fmt 0 extended, then fmt 3 new message carrying the field (= delta).
  ByteVec in = cat({h0(6, 0x01000000, 4, 8, 1), pat(4, 1), {0xc6}, u32be(0x01000000), pat(4, 2)});
  expect_messages(decode(in, 1), {{8, 0x01000000, 1, 6, pat(4, 1)}, {8, 0x02000000, 1, 6, pat(4, 2)}}, "fmt3 ext");
}

TEST(ChunkReader, CsidEncodingsBoundaries) {
  for (uint32_t csid : {2u, 63u, 64u, 65u, 318u, 319u, 320u, 321u, 65598u, 65599u}) {
    ChunkWriter w;
    ByteVec in = w.write_flat(to_msg({9, 1, 1, csid, pat(300, 5)}));
    size_t want_basic = csid < 64 ? 1 : csid < 320 ? 2 : 3;
    EXPECT_EQ(in.size(), 3 * want_basic + 11 + 300) << csid;
    expect_messages(decode(in, 1), {{9, 1, 1, csid, pat(300, 5)}}, "csid " + std::to_string(csid));
  }
}

TEST(ChunkReader, TimestampWrapOnDecode) {
  // fmt 0 at 0xFFFFFFF0 then fmt 2 delta 0x20 => 0x10.
  ByteVec in = cat({h0(6, 0xfffffff0, 1, 8, 1), {1}, {0x86, 0, 0, 0x20}, {2}});
  expect_messages(decode(in), {{8, 0xfffffff0, 1, 6, {1}}, {8, 0x10, 1, 6, {2}}}, "wrap");
}

TEST(ChunkReader, BytesReadCountsEverything) {
  ChunkReader r;
  std::vector<Message> out;
  ByteVec in = load("chunk/csid_3byte.bin");
  ASSERT_TRUE(r.feed(in.data(), 10, out, nullptr));
  ASSERT_TRUE(r.feed(in.data() + 10, 0, out, nullptr));
  ASSERT_TRUE(r.feed(in.data() + 10, in.size() - 10, out, nullptr));
  EXPECT_EQ(r.bytes_read(), in.size());
  EXPECT_EQ(out.size(), 3u);
}

TEST(ChunkReader, MoveKeepsState) {
  ChunkReader r;
  std::vector<Message> out;
  ByteVec in = load("chunk/fmt0_cont_csid3.bin");
  ASSERT_TRUE(r.feed(in.data(), 100, out, nullptr));
  ChunkReader r2(std::move(r));
  ASSERT_TRUE(r2.feed(in.data() + 100, in.size() - 100, out, nullptr));
  expect_messages(out, {{20, 0, 0, 3, pat(300, 1)}}, "moved");
}

TEST(ChunkReader, InitialChunkSizeSetter) {
  ChunkWriter w;
  w.set_chunk_size(4096);
  ByteVec in = w.write_flat(to_msg({9, 0, 1, 7, pat(3000, 1)}));
  ChunkReader r;
  r.set_chunk_size(4096);
  std::vector<Message> out;
  ASSERT_TRUE(r.feed(in.data(), in.size(), out, nullptr));
  ASSERT_EQ(out.size(), 1u);
}

// ---------------------------------------------------------------------------
// Reader errors

TEST(ChunkReaderErrors, FmtBeforeFmt0) {
  EXPECT_NE(decode_error(cat({{0x45}, {0, 0, 1, 0, 0, 1, 8}}), GRTMP_ERROR_PROTOCOL).find("fmt 1 before fmt 0 on csid 5"),
            std::string::npos);
  EXPECT_NE(decode_error({0x85, 0, 0, 1}, GRTMP_ERROR_PROTOCOL).find("fmt 2 before fmt 0 on csid 5"), std::string::npos);
  EXPECT_NE(decode_error({0xc5}, GRTMP_ERROR_PROTOCOL).find("fmt 3 before fmt 0 on csid 5"), std::string::npos);
  EXPECT_NE(decode_error({0xc0, 10}, GRTMP_ERROR_PROTOCOL).find("csid 74"), std::string::npos);
}

TEST(ChunkReaderErrors, MessageTooLong) {
  ChunkReaderLimits l;
  l.max_message_size = 1000;
  auto msg = decode_error(h0(5, 0, 1001, 9, 1), GRTMP_ERROR_LIMIT, l);
  EXPECT_NE(msg.find("1001"), std::string::npos) << msg;
  // Exactly at the limit is fine.
  {
    ChunkReader r(l);
    std::vector<Message> out;
    ByteVec in = cat({h0(5, 0, 1000, 9, 1), pat(128, 0)});
    EXPECT_TRUE(r.feed(in.data(), in.size(), out, nullptr));
    EXPECT_EQ(r.buffered_bytes(), 1000u);
  }
  // fmt 1 is checked too.
  ByteVec in = cat({h0(5, 0, 1, 9, 1), {0}, {0x45, 0, 0, 1, 0, 0x03, 0xe9, 9}});
  decode_error(in, GRTMP_ERROR_LIMIT, l);
}

TEST(ChunkReaderErrors, TooManyChunkStreams) {
  ChunkReaderLimits l;
  l.max_chunk_streams = 4;
  ByteVec in;
  for (uint32_t c = 3; c < 7; c++) in = cat({in, h0(c, 0, 0, 18, 1)});
  EXPECT_EQ(decode(in, 0, l).size(), 4u);
  in = cat({in, h0(7, 0, 0, 18, 1)});
  auto msg = decode_error(in, GRTMP_ERROR_LIMIT, l);
  EXPECT_NE(msg.find("csid 7"), std::string::npos) << msg;
}

TEST(ChunkReaderErrors, TooManyBufferedBytes) {
  ChunkReaderLimits l;
  l.max_buffered_bytes = 1000;
  ByteVec in = cat({h0(5, 0, 600, 9, 1), pat(128, 0), h0(6, 0, 400, 9, 1), pat(128, 0)});
  std::mt19937 rng(1);
  EXPECT_EQ(decode_random(in, rng, l).size(), 0u);  // 1000: at the limit
  in = cat({h0(5, 0, 600, 9, 1), pat(128, 0), h0(6, 0, 401, 9, 1), pat(128, 0)});
  auto msg = decode_error(in, GRTMP_ERROR_LIMIT, l);
  EXPECT_NE(msg.find("1001"), std::string::npos) << msg;
}

TEST(ChunkReaderErrors, BadSetChunkSize) {
  auto scs = [](uint32_t v) { return cat({h0(2, 0, 4, kMsgSetChunkSize, 0), u32be(v)}); };
  auto m0 = decode_error(scs(0), GRTMP_ERROR_MALFORMED);
  EXPECT_NE(m0.find(" 0 "), std::string::npos) << m0;
  auto m1 = decode_error(scs(0x80000000u), GRTMP_ERROR_MALFORMED);
  EXPECT_NE(m1.find("2147483648"), std::string::npos) << m1;
  auto m2 = decode_error(scs(65537), GRTMP_ERROR_LIMIT);
  EXPECT_NE(m2.find("65537"), std::string::npos) << m2;
  // Short payload.
  decode_error(cat({h0(2, 0, 2, kMsgSetChunkSize, 0), {0, 1}}), GRTMP_ERROR_MALFORMED);
  // The limit itself and 1 are accepted.
  ChunkReader r;
  std::vector<Message> out;
  ByteVec ok = scs(65536);
  ASSERT_TRUE(r.feed(ok.data(), ok.size(), out, nullptr));
  EXPECT_EQ(r.chunk_size(), 65536u);
  ok = scs(1);
  ChunkReader r1;
  ASSERT_TRUE(r1.feed(ok.data(), ok.size(), out, nullptr));
  EXPECT_EQ(r1.chunk_size(), 1u);
}

TEST(ChunkReaderErrors, ShortAbort) {
  decode_error(cat({h0(2, 0, 3, kMsgAbort, 0), {0, 0, 7}}), GRTMP_ERROR_MALFORMED);
}

// ---------------------------------------------------------------------------
// Writer

TEST(ChunkWriter, FmtChoices) {
  ChunkWriter w;
  auto fmt_of = [&](M m) { return w.write_flat(to_msg(m))[0] >> 6; };
  EXPECT_EQ(fmt_of({9, 100, 1, 7, pat(10, 0)}), 0);   // first use
  EXPECT_EQ(fmt_of({9, 133, 1, 7, pat(10, 0)}), 2);   // delta 33, no delta before (after fmt 0: never fmt 3)
  EXPECT_EQ(fmt_of({9, 166, 1, 7, pat(10, 0)}), 3);   // same delta
  EXPECT_EQ(fmt_of({9, 199, 1, 7, pat(11, 0)}), 1);   // length change
  EXPECT_EQ(fmt_of({8, 232, 1, 7, pat(11, 0)}), 1);   // type change
  EXPECT_EQ(fmt_of({8, 265, 1, 7, pat(11, 0)}), 3);   // fmt 1 set delta 33
  EXPECT_EQ(fmt_of({8, 265, 1, 7, pat(11, 0)}), 2);   // delta 0
  EXPECT_EQ(fmt_of({8, 265, 1, 7, pat(11, 0)}), 3);   // delta 0 again
  EXPECT_EQ(fmt_of({8, 264, 1, 7, pat(11, 0)}), 0);   // backwards
  EXPECT_EQ(fmt_of({8, 300, 2, 7, pat(11, 0)}), 0);   // stream id change
  EXPECT_EQ(fmt_of({8, 300, 2, 8, pat(11, 0)}), 0);   // other csid: first use
  w.reset();
  EXPECT_EQ(fmt_of({8, 400, 2, 7, pat(11, 0)}), 0);   // after reset
}

TEST(ChunkWriter, WrapIsForward) {
  ChunkWriter w;
  w.write_flat(to_msg({8, 0xfffffff0, 1, 6, {1}}));
  ByteVec b = w.write_flat(to_msg({8, 0x10, 1, 6, {2}}));
  EXPECT_EQ(b, (ByteVec{0x86, 0, 0, 0x20, 2}));
  // A forward jump of 2^31 or more is "backwards": fmt 0.
  b = w.write_flat(to_msg({8, 0x80000010, 1, 6, {2}}));
  EXPECT_EQ(b[0] >> 6, 0);
  b = w.write_flat(to_msg({8, 0x80000010 + 0x7fffffff, 1, 6, {2}}));
  EXPECT_EQ(b[0] >> 6, 2);
}

TEST(ChunkWriter, ExtendedDeltaRepeatedOnContinuations) {
  ChunkWriter w;
  w.write_flat(to_msg({9, 0, 1, 7, pat(10, 0)}));
  ByteVec b = w.write_flat(to_msg({9, 0x01000000, 1, 7, pat(200, 0)}));
  // fmt 1: 1 + 7 + 4 ext, 128 payload, then c7 + 4 ext + 72.
  ASSERT_EQ(b.size(), 12u + 128 + 5 + 72);
  EXPECT_EQ(ByteVec(b.begin() + 1, b.begin() + 4), (ByteVec{0xff, 0xff, 0xff}));
  EXPECT_EQ(ByteVec(b.begin() + 8, b.begin() + 12), u32be(0x01000000));
  EXPECT_EQ(b[140], 0xc7);
  EXPECT_EQ(ByteVec(b.begin() + 141, b.begin() + 145), u32be(0x01000000));
}

TEST(ChunkWriter, PiecesShareThePayload) {
  ChunkWriter w;
  Message m = to_msg({9, 0, 1, 7, pat(1000, 0)});
  WireQueue q;
  w.write(m, q);
  EXPECT_EQ(q.pieces(), 8u);
  EXPECT_EQ(q.bytes(), 12u + 7 + 1000);
  const void* bases[16];
  size_t lens[16];
  ASSERT_EQ(q.gather(bases, lens, 16), 16u);
  for (int i = 0; i < 8; i++) EXPECT_EQ(bases[2 * i + 1], m.payload.data() + 128 * i) << i;
  // Refcount: the message plus one reference per piece.
  WireQueue q2;
  w.write(m, q2);
  q.clear();
  q2.clear();
  EXPECT_EQ(q.bytes(), 0u);
}

// A moved payload is held by the message's last piece only: the bytes
// stay valid (ASan checks) while earlier pieces are consumed, in any
// split, and are freed exactly when the last piece goes.
TEST(ChunkWriter, MovedPayloadLivesUntilItsLastPieceIsConsumed) {
  for (size_t step : {1u, 7u, 128u, 135u, 1000u}) {
    ChunkWriter w;
    WireQueue q;
    bool freed = false;
    std::vector<uint8_t> data = pat(1000, 3);
    auto* copy = static_cast<uint8_t*>(g_memdup2(data.data(), data.size()));
    struct Ctx { uint8_t* p; bool* freed; };
    auto* ctx = new Ctx{copy, &freed};
    Message m = to_msg({9, 0, 1, 7, {}});
    m.payload = Bytes::adopt(g_bytes_new_with_free_func(copy, data.size(), [](gpointer c) {
      auto* x = static_cast<Ctx*>(c);
      g_free(x->p);
      *x->freed = true;
      delete x;
    }, ctx));
    Message same = to_msg({9, 0, 1, 7, data});
    std::vector<uint8_t> expect = ChunkWriter().write_flat(same);
    w.write(std::move(m), q);
    EXPECT_FALSE(m.payload);
    EXPECT_EQ(q.pieces(), 8u);
    std::vector<uint8_t> got;
    while (!q.empty()) {
      EXPECT_FALSE(freed) << "freed with " << q.bytes() << " bytes still queued";
      const void* bases[4];
      size_t lens[4];
      size_t n = q.gather(bases, lens, 4);
      ASSERT_GT(n, 0u);
      size_t take = std::min(step, lens[0]);
      const auto* b = static_cast<const uint8_t*>(bases[0]);
      got.insert(got.end(), b, b + take);
      q.consume(take);
    }
    EXPECT_TRUE(freed) << step;
    EXPECT_EQ(got, expect) << step;
  }
}

TEST(ChunkWriter, LargeCsidsKeepTheirOwnState) {
  // csids past the inline table (16) live in a map; fmt choice is the same,
  // and interleaved csids keep their own state.
  for (uint32_t csid : {3u, 15u, 16u, 63u, 64u, 319u, 320u, 65598u}) {
    ChunkWriter w;
    auto fmt_of = [&](M m) { return w.write_flat(to_msg(m))[0] >> 6; };
    EXPECT_EQ(fmt_of({9, 0, 1, csid, pat(10, 0)}), 0) << csid;
    EXPECT_EQ(fmt_of({9, 40, 1, csid, pat(10, 0)}), 2) << csid;
    EXPECT_EQ(fmt_of({8, 0, 1, csid + 1, pat(5, 0)}), 0) << csid;
    EXPECT_EQ(fmt_of({9, 80, 1, csid, pat(10, 0)}), 3) << csid;
    w.reset();
    EXPECT_EQ(fmt_of({9, 120, 1, csid, pat(10, 0)}), 0) << csid;
  }
}

TEST(ChunkWriter, ZeroLengthMessage) {
  ChunkWriter w;
  Message m;
  m.type = 18;
  m.csid = 5;
  m.stream_id = 1;
  WireQueue q;
  w.write(m, q);
  EXPECT_EQ(q.pieces(), 1u);
  EXPECT_EQ(q.flatten(), h0(5, 0, 0, 18, 1));
  const void* bases[4];
  size_t lens[4];
  EXPECT_EQ(q.gather(bases, lens, 4), 1u);
}

// ---------------------------------------------------------------------------
// WireQueue partial writes

TEST(WireQueue, GatherConsumeAnySplit) {
  ChunkWriter w;
  WireQueue q;
  w.write(to_msg({9, 0x01000000, 1, 7, pat(1000, 1)}), q);
  w.write(to_msg({8, 5, 1, 400, pat(3, 2)}), q);
  w.write(to_msg({8, 0, 1, 6, {}}), q);
  w.write(to_msg({8, 0, 1, 6, pat(50, 3)}), q);
  const ByteVec all = q.flatten();
  EXPECT_EQ(all.size(), q.bytes());
  std::mt19937 rng(7);
  for (int round = 0; round < 200; round++) {
    WireQueue c;
    ChunkWriter w2;
    w2.write(to_msg({9, 0x01000000, 1, 7, pat(1000, 1)}), c);
    w2.write(to_msg({8, 5, 1, 400, pat(3, 2)}), c);
    w2.write(to_msg({8, 0, 1, 6, {}}), c);
    w2.write(to_msg({8, 0, 1, 6, pat(50, 3)}), c);
    ByteVec sent;
    while (!c.empty()) {
      size_t max = std::uniform_int_distribution<size_t>(1, 5)(rng);
      const void* bases[5];
      size_t lens[5];
      size_t n = c.gather(bases, lens, max);
      ASSERT_GE(n, 1u);
      ASSERT_LE(n, max);
      // A "socket" that accepts a random prefix of the gathered bytes.
      size_t avail = 0;
      for (size_t i = 0; i < n; i++) avail += lens[i];
      size_t take = std::uniform_int_distribution<size_t>(0, avail)(rng);
      size_t left = take;
      for (size_t i = 0; i < n && left; i++) {
        size_t k = std::min(left, lens[i]);
        auto p = static_cast<const uint8_t*>(bases[i]);
        sent.insert(sent.end(), p, p + k);
        left -= k;
      }
      size_t before = c.bytes();
      c.consume(take);
      EXPECT_EQ(c.bytes(), before - take);
      // flatten() after partial consumption is the unsent suffix.
      if (round % 50 == 0) {
        ByteVec rest = c.flatten();
        EXPECT_EQ(ByteVec(all.begin() + sent.size(), all.end()), rest);
      }
    }
    ASSERT_EQ(sent, all);
    EXPECT_EQ(c.pieces(), 0u);
  }
}

TEST(WireQueue, ConsumeMidHeader) {
  ChunkWriter w;
  WireQueue q;
  w.write(to_msg({9, 0, 1, 7, pat(10, 1)}), q);
  ByteVec all = q.flatten();
  q.consume(5);
  const void* bases[4];
  size_t lens[4];
  ASSERT_EQ(q.gather(bases, lens, 4), 2u);
  EXPECT_EQ(lens[0], 7u);
  EXPECT_EQ(lens[1], 10u);
  q.consume(7);
  ASSERT_EQ(q.gather(bases, lens, 4), 1u);
  EXPECT_EQ(lens[0], 10u);
  q.consume(3);
  ASSERT_EQ(q.gather(bases, lens, 4), 1u);
  EXPECT_EQ(lens[0], 7u);
  EXPECT_EQ(0, memcmp(bases[0], all.data() + 15, 7));
  q.consume(7);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.gather(bases, lens, 4), 0u);
}

// ---------------------------------------------------------------------------
// Randomized round trips and garbage

Message random_message(std::mt19937& rng, uint32_t& ts_state, size_t max_len) {
  static const uint32_t csids[] = {2, 3, 4, 5, 6, 7, 63, 64, 100, 319, 320, 1000, 65599};
  static const uint8_t types[] = {8, 9, 18, 20};
  Message m;
  m.csid = csids[rng() % std::size(csids)];
  m.type = types[rng() % std::size(types)];
  m.stream_id = rng() % 3;
  switch (rng() % 8) {
    case 0: ts_state = rng(); break;                                  // anywhere, incl. backwards
    case 1: ts_state = 0xffffffffu - (rng() % 100); break;            // just before the wrap
    case 2: ts_state += 0xffffff + (rng() % 3) - 1; break;            // 24-bit edge
    case 3: ts_state += 0x01000000 + (rng() % 1000); break;           // extended delta
    default: ts_state += rng() % 50; break;                            // media-like
  }
  m.timestamp = ts_state;
  size_t len = (rng() % 4 == 0) ? rng() % 5 : rng() % (max_len + 1);
  if (rng() % 3 == 0 && len > 0) len = 12;  // repeated lengths let fmt 2/3 happen
  ByteVec p(len);
  for (auto& b : p) b = static_cast<uint8_t>(rng());
  m.payload = Bytes::copy(p);
  return m;
}

TEST(ChunkRoundTrip, RandomMessagesSizesAndSlicing) {
  std::mt19937 rng(20240601);
  static const uint32_t sizes[] = {1, 2, 3, 7, 128, 129, 1000, 4096, 65536};
  for (int iter = 0; iter < 300; iter++) {
    ChunkWriter w;
    WireQueue q;
    std::vector<Message> sent;
    uint32_t ts = rng();
    int n = 1 + rng() % 40;
    for (int i = 0; i < n; i++) {
      if (rng() % 10 == 0) {
        uint32_t cs = sizes[rng() % std::size(sizes)];
        Message scs = control::set_chunk_size(cs);
        w.write(scs, q);
        w.set_chunk_size(cs);
        sent.push_back(scs);
      }
      size_t max_len = w.chunk_size() < 8 ? 300 : 20000;
      Message m = random_message(rng, ts, max_len);
      w.write(m, q);
      sent.push_back(m);
    }
    ByteVec bytes = q.flatten();
    ChunkReader r;
    std::vector<Message> got;
    size_t off = 0;
    while (off < bytes.size()) {
      size_t k = rng() % 3 == 0 ? 1 : 1 + rng() % 3000;
      k = std::min(k, bytes.size() - off);
      GError* err = nullptr;
      ASSERT_TRUE(r.feed(bytes.data() + off, k, got, &err)) << (err ? err->message : "");
      off += k;
    }
    expect_same(got, sent, "iteration " + std::to_string(iter));
    EXPECT_EQ(r.buffered_bytes(), 0u);
    if (HasFailure()) break;
  }
}

TEST(ChunkRoundTrip, RandomInterleavingAcrossCsids) {
  std::mt19937 rng(99);
  for (int iter = 0; iter < 100; iter++) {
    ChunkWriter w;
    w.set_chunk_size(iter % 2 ? 128 : 4096);
    std::map<uint32_t, WireQueue> queues;  // one per csid
    std::map<uint32_t, std::vector<Message>> sent;
    uint32_t ts = rng();
    for (int i = 0; i < 30; i++) {
      Message m = random_message(rng, ts, 10000);
      w.write(m, queues[m.csid]);
      sent[m.csid].push_back(m);
    }
    // Interleave whole pieces (chunks) from random queues.
    ByteVec wire;
    std::vector<uint32_t> live;
    for (auto& kv : queues) live.push_back(kv.first);
    while (!live.empty()) {
      size_t i = rng() % live.size();
      WireQueue& q = queues[live[i]];
      ByteVec p = pop_piece(q);
      wire.insert(wire.end(), p.begin(), p.end());
      if (q.empty()) live.erase(live.begin() + i);
    }
    ChunkReader r;
    r.set_chunk_size(w.chunk_size());
    std::vector<Message> got;
    GError* err = nullptr;
    ASSERT_TRUE(r.feed(wire.data(), wire.size(), got, &err)) << (err ? err->message : "");
    std::map<uint32_t, std::vector<Message>> by_csid;
    for (auto& m : got) by_csid[m.csid].push_back(m);
    for (auto& kv : sent) expect_same(by_csid[kv.first], kv.second, "csid " + std::to_string(kv.first));
    if (HasFailure()) break;
  }
}

TEST(ChunkFuzz, GarbageNeverCrashes) {
  std::mt19937 rng(5);
  ChunkReaderLimits l;
  l.max_message_size = 1 << 16;
  l.max_buffered_bytes = 1 << 18;
  l.max_chunk_streams = 16;
  size_t total_msgs = 0, failures = 0;
  for (int iter = 0; iter < 3000; iter++) {
    ByteVec in(rng() % 4000);
    for (auto& b : in) b = static_cast<uint8_t>(rng());
    if (iter % 3 == 0) {
      // Start with a plausible fmt 0 header so the parser goes deeper.
      ByteVec h = h0(3 + rng() % 60, rng(), rng() % 600, 20, 0);
      if (in.size() >= h.size()) std::copy(h.begin(), h.end(), in.begin());
    }
    ChunkReader r(l);
    std::vector<Message> out;
    size_t off = 0;
    bool ok = true;
    while (off < in.size() && ok) {
      size_t k = std::min<size_t>(in.size() - off, 1 + rng() % 300);
      GError* err = nullptr;
      ok = r.feed(in.data() + off, k, out, &err);
      if (!ok) {
        EXPECT_NE(err, nullptr);
        failures++;
      }
      g_clear_error(&err);
      off += k;
    }
    EXPECT_LE(r.buffered_bytes(), l.max_buffered_bytes);
    total_msgs += out.size();
  }
  EXPECT_GT(failures, 0u);
  RecordProperty("messages", std::to_string(total_msgs));
}

TEST(ChunkFuzz, MutatedGoldenNeverCrashes) {
  std::mt19937 rng(11);
  std::vector<ByteVec> seeds;
  for (const Vector& v : vectors()) seeds.push_back(load(std::string("chunk/") + v.file));
  for (int iter = 0; iter < 5000; iter++) {
    ByteVec in = seeds[rng() % seeds.size()];
    int flips = 1 + rng() % 4;
    for (int f = 0; f < flips; f++) in[rng() % in.size()] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) in.resize(rng() % (in.size() + 1));
    ChunkReader r;
    std::vector<Message> out;
    size_t off = 0;
    bool ok = true;
    while (off < in.size() && ok) {
      size_t k = std::min<size_t>(in.size() - off, 1 + rng() % 64);
      GError* err = nullptr;
      ok = r.feed(in.data() + off, k, out, &err);
      g_clear_error(&err);
      off += k;
    }
  }
}

}  // namespace
