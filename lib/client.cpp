// The blocking RTMP client: GSocketClient (+ GTlsClientConnection for
// rtmps), the client handshake, connect / publish / play command
// sequences, and control traffic (acks, pings, chunk size) handled while
// waiting for answers, sending or receiving.
//
// Reads are always non-blocking reads on the pollable input stream, and a
// wait on the socket with the remaining time of the current deadline when
// nothing is buffered; so every wait honours timeout_ms and the
// cancellable, for TCP and TLS alike. Writes are blocking and bounded by
// the GSocket timeout (seconds).
#include "grtmp/client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/bytes.h"
#include "grtmp/chunk.h"
#include "grtmp/command.h"
#include "grtmp/control.h"
#include "grtmp/error.h"
#include "grtmp/handshake.h"
#include "grtmp/log.h"

namespace grtmp {

namespace {

constexpr uint32_t kCsidStreamCommand = 8;  // publish / play (FFmpeg's "source channel")
constexpr uint32_t kBufferLengthMs = 3000;
constexpr size_t kReadBufferSize = 64 * 1024;
constexpr size_t kMaxVectors = 64;
constexpr int kMaxNonblockingReads = 64;
constexpr const char* kStatusStreamEof = "StreamEOF";

struct Deadline {
  gint64 end = -1;  // monotonic µs; -1 = never
  explicit Deadline(uint32_t ms) {
    if (ms > 0) end = g_get_monotonic_time() + gint64(ms) * 1000;
  }
  // -1 = infinite; otherwise >= 0.
  gint64 remaining_us() const {
    if (end < 0) return -1;
    gint64 r = end - g_get_monotonic_time();
    return r < 0 ? 0 : r;
  }
};

std::string_view first_amf_string(const Bytes& payload) {
  const uint8_t* d = payload.data();
  size_t n = payload.size();
  if (n < 3 || d[0] != 0x02) return {};
  size_t len = (size_t(d[1]) << 8) | d[2];
  if (n < 3 + len) return {};
  return {reinterpret_cast<const char*>(d + 3), len};
}

const amf0::Value* status_info(const Command& c) {
  for (const auto& a : c.args) {
    if (a.is_object_like()) return &a;
  }
  if (c.object.is_object_like()) return &c.object;
  return nullptr;
}

std::string info_string(const Command& c, std::string_view key) {
  const amf0::Value* info = status_info(c);
  if (!info) return {};
  auto v = info->get_string(key);
  return v ? std::string(*v) : std::string();
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

guint timeout_seconds(uint32_t ms) { return ms == 0 ? 0 : (ms + 999) / 1000; }

std::string txn_str(double txn) { return std::to_string(static_cast<long long>(txn)); }

// "unknown CA or self-signed, host name mismatch" for a certificate that failed validation.
std::string certificate_errors_text(GTlsCertificateFlags flags) {
  static const std::pair<GTlsCertificateFlags, const char*> names[] = {
      {G_TLS_CERTIFICATE_UNKNOWN_CA, "unknown CA or self-signed"},
      {G_TLS_CERTIFICATE_BAD_IDENTITY, "host name mismatch"},
      {G_TLS_CERTIFICATE_NOT_ACTIVATED, "not yet valid"},
      {G_TLS_CERTIFICATE_EXPIRED, "expired"},
      {G_TLS_CERTIFICATE_REVOKED, "revoked"},
      {G_TLS_CERTIFICATE_INSECURE, "insecure algorithm"},
      {G_TLS_CERTIFICATE_GENERIC_ERROR, "other validation error"},
  };
  std::string s;
  for (auto& [flag, name] : names) {
    if (!(flags & flag)) continue;
    if (!s.empty()) s += ", ";
    s += name;
  }
  return s;
}

}  // namespace

bool split_aggregate(const Message& m, std::vector<Message>& out, GError** error) {
  const uint8_t* d = m.payload.data();
  const size_t n = m.payload.size();
  std::vector<Message> parts;
  size_t pos = 0;
  bool first = true;
  uint32_t first_ts = 0;
  while (pos < n) {
    if (n - pos < 11) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                  "aggregate message: truncated sub-message header at offset %zu of %zu", pos, n);
      return false;
    }
    uint8_t type = d[pos] & 0x1f;
    uint32_t len = load_u24(d + pos + 1);
    uint32_t ts = load_u24(d + pos + 4) | (uint32_t(d[pos + 7]) << 24);
    pos += 11;
    if (n - pos < len) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                  "aggregate message: sub-message of %u bytes at offset %zu overruns %zu bytes", len,
                  pos - 11, n);
      return false;
    }
    if (first) {
      first_ts = ts;
      first = false;
    }
    Message s;
    s.type = type;
    s.timestamp = m.timestamp + (ts - first_ts);  // wraps like the wire field
    s.stream_id = m.stream_id;
    s.csid = m.csid;
    s.payload = Bytes::adopt(g_bytes_new_from_bytes(m.payload.get(), pos, len));
    parts.push_back(std::move(s));
    pos += len;
    // Back pointer; some muxers omit the last one.
    pos += std::min<size_t>(4, n - pos);
  }
  for (auto& p : parts) out.push_back(std::move(p));
  return true;
}

