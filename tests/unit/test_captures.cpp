// Decodes the golden captures of real peers (golden/captures/, recorded by
// scripts/capture-golden.py: ffmpeg and GStreamer rtmp2sink publishers,
// ffmpeg, rtmp2src and rtmpdump players, all against nginx-rtmp) with the
// project's handshake, chunk reader, control and command parsers.
//
// The captures are regenerated from live tools, so only what is stable
// between runs is asserted: message sequences, command names, transaction
// ids, names and values; not random bytes, ports or timestamps (the tcUrl
// carries the recording proxy's port and is matched loosely; the number of
// AAC frames nginx sends before the AVC sequence header depends on timing).
#include <gtest/gtest.h>
#include <glib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/bytes.h"
#include "grtmp/chunk.h"
#include "grtmp/command.h"
#include "grtmp/control.h"
#include "grtmp/handshake.h"
#include "grtmp/message.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "golden"
#endif

using namespace grtmp;

namespace {

std::vector<uint8_t> load(const std::string& name) {
  std::string path = std::string(GOLDEN_DIR) + "/captures/" + name;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string err_text(GError* e) { return e ? e->message : "(no error)"; }

// Feeds `data` in slices of `step` bytes (0: all at once).
std::vector<Message> read_chunks(const std::vector<uint8_t>& data, size_t step,
                                 uint32_t* final_chunk_size = nullptr) {
  ChunkReader reader;
  std::vector<Message> out;
  size_t off = 0;
  while (off < data.size()) {
    size_t n = step == 0 ? data.size() - off : std::min(step, data.size() - off);
    GError* err = nullptr;
    bool ok = reader.feed(data.data() + off, n, out, &err);
    EXPECT_TRUE(ok) << "feed failed at byte " << off << ": " << err_text(err);
    g_clear_error(&err);
    if (!ok) break;
    off += n;
  }
  EXPECT_EQ(reader.bytes_read(), data.size());
  EXPECT_EQ(reader.buffered_bytes(), 0u) << "a capture ends at a message boundary";
  if (final_chunk_size) *final_chunk_size = reader.chunk_size();
  return out;
}

bool same_payload(const Bytes& a, const Bytes& b) {
  return a.size() == b.size() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

void expect_same_messages(const std::vector<Message>& a, const std::vector<Message>& b,
                          const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].type, b[i].type) << what << " #" << i;
    EXPECT_EQ(a[i].timestamp, b[i].timestamp) << what << " #" << i;
    EXPECT_EQ(a[i].stream_id, b[i].stream_id) << what << " #" << i;
    EXPECT_EQ(a[i].csid, b[i].csid) << what << " #" << i;
    EXPECT_TRUE(same_payload(a[i].payload, b[i].payload)) << what << " #" << i;
  }
}

// Reads a capture whole, byte at a time and in odd slices; all must agree.
std::vector<Message> decode_capture(const std::string& name, uint32_t* final_chunk_size = nullptr) {
  auto data = load(name);
  EXPECT_FALSE(data.empty()) << name;
  EXPECT_LT(data.size(), 20000u) << name;
  auto whole = read_chunks(data, 0, final_chunk_size);
  auto bytewise = read_chunks(data, 1);
  auto sliced = read_chunks(data, 7);
  auto sliced2 = read_chunks(data, 129);
  expect_same_messages(whole, bytewise, name + " whole vs byte-at-a-time");
  expect_same_messages(whole, sliced, name + " whole vs 7-byte slices");
  expect_same_messages(whole, sliced2, name + " whole vs 129-byte slices");
  return whole;
}

Command parse_cmd(const Message& m) {
  Command c;
  GError* err = nullptr;
  EXPECT_TRUE(parse_command(m, c, amf0::Limits{}, &err)) << err_text(err);
  g_clear_error(&err);
  return c;
}

// One expected message: type, csid, message stream id; for commands the name
// and transaction id.
struct Exp {
  uint8_t type;
  uint32_t csid;
  uint32_t msid;
  const char* name = nullptr;
  double txn = 0;
};

void expect_sequence(const std::vector<Message>& msgs, const std::vector<Exp>& exp,
                     const std::string& what) {
  ASSERT_GE(msgs.size(), exp.size()) << what;
  for (size_t i = 0; i < exp.size(); ++i) {
    SCOPED_TRACE(what + " message #" + std::to_string(i + 1));
    EXPECT_EQ(msgs[i].type, exp[i].type);
    EXPECT_EQ(msgs[i].csid, exp[i].csid);
    EXPECT_EQ(msgs[i].stream_id, exp[i].msid);
    if (exp[i].name) {
      Command c = parse_cmd(msgs[i]);
      EXPECT_EQ(c.name, exp[i].name);
      EXPECT_EQ(c.transaction_id, exp[i].txn);
    }
  }
}

