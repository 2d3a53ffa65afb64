// grtmp::Client against a scripted in-process server (exact wire checks:
// handshake, connect fields, acks, pings, aggregates, chunking, status
// errors) and against nginx-rtmp (publish + play of an ffmpeg-made FLV,
// double publish, missing streams). nginx and ffmpeg are required: the
// tests fail, not skip, without them.
#include "grtmp/client.h"

#include <gio/gio.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/chunk.h"
#include "grtmp/command.h"
#include "grtmp/control.h"
#include "grtmp/error.h"
#include "grtmp/handshake.h"
#include "grtmp/log.h"
#include "grtmp/url.h"

using namespace grtmp;

namespace {

// ---------------------------------------------------------------- helpers

struct Err {
  GError* e = nullptr;
  ~Err() { g_clear_error(&e); }
  GError** out() {
    g_clear_error(&e);
    return &e;
  }
  std::string msg() const { return e ? e->message : "(no error)"; }
  bool is(GQuark d, int code) const { return g_error_matches(e, d, code); }
};

std::string describe(const GError* e) {
  if (!e) return "(no error)";
  return std::string(g_quark_to_string(e->domain)) + "/" + std::to_string(e->code) + ": " + e->message;
}

uint16_t free_port() {
  GSocket* s = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
  GInetAddress* lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress* a = g_inet_socket_address_new(lo, 0);
  g_socket_bind(s, a, TRUE, nullptr);
  GSocketAddress* bound = g_socket_get_local_address(s, nullptr);
  uint16_t port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
  g_object_unref(bound);
  g_object_unref(a);
  g_object_unref(lo);
  g_socket_close(s, nullptr);
  g_object_unref(s);
  return port;
}

Url make_url(uint16_t port, const std::string& app, const std::string& stream) {
  Url u;
  std::string text = "rtmp://127.0.0.1:" + std::to_string(port) + "/" + app;
  if (!stream.empty()) text += "/" + stream;
  EXPECT_TRUE(parse_url(text, u, nullptr)) << text;
  return u;
}

Bytes bytes_of(const std::vector<uint8_t>& v) { return Bytes::copy(v); }

std::string first_string(const Bytes& b) {
  const uint8_t* d = b.data();
  if (b.size() < 3 || d[0] != 2) return {};
  size_t n = (size_t(d[1]) << 8) | d[2];
  if (b.size() < 3 + n) return {};
  return std::string(reinterpret_cast<const char*>(d + 3), n);
}

bool same(const Bytes& a, const Bytes& b) {
  return a.size() == b.size() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A minimal FLV reader (kept local so this test depends on the client only).
struct Tag {
  uint8_t type;
  uint32_t timestamp;
  Bytes data;
};
bool parse_flv(const std::string& file, std::vector<Tag>& tags, std::string& why) {
  const auto* d = reinterpret_cast<const uint8_t*>(file.data());
  size_t n = file.size();
  if (n < 13 || std::memcmp(d, "FLV", 3) != 0) {
    why = "not an FLV file";
    return false;
  }
  size_t pos = load_u32(d + 5) + 4;
  while (pos + 11 <= n) {
    uint8_t type = d[pos] & 0x1f;
    uint32_t size = load_u24(d + pos + 1);
    uint32_t ts = load_u24(d + pos + 4) | (uint32_t(d[pos + 7]) << 24);
    if (pos + 11 + size + 4 > n) {
      why = "truncated tag";
      return false;
    }
    tags.push_back({type, ts, Bytes::copy(d + pos + 11, size)});
    pos += 11 + size + 4;
  }
  return true;
}

bool is_video_seq_header(const Bytes& p) { return p.size() >= 2 && (p.data()[0] & 0x0f) == 7 && p.data()[1] == 0; }
bool is_video_key(const Bytes& p) { return p.size() >= 1 && (p.data()[0] >> 4) == 1; }
bool is_audio_seq_header(const Bytes& p) { return p.size() >= 2 && (p.data()[0] >> 4) == 10 && p.data()[1] == 0; }

// Finds where `got` (from its element `from`) continues `sent` byte for
// byte. Returns the index in `sent` matching got[from], or -1.
long align(const std::vector<Bytes>& sent, const std::vector<Bytes>& got, size_t from) {
  if (from >= got.size()) return -1;
  for (size_t j = 0; j < sent.size(); j++) {
    if (!same(sent[j], got[from])) continue;
    size_t k = from, i = j;
    while (k < got.size() && i < sent.size() && same(sent[i], got[k])) {
      k++;
      i++;
    }
    if (k == got.size()) return static_cast<long>(j);
  }
  return -1;
}

// -------------------------------------------------- scripted test server

// One accepted connection driven by a script on its own thread, with the
// library's handshake (server role), chunk reader/writer and builders.
// With a certificate the connection is TLS (rtmps).
class ScriptConn {
 public:
  ScriptConn(GSocket* s, GTlsCertificate* cert) {
    g_socket_set_timeout(s, 5);
    conn_ = g_socket_connection_factory_create_connection(s);
    g_object_unref(s);
    io_ = G_IO_STREAM(g_object_ref(conn_));
    if (cert) {
      GError* e = nullptr;
      GIOStream* tls = g_tls_server_connection_new(io_, cert, &e);
      if (tls && g_tls_connection_handshake(G_TLS_CONNECTION(tls), nullptr, &e)) {
        g_object_unref(io_);
        io_ = tls;
      } else {
        tls_error_ = describe(e);
        g_clear_error(&e);
        if (tls) g_object_unref(tls);
        ok_ = false;
      }
    }
    in_ = g_io_stream_get_input_stream(io_);
    out_ = g_io_stream_get_output_stream(io_);
  }
  ~ScriptConn() {
    g_io_stream_close(io_, nullptr, nullptr);
    g_io_stream_close(G_IO_STREAM(conn_), nullptr, nullptr);
    g_object_unref(io_);
    g_object_unref(conn_);
  }
  bool ok() const { return ok_; }
  const std::string& tls_error() const { return tls_error_; }

  bool handshake(Handshake::Scheme* peer_scheme) {
    if (!ok_) return false;
    Handshake hs(Handshake::Role::Server);
    uint8_t buf[8192];
    while (!hs.done()) {
      gssize n = g_input_stream_read(in_, buf, sizeof buf, nullptr, nullptr);
      if (n <= 0) return false;
      size_t consumed = 0;
      std::vector<uint8_t> out;
      if (hs.feed(buf, n, consumed, out, nullptr) == Handshake::Status::Error) return false;
      if (!out.empty() && !send_raw(out)) return false;
      if (hs.done() && consumed < size_t(n)) {
        if (!reader_.feed(buf + consumed, n - consumed, inbox_, nullptr)) return false;
      }
    }
    if (peer_scheme) *peer_scheme = hs.peer_scheme();
    return true;
  }

  bool send_raw(const std::vector<uint8_t>& v) {
    return g_output_stream_write_all(out_, v.data(), v.size(), nullptr, nullptr, nullptr);
  }
  bool send(const Message& m) { return send_raw(writer_.write_flat(m)); }
  void set_chunk_size(uint32_t n) {
    send(control::set_chunk_size(n));
    writer_.set_chunk_size(n);
  }

  // Next message from the client (false on EOF / timeout).
  bool next(Message& m) {
    uint8_t buf[8192];
    while (inbox_.empty()) {
      gssize n = g_input_stream_read(in_, buf, sizeof buf, nullptr, nullptr);
      if (n <= 0) return false;
      std::vector<Message> got;
      if (!reader_.feed(buf, n, got, nullptr)) return false;
      for (auto& g : got) inbox_.push_back(std::move(g));
    }
    m = std::move(inbox_.front());
    inbox_.erase(inbox_.begin());
    log_.push_back(m);
    return true;
  }
  // Next command (other messages are kept in log()).
  bool next_command(Command& c, Message* raw = nullptr) {
    Message m;
    while (next(m)) {
      if (m.type != kMsgCommandAmf0 && m.type != kMsgCommandAmf3) continue;
      if (raw) *raw = m;
      return parse_command(m, c, amf0::Limits{}, nullptr);
    }
    return false;
  }
  const std::vector<Message>& log() const { return log_; }
  // Reads until the peer closes (or the 5 s socket timeout).
  void wait_eof() {
    Message m;
    while (next(m)) {
    }
  }

 private:
  GSocketConnection* conn_ = nullptr;
  GIOStream* io_ = nullptr;
  GInputStream* in_ = nullptr;
  GOutputStream* out_ = nullptr;
  bool ok_ = true;
  std::string tls_error_;
  ChunkReader reader_;
  ChunkWriter writer_;
  std::vector<Message> inbox_;
  std::vector<Message> log_;
};

class ScriptServer {
 public:
  explicit ScriptServer(std::function<void(ScriptConn&)> script, GTlsCertificate* cert = nullptr) {
    listen_ = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
    GInetAddress* lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
    GSocketAddress* a = g_inet_socket_address_new(lo, 0);
    g_socket_bind(listen_, a, TRUE, nullptr);
    g_socket_listen(listen_, nullptr);
    GSocketAddress* bound = g_socket_get_local_address(listen_, nullptr);
    port_ = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
    g_object_unref(bound);
    g_object_unref(a);
    g_object_unref(lo);
    g_socket_set_timeout(listen_, 10);
    thread_ = std::thread([this, cert, script = std::move(script)]() {
      GSocket* s = g_socket_accept(listen_, nullptr, nullptr);
      if (!s) return;
      ScriptConn c(s, cert);
      script(c);
    });
  }
  ~ScriptServer() {
    join();
    g_socket_close(listen_, nullptr);
    g_object_unref(listen_);
  }
  uint16_t port() const { return port_; }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  GSocket* listen_;
  uint16_t port_ = 0;
  std::thread thread_;
};

std::string arg_string(const Command& c, size_t i) {
  std::string s;
  command_string_arg(c, i, s);
  return s;
}

// Answers connect with the usual server preamble.
bool serve_connect(ScriptConn& c, ConnectParams* params, uint32_t chunk_size = 100,
                   uint32_t window = 2000) {
  Command cmd;
  if (!c.next_command(cmd) || cmd.name != "connect") return false;
  if (params && !parse_connect(cmd, *params, nullptr)) return false;
  c.send(control::window_ack_size(window));
  c.send(control::set_peer_bandwidth(window, control::PeerBandwidthLimit::Dynamic));
  c.set_chunk_size(chunk_size);
  c.send(build_connect_result(cmd.transaction_id, 0));
  return true;
}

Message media(uint8_t type, uint32_t ts, uint32_t stream_id, Bytes payload) {
  Message m;
  m.type = type;
  m.timestamp = ts;
  m.stream_id = stream_id;
  m.csid = type == kMsgAudio ? kCsidAudio : type == kMsgVideo ? kCsidVideo : kCsidData;
  m.payload = std::move(payload);
  return m;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = uint8_t(seed + i * 7);
  return v;
}

void append_sub(ByteWriter& w, uint8_t type, uint32_t ts, const std::vector<uint8_t>& data) {
  w.u8(type);
  w.u24(uint32_t(data.size()));
  w.u24(ts & 0xffffff);
  w.u8(ts >> 24);
  w.u24(0);
  w.raw(data.data(), data.size());
  w.u32(uint32_t(11 + data.size()));
}

}  // namespace

// ================================================================ pure

TEST(ClientAggregate, SplitsAndRebasesTimestamps) {
  ByteWriter w;
  auto a = pattern(5, 1), v = pattern(300, 2), d = pattern(20, 3);
  append_sub(w, kMsgAudio, 1000, a);
  append_sub(w, kMsgVideo, 1040, v);
  append_sub(w, kMsgDataAmf0, 0x01000010, d);  // uses the extended byte
  Message m;
  m.type = kMsgAggregate;
  m.timestamp = 500;
  m.stream_id = 3;
  m.csid = 9;
  m.payload = w.to_bytes();
  std::vector<Message> out;
  GError* e = nullptr;
  ASSERT_TRUE(split_aggregate(m, out, &e)) << describe(e);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].type, kMsgAudio);
  EXPECT_EQ(out[0].timestamp, 500u);
  EXPECT_TRUE(same(out[0].payload, bytes_of(a)));
  EXPECT_EQ(out[1].type, kMsgVideo);
  EXPECT_EQ(out[1].timestamp, 540u);
  EXPECT_TRUE(same(out[1].payload, bytes_of(v)));
  EXPECT_EQ(out[1].stream_id, 3u);
  EXPECT_EQ(out[2].type, kMsgDataAmf0);
  EXPECT_EQ(out[2].timestamp, 500u + 0x01000010u - 1000u);
  // Payloads share the aggregate's buffer.
  EXPECT_EQ(out[1].payload.data(), m.payload.data() + 11 + 5 + 4 + 11);
}

