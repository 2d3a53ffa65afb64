// Protocol control messages and user control events: golden chunks decoded
// field by field and re-encoded byte-exact, parser errors, AckTracker.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "grtmp/chunk.h"
#include "grtmp/control.h"
#include "grtmp/error.h"

using namespace grtmp;
using namespace grtmp::control;

namespace {

using ByteVec = std::vector<uint8_t>;

ByteVec load(const std::string& name) {
  std::string path = std::string(GOLDEN_DIR) + "/control/" + name;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  return ByteVec(std::istreambuf_iterator<char>(f), {});
}

// Decodes a golden chunk into its single message.
Message read_one(const ByteVec& in) {
  ChunkReader r;
  std::vector<Message> out;
  GError* err = nullptr;
  EXPECT_TRUE(r.feed(in.data(), in.size(), out, &err)) << (err ? err->message : "");
  g_clear_error(&err);
  EXPECT_EQ(out.size(), 1u);
  if (out.empty()) return {};
  const Message& m = out[0];
  EXPECT_EQ(m.csid, 2u);
  EXPECT_EQ(m.stream_id, 0u);
  EXPECT_EQ(m.timestamp, 0u);
  return m;
}

ByteVec encode(const Message& m) {
  ChunkWriter w;
  return w.write_flat(m);
}

Message with_payload(uint8_t type, ByteVec p) {
  Message m;
  m.type = type;
  m.csid = 2;
  m.payload = Bytes::copy(p);
  return m;
}

// Takes GError** so the error is read after the call that sets it.
void expect_error(bool ok, GError** errp, GrtmpError code) {
  GError* err = *errp;
  *errp = nullptr;
  EXPECT_FALSE(ok);
  ASSERT_NE(err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, code)) << err->message;
  g_error_free(err);
}

// ---------------------------------------------------------------------------
// Golden: decode field by field, re-encode byte-exact

TEST(ControlGolden, SetChunkSize) {
  ByteVec g = load("set_chunk_size.bin");
  Message m = read_one(g);
  EXPECT_EQ(m.type, kMsgSetChunkSize);
  uint32_t size = 0;
  ASSERT_TRUE(parse_set_chunk_size(m, size, nullptr));
  EXPECT_EQ(size, 4096u);
  EXPECT_EQ(encode(set_chunk_size(4096)), g);
}

TEST(ControlGolden, Abort) {
  ByteVec g = load("abort.bin");
  Message m = read_one(g);
  EXPECT_EQ(m.type, kMsgAbort);
  uint32_t csid = 0;
  ASSERT_TRUE(parse_abort(m, csid, nullptr));
  EXPECT_EQ(csid, 7u);
  EXPECT_EQ(encode(control::abort(7)), g);
}

TEST(ControlGolden, Acknowledgement) {
  ByteVec g = load("acknowledgement.bin");
  Message m = read_one(g);
  EXPECT_EQ(m.type, kMsgAck);
  uint32_t seq = 0;
  ASSERT_TRUE(parse_acknowledgement(m, seq, nullptr));
  EXPECT_EQ(seq, 0x12345678u);
  EXPECT_EQ(encode(acknowledgement(0x12345678)), g);
}

TEST(ControlGolden, WindowAckSize) {
  ByteVec g = load("window_ack_size.bin");
  Message m = read_one(g);
  EXPECT_EQ(m.type, kMsgWindowAckSize);
  uint32_t size = 0;
  ASSERT_TRUE(parse_window_ack_size(m, size, nullptr));
  EXPECT_EQ(size, 2500000u);
  EXPECT_EQ(encode(window_ack_size(2500000)), g);
}