// AMF0 re-encoding of every command and data message is byte-exact.
void expect_amf_roundtrip(const std::vector<Message>& msgs, const std::string& what) {
  int n = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const Message& m = msgs[i];
    if (m.type != kMsgCommandAmf0 && m.type != kMsgDataAmf0 && m.type != kMsgCommandAmf3 &&
        m.type != kMsgDataAmf3)
      continue;
    const uint8_t* p = m.payload.data();
    size_t len = m.payload.size();
    if ((m.type == kMsgCommandAmf3 || m.type == kMsgDataAmf3) && len > 0 && p[0] == 0) {
      ++p;
      --len;
    }
    std::vector<amf0::Value> vals;
    GError* err = nullptr;
    bool ok = amf0::decode_all(p, len, vals, amf0::Limits{}, &err);
    EXPECT_TRUE(ok) << what << " #" << i << ": " << err_text(err);
    g_clear_error(&err);
    if (!ok) continue;
    ByteWriter w;
    amf0::encode_all(vals, w);
    EXPECT_EQ(w.buffer(), std::vector<uint8_t>(p, p + len)) << what << " #" << i << " re-encode";
    ++n;
  }
  EXPECT_GT(n, 0) << what;
}

// Re-chunks the messages with ChunkWriter (following Set Chunk Size) and
// reads them back.
void expect_writer_roundtrip(const std::vector<Message>& msgs, const std::string& what) {
  ChunkWriter writer;
  std::vector<uint8_t> wire;
  for (const Message& m : msgs) {
    auto bytes = writer.write_flat(m);
    wire.insert(wire.end(), bytes.begin(), bytes.end());
    if (m.type == kMsgSetChunkSize) {
      uint32_t size = 0;
      GError* err = nullptr;
      ASSERT_TRUE(control::parse_set_chunk_size(m, size, &err)) << err_text(err);
      writer.set_chunk_size(size);
    }
  }
  auto back = read_chunks(wire, 0);
  auto back1 = read_chunks(wire, 1);
  expect_same_messages(msgs, back, what + " rewritten");
  expect_same_messages(msgs, back1, what + " rewritten, byte at a time");
}

const amf0::Value* arg_object(const Command& c, size_t i) {
  return i < c.args.size() && c.args[i].is_object_like() ? &c.args[i] : nullptr;
}

std::string str_or(const amf0::Value* v, std::string_view key) {
  if (!v) return "<no object>";
  auto s = v->get_string(key);
  return s ? std::string(*s) : "<missing>";
}