TEST(ClientAggregate, TimestampWrapAndMissingLastBackPointer) {
  ByteWriter w;
  append_sub(w, kMsgVideo, 0xfffffff0u, pattern(3, 1));
  append_sub(w, kMsgVideo, 0x10, pattern(4, 2));
  std::vector<uint8_t> buf = w.buffer();
  buf.resize(buf.size() - 4);  // no last back pointer
  Message m;
  m.type = kMsgAggregate;
  m.timestamp = 100;
  m.payload = bytes_of(buf);
  std::vector<Message> out;
  ASSERT_TRUE(split_aggregate(m, out, nullptr));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].timestamp, 100u);
  EXPECT_EQ(out[1].timestamp, 100u + 0x20u);
}

TEST(ClientAggregate, TruncatedIsMalformed) {
  ByteWriter w;
  append_sub(w, kMsgVideo, 0, pattern(30, 1));
  std::vector<uint8_t> buf = w.buffer();
  for (size_t cut : {size_t(5), size_t(11 + 10)}) {
    std::vector<uint8_t> b(buf.begin(), buf.begin() + cut);
    Message m;
    m.type = kMsgAggregate;
    m.payload = bytes_of(b);
    std::vector<Message> out;
    GError* e = nullptr;
    EXPECT_FALSE(split_aggregate(m, out, &e));
    EXPECT_TRUE(g_error_matches(e, GRTMP_ERROR, GRTMP_ERROR_MALFORMED)) << describe(e);
    EXPECT_TRUE(out.empty());
    g_clear_error(&e);
  }
  Message empty;
  empty.type = kMsgAggregate;
  std::vector<Message> out;
  EXPECT_TRUE(split_aggregate(empty, out, nullptr));
  EXPECT_TRUE(out.empty());
}