struct Client::Impl {
  enum class State { Idle, Connected, Publishing, Playing, Closed };

  explicit Impl(ClientOptions o) : opts(std::move(o)), reader(make_limits(opts)), buf(kReadBufferSize) {}
  ~Impl() { teardown(); }

  static ChunkReaderLimits make_limits(const ClientOptions& o) {
    ChunkReaderLimits l;
    l.max_message_size = o.max_message_size;
    return l;
  }

  ClientOptions opts;
  Url url;
  State state = State::Idle;

  GSocketConnection* conn = nullptr;
  GIOStream* io = nullptr;  // conn, or the TLS connection around it
  GSocket* socket = nullptr;
  GInputStream* in = nullptr;
  GOutputStream* out = nullptr;

  std::unique_ptr<Handshake> handshake;
  ChunkReader reader;
  ChunkWriter writer;
  WireQueue wire;
  control::AckTracker ack;
  std::vector<uint8_t> buf;

  bool broken = false;          // a write failed half-way or the peer closed: no more writes
  bool peer_closed = false;
  GError* deferred_error = nullptr;  // a control reply that failed inside a read
  bool want_media = false;

  double next_txn = 1;
  std::set<double> awaited;
  std::map<double, Command> results;
  std::deque<Command> statuses;
  std::deque<Message> media;
  std::string last_status;
  std::string stream_name;  // as sent in publish/play
  uint32_t stream_id = 0;

  uint64_t sent = 0;
  uint64_t received = 0;

  amf0::Limits amf_limits;

  // ---- connection lifetime ----

  void teardown() {
    if (io) {
      GError* e = nullptr;
      if (!g_io_stream_close(io, nullptr, &e)) {
        GRTMP_DEBUG("client: close failed", {"reason", e->message});
        g_error_free(e);
      }
      // The TLS wrapper does not close its base stream unless asked to.
      if (io != G_IO_STREAM(conn) && conn) g_io_stream_close(G_IO_STREAM(conn), nullptr, nullptr);
    }
    if (io && io != G_IO_STREAM(conn)) g_object_unref(io);
    if (conn) g_object_unref(conn);
    io = nullptr;
    conn = nullptr;
    socket = nullptr;
    in = nullptr;
    out = nullptr;
    g_clear_error(&deferred_error);
  }

  bool is_open() const {
    return io && !broken &&
           (state == State::Connected || state == State::Publishing || state == State::Playing);
  }

  // The URL for logs and error messages: without the query, which often
  // carries credentials (tokens, keys).
  std::string display_url() const {
    std::string r = url.tc_url();
    if (!url.stream.empty()) r += "/" + url.stream;
    if (!url.query.empty()) r += "?...";
    return r;
  }

  // ---- error helpers ----