bool starts_with(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

void expect_connect(const Message& m, std::string_view flash_ver_prefix, std::optional<std::string> type) {
  Command c = parse_cmd(m);
  ASSERT_EQ(c.name, "connect");
  EXPECT_EQ(c.transaction_id, 1);
  ConnectParams p;
  GError* err = nullptr;
  ASSERT_TRUE(parse_connect(c, p, &err)) << err_text(err);
  EXPECT_EQ(p.app, "live");
  EXPECT_TRUE(starts_with(p.tc_url, "rtmp://127.0.0.1:")) << p.tc_url;
  EXPECT_TRUE(ends_with(p.tc_url, "/live")) << p.tc_url;
  EXPECT_TRUE(starts_with(p.flash_ver, flash_ver_prefix)) << p.flash_ver;
  if (type) {
    EXPECT_EQ(p.type, *type);
  }
  EXPECT_EQ(p.object_encoding, 0);
  EXPECT_TRUE(p.fourcc_list.empty());
}

void expect_publish(const Message& m, double txn, const char* name) {
  Command c = parse_cmd(m);
  ASSERT_EQ(c.name, "publish");
  EXPECT_EQ(c.transaction_id, txn);
  EXPECT_TRUE(c.object.is_null_or_undefined());
  PublishParams p;
  GError* err = nullptr;
  ASSERT_TRUE(parse_publish(c, p, &err)) << err_text(err);
  EXPECT_EQ(p.name, name);
  EXPECT_EQ(p.query, "");
  EXPECT_EQ(p.type, "live");
}

void expect_play(const Message& m, double txn, const char* name, double start) {
  Command c = parse_cmd(m);
  ASSERT_EQ(c.name, "play");
  EXPECT_EQ(c.transaction_id, txn);
  PlayParams p;
  GError* err = nullptr;
  ASSERT_TRUE(parse_play(c, p, &err)) << err_text(err);
  EXPECT_EQ(p.name, name);
  EXPECT_EQ(p.query, "");
  EXPECT_EQ(p.start, start);
}

void expect_string_arg(const Message& m, const char* cmd, double txn, const char* value) {
  Command c = parse_cmd(m);
  EXPECT_EQ(c.name, cmd);
  EXPECT_EQ(c.transaction_id, txn);
  std::string s;
  EXPECT_TRUE(command_string_arg(c, 0, s)) << cmd;
  EXPECT_EQ(s, value) << cmd;
}

void expect_window_ack(const Message& m, uint32_t value) {
  uint32_t v = 0;
  GError* err = nullptr;
  ASSERT_TRUE(control::parse_window_ack_size(m, v, &err)) << err_text(err);
  EXPECT_EQ(v, value);
}

// nginx's first answers: Window Ack Size 5000000, Set Peer Bandwidth 5000000
// dynamic, Set Chunk Size 4096, then _result for connect and createStream.
void expect_nginx_connect_answers(const std::vector<Message>& s, double create_stream_txn) {
  ASSERT_GE(s.size(), 5u);
  expect_window_ack(s[0], 5000000);
  uint32_t bw = 0;
  control::PeerBandwidthLimit lim{};
  GError* err = nullptr;
  ASSERT_TRUE(control::parse_set_peer_bandwidth(s[1], bw, lim, &err)) << err_text(err);
  EXPECT_EQ(bw, 5000000u);
  EXPECT_EQ(lim, control::PeerBandwidthLimit::Dynamic);
  uint32_t cs = 0;
  ASSERT_TRUE(control::parse_set_chunk_size(s[2], cs, &err)) << err_text(err);
  EXPECT_EQ(cs, 4096u);

  Command r = parse_cmd(s[3]);
  EXPECT_EQ(r.name, "_result");
  EXPECT_EQ(r.transaction_id, 1);
  ASSERT_TRUE(r.object.is_object_like());
  EXPECT_EQ(str_or(&r.object, "fmsVer"), "FMS/3,0,1,123");
  EXPECT_EQ(r.object.get_number("capabilities").value_or(-1), 31);
  const amf0::Value* info = arg_object(r, 0);
  EXPECT_EQ(str_or(info, "level"), "status");
  EXPECT_EQ(str_or(info, "code"), status::kConnectSuccess);
  EXPECT_EQ(str_or(info, "description"), "Connection succeeded.");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->get_number("objectEncoding").value_or(-1), 0);

  Command cs_result = parse_cmd(s[4]);
  EXPECT_EQ(cs_result.name, "_result");
  EXPECT_EQ(cs_result.transaction_id, create_stream_txn);
  EXPECT_TRUE(cs_result.object.is_null_or_undefined());
  double stream_id = 0;
  EXPECT_TRUE(command_number_arg(cs_result, 0, stream_id));
  EXPECT_EQ(stream_id, 1);
}

void expect_on_status(const Message& m, const char* code) {
  EXPECT_EQ(m.type, kMsgCommandAmf0);
  EXPECT_EQ(m.csid, 5u);
  EXPECT_EQ(m.stream_id, 1u);
  Command c = parse_cmd(m);
  EXPECT_EQ(c.name, "onStatus");
  EXPECT_EQ(c.transaction_id, 0);
  EXPECT_TRUE(c.object.is_null_or_undefined());
  const amf0::Value* info = arg_object(c, 0);
  EXPECT_EQ(str_or(info, "level"), "status");
  EXPECT_EQ(str_or(info, "code"), code);
}

// ---------------------------------------------------------------- handshake

// HMAC-SHA256 via GLib.
std::vector<uint8_t> hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len) {
  GHmac* h = g_hmac_new(G_CHECKSUM_SHA256, key, key_len);
  g_hmac_update(h, data, static_cast<gssize>(len));
  std::vector<uint8_t> out(32);
  gsize n = out.size();
  g_hmac_get_digest(h, out.data(), &n);
  g_hmac_unref(h);
  return out;
}

constexpr uint8_t kFmsKey[68] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F', 'l', 'a', 's',
    'h', ' ', 'M', 'e', 'd', 'i', 'a', ' ', 'S', 'e', 'r', 'v', 'e', 'r', ' ', '0', '0', '1',
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE};
constexpr uint8_t kFpKey[30] = {'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F',
                                'l', 'a', 's', 'h', ' ', 'P', 'l', 'a', 'y', 'e', 'r', ' ', '0', '0', '1'};