// ============================================================ no server

TEST(ClientErrors, BadUrlIsMalformed) {
  Url u;
  Err e;
  EXPECT_FALSE(parse_url("http://127.0.0.1/live/x", u, e.out()));
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_MALFORMED)) << e.msg();

  Client c;
  Url bad;
  bad.scheme = "http";
  bad.host = "127.0.0.1";
  bad.app = "live";
  EXPECT_FALSE(c.connect(bad, nullptr, e.out()));
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_MALFORMED)) << e.msg();

  Client c2;
  Url nohost;
  nohost.scheme = "rtmp";
  nohost.app = "live";
  EXPECT_FALSE(c2.connect(nohost, nullptr, e.out()));
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_MALFORMED)) << e.msg();
  EXPECT_FALSE(c2.connected());
  c2.close();
  c2.close();
}

TEST(ClientErrors, ConnectionRefused) {
  Client c;
  Err e;
  EXPECT_FALSE(c.connect(make_url(free_port(), "live", "x"), nullptr, e.out()));
  EXPECT_TRUE(e.is(G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)) << describe(e.e);
  EXPECT_FALSE(c.connected());
}

TEST(ClientErrors, NotConnectedCallsFail) {
  Client c;
  Err e;
  EXPECT_FALSE(c.publish(nullptr, e.out()));
  EXPECT_NE(e.e, nullptr);
  EXPECT_FALSE(c.play(nullptr, e.out()));
  EXPECT_NE(e.e, nullptr);
  Message m;
  EXPECT_FALSE(c.send(m, nullptr, e.out()));
  EXPECT_NE(e.e, nullptr);
  EXPECT_FALSE(c.receive(m, nullptr, e.out()));
  EXPECT_NE(e.e, nullptr);
  EXPECT_EQ(c.bytes_sent(), 0u);
  EXPECT_EQ(c.bytes_received(), 0u);
}

// A listening socket that never accepts: TCP connects, the handshake waits.
struct SilentListener {
  GSocket* s;
  uint16_t port;
  SilentListener() {
    s = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
    GInetAddress* lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
    GSocketAddress* a = g_inet_socket_address_new(lo, 0);
    g_socket_bind(s, a, TRUE, nullptr);
    g_socket_listen(s, nullptr);
    GSocketAddress* bound = g_socket_get_local_address(s, nullptr);
    port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
    g_object_unref(bound);
    g_object_unref(a);
    g_object_unref(lo);
  }
  ~SilentListener() {
    g_socket_close(s, nullptr);
    g_object_unref(s);
  }
};

TEST(ClientErrors, HandshakeTimeout) {
  SilentListener l;
  ClientOptions o;
  o.timeout_ms = 300;
  Client c(o);
  Err e;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.connect(make_url(l.port, "live", "x"), nullptr, e.out()));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_TIMEOUT)) << describe(e.e);
  EXPECT_GE(ms, 280);
  EXPECT_LT(ms, 2000);
  EXPECT_FALSE(c.connected());
  EXPECT_GT(c.bytes_sent(), 1536u);  // C0 + C1 went out
}

TEST(ClientErrors, CancelWhileWaiting) {
  SilentListener l;
  ClientOptions o;
  o.timeout_ms = 20000;
  Client c(o);
  GCancellable* cancel = g_cancellable_new();
  std::thread t([cancel]() {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    g_cancellable_cancel(cancel);
  });
  Err e;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.connect(make_url(l.port, "live", "x"), cancel, e.out()));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  t.join();
  EXPECT_TRUE(e.is(G_IO_ERROR, G_IO_ERROR_CANCELLED)) << describe(e.e);
  EXPECT_LT(ms, 3000);
  g_object_unref(cancel);

  // Already cancelled: fails at once.
  GCancellable* c2 = g_cancellable_new();
  g_cancellable_cancel(c2);
  Client cc;
  EXPECT_FALSE(cc.connect(make_url(l.port, "live", "x"), c2, e.out()));
  EXPECT_TRUE(e.is(G_IO_ERROR, G_IO_ERROR_CANCELLED)) << describe(e.e);
  g_object_unref(c2);
}

// ==================================================== scripted server