  bool timeout_error(GError** error, const char* what) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_TIMEOUT, "timed out after %u ms waiting for %s (%s)",
                opts.timeout_ms, what, display_url().c_str());
    return false;
  }

  // Converts G_IO_ERROR_TIMED_OUT into GRTMP_ERROR_TIMEOUT.
  bool io_error(GError* e, GError** error, const char* what) {
    if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
      g_error_free(e);
      return timeout_error(error, what);
    }
    g_prefix_error(&e, "%s: ", what);
    g_propagate_error(error, e);
    return false;
  }

  // ---- writing ----

  bool write_raw(const uint8_t* data, size_t len, GCancellable* c, GError** error) {
    gsize written = 0;
    GError* e = nullptr;
    bool ok = g_output_stream_write_all(out, data, len, &written, c, &e);
    sent += written;
    if (!ok) {
      broken = true;
      return io_error(e, error, ("writing to " + display_url()).c_str());
    }
    return true;
  }

  bool flush(GCancellable* c, GError** error) {
    const void* bases[kMaxVectors];
    size_t lengths[kMaxVectors];
    GOutputVector vecs[kMaxVectors];
    while (!wire.empty()) {
      size_t k = wire.gather(bases, lengths, kMaxVectors);
      for (size_t i = 0; i < k; i++) vecs[i] = {bases[i], lengths[i]};
      gsize written = 0;
      GError* e = nullptr;
      bool ok = g_output_stream_writev(out, vecs, k, &written, c, &e);
      wire.consume(written);
      sent += written;
      if (!ok) {
        // A partial chunk may be on the wire: the stream is unusable.
        broken = true;
        wire.clear();
        return io_error(e, error, ("writing to " + display_url()).c_str());
      }
    }
    return true;
  }

  bool send_message(const Message& m, GCancellable* c, GError** error) {
    if (deferred_error) {
      g_propagate_error(error, deferred_error);
      deferred_error = nullptr;
      return false;
    }
    if (broken || !out) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_CLOSED, "connection to %s is closed",
                  display_url().c_str());
      return false;
    }
    writer.write(m, wire);
    return flush(c, error);
  }

  // A reply sent from inside a read (ack, ping response, _error): a failure
  // is kept for the next explicit send so queued statuses are still seen.
  void send_reply(const Message& m) {
    if (deferred_error || broken) return;
    GError* e = nullptr;
    if (!send_message(m, nullptr, &e)) deferred_error = e;
  }

  // ---- reading ----

  void on_command(const Message& m) {
    Command cmd;
    GError* e = nullptr;
    if (!parse_command(m, cmd, amf_limits, &e)) {
      GRTMP_WARN("client: dropping malformed command", {"url", display_url()}, {"reason", e->message});
      g_error_free(e);
      return;
    }
    if (cmd.name == "_result" || cmd.name == "_error") {
      if (awaited.count(cmd.transaction_id)) {
        results[cmd.transaction_id] = std::move(cmd);
      } else {
        GRTMP_DEBUG("client: ignoring answer", {"name", cmd.name},
                    {"txn", txn_str(cmd.transaction_id)}, {"code", info_string(cmd, "code")});
      }
      return;
    }
    if (cmd.name == "onStatus") {
      std::string code = info_string(cmd, "code");
      GRTMP_INFO("client: status", {"url", display_url()}, {"code", code},
                 {"level", info_string(cmd, "level")}, {"description", info_string(cmd, "description")});
      last_status = code;
      statuses.push_back(std::move(cmd));
      if (statuses.size() > 64) statuses.pop_front();
      return;
    }
    if (cmd.name == "close") {
      GRTMP_INFO("client: server sent close", {"url", display_url()});
      peer_closed = true;
      return;
    }
    GRTMP_DEBUG("client: server call", {"name", cmd.name}, {"txn", txn_str(cmd.transaction_id)});
    // onBWDone, onFCPublish, onFCUnpublish, ... need no answer. A call
    // that expects one gets an _error rather than silence.
    if (cmd.transaction_id > 0 && cmd.name != "onBWDone" && cmd.name != "_checkbw" &&
        cmd.name.rfind("on", 0) != 0) {
      send_reply(build_error(cmd.transaction_id, "NetConnection.Call.Failed",
                             "method not supported by the client: " + cmd.name));
    }
  }

  void on_media(Message&& m) {
    if (!want_media) return;
    if (m.type == kMsgAggregate) {
      GError* e = nullptr;
      std::vector<Message> parts;
      if (!split_aggregate(m, parts, &e)) {
        GRTMP_WARN("client: dropping malformed aggregate", {"url", display_url()},
                   {"reason", e->message});
        g_error_free(e);
        return;
      }
      for (auto& p : parts) {
        if (p.type == kMsgAudio || p.type == kMsgVideo || p.type == kMsgDataAmf0) on_media(std::move(p));
      }
      return;
    }
    if (m.type == kMsgDataAmf3) {
      // AMF3 data: a leading 0x00 (switch marker placeholder), then AMF0.
      if (m.payload.size() > 0 && m.payload.data()[0] == 0x00) {
        m.payload = Bytes::adopt(g_bytes_new_from_bytes(m.payload.get(), 1, m.payload.size() - 1));
      }
      m.type = kMsgDataAmf0;
    }
    if (m.type == kMsgDataAmf0) {
      std::string_view name = first_amf_string(m.payload);
      if (name == "|RtmpSampleAccess" || name == "onStatus") {
        GRTMP_DEBUG("client: dropping data message", {"name", std::string(name)});
        return;
      }
    }
    media.push_back(std::move(m));
  }

  void on_message(Message&& m) {
    switch (m.type) {
      case kMsgSetChunkSize:
        GRTMP_DEBUG("client: peer chunk size", {"size", std::to_string(reader.chunk_size())});
        break;
      case kMsgAbort:
      case kMsgAck:
        break;
      case kMsgWindowAckSize: {
        uint32_t size = 0;
        if (control::parse_window_ack_size(m, size, nullptr)) {
          ack.set_window(size);
          GRTMP_DEBUG("client: peer window ack size", {"size", std::to_string(size)});
        }
        break;
      }
      case kMsgSetPeerBandwidth: {
        uint32_t size = 0;
        control::PeerBandwidthLimit limit;
        if (control::parse_set_peer_bandwidth(m, size, limit, nullptr))
          GRTMP_DEBUG("client: peer bandwidth", {"size", std::to_string(size)});
        break;
      }
      case kMsgUserControl: {
        control::UserControl uc;
        GError* e = nullptr;
        if (!control::parse_user_control(m, uc, &e)) {
          GRTMP_WARN("client: bad user control", {"reason", e->message});
          g_error_free(e);
          break;
        }
        if (uc.event == control::UserControlEvent::PingRequest) {
          send_reply(control::ping_response(uc.value));
        } else if (uc.event == control::UserControlEvent::StreamEOF && want_media && uc.value == stream_id) {
          // nginx-rtmp sends only this (no onStatus) when the publisher leaves.
          GRTMP_INFO("client: stream EOF", {"url", display_url()});
          last_status = kStatusStreamEof;
        } else {
          GRTMP_DEBUG("client: user control", {"event", control::user_control_event_name(uc.event)},
                      {"value", std::to_string(uc.value)});
        }
        break;
      }
      case kMsgCommandAmf0:
      case kMsgCommandAmf3:
        on_command(m);
        break;
      case kMsgAudio:
      case kMsgVideo:
      case kMsgDataAmf0:
      case kMsgDataAmf3:
      case kMsgAggregate:
        on_media(std::move(m));
        break;
      default:
        GRTMP_DEBUG("client: ignoring message", {"type", message_type_name(m.type)});
        break;
    }
  }

  bool on_bytes(const uint8_t* data, size_t len, GCancellable* c, GError** error) {
    if (handshake && !handshake->done()) {
      size_t consumed = 0;
      std::vector<uint8_t> reply;
      auto st = handshake->feed(data, len, consumed, reply, error);
      if (st == Handshake::Status::Error) {
        g_prefix_error(error, "handshake with %s: ", display_url().c_str());
        return false;
      }
      if (!reply.empty() && !write_raw(reply.data(), reply.size(), c, error)) return false;
      if (st == Handshake::Status::NeedMore) return true;
      data += consumed;
      len -= consumed;
      if (len == 0) return true;
    }
    std::vector<Message> msgs;
    if (!reader.feed(data, len, msgs, error)) {
      broken = true;
      g_prefix_error(error, "reading from %s: ", display_url().c_str());
      return false;
    }
    for (auto& m : msgs) on_message(std::move(m));
    uint32_t seq = 0;
    if (ack.on_bytes(received, seq)) send_reply(control::acknowledgement(seq));
    return true;
  }

  // Reads once. With a deadline, waits for data; without, returns 0 when
  // nothing is pending. 1: bytes were processed, -1: error.
  int read_once(const Deadline* dl, GCancellable* c, const char* what, GError** error) {
    if (peer_closed || !in) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_CLOSED, "%s closed the connection",
                  display_url().c_str());
      return -1;
    }
    for (;;) {
      GError* e = nullptr;
      gssize n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(in), buf.data(),
                                                          buf.size(), c, &e);
      if (n > 0) {
        received += static_cast<uint64_t>(n);
        return on_bytes(buf.data(), static_cast<size_t>(n), c, error) ? 1 : -1;
      }
      if (n == 0) {
        peer_closed = true;
        broken = true;
        g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_CLOSED, "%s closed the connection (while waiting for %s)",
                    display_url().c_str(), what);
        return -1;
      }
      if (!g_error_matches(e, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        if (!g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED)) broken = true;
        io_error(e, error, what);
        return -1;
      }
      g_clear_error(&e);
      if (!dl) return 0;
      gint64 rem = dl->remaining_us();
      if (rem == 0) {
        timeout_error(error, what);
        return -1;
      }
      if (!g_socket_condition_timed_wait(socket, G_IO_IN, rem, c, &e)) {
        io_error(e, error, what);
        return -1;
      }
    }
  }

  // Processes whatever the server sent without blocking.
  bool pump(GCancellable* c, GError** error) {
    for (int i = 0; i < kMaxNonblockingReads; i++) {
      int r = read_once(nullptr, c, "server messages", error);
      if (r < 0) return false;
      if (r == 0) break;
    }
    return true;
  }

  // Reads until check() returns non-zero: 1 = done, -1 = failed (error set).
  template <typename F>
  bool wait_for(GCancellable* c, const char* what, GError** error, F&& check) {
    Deadline dl(opts.timeout_ms);
    for (;;) {
      int r = check();
      if (r > 0) return true;
      if (r < 0) return false;
      if (read_once(&dl, c, what, error) < 0) return false;
    }
  }

  bool wait_result(double txn, const char* what, GCancellable* c, Command& out, GError** error) {
    bool ok = wait_for(c, what, error, [&]() {
      auto it = results.find(txn);
      if (it == results.end()) return 0;
      out = std::move(it->second);
      results.erase(it);
      return 1;
    });
    awaited.erase(txn);
    return ok;
  }

  // Maps an error-level onStatus (or an _error) to a GError. Returns
  // false when the status is not an error.
  bool status_error(const Command& st, const char* op, GError** error) {
    std::string code = info_string(st, "code");
    std::string level = info_string(st, "level");
    std::string desc = info_string(st, "description");
    int ecode;
    if (code == status::kPublishBadName) {
      ecode = GRTMP_ERROR_BAD_NAME;
    } else if (code == status::kPlayStreamNotFound) {
      ecode = GRTMP_ERROR_NOT_FOUND;
    } else if (ends_with(code, ".Unauthorized")) {
      ecode = GRTMP_ERROR_UNAUTHORIZED;
    } else if (level == "error" || st.name == "_error" || code == status::kFailed ||
               code == status::kPlayFailed || code == status::kConnectRejected) {
      ecode = GRTMP_ERROR_REFUSED;
    } else {
      return false;
    }
    g_set_error(error, GRTMP_ERROR, ecode, "%s %s refused by server: %s (%s)", op,
                display_url().c_str(), code.empty() ? "(no code)" : code.c_str(), desc.c_str());
    return true;
  }

  double take_txn() { return next_txn++; }

  // createStream: returns the stream id.
  bool create_stream(GCancellable* c, GError** error) {
    double txn = take_txn();
    awaited.insert(txn);
    if (!send_message(build_create_stream(txn), c, error)) {
      awaited.erase(txn);
      return false;
    }
    Command res;
    if (!wait_result(txn, "createStream result", c, res, error)) return false;
    if (res.name == "_error") {
      status_error(res, "createStream on", error);
      if (error && !*error)
        g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_REFUSED, "createStream refused by server");
      return false;
    }
    double sid = -1;
    for (const auto& a : res.args) {
      if (a.is_number()) {
        sid = a.number;
        break;
      }
    }
    if (sid < 0 && res.object.is_number()) sid = res.object.number;
    if (sid < 0 || sid > double(UINT32_MAX) || std::isnan(sid)) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL,
                  "createStream result from %s carries no stream id", display_url().c_str());
      return false;
    }
    stream_id = static_cast<uint32_t>(sid);
    return true;
  }

  // Waits for `success` (or an error status / _error for txn).
  bool wait_status(const char* success, double txn, const char* op, GCancellable* c, GError** error) {
    std::string what = std::string(success);
    bool ok = wait_for(c, what.c_str(), error, [&]() {
      auto it = results.find(txn);
      if (it != results.end()) {
        Command r = std::move(it->second);
        results.erase(it);
        if (r.name == "_error") {
          if (!status_error(r, op, error))
            g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_REFUSED, "%s refused by server", op);
          return -1;
        }
      }
      while (!statuses.empty()) {
        Command st = std::move(statuses.front());
        statuses.pop_front();
        std::string code = info_string(st, "code");
        if (code == success) return 1;
        if (status_error(st, op, error)) return -1;
      }
      return 0;
    });
    awaited.erase(txn);
    return ok;
  }

  bool require_stream_name(GError** error) {
    if (url.stream.empty()) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "URL %s has no stream name",
                  display_url().c_str());
      return false;
    }
    stream_name = url.stream_with_query();
    return true;
  }

  bool require_state(State want, const char* op, GError** error) {
    if (state == want && is_open()) return true;
    if (state == want || state == State::Closed) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_CLOSED, "%s: connection to %s is closed", op,
                  display_url().c_str());
    } else {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL, "%s: client is not in the right state", op);
    }
    return false;
  }
};