// What FFmpeg checks as a player (rtmpproto.c rtmp_handshake, when the S1
// version byte is >= 3): the last 32 bytes of S2 are
// HMAC(HMAC(FMS key (68), C1 digest), S2[0..1504)).
bool s2_signature_valid(const uint8_t* c1, Handshake::Scheme scheme, const uint8_t* s2) {
  size_t off = Handshake::digest_offset(c1, scheme);
  auto key = hmac_sha256(kFmsKey, sizeof kFmsKey, c1 + off, 32);
  auto sig = hmac_sha256(key.data(), key.size(), s2, kHandshakeSize - 32);
  return std::memcmp(sig.data(), s2 + kHandshakeSize - 32, 32) == 0;
}

struct HsCase {
  const char* peer;
  Handshake::Scheme scheme;     // observed in the client's C1
  uint32_t c1_version;          // observed C1 bytes 4-7
};

const HsCase kHsCases[] = {
    {"ffmpeg-publish", Handshake::Scheme::Scheme0, 0x09007c02},
    {"ffmpeg-play", Handshake::Scheme::Scheme0, 0x09007c02},
    {"rtmp2sink-publish", Handshake::Scheme::None, 0},
    {"rtmp2src-play", Handshake::Scheme::None, 0},
    {"rtmpdump-play", Handshake::Scheme::None, 0},
};

// The captured data itself: what each client's C1 is and what nginx answered.
TEST(Captures, HandshakeFactsOfThePeers) {
  for (const HsCase& hc : kHsCases) {
    SCOPED_TRACE(hc.peer);
    auto c0c1 = load(std::string(hc.peer) + "-c0c1.bin");
    auto s0s1s2 = load(std::string(hc.peer) + "-s0s1s2.bin");
    ASSERT_EQ(c0c1.size(), 1 + kHandshakeSize);
    ASSERT_EQ(s0s1s2.size(), 1 + 2 * kHandshakeSize);
    EXPECT_EQ(c0c1[0], kRtmpVersion);
    EXPECT_EQ(load_u32(c0c1.data() + 5), hc.c1_version);
    const uint8_t* c1 = c0c1.data() + 1;
    Handshake::Scheme found = Handshake::Scheme::None;
    bool digest = Handshake::find_digest(c1, kFpKey, sizeof kFpKey, found);
    EXPECT_EQ(digest, hc.scheme != Handshake::Scheme::None);
    if (digest) {
      EXPECT_EQ(found, hc.scheme);
    }

    // nginx answers a digest C1 with a digest S1 (server key, same scheme)
    // and a signed S2, a simple C1 with S2 = C1.
    const uint8_t* s1 = s0s1s2.data() + 1;
    const uint8_t* s2 = s1 + kHandshakeSize;
    EXPECT_EQ(s0s1s2[0], kRtmpVersion);
    Handshake::Scheme s1_scheme = Handshake::Scheme::None;
    bool s1_digest = Handshake::find_digest(s1, kFmsKey, 36, s1_scheme);
    EXPECT_EQ(s1_digest, digest);
    if (digest) {
      EXPECT_EQ(s1_scheme, hc.scheme);
      EXPECT_GE(s1[4], 3) << "FFmpeg only validates S2 when S1 byte 4 is >= 3";
      EXPECT_TRUE(s2_signature_valid(c1, hc.scheme, s2));
    } else {
      EXPECT_EQ(std::memcmp(s2, c1, kHandshakeSize), 0);
    }
  }
}