TEST(ClientScripted, PlayHandlesControlAggregatesAndChunking) {
  struct Seen {
    bool handshake = false;
    Handshake::Scheme scheme = Handshake::Scheme::None;
    ConnectParams connect;
    bool connected = false;
    uint32_t client_window = 0, client_chunk = 0;
    bool buffer_length = false;
    uint32_t buffer_stream = 0, buffer_ms = 0;
    std::string play_name;
    double play_start = 0;
    uint32_t play_stream = 0, play_csid = 0;
    bool pong = false;
    uint32_t acks = 0;
    uint32_t last_ack = 0;
  } seen;
  auto big = pattern(5000, 9);
  auto agg_a = pattern(5, 1), agg_v = pattern(300, 2);
  const std::string meta_name = "onMetaData";

  ScriptServer server([&](ScriptConn& c) {
    seen.handshake = c.handshake(&seen.scheme);
    if (!seen.handshake) return;
    if (!serve_connect(c, &seen.connect)) return;
    seen.connected = true;
    Command cmd;
    Message raw;
    if (!c.next_command(cmd) || cmd.name != "createStream") return;
    c.send(build_result(cmd.transaction_id, {amf0::Value::make_null(), amf0::Value::make_number(1)}));
    if (!c.next_command(cmd, &raw) || cmd.name != "play") return;
    PlayParams pp;
    parse_play(cmd, pp, nullptr);
    seen.play_name = pp.name + (pp.query.empty() ? "" : "?" + pp.query);
    seen.play_start = pp.start;
    seen.play_stream = raw.stream_id;
    seen.play_csid = raw.csid;
    for (const Message& m : c.log()) {
      if (m.type == kMsgWindowAckSize) control::parse_window_ack_size(m, seen.client_window, nullptr);
      if (m.type == kMsgSetChunkSize) control::parse_set_chunk_size(m, seen.client_chunk, nullptr);
      control::UserControl uc;
      if (m.type == kMsgUserControl && control::parse_user_control(m, uc, nullptr) &&
          uc.event == control::UserControlEvent::SetBufferLength) {
        seen.buffer_length = true;
        seen.buffer_stream = uc.value;
        seen.buffer_ms = uc.buffer_length;
      }
    }
    c.send(control::stream_begin(1));
    c.send(build_on_status(1, "status", status::kPlayReset, "reset"));
    c.send(build_on_status(1, "status", status::kPlayStart, "start"));
    c.send(build_sample_access(1));
    c.send(control::ping_request(777));
    // Metadata as a data message.
    ByteWriter mw;
    amf0::encode(amf0::Value::make_string(meta_name), mw);
    amf0::encode(amf0::Value::make_ecma_array({{"width", amf0::Value::make_number(320)}}), mw);
    c.send(media(kMsgDataAmf0, 0, 1, mw.to_bytes()));
    // An aggregate with audio + video.
    ByteWriter aw;
    append_sub(aw, kMsgAudio, 1000, agg_a);
    append_sub(aw, kMsgVideo, 1040, agg_v);
    Message agg = media(kMsgAggregate, 500, 1, aw.to_bytes());
    agg.csid = 4;
    c.send(agg);
    // A big video message: 50 chunks of 100 bytes.
    c.send(media(kMsgVideo, 600, 1, bytes_of(big)));
    // AMF3 data (leading 0x00).
    std::vector<uint8_t> d3 = {0x00};
    d3.insert(d3.end(), mw.buffer().begin(), mw.buffer().end());
    Message m15 = media(kMsgDataAmf3, 700, 1, bytes_of(d3));
    c.send(m15);
    // Wait for the pong and an acknowledgement (window 2000 < bytes sent).
    Message m;
    while ((!seen.pong || seen.acks == 0) && c.next(m)) {
      control::UserControl uc;
      if (m.type == kMsgUserControl && control::parse_user_control(m, uc, nullptr) &&
          uc.event == control::UserControlEvent::PingResponse && uc.value == 777)
        seen.pong = true;
      if (m.type == kMsgAck) {
        seen.acks++;
        control::parse_acknowledgement(m, seen.last_ack, nullptr);
      }
    }
    c.send(build_on_status(1, "status", status::kPlayUnpublishNotify, "gone"));
    c.send(control::stream_eof(1));
    // Give the client a moment to read before the close.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  });

  ClientOptions o;
  o.timeout_ms = 5000;
  Client c(o);
  Err e;
  Url url = make_url(server.port(), "app1", "s1?tok=1");
  ASSERT_TRUE(c.connect(url, nullptr, e.out())) << describe(e.e);
  EXPECT_TRUE(c.connected());
  ASSERT_TRUE(c.play(nullptr, e.out())) << describe(e.e);
  EXPECT_EQ(c.stream_id(), 1u);
  EXPECT_EQ(c.last_status(), status::kPlayStart);

  std::vector<Message> got;
  Message m;
  while (c.receive(m, nullptr, e.out())) got.push_back(std::move(m));
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_CLOSED)) << describe(e.e);
  EXPECT_EQ(c.last_status(), "StreamEOF");  // UnpublishNotify, then the StreamEOF event
  c.close();
  c.close();
  EXPECT_FALSE(c.connected());
  server.join();

  EXPECT_TRUE(seen.handshake);
  EXPECT_NE(seen.scheme, Handshake::Scheme::None) << "digest C1 expected by default";
  EXPECT_EQ(seen.connect.app, "app1");
  EXPECT_EQ(seen.connect.tc_url, "rtmp://127.0.0.1:" + std::to_string(server.port()) + "/app1");
  EXPECT_EQ(seen.connect.type, "nonprivate");
  EXPECT_EQ(seen.connect.flash_ver, o.flash_ver);
  EXPECT_EQ(seen.client_window, o.window_ack_size);
  EXPECT_EQ(seen.client_chunk, o.chunk_size);
  EXPECT_TRUE(seen.buffer_length);
  EXPECT_EQ(seen.buffer_stream, 1u);
  EXPECT_EQ(seen.buffer_ms, 3000u);
  EXPECT_EQ(seen.play_name, "s1?tok=1");
  EXPECT_EQ(seen.play_start, -2);
  EXPECT_EQ(seen.play_stream, 1u);
  EXPECT_NE(seen.play_csid, uint32_t(kCsidControl));
  EXPECT_TRUE(seen.pong);
  EXPECT_GE(seen.acks, 1u);
  EXPECT_GE(seen.last_ack, 2000u);

  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].type, kMsgDataAmf0);
  EXPECT_EQ(first_string(got[0].payload), meta_name);  // not |RtmpSampleAccess
  EXPECT_EQ(got[1].type, kMsgAudio);
  EXPECT_EQ(got[1].timestamp, 500u);
  EXPECT_TRUE(same(got[1].payload, bytes_of(agg_a)));
  EXPECT_EQ(got[2].type, kMsgVideo);
  EXPECT_EQ(got[2].timestamp, 540u);
  EXPECT_TRUE(same(got[2].payload, bytes_of(agg_v)));
  EXPECT_EQ(got[3].type, kMsgVideo);
  EXPECT_EQ(got[3].timestamp, 600u);
  EXPECT_TRUE(same(got[3].payload, bytes_of(big)));
  EXPECT_EQ(got[4].type, kMsgDataAmf0);
  EXPECT_EQ(got[4].timestamp, 700u);
  EXPECT_TRUE(same(got[4].payload, got[0].payload));
  EXPECT_GT(c.bytes_received(), 5000u + 3073u);
  EXPECT_GT(c.bytes_sent(), 3073u);
}