// ---- Client ----

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() { close(); }

bool Client::connect(const Url& url, GCancellable* cancellable, GError** error) {
  Impl& d = *impl_;
  if (d.state != Impl::State::Idle) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL, "connect: client already used");
    return false;
  }
  if (url.scheme != "rtmp" && url.scheme != "rtmps") {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "connect: unknown scheme \"%s\"",
                url.scheme.c_str());
    return false;
  }
  if (url.host.empty() || url.app.empty() || url.port == 0) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "connect: URL %s lacks a %s",
                url.tc_url().c_str(), url.host.empty() ? "host" : url.app.empty() ? "app" : "port");
    return false;
  }
  if (g_cancellable_set_error_if_cancelled(cancellable, error)) return false;
  d.url = url;
  d.state = Impl::State::Closed;  // until everything below succeeded
  const std::string where = d.display_url();
  GRTMP_DEBUG("client: connecting", {"url", where});

  // TCP.
  GSocketClient* sc = g_socket_client_new();
  g_socket_client_set_timeout(sc, timeout_seconds(d.opts.timeout_ms));
  GSocketConnectable* addr = g_network_address_new(url.host.c_str(), url.port);
  GError* e = nullptr;
  d.conn = g_socket_client_connect(sc, addr, cancellable, &e);
  g_object_unref(sc);
  if (!d.conn) {
    g_object_unref(addr);
    std::string what = "connecting to " + where;
    d.io_error(e, error, what.c_str());
    return false;
  }
  d.socket = g_socket_connection_get_socket(d.conn);
  g_socket_set_timeout(d.socket, timeout_seconds(d.opts.timeout_ms));
  g_socket_set_option(d.socket, IPPROTO_TCP, TCP_NODELAY, 1, nullptr);
  d.io = G_IO_STREAM(d.conn);

  // TLS.
  if (url.tls()) {
    GIOStream* tls = g_tls_client_connection_new(G_IO_STREAM(d.conn), addr, &e);
    if (!tls) {
      g_object_unref(addr);
      d.io_error(e, error, "starting TLS");
      d.teardown();
      return false;
    }
    // RTMP ends streams with its own messages; servers (ours included) often
    // close without a TLS close_notify, which must read as a plain close.
    g_tls_connection_set_require_close_notify(G_TLS_CONNECTION(tls), FALSE);
    G_GNUC_BEGIN_IGNORE_DEPRECATIONS
    g_tls_client_connection_set_validation_flags(G_TLS_CLIENT_CONNECTION(tls), d.opts.tls_validation_flags);
    G_GNUC_END_IGNORE_DEPRECATIONS
    d.io = tls;
    if (!g_tls_connection_handshake(G_TLS_CONNECTION(tls), cancellable, &e)) {
      g_object_unref(addr);
      // GIO says only "Unacceptable TLS certificate": name the checks that failed.
      if (g_error_matches(e, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE)) {
        std::string why = certificate_errors_text(g_tls_connection_get_peer_certificate_errors(G_TLS_CONNECTION(tls)));
        if (!why.empty()) {
          gchar* m = g_strdup_printf("%s (%s)", e->message, why.c_str());
          g_free(e->message);
          e->message = m;
        }
      }
      std::string what = "TLS handshake with " + where;
      d.io_error(e, error, what.c_str());
      d.teardown();
      return false;
    }
  }
  g_object_unref(addr);
  d.in = g_io_stream_get_input_stream(d.io);
  d.out = g_io_stream_get_output_stream(d.io);
  if (!G_IS_POLLABLE_INPUT_STREAM(d.in) || !g_pollable_input_stream_can_poll(G_POLLABLE_INPUT_STREAM(d.in))) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_UNSUPPORTED, "input stream of %s is not pollable",
                where.c_str());
    d.teardown();
    return false;
  }

  // RTMP handshake.
  Handshake::Options hopts;
  hopts.digest = d.opts.digest_handshake;
  d.handshake = std::make_unique<Handshake>(Handshake::Role::Client, hopts);
  std::vector<uint8_t> c0c1 = d.handshake->start();
  if (!d.write_raw(c0c1.data(), c0c1.size(), cancellable, error)) {
    d.teardown();
    return false;
  }
  if (!d.wait_for(cancellable, "handshake", error, [&]() { return d.handshake->done() ? 1 : 0; })) {
    d.teardown();
    return false;
  }
  GRTMP_DEBUG("client: handshake done", {"url", where},
              {"digest", d.handshake->peer_scheme() == Handshake::Scheme::None ? "no" : "yes"});
  // The connection is usable from here on for the connect exchange.
  d.state = Impl::State::Connected;

  // connect.
  ConnectRequest req;
  req.app = url.app;
  req.tc_url = url.tc_url();
  req.flash_ver = d.opts.flash_ver;
  req.type = "nonprivate";
  req.publisher = true;
  double txn = d.take_txn();
  d.awaited.insert(txn);
  Command res;
  if (!d.send_message(build_connect(txn, req), cancellable, error) ||
      !d.wait_result(txn, "connect result", cancellable, res, error)) {
    d.state = Impl::State::Closed;
    d.teardown();
    return false;
  }
  if (res.name == "_error" || info_string(res, "level") == "error") {
    // Every refused connect is GRTMP_ERROR_REFUSED; the server's code says why.
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_REFUSED, "connect to %s refused by server: %s (%s)",
                where.c_str(), info_string(res, "code").c_str(), info_string(res, "description").c_str());
    d.state = Impl::State::Closed;
    d.teardown();
    return false;
  }

  // Our side of the control setup.
  if (!d.send_message(control::window_ack_size(d.opts.window_ack_size), cancellable, error) ||
      !d.send_message(control::set_chunk_size(d.opts.chunk_size), cancellable, error)) {
    d.state = Impl::State::Closed;
    d.teardown();
    return false;
  }
  d.writer.set_chunk_size(d.opts.chunk_size);
  GRTMP_INFO("client: connected", {"url", where}, {"code", info_string(res, "code")});
  return true;
}