// Our server-role Handshake on each captured C0C1: S0S1S2 at once, the same
// scheme detected, and an answer each client accepts.
TEST(Captures, ServerHandshakeAnswersEachClient) {
  for (const HsCase& hc : kHsCases) {
    for (size_t step : {size_t(0), size_t(1)}) {
      SCOPED_TRACE(std::string(hc.peer) + (step ? " byte at a time" : " whole"));
      auto c0c1 = load(std::string(hc.peer) + "-c0c1.bin");
      ASSERT_EQ(c0c1.size(), 1 + kHandshakeSize);
      Handshake hs(Handshake::Role::Server);
      std::vector<uint8_t> out;
      Handshake::Status st = Handshake::Status::NeedMore;
      size_t off = 0;
      while (off < c0c1.size()) {
        size_t n = step ? 1 : c0c1.size() - off;
        size_t consumed = 0;
        GError* err = nullptr;
        st = hs.feed(c0c1.data() + off, n, consumed, out, &err);
        ASSERT_NE(st, Handshake::Status::Error) << "at byte " << off << ": " << err_text(err);
        EXPECT_EQ(consumed, n);
        off += n;
        if (off < c0c1.size()) {
          EXPECT_TRUE(out.empty()) << "answer before C1 was complete";
        }
      }
      EXPECT_EQ(st, Handshake::Status::NeedMore) << "C2 still to come";
      EXPECT_FALSE(hs.done());
      EXPECT_EQ(hs.peer_version(), kRtmpVersion);
      EXPECT_EQ(hs.peer_scheme(), hc.scheme);
      ASSERT_EQ(out.size(), 1 + 2 * kHandshakeSize);
      EXPECT_EQ(out[0], kRtmpVersion);
      const uint8_t* c1 = c0c1.data() + 1;
      const uint8_t* s1 = out.data() + 1;
      const uint8_t* s2 = s1 + kHandshakeSize;
      if (hc.scheme != Handshake::Scheme::None) {
        Handshake::Scheme s1_scheme = Handshake::Scheme::None;
        EXPECT_TRUE(Handshake::find_digest(s1, kFmsKey, 36, s1_scheme)) << "digest S1 expected";
        EXPECT_GE(s1[4], 3) << "FFmpeg skips digest checks when S1 byte 4 < 3";
        EXPECT_TRUE(s2_signature_valid(c1, hc.scheme, s2)) << "FFmpeg (play) would reject this S2";
        EXPECT_NE(load_u32(s1 + 4), 0u) << "S1 version field";
      } else {
        EXPECT_EQ(std::memcmp(s2, c1, kHandshakeSize), 0) << "simple handshake: S2 echoes C1";
      }

      // The client's captured C2 completes the handshake (it answered
      // nginx's S1, not ours: a server must not insist on the echo).
      auto c2 = load(std::string(hc.peer) + "-c2.bin");
      ASSERT_EQ(c2.size(), kHandshakeSize);
      size_t consumed = 0;
      std::vector<uint8_t> more;
      GError* err = nullptr;
      st = hs.feed(c2.data(), c2.size(), consumed, more, &err);
      EXPECT_EQ(st, Handshake::Status::Done) << err_text(err);
      g_clear_error(&err);
      EXPECT_EQ(consumed, c2.size());
      EXPECT_TRUE(more.empty());
      EXPECT_TRUE(hs.done());
    }
  }
}

// ---------------------------------------------------------------- publishers

TEST(Captures, FfmpegPublishClientToServer) {
  uint32_t cs = 0;
  auto m = decode_capture("ffmpeg-publish-c2s.bin", &cs);
  EXPECT_EQ(cs, 4096u) << "FFmpeg sets chunk size 4096 right after connect";
  ASSERT_EQ(m.size(), 6u);
  expect_sequence(m, {
      {kMsgCommandAmf0, 3, 0, "connect", 1},
      {kMsgSetChunkSize, 2, 0},
      {kMsgCommandAmf0, 3, 0, "releaseStream", 2},
      {kMsgCommandAmf0, 3, 0, "FCPublish", 3},
      {kMsgCommandAmf0, 3, 0, "createStream", 4},
      {kMsgCommandAmf0, 8, 1, "publish", 5},
  }, "ffmpeg-publish-c2s");
  expect_connect(m[0], "FMLE/3.0 (compatible; Lavf", std::string("nonprivate"));
  uint32_t size = 0;
  GError* err = nullptr;
  ASSERT_TRUE(control::parse_set_chunk_size(m[1], size, &err)) << err_text(err);
  EXPECT_EQ(size, 4096u);
  expect_string_arg(m[2], "releaseStream", 2, "test");
  expect_string_arg(m[3], "FCPublish", 3, "test");
  expect_publish(m[5], 5, "test");
  expect_amf_roundtrip(m, "ffmpeg-publish-c2s");
  expect_writer_roundtrip(m, "ffmpeg-publish-c2s");
}

TEST(Captures, FfmpegPublishServerToClient) {
  uint32_t cs = 0;
  auto m = decode_capture("ffmpeg-publish-s2c.bin", &cs);
  EXPECT_EQ(cs, 4096u);
  ASSERT_EQ(m.size(), 6u);
  expect_sequence(m, {
      {kMsgWindowAckSize, 2, 0},
      {kMsgSetPeerBandwidth, 2, 0},
      {kMsgSetChunkSize, 2, 0},
      {kMsgCommandAmf0, 3, 0, "_result", 1},
      {kMsgCommandAmf0, 3, 0, "_result", 4},
      {kMsgCommandAmf0, 5, 1, "onStatus", 0},
  }, "ffmpeg-publish-s2c");
  expect_nginx_connect_answers(m, 4);
  expect_on_status(m[5], status::kPublishStart);
  expect_amf_roundtrip(m, "ffmpeg-publish-s2c");
  expect_writer_roundtrip(m, "ffmpeg-publish-s2c");
}