TEST(ClientScripted, PublishWrapsMetadataAndReportsServerError) {
  struct Seen {
    Handshake::Scheme scheme = Handshake::Scheme::Scheme0;
    std::vector<std::string> commands;
    std::string release_name, fcpublish_name;
    PublishParams publish;
    uint32_t publish_stream = 0, publish_csid = 0;
    std::vector<Message> media;
    bool pong = false;
    std::vector<std::string> teardown;
    double delete_stream_id = -1;
  } seen;
  std::vector<uint8_t> meta_payload;
  {
    ByteWriter w;
    amf0::encode(amf0::Value::make_string("onMetaData"), w);
    amf0::encode(amf0::Value::make_ecma_array({{"duration", amf0::Value::make_number(0)}}), w);
    meta_payload = w.buffer();
  }

  ScriptServer server([&](ScriptConn& c) {
    if (!c.handshake(&seen.scheme)) return;
    if (!serve_connect(c, nullptr, 4096, 5000000)) return;
    Command cmd;
    Message raw;
    // releaseStream gets an _error (some servers do); FCPublish onFCPublish.
    while (c.next_command(cmd, &raw)) {
      seen.commands.push_back(cmd.name);
      if (cmd.name == "releaseStream") {
        seen.release_name = arg_string(cmd, 0);
        c.send(build_error(cmd.transaction_id, "NetConnection.Call.Failed", "no such method"));
      } else if (cmd.name == "FCPublish") {
        seen.fcpublish_name = arg_string(cmd, 0);
        c.send(build_on_fcpublish(seen.fcpublish_name, false));
      } else if (cmd.name == "createStream") {
        c.send(build_result(cmd.transaction_id, {amf0::Value::make_number(7)}));
      } else if (cmd.name == "publish") {
        parse_publish(cmd, seen.publish, nullptr);
        seen.publish_stream = raw.stream_id;
        seen.publish_csid = raw.csid;
        c.send(build_on_status(7, "status", status::kPublishStart, "go"));
        break;
      }
    }
    Message m;
    while (c.next(m)) {
      if (m.type == kMsgAudio || m.type == kMsgVideo || m.type == kMsgDataAmf0) {
        seen.media.push_back(m);
        if (seen.media.size() == 4) {
          c.send(control::ping_request(4242));
          c.send(build_on_status(7, "error", "NetStream.Publish.Rejected", "kicked by test"));
        }
      }
      control::UserControl uc;
      if (m.type == kMsgUserControl && control::parse_user_control(m, uc, nullptr) &&
          uc.event == control::UserControlEvent::PingResponse && uc.value == 4242)
        seen.pong = true;
      if (m.type == kMsgCommandAmf0 && parse_command(m, cmd, amf0::Limits{}, nullptr)) {
        seen.teardown.push_back(cmd.name);
        if (cmd.name == "deleteStream") {
          command_number_arg(cmd, 0, seen.delete_stream_id);
          break;
        }
      }
    }
  });

  ClientOptions o;
  o.timeout_ms = 5000;
  o.digest_handshake = false;
  Client c(o);
  Err e;
  ASSERT_TRUE(c.connect(make_url(server.port(), "live", "key"), nullptr, e.out())) << describe(e.e);
  ASSERT_TRUE(c.publish(nullptr, e.out())) << describe(e.e);
  EXPECT_EQ(c.stream_id(), 7u);
  EXPECT_EQ(c.last_status(), status::kPublishStart);

  ASSERT_TRUE(c.send(media(kMsgDataAmf0, 0, 0, bytes_of(meta_payload)), nullptr, e.out())) << describe(e.e);
  uint32_t ts = 0;
  bool failed = false;
  for (int i = 0; i < 200 && !failed; i++, ts += 20) {
    uint8_t type = i % 2 ? kMsgAudio : kMsgVideo;
    if (!c.send(media(type, ts, 99, bytes_of(pattern(200 + i, uint8_t(i)))), nullptr, e.out())) failed = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(failed) << "send() never reported the server's error status";
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_REFUSED)) << describe(e.e);
  EXPECT_NE(e.msg().find("NetStream.Publish.Rejected"), std::string::npos) << e.msg();
  EXPECT_NE(e.msg().find("kicked by test"), std::string::npos) << e.msg();
  c.close();
  server.join();

  EXPECT_EQ(seen.scheme, Handshake::Scheme::None) << "simple handshake requested";
  ASSERT_GE(seen.commands.size(), 4u);
  EXPECT_EQ(seen.commands[0], "releaseStream");
  EXPECT_EQ(seen.commands[1], "FCPublish");
  EXPECT_EQ(seen.commands[2], "createStream");
  EXPECT_EQ(seen.commands[3], "publish");
  EXPECT_EQ(seen.release_name, "key");
  EXPECT_EQ(seen.fcpublish_name, "key");
  EXPECT_EQ(seen.publish.name, "key");
  EXPECT_EQ(seen.publish.type, "live");
  EXPECT_EQ(seen.publish_stream, 7u);
  EXPECT_NE(seen.publish_csid, uint32_t(kCsidControl));
  EXPECT_TRUE(seen.pong);
  ASSERT_GE(seen.media.size(), 4u);
  // Metadata is wrapped in @setDataFrame, on the publish stream.
  const Message& md = seen.media[0];
  EXPECT_EQ(md.type, kMsgDataAmf0);
  EXPECT_EQ(md.stream_id, 7u);
  EXPECT_EQ(first_string(md.payload), "@setDataFrame");
  ASSERT_EQ(md.payload.size(), 16 + meta_payload.size());
  EXPECT_EQ(std::memcmp(md.payload.data() + 16, meta_payload.data(), meta_payload.size()), 0);
  for (size_t i = 1; i < seen.media.size(); i++) {
    const Message& m = seen.media[i];
    EXPECT_EQ(m.stream_id, 7u);
    EXPECT_EQ(m.timestamp, uint32_t((i - 1) * 20));
    EXPECT_EQ(m.csid, m.type == kMsgAudio ? uint32_t(kCsidAudio) : uint32_t(kCsidVideo));
    EXPECT_TRUE(same(m.payload, bytes_of(pattern(200 + i - 1, uint8_t(i - 1)))));
  }
  ASSERT_EQ(seen.teardown.size(), 2u);
  EXPECT_EQ(seen.teardown[0], "FCUnpublish");
  EXPECT_EQ(seen.teardown[1], "deleteStream");
  EXPECT_EQ(seen.delete_stream_id, 7);
}

TEST(ClientScripted, ConnectErrorIsRefused) {
  ScriptServer server([&](ScriptConn& c) {
    if (!c.handshake(nullptr)) return;
    Command cmd;
    if (!c.next_command(cmd)) return;
    c.send(build_connect_error(cmd.transaction_id, status::kConnectRejected, "no such app"));
    c.wait_eof();
  });
  Client c;
  Err e;
  EXPECT_FALSE(c.connect(make_url(server.port(), "nope", "x?token=secret"), nullptr, e.out()));
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_REFUSED)) << describe(e.e);
  EXPECT_EQ(e.msg().find("secret"), std::string::npos) << "query leaked into: " << e.msg();
  EXPECT_NE(e.msg().find(status::kConnectRejected), std::string::npos) << e.msg();
  EXPECT_NE(e.msg().find("no such app"), std::string::npos) << e.msg();
  EXPECT_FALSE(c.connected());
  c.close();
}

TEST(ClientScripted, CommandAnswerTimeout) {
  ScriptServer server([&](ScriptConn& c) {
    if (!c.handshake(nullptr) || !serve_connect(c, nullptr)) return;
    c.wait_eof();  // never answers createStream
  });
  ClientOptions o;
  o.timeout_ms = 400;
  Client c(o);
  Err e;
  ASSERT_TRUE(c.connect(make_url(server.port(), "live", "x"), nullptr, e.out())) << describe(e.e);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.play(nullptr, e.out()));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_TIMEOUT)) << describe(e.e);
  EXPECT_GE(ms, 380);
  EXPECT_LT(ms, 3000);
  c.close();
}

TEST(ClientScripted, PublishWithoutStreamName) {
  ScriptServer server([&](ScriptConn& c) {
    if (!c.handshake(nullptr) || !serve_connect(c, nullptr)) return;
    c.wait_eof();
  });
  Client c;
  Err e;
  ASSERT_TRUE(c.connect(make_url(server.port(), "live", ""), nullptr, e.out())) << describe(e.e);
  EXPECT_FALSE(c.publish(nullptr, e.out()));
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_MALFORMED)) << describe(e.e);
  c.close();
}