bool Client::publish(GCancellable* cancellable, GError** error) {
  Impl& d = *impl_;
  if (!d.require_state(Impl::State::Connected, "publish", error)) return false;
  if (!d.require_stream_name(error)) return false;
  if (g_cancellable_set_error_if_cancelled(cancellable, error)) return false;
  const std::string& name = d.stream_name;

  // releaseStream / FCPublish answers (if any) are ignored.
  if (!d.send_message(build_release_stream(d.take_txn(), name), cancellable, error) ||
      !d.send_message(build_fcpublish(d.take_txn(), name), cancellable, error))
    return false;
  if (!d.create_stream(cancellable, error)) return false;

  double txn = d.take_txn();
  Message pub = build_publish(txn, d.stream_id, name, "live");
  pub.stream_id = d.stream_id;
  pub.csid = kCsidStreamCommand;
  d.awaited.insert(txn);
  if (!d.send_message(pub, cancellable, error)) {
    d.awaited.erase(txn);
    return false;
  }
  if (!d.wait_status(status::kPublishStart, txn, "publish", cancellable, error)) return false;
  d.state = Impl::State::Publishing;
  GRTMP_INFO("client: publishing", {"url", d.display_url()}, {"stream_id", std::to_string(d.stream_id)});
  return true;
}