TEST(Captures, Rtmp2sinkPublishClientToServer) {
  uint32_t cs = 0;
  auto m = decode_capture("rtmp2sink-publish-c2s.bin", &cs);
  EXPECT_EQ(cs, 128u) << "rtmp2sink keeps 128 (it sends SetChunkSize(128) only after publish)";
  ASSERT_EQ(m.size(), 6u);
  // rtmp2sink uses transaction id 0 for releaseStream, FCPublish and publish.
  expect_sequence(m, {
      {kMsgCommandAmf0, 3, 0, "connect", 1},
      {kMsgWindowAckSize, 2, 0},
      {kMsgCommandAmf0, 3, 0, "releaseStream", 0},
      {kMsgCommandAmf0, 3, 0, "FCPublish", 0},
      {kMsgCommandAmf0, 3, 0, "createStream", 2},
      {kMsgCommandAmf0, 3, 1, "publish", 0},
  }, "rtmp2sink-publish-c2s");
  expect_connect(m[0], "LNX 10,0,32,18", std::string("nonprivate"));
  expect_window_ack(m[1], 5000000);
  expect_string_arg(m[2], "releaseStream", 0, "gst");
  expect_string_arg(m[3], "FCPublish", 0, "gst");
  expect_publish(m[5], 0, "gst");
  expect_amf_roundtrip(m, "rtmp2sink-publish-c2s");
  expect_writer_roundtrip(m, "rtmp2sink-publish-c2s");
}

TEST(Captures, Rtmp2sinkPublishServerToClient) {
  uint32_t cs = 0;
  auto m = decode_capture("rtmp2sink-publish-s2c.bin", &cs);
  EXPECT_EQ(cs, 4096u);
  ASSERT_EQ(m.size(), 6u);
  expect_sequence(m, {
      {kMsgWindowAckSize, 2, 0},
      {kMsgSetPeerBandwidth, 2, 0},
      {kMsgSetChunkSize, 2, 0},
      {kMsgCommandAmf0, 3, 0, "_result", 1},
      {kMsgCommandAmf0, 3, 0, "_result", 2},
      {kMsgCommandAmf0, 5, 1, "onStatus", 0},
  }, "rtmp2sink-publish-s2c");
  expect_nginx_connect_answers(m, 2);
  expect_on_status(m[5], status::kPublishStart);
  expect_amf_roundtrip(m, "rtmp2sink-publish-s2c");
  expect_writer_roundtrip(m, "rtmp2sink-publish-s2c");
}

// ---------------------------------------------------------------- players

void expect_player_connect_object(const Message& m) {
  Command c = parse_cmd(m);
  ASSERT_TRUE(c.object.is_object_like());
  EXPECT_EQ(c.object.get_boolean("fpad").value_or(true), false);
  EXPECT_EQ(c.object.get_number("capabilities").value_or(-1), 15);
  EXPECT_TRUE(c.object.get_number("audioCodecs").has_value());
  EXPECT_EQ(c.object.get_number("videoCodecs").value_or(-1), 252);
  EXPECT_EQ(c.object.get_number("videoFunction").value_or(-1), 1);
}

void expect_set_buffer_length(const Message& m, uint32_t stream_id, uint32_t ms) {
  control::UserControl uc;
  GError* err = nullptr;
  ASSERT_TRUE(control::parse_user_control(m, uc, &err)) << err_text(err);
  EXPECT_EQ(uc.event, control::UserControlEvent::SetBufferLength);
  EXPECT_EQ(uc.value, stream_id);
  EXPECT_EQ(uc.buffer_length, ms);
}

TEST(Captures, FfmpegPlayClientToServer) {
  uint32_t cs = 0;
  auto m = decode_capture("ffmpeg-play-c2s.bin", &cs);
  EXPECT_EQ(cs, 128u);
  ASSERT_EQ(m.size(), 5u);
  expect_sequence(m, {
      {kMsgCommandAmf0, 3, 0, "connect", 1},
      {kMsgWindowAckSize, 2, 0},
      {kMsgCommandAmf0, 3, 0, "createStream", 2},
      {kMsgCommandAmf0, 8, 0, "getStreamLength", 3},
      {kMsgCommandAmf0, 8, 1, "play", 4},
  }, "ffmpeg-play-c2s");
  expect_connect(m[0], "LNX 9,0,124,2", std::nullopt);
  expect_player_connect_object(m[0]);
  expect_window_ack(m[1], 5000000);
  expect_string_arg(m[3], "getStreamLength", 3, "test");
  // FFmpeg sends the live start as -2000 (its -2 in milliseconds).
  expect_play(m[4], 4, "test", -2000);
  expect_amf_roundtrip(m, "ffmpeg-play-c2s");
  expect_writer_roundtrip(m, "ffmpeg-play-c2s");
}