// ================================================================ rtmps

namespace {

// A self-signed certificate (made once with openssl) for the TLS server.
GTlsCertificate* test_certificate(std::string& why) {
  static std::string error;
  static GTlsCertificate* cert = [&]() -> GTlsCertificate* {
    if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
      error = "GIO has no TLS backend (install glib-networking)";
      return nullptr;
    }
    gchar* openssl = g_find_program_in_path("openssl");
    if (!openssl) {
      error = "openssl is not installed (needed to make a test certificate)";
      return nullptr;
    }
    gchar* tmp = g_dir_make_tmp("grtmp-tls-XXXXXX", nullptr);
    std::string dir = tmp;
    g_free(tmp);
    std::string crt = dir + "/cert.pem", key = dir + "/key.pem";
    const gchar* argv[] = {openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                           "/CN=grtmp-test", "-days", "2", "-keyout", key.c_str(), "-out", crt.c_str(),
                           nullptr};
    gint status = 0;
    gchar* err = nullptr;
    bool ran = g_spawn_sync(nullptr, const_cast<gchar**>(argv), nullptr, G_SPAWN_STDOUT_TO_DEV_NULL, nullptr,
                            nullptr, nullptr, &err, &status, nullptr);
    g_free(openssl);
    GTlsCertificate* c = nullptr;
    if (ran && g_spawn_check_wait_status(status, nullptr)) {
      GError* e = nullptr;
      c = g_tls_certificate_new_from_files(crt.c_str(), key.c_str(), &e);
      if (!c) error = describe(e);
      g_clear_error(&e);
    } else {
      error = std::string("openssl failed: ") + (err ? err : "");
    }
    g_free(err);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return c;
  }();
  why = error;
  return cert;
}

}  // namespace

TEST(ClientTls, RtmpsPlay) {
  std::string why;
  GTlsCertificate* cert = test_certificate(why);
  ASSERT_NE(cert, nullptr) << why;
  auto frame = pattern(10000, 5);
  ScriptServer server(
      [&](ScriptConn& c) {
        if (!c.handshake(nullptr) || !serve_connect(c, nullptr, 4096)) return;
        Command cmd;
        if (!c.next_command(cmd) || cmd.name != "createStream") return;
        c.send(build_result(cmd.transaction_id, {amf0::Value::make_number(1)}));
        if (!c.next_command(cmd) || cmd.name != "play") return;
        c.send(build_on_status(1, "status", status::kPlayStart, "start"));
        c.send(media(kMsgVideo, 40, 1, bytes_of(frame)));
        c.wait_eof();
      },
      cert);
  ClientOptions o;
  o.timeout_ms = 5000;
  o.tls_validation_flags = GTlsCertificateFlags(0);  // self-signed
  Client c(o);
  Err e;
  Url url;
  ASSERT_TRUE(parse_url("rtmps://127.0.0.1:" + std::to_string(server.port()) + "/app/s", url, nullptr));
  ASSERT_TRUE(c.connect(url, nullptr, e.out())) << describe(e.e);
  ASSERT_TRUE(c.play(nullptr, e.out())) << describe(e.e);
  Message m;
  ASSERT_TRUE(c.receive(m, nullptr, e.out())) << describe(e.e);
  EXPECT_EQ(m.type, kMsgVideo);
  EXPECT_EQ(m.timestamp, 40u);
  EXPECT_TRUE(same(m.payload, bytes_of(frame)));
  // TLS framing: more bytes on the wire than the RTMP payload alone.
  EXPECT_GT(c.bytes_received(), frame.size());
  c.close();
}

TEST(ClientTls, UntrustedCertificateIsRejected) {
  std::string why;
  GTlsCertificate* cert = test_certificate(why);
  ASSERT_NE(cert, nullptr) << why;
  ScriptServer server([&](ScriptConn& c) { c.handshake(nullptr); }, cert);
  ClientOptions o;
  o.timeout_ms = 5000;  // default validation: the self-signed certificate fails
  Client c(o);
  Err e;
  Url url;
  ASSERT_TRUE(parse_url("rtmps://127.0.0.1:" + std::to_string(server.port()) + "/app/s", url, nullptr));
  EXPECT_FALSE(c.connect(url, nullptr, e.out()));
  EXPECT_TRUE(e.is(G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE)) << describe(e.e);
  EXPECT_FALSE(c.connected());
}

// ================================================================ nginx

namespace {

struct NginxEnv {
  std::string error;  // non-empty: the environment could not be set up
  std::string dir;
  uint16_t port = 0;
  GSubprocess* proc = nullptr;
  std::vector<Tag> tags;

  NginxEnv() { setup(); }
  ~NginxEnv() {
    if (proc) {
      g_subprocess_force_exit(proc);
      g_subprocess_wait(proc, nullptr, nullptr);
      g_object_unref(proc);
    }
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }

  std::string log() const { return read_file(dir + "/error.log"); }

  static std::string module_path() {
    std::string conf = read_file("/usr/share/nginx/modules-available/mod-rtmp.conf");
    size_t p = conf.find("load_module");
    if (p == std::string::npos) return {};
    std::istringstream in(conf.substr(p + strlen("load_module")));
    std::string path;
    in >> path;
    if (!path.empty() && path.back() == ';') path.pop_back();
    if (!path.empty() && path[0] != '/') path = "/usr/share/nginx/" + path;
    return path;
  }