bool Client::play(GCancellable* cancellable, GError** error) {
  Impl& d = *impl_;
  if (!d.require_state(Impl::State::Connected, "play", error)) return false;
  if (!d.require_stream_name(error)) return false;
  if (g_cancellable_set_error_if_cancelled(cancellable, error)) return false;
  if (!d.create_stream(cancellable, error)) return false;

  control::UserControl uc;
  uc.event = control::UserControlEvent::SetBufferLength;
  uc.value = d.stream_id;
  uc.buffer_length = kBufferLengthMs;
  if (!d.send_message(control::user_control(uc), cancellable, error)) return false;

  double txn = d.take_txn();
  Message play = build_play(txn, d.stream_id, d.stream_name, -2);
  play.stream_id = d.stream_id;
  play.csid = kCsidStreamCommand;
  d.want_media = true;
  d.awaited.insert(txn);
  if (!d.send_message(play, cancellable, error)) {
    d.awaited.erase(txn);
    return false;
  }
  if (!d.wait_status(status::kPlayStart, txn, "play", cancellable, error)) return false;
  d.state = Impl::State::Playing;
  GRTMP_INFO("client: playing", {"url", d.display_url()}, {"stream_id", std::to_string(d.stream_id)});
  return true;
}

bool Client::send(const Message& m, GCancellable* cancellable, GError** error) {
  Impl& d = *impl_;
  if (!d.require_state(Impl::State::Publishing, "send", error)) return false;
  if (g_cancellable_set_error_if_cancelled(cancellable, error)) return false;
  if (!d.pump(cancellable, error)) return false;
  while (!d.statuses.empty()) {
    Command st = std::move(d.statuses.front());
    d.statuses.pop_front();
    if (d.status_error(st, "publishing to", error)) return false;
  }

  Message o;
  o.type = m.type;
  o.timestamp = m.timestamp;
  o.stream_id = d.stream_id;
  switch (m.type) {
    case kMsgAudio: o.csid = kCsidAudio; break;
    case kMsgVideo: o.csid = kCsidVideo; break;
    default: o.csid = kCsidData; break;
  }
  o.payload = m.payload;
  if (m.type == kMsgDataAmf0 && first_amf_string(m.payload) == "onMetaData") {
    ByteWriter w;
    static constexpr std::string_view kSetDataFrame = "@setDataFrame";
    w.u8(0x02);
    w.u16(static_cast<uint16_t>(kSetDataFrame.size()));
    w.raw(kSetDataFrame);
    w.raw(m.payload.data(), m.payload.size());
    o.payload = w.to_bytes();
  }
  return d.send_message(o, cancellable, error);
}