TEST(Captures, Rtmp2srcPlayClientToServer) {
  uint32_t cs = 0;
  auto m = decode_capture("rtmp2src-play-c2s.bin", &cs);
  EXPECT_EQ(cs, 128u);
  ASSERT_EQ(m.size(), 6u);
  // The second Window Ack Size is a whole message in one fmt 3 chunk.
  expect_sequence(m, {
      {kMsgCommandAmf0, 3, 0, "connect", 1},
      {kMsgWindowAckSize, 2, 0},
      {kMsgWindowAckSize, 2, 0},
      {kMsgUserControl, 2, 0},
      {kMsgCommandAmf0, 3, 0, "createStream", 2},
      {kMsgCommandAmf0, 3, 1, "play", 0},
  }, "rtmp2src-play-c2s");
  expect_connect(m[0], "LNX 10,0,32,18", std::nullopt);
  expect_player_connect_object(m[0]);
  expect_window_ack(m[1], 5000000);
  expect_window_ack(m[2], 2500000);
  expect_set_buffer_length(m[3], 0, 300);
  expect_play(m[5], 0, "test", -2);
  expect_amf_roundtrip(m, "rtmp2src-play-c2s");
  expect_writer_roundtrip(m, "rtmp2src-play-c2s");
}

TEST(Captures, RtmpdumpPlayClientToServer) {
  uint32_t cs = 0;
  auto m = decode_capture("rtmpdump-play-c2s.bin", &cs);
  EXPECT_EQ(cs, 128u);
  ASSERT_EQ(m.size(), 6u);
  expect_sequence(m, {
      {kMsgCommandAmf0, 3, 0, "connect", 1},
      {kMsgWindowAckSize, 2, 0},
      {kMsgUserControl, 2, 0},
      {kMsgCommandAmf0, 3, 0, "createStream", 2},
      {kMsgCommandAmf0, 3, 0, "FCSubscribe", 3},
      {kMsgCommandAmf0, 8, 1, "play", 4},
  }, "rtmpdump-play-c2s");
  expect_connect(m[0], "LNX 10,0,32,18", std::nullopt);
  expect_player_connect_object(m[0]);
  expect_window_ack(m[1], 5000000);
  expect_set_buffer_length(m[2], 0, 300);
  expect_string_arg(m[4], "FCSubscribe", 3, "test");
  // rtmpdump --live sends start -1000 (-1 "live only", in milliseconds).
  expect_play(m[5], 4, "test", -1000);
  expect_amf_roundtrip(m, "rtmpdump-play-c2s");
  expect_writer_roundtrip(m, "rtmpdump-play-c2s");
}