  void setup() {
    const char* nginx = "/usr/sbin/nginx";
    if (!g_file_test(nginx, G_FILE_TEST_IS_EXECUTABLE)) {
      error = "nginx is not installed at /usr/sbin/nginx (apt-get install nginx-core libnginx-mod-rtmp)";
      return;
    }
    std::string module = module_path();
    if (module.empty() || !g_file_test(module.c_str(), G_FILE_TEST_EXISTS)) {
      error = "nginx RTMP module not found (apt-get install libnginx-mod-rtmp); looked for '" + module + "'";
      return;
    }
    gchar* ffmpeg = g_find_program_in_path("ffmpeg");
    if (!ffmpeg) {
      error = "ffmpeg is not installed (needed to make the test FLV)";
      return;
    }
    gchar* tmp = g_dir_make_tmp("grtmp-client-XXXXXX", nullptr);
    dir = tmp;
    g_free(tmp);

    // The test stream: 3 s of H.264 + AAC.
    std::string flv = dir + "/test.flv";
    const gchar* fargv[] = {ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                            "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine", "-t", "3",
                            "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "flv", flv.c_str(),
                            nullptr};
    gchar* ferr = nullptr;
    gint status = 0;
    GError* e = nullptr;
    bool ran = g_spawn_sync(nullptr, const_cast<gchar**>(fargv), nullptr, G_SPAWN_STDOUT_TO_DEV_NULL,
                            nullptr, nullptr, nullptr, &ferr, &status, &e);
    g_free(ffmpeg);
    if (!ran || !g_spawn_check_wait_status(status, nullptr)) {
      error = "ffmpeg failed to make the test FLV: " + std::string(e ? e->message : "") + (ferr ? ferr : "");
      g_clear_error(&e);
      g_free(ferr);
      return;
    }
    g_free(ferr);
    std::string why;
    if (!parse_flv(read_file(flv), tags, why)) {
      error = "test FLV unreadable: " + why;
      return;
    }

    port = free_port();
    std::string conf = dir + "/nginx.conf";
    {
      std::ofstream f(conf);
      f << "load_module " << module << ";\n"
        << "daemon off;\nmaster_process off;\nworker_processes 1;\n"
        << "error_log " << dir << "/error.log info;\n"
        << "pid " << dir << "/nginx.pid;\n"
        << "events { worker_connections 128; }\n"
        << "rtmp {\n  server {\n    listen 127.0.0.1:" << port << ";\n"
        << "    chunk_size 4096;\n"
        << "    ack_window 20000;\n"  // small: players must send acknowledgements
        << "    ping 1s;\n    ping_timeout 1s;\n"  // idle players get pings (nginx 1.2.2 does not drop silent ones)
        << "    application live { live on; meta copy; }\n"
        << "    application strict { live on; idle_streams off; }\n"
        << "  }\n}\n";
    }
    std::string elog = dir + "/error.log";
    proc = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &e, nginx, "-p", dir.c_str(), "-e",
                            elog.c_str(), "-c", conf.c_str(), nullptr);
    if (!proc) {
      error = std::string("cannot start nginx: ") + e->message;
      g_clear_error(&e);
      return;
    }
    // Wait for the port.
    for (int i = 0; i < 100; i++) {
      GSocketClient* sc = g_socket_client_new();
      GSocketConnection* conn = g_socket_client_connect_to_host(sc, "127.0.0.1", port, nullptr, nullptr);
      g_object_unref(sc);
      if (conn) {
        g_io_stream_close(G_IO_STREAM(conn), nullptr, nullptr);
        g_object_unref(conn);
        return;
      }
      if (g_subprocess_get_identifier(proc) == nullptr) break;  // exited
      g_usleep(50 * 1000);
    }
    error = "nginx did not start listening on port " + std::to_string(port) + "; error.log:\n" + log();
  }
};

NginxEnv& nginx_env() {
  static NginxEnv env;
  return env;
}

#define REQUIRE_NGINX()                                   \
  NginxEnv& env = nginx_env();                            \
  ASSERT_TRUE(env.error.empty()) << env.error;

struct PlayerResult {
  std::vector<Message> got;
  GError* error = nullptr;
  std::string status;
  uint64_t received = 0;
  uint64_t sent = 0;
  bool played = false;
};

// Plays `url` until receive() fails; `ready` is set once play() succeeded.
void run_player(Url url, uint32_t timeout_ms, PlayerResult* r, std::promise<bool>* ready) {
  ClientOptions o;
  o.timeout_ms = timeout_ms;
  Client c(o);
  if (!c.connect(url, nullptr, &r->error) || !c.play(nullptr, &r->error)) {
    ready->set_value(false);
    return;
  }
  r->played = true;
  ready->set_value(true);
  Message m;
  while (c.receive(m, nullptr, &r->error)) r->got.push_back(std::move(m));
  r->status = c.last_status();
  c.close();
  r->received = c.bytes_received();
  r->sent = c.bytes_sent();
}

struct Published {
  std::vector<Bytes> video, audio;
  Bytes meta;
};

// Checks a player's messages against what was published.
void check_player(const char* who, const PlayerResult& r, const Published& pub, bool joined_first) {
  SCOPED_TRACE(who);
  std::vector<Bytes> vframes, aframes, vheaders, aheaders;
  std::vector<Message> data;
  for (const Message& m : r.got) {
    if (m.type == kMsgVideo) (is_video_seq_header(m.payload) ? vheaders : vframes).push_back(m.payload);
    if (m.type == kMsgAudio) (is_audio_seq_header(m.payload) ? aheaders : aframes).push_back(m.payload);
    if (m.type == kMsgDataAmf0) data.push_back(m);
  }
  std::vector<Bytes> pv, pa, pvh, pah;
  for (const Bytes& b : pub.video) (is_video_seq_header(b) ? pvh : pv).push_back(b);
  for (const Bytes& b : pub.audio) (is_audio_seq_header(b) ? pah : pa).push_back(b);
  ASSERT_EQ(pvh.size(), 1u);
  ASSERT_EQ(pah.size(), 1u);

  // Sequence headers first, and identical.
  ASSERT_FALSE(vheaders.empty()) << "no AVC sequence header received";
  ASSERT_FALSE(aheaders.empty()) << "no AAC sequence header received";
  EXPECT_TRUE(same(vheaders[0], pvh[0]));
  EXPECT_TRUE(same(aheaders[0], pah[0]));
  for (const Message& m : r.got) {
    if (m.type == kMsgVideo) {
      EXPECT_TRUE(is_video_seq_header(m.payload)) << "a video frame came before the sequence header";
      break;
    }
  }
  // Metadata (meta copy: the publisher's object, without @setDataFrame).
  ASSERT_FALSE(data.empty()) << "no metadata received";
  EXPECT_EQ(first_string(data[0].payload), "onMetaData");
  EXPECT_TRUE(same(data[0].payload, pub.meta)) << "metadata differs from what was published";

  // Video from the first keyframe the player got: byte-exact, in order, to the end.
  size_t k = 0;
  while (k < vframes.size() && !is_video_key(vframes[k])) k++;
  ASSERT_LT(k, vframes.size()) << "no keyframe received";
  long j = align(pv, vframes, k);
  ASSERT_GE(j, 0) << "video payloads from the first keyframe do not match the published sequence";
  EXPECT_EQ(vframes.size() - k, pv.size() - size_t(j)) << "video frames lost at the end";
  // Audio: the received frames continue the published ones.
  ASSERT_FALSE(aframes.empty());
  long ja = align(pa, aframes, 0);
  ASSERT_GE(ja, 0) << "audio payloads do not match the published sequence";
  EXPECT_EQ(aframes.size(), pa.size() - size_t(ja)) << "audio frames lost at the end";
  if (joined_first) {
    EXPECT_EQ(k, 0u);
    EXPECT_EQ(j, 0);
    EXPECT_EQ(ja, 0);
  }
  // Timestamps never go backwards per type.
  uint32_t last[32] = {};
  for (const Message& m : r.got) {
    if (m.type != kMsgAudio && m.type != kMsgVideo) continue;
    EXPECT_GE(m.timestamp, last[m.type]);
    last[m.type] = m.timestamp;
  }
}

}  // namespace