bool Client::receive(Message& out, GCancellable* cancellable, GError** error) {
  Impl& d = *impl_;
  if (d.state != Impl::State::Playing || !d.io) {
    return d.require_state(Impl::State::Playing, "receive", error);
  }
  if (g_cancellable_set_error_if_cancelled(cancellable, error)) return false;
  // Messages already queued are delivered even after the peer closed.
  bool ok = d.wait_for(cancellable, "media", error, [&]() {
    if (!d.media.empty()) return 1;
    while (!d.statuses.empty()) {
      Command st = std::move(d.statuses.front());
      d.statuses.pop_front();
      if (d.status_error(st, "playing", error)) return -1;
    }
    return 0;
  });
  if (!ok) return false;
  out = std::move(d.media.front());
  d.media.pop_front();
  return true;
}

const std::string& Client::last_status() const { return impl_->last_status; }

void Client::close() {
  Impl& d = *impl_;
  if (d.state == Impl::State::Idle) {
    d.state = Impl::State::Closed;
    return;
  }
  d.want_media = false;
  if (d.is_open()) {
    GError* e = nullptr;
    // Read what the server already sent (pings, status): closing with
    // unread input makes the kernel send a reset instead of a FIN.
    if (!d.pump(nullptr, &e)) g_clear_error(&e);
  }
  if (d.is_open()) {
    GError* e = nullptr;
    bool ok = true;
    if (d.state == Impl::State::Publishing) {
      ok = d.send_message(build_fcunpublish(d.take_txn(), d.stream_name), nullptr, &e);
    }
    if (ok && (d.state == Impl::State::Publishing || d.state == Impl::State::Playing)) {
      ok = d.send_message(build_delete_stream(d.take_txn(), d.stream_id), nullptr, &e);
    }
    if (!ok) {
      GRTMP_DEBUG("client: teardown commands failed", {"reason", e->message});
      g_clear_error(&e);
    }
    // The server answers those (and acknowledges): a close() with that
    // unread would reset the connection, and a reset throws away what our
    // kernel has not sent yet -- the tail of a publish sent faster than the
    // network takes it. Half-close instead and wait (briefly) for the
    // server's close. Plain TCP only: TLS has no half-close here.
    if (ok && d.socket && d.io == G_IO_STREAM(d.conn)) {
      g_socket_shutdown(d.socket, FALSE, TRUE, nullptr);
      const int64_t deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
      uint8_t buf[16384];
      for (;;) {
        const int64_t left = deadline - g_get_monotonic_time();
        if (left <= 0 || !g_socket_condition_timed_wait(d.socket, G_IO_IN, left, nullptr, nullptr)) break;
        GError* re = nullptr;
        gssize n = g_socket_receive_with_blocking(d.socket, reinterpret_cast<gchar*>(buf), sizeof buf, FALSE,
                                                  nullptr, &re);
        if (n < 0 && g_error_matches(re, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
          g_error_free(re);
          continue;
        }
        g_clear_error(&re);
        if (n <= 0) break;  // the server closed (or an error): done
      }
    }
  }
  if (d.io) GRTMP_INFO("client: closed", {"url", d.display_url()}, {"sent", std::to_string(d.sent)},
                       {"received", std::to_string(d.received)});
  d.state = Impl::State::Closed;
  d.teardown();
}

bool Client::connected() const { return impl_->is_open(); }
uint32_t Client::stream_id() const { return impl_->stream_id; }
uint64_t Client::bytes_sent() const { return impl_->sent; }
uint64_t Client::bytes_received() const { return impl_->received; }

}  // namespace grtmp