TEST(ControlGolden, SetPeerBandwidth) {
  struct {
    const char* file;
    uint32_t size;
    PeerBandwidthLimit limit;
  } cases[] = {
      {"set_peer_bandwidth_hard.bin", 2500000, PeerBandwidthLimit::Hard},
      {"set_peer_bandwidth_soft.bin", 2500000, PeerBandwidthLimit::Soft},
      {"set_peer_bandwidth_dynamic.bin", 5000000, PeerBandwidthLimit::Dynamic},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    ByteVec g = load(c.file);
    Message m = read_one(g);
    EXPECT_EQ(m.type, kMsgSetPeerBandwidth);
    uint32_t size = 0;
    PeerBandwidthLimit limit = PeerBandwidthLimit::Hard;
    ASSERT_TRUE(parse_set_peer_bandwidth(m, size, limit, nullptr));
    EXPECT_EQ(size, c.size);
    EXPECT_EQ(limit, c.limit);
    EXPECT_EQ(encode(set_peer_bandwidth(c.size, c.limit)), g);
  }
}

struct UcCase {
  const char* file;
  UserControlEvent event;
  uint32_t value;
  uint32_t buffer_length;
  std::function<Message()> make;  // the convenience encoder, if any
};

class UserControlGolden : public ::testing::TestWithParam<UcCase> {};