TEST(ClientNginx, PublishAndPlayByteExact) {
  if (g_getenv("GRTMP_TEST_DEBUG")) grtmp::log::set_level(grtmp::log::Level::Debug);
  REQUIRE_NGINX();
  Url url = make_url(env.port, "live", "pubplay");

  // Player 1 joins before the publisher.
  PlayerResult early, late;
  std::promise<bool> early_ready, late_ready;
  auto early_ok = early_ready.get_future();
  std::thread t1(run_player, url, 2500, &early, &early_ready);
  ASSERT_TRUE(early_ok.get()) << describe(early.error);
  EXPECT_TRUE(early.played);

  ClientOptions o;
  o.timeout_ms = 5000;
  Client pub(o);
  Err e;
  ASSERT_TRUE(pub.connect(url, nullptr, e.out())) << describe(e.e) << "\n" << env.log();
  ASSERT_TRUE(pub.publish(nullptr, e.out())) << describe(e.e) << "\n" << env.log();
  EXPECT_EQ(pub.last_status(), status::kPublishStart);
  EXPECT_GT(pub.stream_id(), 0u);

  Published published;
  std::thread t2;
  auto late_ok = late_ready.get_future();
  bool late_started = false;
  auto start = std::chrono::steady_clock::now();
  uint64_t payload_bytes = 0;
  for (const Tag& t : env.tags) {
    // Real-time pace.
    auto due = start + std::chrono::milliseconds(t.timestamp);
    std::this_thread::sleep_until(due);
    if (!late_started && t.timestamp >= 1200) {
      late_started = true;
      t2 = std::thread(run_player, url, 2500, &late, &late_ready);
      ASSERT_TRUE(late_ok.get()) << describe(late.error);
    }
    Message m;
    m.type = t.type;
    m.timestamp = t.timestamp;
    m.payload = t.data;
    ASSERT_TRUE(pub.send(m, nullptr, e.out())) << describe(e.e) << "\n" << env.log();
    payload_bytes += t.data.size();
    if (t.type == kMsgVideo) published.video.push_back(t.data);
    if (t.type == kMsgAudio) published.audio.push_back(t.data);
    if (t.type == kMsgDataAmf0) published.meta = t.data;
  }
  EXPECT_TRUE(pub.connected());
  EXPECT_GT(pub.bytes_sent(), payload_bytes);
  // Let the players drain before unpublishing.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  pub.close();
  EXPECT_FALSE(pub.connected());
  t1.join();
  if (t2.joinable()) t2.join();

  ASSERT_TRUE(early.played);
  EXPECT_TRUE(g_error_matches(early.error, GRTMP_ERROR, GRTMP_ERROR_TIMEOUT)) << describe(early.error);
  // nginx-rtmp (play_restart off) sends no UnpublishNotify, only StreamEOF.
  EXPECT_EQ(early.status, "StreamEOF");
  EXPECT_GT(early.received, payload_bytes);
  check_player("early player", early, published, true);

  ASSERT_TRUE(late.played) << describe(late.error);
  EXPECT_TRUE(g_error_matches(late.error, GRTMP_ERROR, GRTMP_ERROR_TIMEOUT)) << describe(late.error);
  check_player("late player", late, published, false);
  g_clear_error(&early.error);
  g_clear_error(&late.error);
}

TEST(ClientNginx, DoublePublishIsBadName) {
  REQUIRE_NGINX();
  Url url = make_url(env.port, "live", "dup");
  Client first, second;
  Err e;
  ASSERT_TRUE(first.connect(url, nullptr, e.out())) << describe(e.e);
  ASSERT_TRUE(first.publish(nullptr, e.out())) << describe(e.e);
  ASSERT_TRUE(second.connect(url, nullptr, e.out())) << describe(e.e);
  EXPECT_FALSE(second.publish(nullptr, e.out()));
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_BAD_NAME)) << describe(e.e);
  EXPECT_NE(e.msg().find(status::kPublishBadName), std::string::npos) << e.msg();
  EXPECT_EQ(second.last_status(), status::kPublishBadName);
  second.close();
  // The first publisher is unaffected.
  Message m;
  m.type = kMsgAudio;
  m.payload = bytes_of(std::vector<uint8_t>{0xaf, 0x00, 0x12, 0x10});
  EXPECT_TRUE(first.send(m, nullptr, e.out())) << describe(e.e);
  first.close();

  // After the first publisher left, the name is free again.
  Client third;
  ASSERT_TRUE(third.connect(url, nullptr, e.out())) << describe(e.e);
  EXPECT_TRUE(third.publish(nullptr, e.out())) << describe(e.e) << "\n" << env.log();
  third.close();
}

TEST(ClientNginx, PlayMissingStream) {
  REQUIRE_NGINX();
  // idle_streams on (default): nginx answers Play.Start and waits.
  {
    ClientOptions o;
    o.timeout_ms = 1500;
    Client c(o);
    Err e;
    ASSERT_TRUE(c.connect(make_url(env.port, "live", "nobody-here"), nullptr, e.out())) << describe(e.e);
    ASSERT_TRUE(c.play(nullptr, e.out())) << describe(e.e);
    EXPECT_EQ(c.last_status(), status::kPlayStart);
    // Idle for 3 s with nginx pinging every second: pings are answered
    // inside receive().
    Message m;
    uint64_t sent_before = c.bytes_sent();
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(c.receive(m, nullptr, e.out()));
    EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_TIMEOUT)) << describe(e.e);
    EXPECT_FALSE(c.receive(m, nullptr, e.out()));
    EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_TIMEOUT)) << describe(e.e) << "\n" << env.log();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(ms, 2900);
    EXPECT_TRUE(c.connected());
    // nginx pinged the idle player; the only bytes a silent player sends
    // are PingResponses (6-byte payload + a compressed chunk header).
    EXPECT_GE(c.bytes_sent() - sent_before, 7u) << "pings were not answered";
    c.close();
  }
  // idle_streams off: NetStream.Play.StreamNotFound.
  {
    ClientOptions o;
    o.timeout_ms = 3000;
    Client c(o);
    Err e;
    ASSERT_TRUE(c.connect(make_url(env.port, "strict", "nobody-here"), nullptr, e.out())) << describe(e.e);
    EXPECT_FALSE(c.play(nullptr, e.out()));
    EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_NOT_FOUND)) << describe(e.e);
    EXPECT_EQ(c.last_status(), status::kPlayStreamNotFound);
    c.close();
  }
}

TEST(ClientNginx, UnknownApp) {
  REQUIRE_NGINX();
  ClientOptions o;
  o.timeout_ms = 3000;
  Client c(o);
  Err e;
  EXPECT_FALSE(c.connect(make_url(env.port, "no-such-app", "x"), nullptr, e.out()));
  // nginx-rtmp closes the connection without an answer.
  EXPECT_TRUE(e.is(GRTMP_ERROR, GRTMP_ERROR_CLOSED) || e.is(GRTMP_ERROR, GRTMP_ERROR_REFUSED)) << describe(e.e);
  EXPECT_FALSE(c.connected());
}