// nginx's answer to every player: connect/createStream answers, StreamBegin 1,
// onStatus Play.Start (no Play.Reset for live), |RtmpSampleAccess(true, true),
// onMetaData, then media on stream 1 ending with the AVC sequence header.
void check_nginx_play_answer(const std::string& file) {
  SCOPED_TRACE(file);
  uint32_t cs = 0;
  auto m = decode_capture(file, &cs);
  EXPECT_EQ(cs, 4096u);
  ASSERT_GE(m.size(), 10u);
  expect_sequence(m, {
      {kMsgWindowAckSize, 2, 0},
      {kMsgSetPeerBandwidth, 2, 0},
      {kMsgSetChunkSize, 2, 0},
      {kMsgCommandAmf0, 3, 0, "_result", 1},
      {kMsgCommandAmf0, 3, 0, "_result", 2},
      {kMsgUserControl, 2, 0},
      {kMsgCommandAmf0, 5, 1, "onStatus", 0},
      {kMsgDataAmf0, 5, 1},
      {kMsgDataAmf0, 5, 1},
  }, file);
  expect_nginx_connect_answers(m, 2);

  control::UserControl uc;
  GError* err = nullptr;
  ASSERT_TRUE(control::parse_user_control(m[5], uc, &err)) << err_text(err);
  EXPECT_EQ(uc.event, control::UserControlEvent::StreamBegin);
  EXPECT_EQ(uc.value, 1u);

  expect_on_status(m[6], status::kPlayStart);

  std::vector<amf0::Value> sa;
  ASSERT_TRUE(amf0::decode_all(m[7].payload.data(), m[7].payload.size(), sa, amf0::Limits{}, &err))
      << err_text(err);
  ASSERT_EQ(sa.size(), 3u);
  EXPECT_EQ(sa[0].string, "|RtmpSampleAccess");
  EXPECT_EQ(sa[1].type, amf0::Marker::Boolean);
  EXPECT_TRUE(sa[1].boolean);
  EXPECT_TRUE(sa[2].boolean);

  // onMetaData as nginx rebuilds it (no @setDataFrame wrapper). nginx sends
  // "profile" and "level" as 32-byte strings of NULs.
  Bytes stripped;
  std::string handler;
  ASSERT_TRUE(strip_set_data_frame(m[8], stripped, handler, &err)) << err_text(err);
  EXPECT_EQ(handler, "onMetaData");
  EXPECT_TRUE(same_payload(stripped, m[8].payload)) << "no @setDataFrame to strip";
  amf0::Value meta;
  ASSERT_TRUE(parse_metadata(m[8].payload, meta, &err)) << err_text(err);
  EXPECT_EQ(meta.get_string("Server").value_or(""), "NGINX RTMP (github.com/arut/nginx-rtmp-module)");
  EXPECT_EQ(meta.get_number("width").value_or(0), 320);
  EXPECT_EQ(meta.get_number("height").value_or(0), 240);
  EXPECT_EQ(meta.get_number("framerate").value_or(0), 25);
  EXPECT_EQ(meta.get_number("videocodecid").value_or(0), 7);
  EXPECT_EQ(meta.get_number("audiocodecid").value_or(0), 10);
  auto profile = meta.get_string("profile");
  ASSERT_TRUE(profile.has_value());
  EXPECT_EQ(*profile, std::string(32, '\0'));

  // The rest: media on stream 1 (audio csid 6, video csid 7); the first audio
  // message is the AAC sequence header; the file ends with the AVC sequence
  // header; AAC timestamps advance by 1024/44100 s (23 or 24 ms) per frame.
  bool seen_audio = false;
  std::optional<uint32_t> last_audio_ts;
  for (size_t i = 9; i < m.size(); ++i) {
    SCOPED_TRACE("media message #" + std::to_string(i + 1));
    const Message& x = m[i];
    EXPECT_EQ(x.stream_id, 1u);
    ASSERT_TRUE(x.type == kMsgAudio || x.type == kMsgVideo);
    ASSERT_GE(x.payload.size(), 2u);
    const uint8_t* p = x.payload.data();
    if (x.type == kMsgAudio) {
      EXPECT_EQ(x.csid, 6u);
      EXPECT_EQ(p[0] >> 4, 10) << "AAC";
      EXPECT_EQ(p[1], seen_audio ? 1 : 0) << "sequence header first, then raw frames";
      if (!seen_audio) {
        EXPECT_EQ(x.payload.size(), 7u) << "AAC header + 5-byte AudioSpecificConfig";
      }
      if (last_audio_ts) {
        uint32_t d = x.timestamp - *last_audio_ts;
        EXPECT_TRUE(d == 23 || d == 24) << "delta " << d;
      }
      last_audio_ts = x.timestamp;
      seen_audio = true;
    } else {
      EXPECT_EQ(x.csid, 7u);
      EXPECT_EQ(i, m.size() - 1) << "the capture ends at the AVC sequence header";
      EXPECT_EQ(p[0], 0x17) << "keyframe, AVC";
      EXPECT_EQ(p[1], 0) << "AVC sequence header";
    }
  }
  EXPECT_EQ(m.back().type, kMsgVideo);
  expect_amf_roundtrip(m, file);
  expect_writer_roundtrip(m, file);
}

TEST(Captures, FfmpegPlayServerToClient) { check_nginx_play_answer("ffmpeg-play-s2c.bin"); }
TEST(Captures, Rtmp2srcPlayServerToClient) { check_nginx_play_answer("rtmp2src-play-s2c.bin"); }
TEST(Captures, RtmpdumpPlayServerToClient) { check_nginx_play_answer("rtmpdump-play-s2c.bin"); }

// A capture cut anywhere decodes the messages that were complete before the
// cut and keeps the rest buffered: no error, no spurious message.
TEST(Captures, TruncatedCapturesDecodeAPrefix) {
  for (const char* file : {"ffmpeg-publish-c2s.bin", "rtmp2src-play-c2s.bin", "ffmpeg-publish-s2c.bin"}) {
    SCOPED_TRACE(file);
    auto data = load(file);
    auto all = read_chunks(data, 0);
    for (size_t cut = 0; cut < data.size(); cut += 5) {
      ChunkReader reader;
      std::vector<Message> out;
      GError* err = nullptr;
      ASSERT_TRUE(reader.feed(data.data(), cut, out, &err)) << "cut " << cut << ": " << err_text(err);
      ASSERT_LE(out.size(), all.size());
      for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].type, all[i].type);
        EXPECT_TRUE(same_payload(out[i].payload, all[i].payload));
      }
      // feeding the rest completes the sequence
      ASSERT_TRUE(reader.feed(data.data() + cut, data.size() - cut, out, &err)) << err_text(err);
      expect_same_messages(all, out, std::string("cut at ") + std::to_string(cut));
    }
  }
}

}  // namespace