TEST_P(UserControlGolden, DecodeAndReencode) {
  const UcCase& c = GetParam();
  ByteVec g = load(c.file);
  Message m = read_one(g);
  EXPECT_EQ(m.type, kMsgUserControl);
  UserControl uc;
  ASSERT_TRUE(parse_user_control(m, uc, nullptr));
  EXPECT_EQ(uc.event, c.event);
  EXPECT_EQ(uc.value, c.value);
  EXPECT_EQ(uc.buffer_length, c.buffer_length);
  EXPECT_EQ(encode(user_control({c.event, c.value, c.buffer_length})), g);
  if (c.make) {
    EXPECT_EQ(encode(c.make()), g);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Events, UserControlGolden,
    ::testing::Values(
        UcCase{"uc_stream_begin.bin", UserControlEvent::StreamBegin, 1, 0, [] { return stream_begin(1); }},
        UcCase{"uc_stream_eof.bin", UserControlEvent::StreamEOF, 1, 0, [] { return stream_eof(1); }},
        UcCase{"uc_stream_dry.bin", UserControlEvent::StreamDry, 1, 0, [] { return stream_dry(1); }},
        UcCase{"uc_set_buffer_length.bin", UserControlEvent::SetBufferLength, 1, 3000, nullptr},
        UcCase{"uc_stream_is_recorded.bin", UserControlEvent::StreamIsRecorded, 1, 0,
               [] { return stream_is_recorded(1); }},
        UcCase{"uc_ping_request.bin", UserControlEvent::PingRequest, 12345678, 0, [] { return ping_request(12345678); }},
        UcCase{"uc_ping_response.bin", UserControlEvent::PingResponse, 12345678, 0,
               [] { return ping_response(12345678); }}),
    [](const ::testing::TestParamInfo<UcCase>& i) {
      std::string n = i.param.file;
      return n.substr(0, n.find('.'));
    });

TEST(Control, EncodersUseControlStream) {
  for (const Message& m : {set_chunk_size(1), control::abort(3), acknowledgement(1), window_ack_size(1),
                           set_peer_bandwidth(1, PeerBandwidthLimit::Soft), stream_begin(1), ping_request(5)}) {
    EXPECT_EQ(m.csid, 2u);
    EXPECT_EQ(m.stream_id, 0u);
    EXPECT_EQ(m.timestamp, 0u);
  }
}

// ---------------------------------------------------------------------------
// Parser errors

TEST(ControlErrors, ShortPayloads) {
  for (size_t n = 0; n < 4; n++) {
    ByteVec p(n, 1);
    uint32_t v = 0;
    GError* err = nullptr;
    expect_error(parse_set_chunk_size(with_payload(kMsgSetChunkSize, p), v, &err), &err, GRTMP_ERROR_MALFORMED);
    err = nullptr;
    expect_error(parse_abort(with_payload(kMsgAbort, p), v, &err), &err, GRTMP_ERROR_MALFORMED);
    err = nullptr;
    expect_error(parse_acknowledgement(with_payload(kMsgAck, p), v, &err), &err, GRTMP_ERROR_MALFORMED);
    err = nullptr;
    expect_error(parse_window_ack_size(with_payload(kMsgWindowAckSize, p), v, &err), &err, GRTMP_ERROR_MALFORMED);
  }
  for (size_t n = 0; n < 5; n++) {
    uint32_t v = 0;
    PeerBandwidthLimit l;
    GError* err = nullptr;
    expect_error(parse_set_peer_bandwidth(with_payload(kMsgSetPeerBandwidth, ByteVec(n, 0)), v, l, &err), &err,
                 GRTMP_ERROR_MALFORMED);
  }
  UserControl uc;
  GError* err = nullptr;
  expect_error(parse_user_control(with_payload(kMsgUserControl, {0}), uc, &err), &err, GRTMP_ERROR_MALFORMED);
  err = nullptr;
  expect_error(parse_user_control(with_payload(kMsgUserControl, {0, 6, 0, 0, 1}), uc, &err), &err,
               GRTMP_ERROR_MALFORMED);
  err = nullptr;
  // SetBufferLength needs 10 bytes.
  expect_error(parse_user_control(with_payload(kMsgUserControl, {0, 3, 0, 0, 0, 1, 0, 0, 0}), uc, &err), &err,
               GRTMP_ERROR_MALFORMED);
}

TEST(ControlErrors, SetChunkSizeRange) {
  uint32_t v = 0;
  GError* err = nullptr;
  expect_error(parse_set_chunk_size(set_chunk_size(0), v, &err), &err, GRTMP_ERROR_MALFORMED);
  err = nullptr;
  expect_error(parse_set_chunk_size(set_chunk_size(0x80000000u), v, &err), &err, GRTMP_ERROR_MALFORMED);
  err = nullptr;
  expect_error(parse_set_chunk_size(set_chunk_size(0xffffffffu), v, &err), &err, GRTMP_ERROR_MALFORMED);
  ASSERT_TRUE(parse_set_chunk_size(set_chunk_size(1), v, nullptr));
  EXPECT_EQ(v, 1u);
  ASSERT_TRUE(parse_set_chunk_size(set_chunk_size(0x7fffffff), v, nullptr));
  EXPECT_EQ(v, 0x7fffffffu);
  // Trailing bytes are tolerated.
  ASSERT_TRUE(parse_set_chunk_size(with_payload(kMsgSetChunkSize, {0, 0, 0x10, 0, 9}), v, nullptr));
  EXPECT_EQ(v, 4096u);
}

TEST(ControlErrors, WrongType) {
  uint32_t v = 0;
  GError* err = nullptr;
  expect_error(parse_set_chunk_size(window_ack_size(5), v, &err), &err, GRTMP_ERROR_PROTOCOL);
  err = nullptr;
  UserControl uc;
  expect_error(parse_user_control(acknowledgement(5), uc, &err), &err, GRTMP_ERROR_PROTOCOL);
}

TEST(ControlErrors, PeerBandwidthLimitType) {
  uint32_t v = 0;
  PeerBandwidthLimit l;
  GError* err = nullptr;
  expect_error(parse_set_peer_bandwidth(with_payload(kMsgSetPeerBandwidth, {0, 0, 1, 0, 3}), v, l, &err), &err,
               GRTMP_ERROR_MALFORMED);
}

TEST(Control, UnknownUserControlEventsParse) {
  UserControl uc;
  // BufferEmpty (31) with a stream id.
  ASSERT_TRUE(parse_user_control(with_payload(kMsgUserControl, {0, 31, 0, 0, 0, 1}), uc, nullptr));
  EXPECT_EQ(static_cast<uint16_t>(uc.event), 31);
  EXPECT_EQ(uc.value, 1u);
  EXPECT_STREQ(user_control_event_name(uc.event), "Unknown");
  // SWFVerify request (26) carries nothing.
  ASSERT_TRUE(parse_user_control(with_payload(kMsgUserControl, {0, 26}), uc, nullptr));
  EXPECT_EQ(static_cast<uint16_t>(uc.event), 26);
  EXPECT_EQ(uc.value, 0u);
}

TEST(Control, EventNames) {
  EXPECT_STREQ(user_control_event_name(UserControlEvent::StreamBegin), "StreamBegin");
  EXPECT_STREQ(user_control_event_name(UserControlEvent::StreamEOF), "StreamEOF");
  EXPECT_STREQ(user_control_event_name(UserControlEvent::StreamDry), "StreamDry");
  EXPECT_STREQ(user_control_event_name(UserControlEvent::SetBufferLength), "SetBufferLength");
  EXPECT_STREQ(user_control_event_name(UserControlEvent::StreamIsRecorded), "StreamIsRecorded");
  EXPECT_STREQ(user_control_event_name(UserControlEvent::PingRequest), "PingRequest");
  EXPECT_STREQ(user_control_event_name(UserControlEvent::PingResponse), "PingResponse");
}

// ---------------------------------------------------------------------------
// AckTracker

TEST(AckTracker, NoWindowNoAcks) {
  AckTracker t;
  uint32_t seq = 0;
  EXPECT_FALSE(t.on_bytes(0, seq));
  EXPECT_FALSE(t.on_bytes(uint64_t(1) << 40, seq));
}

TEST(AckTracker, AckEachWindow) {
  AckTracker t;
  t.set_window(1000);
  EXPECT_EQ(t.window(), 1000u);
  uint32_t seq = 0;
  EXPECT_FALSE(t.on_bytes(999, seq));
  ASSERT_TRUE(t.on_bytes(1000, seq));
  EXPECT_EQ(seq, 1000u);
  EXPECT_FALSE(t.on_bytes(1000, seq));
  EXPECT_FALSE(t.on_bytes(1999, seq));
  ASSERT_TRUE(t.on_bytes(2500, seq));
  EXPECT_EQ(seq, 2500u);
  // One big read across several windows: one ack with the current total.
  ASSERT_TRUE(t.on_bytes(9000, seq));
  EXPECT_EQ(seq, 9000u);
  EXPECT_FALSE(t.on_bytes(9999, seq));
  ASSERT_TRUE(t.on_bytes(10000, seq));
}

TEST(AckTracker, SequenceWrapsAt4GiB) {
  AckTracker t;
  t.set_window(2500000);
  uint32_t seq = 0;
  uint64_t total = 0;
  int acks = 0;
  uint32_t last_seq = 0;
  bool wrapped = false;
  // 10 GiB in 64 KiB reads.
  for (; total < (uint64_t(10) << 30); total += 65536) {
    if (t.on_bytes(total, seq)) {
      acks++;
      EXPECT_EQ(seq, static_cast<uint32_t>(total));
      if (seq < last_seq) wrapped = true;
      last_seq = seq;
    }
  }
  EXPECT_TRUE(wrapped);
  // ceil(2500000 / 65536) = 39 reads between acks.
  EXPECT_EQ(acks, static_cast<int>(total / (39 * 65536)));
  // Crossing 2^32 exactly.
  AckTracker u;
  u.set_window(1000);
  ASSERT_TRUE(u.on_bytes((uint64_t(1) << 32) - 10, seq));
  EXPECT_EQ(seq, 0xfffffff6u);
  ASSERT_TRUE(u.on_bytes((uint64_t(1) << 32) + 990, seq));
  EXPECT_EQ(seq, 990u);
}

TEST(AckTracker, WindowChange) {
  AckTracker t;
  t.set_window(1000);
  uint32_t seq = 0;
  ASSERT_TRUE(t.on_bytes(1000, seq));
  t.set_window(5000);
  EXPECT_FALSE(t.on_bytes(5999, seq));
  ASSERT_TRUE(t.on_bytes(6000, seq));
  t.set_window(0);
  EXPECT_FALSE(t.on_bytes(100000, seq));
}

}  // namespace
