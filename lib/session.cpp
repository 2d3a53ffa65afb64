#include "grtmp/session.h"

#include <algorithm>
#include <cinttypes>
#include <mutex>

#include "grtmp/error.h"

namespace grtmp {

namespace {
constexpr uint32_t kMaxStreamsPerConnection = 16;

std::string format_conn_id(uint64_t id) {
  char buf[32];
  g_snprintf(buf, sizeof buf, "c%06" G_GUINT64_FORMAT, id);
  return buf;
}
}  // namespace

// The player side of a session as the registry sees it. It outlives the
// session's registration; the host pointer is cleared when the session
// goes, so a late publisher-thread call never touches a dead connection.
class ServerSession::PlayerSink : public Subscriber {
 public:
  PlayerSink(uint64_t max_bytes, SessionHost* host) : queue(max_bytes), host_(host) {}
  void on_stream_event(const StreamEvent& ev) override {
    if (queue.push(ev)) {
      std::lock_guard lock(mutex_);
      if (host_) host_->wake();
    }
  }
  uint64_t dropped_messages() const override { return queue.dropped_messages(); }
  bool is_player() const override { return true; }
  void detach_host() {
    std::lock_guard lock(mutex_);
    host_ = nullptr;
  }
  PlayerQueue queue;

 private:
  std::mutex mutex_;
  SessionHost* host_;
};

class ServerSession::PublisherHandle : public Publisher {
 public:
  explicit PublisherHandle(SessionHost* host) : host_(host) {}
  void evict(const char* reason) override {
    std::lock_guard lock(mutex_);
    if (host_) host_->close_soon(reason);
  }
  void detach_host() {
    std::lock_guard lock(mutex_);
    host_ = nullptr;
  }

 private:
  std::mutex mutex_;
  SessionHost* host_;
};

static ChunkReaderLimits reader_limits(const ServerConfig& c) {
  ChunkReaderLimits l;
  l.max_chunk_size = c.max_chunk_size;
  l.max_message_size = c.max_message_size;
  return l;
}

ServerSession::ServerSession(Registry& registry, const ServerConfig& config, uint64_t id, std::string remote,
                             SessionHost* host)
    : registry_(registry),
      config_(config),
      id_(id),
      conn_id_(format_conn_id(id)),
      remote_(std::move(remote)),
      host_(host),
      handshake_(Handshake::Role::Server),
      reader_(reader_limits(config)) {
  created_us_ = g_get_monotonic_time();
  last_rx_us_ = created_us_;
  last_progress_us_ = created_us_;
}

ServerSession::~ServerSession() { close("connection destroyed"); }

void ServerSession::log(log::Level level, std::string_view msg, std::initializer_list<log::Field> extra) const {
  if (!log::enabled(level)) return;
  std::vector<log::Field> f;
  f.reserve(3 + extra.size());
  f.push_back({"conn_id", conn_id_});
  f.push_back({"remote", remote_});
  if (!key_.empty()) f.push_back({"stream_key", key_});
  for (auto& e : extra) f.push_back(e);
  log::emit(level, msg, f.data(), f.size());
}

bool ServerSession::fail(GError** error, int code, const char* reason) {
  g_set_error_literal(error, GRTMP_ERROR, code, reason);
  return false;
}

uint64_t ServerSession::dropped_messages() const { return player_ ? player_->queue.dropped_messages() : 0; }
size_t ServerSession::queued_bytes() const { return player_ ? player_->queue.bytes() : 0; }

void ServerSession::send(const Message& m) { writer_.write(m, out_); }
void ServerSession::send(Message&& m) { writer_.write(std::move(m), out_); }

void ServerSession::send_status(uint32_t stream_id, const char* level, const char* code, const std::string& desc) {
  send(build_on_status(stream_id, level, code, desc));
}

bool ServerSession::on_receive(const uint8_t* data, size_t len, GError** error) {
  if (closed_) return fail(error, GRTMP_ERROR_CLOSED, "session closed");
  int64_t now = g_get_monotonic_time();
  last_rx_us_ = now;
  bytes_in_ += len;
  if (!handshake_.done()) {
    size_t consumed = 0;
    std::vector<uint8_t> reply;
    auto st = handshake_.feed(data, len, consumed, reply, error);
    if (!reply.empty()) {
      WirePiece p;
      p.length = static_cast<uint32_t>(reply.size());
      p.payload = Bytes::copy(reply);
      out_.push(std::move(p));
    }
    if (st == Handshake::Status::Error) return false;
    data += consumed;
    len -= consumed;
    if (st != Handshake::Status::Done) return true;
    log(log::Level::Debug, "handshake done",
        {{"digest", handshake_.peer_scheme() == Handshake::Scheme::None ? "false" : "true"}});
    if (len == 0) return true;
  }
  inbox_.clear();
  GError* framing = nullptr;
  bool ok = reader_.feed(data, len, inbox_, &framing);
  // Messages completed before a framing error are still handled; the
  // framing error is reported after them.
  for (auto& m : inbox_) {
    if (auth_pending()) {
      // A client has no reason to send much before it is answered.
      if (deferred_.size() >= 256) {
        g_clear_error(&framing);
        return fail(error, GRTMP_ERROR_LIMIT, "too many messages while authorization is pending");
      }
      deferred_.push_back(std::move(m));
      continue;
    }
    if (!handle_message(m, error)) {
      g_clear_error(&framing);
      return false;
    }
  }
  inbox_.clear();
  if (!ok) {
    g_propagate_error(error, framing);
    return false;
  }
  uint32_t seq;
  if (ack_.on_bytes(bytes_in_, seq)) send(control::acknowledgement(seq));
  return true;
}

bool ServerSession::handle_message(Message& m, GError** error) {
  switch (m.type) {
    case kMsgSetChunkSize: {
      uint32_t size = 0;
      control::parse_set_chunk_size(m, size, nullptr);
      log(log::Level::Debug, "peer chunk size", {{"size", std::to_string(size)}});
      return true;
    }
    case kMsgAbort:
    case kMsgAck:
    case kMsgSetPeerBandwidth:
      return true;
    case kMsgWindowAckSize: {
      uint32_t w = 0;
      if (control::parse_window_ack_size(m, w, nullptr)) ack_.set_window(w);
      return true;
    }
    case kMsgUserControl: {
      control::UserControl uc;
      if (!control::parse_user_control(m, uc, nullptr)) return true;  // tolerated
      if (uc.event == control::UserControlEvent::PingRequest) send(control::ping_response(uc.value));
      return true;
    }
    case kMsgAudio:
    case kMsgVideo:
      return on_media(m, error);
    case kMsgDataAmf0:
    case kMsgDataAmf3: {
      if (role_ != Role::Publisher || m.stream_id != media_stream_id_) return true;
      Bytes payload;
      std::string handler;
      GError* local = nullptr;
      if (!strip_set_data_frame(m, payload, handler, &local)) {
        log(log::Level::Warn, "ignoring malformed data message", {{"reason", local->message}});
        g_clear_error(&local);
        return true;
      }
      if (handler != "onMetaData") return true;
      Message meta;
      meta.type = kMsgDataAmf0;
      meta.csid = kCsidData;
      meta.timestamp = m.timestamp;
      meta.payload = payload;
      log(log::Level::Info, "metadata received", {{"size", std::to_string(payload.size())}});
      stream_->push(std::move(meta));
      return true;
    }
    case kMsgCommandAmf0:
    case kMsgCommandAmf3: {
      Command c;
      if (!parse_command(m, c, config_.amf_limits, error)) return false;
      return handle_command(c, m, error);
    }
    default:
      // Shared objects, aggregates and unknown types: not used by the
      // encoders we serve; tolerated and dropped.
      log(log::Level::Debug, "ignoring message", {{"type", message_type_name(m.type)}});
      return true;
  }
}

bool ServerSession::handle_command(const Command& c, const Message& m, GError** error) {
  // The transaction id is any double from the peer (NaN, huge): format it
  // as a double, and only when the line is logged at all.
  if (log::enabled(log::Level::Debug)) {
    char txn[G_ASCII_DTOSTR_BUF_SIZE];
    g_ascii_dtostr(txn, sizeof txn, c.transaction_id);
    log(log::Level::Debug, "command", {{"name", c.name}, {"txn", txn}});
  }
  if (c.name == "connect") return on_connect(c, error);
  if (!connected_) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL, "command %s before connect", c.name.c_str());
    return false;
  }
  if (c.name == "createStream") return on_create_stream(c);
  if (c.name == "publish") return on_publish(c, m, error);
  if (c.name == "play") return on_play(c, m, error);
  if (c.name == "deleteStream" || c.name == "closeStream") {
    double id = m.stream_id;
    if (c.name == "deleteStream") command_number_arg(c, 0, id);
    // The id is a double from the wire: anything that is not a stream id
    // we could have created (NaN, negative, huge) names no stream.
    if (!(id >= 1 && id < next_stream_id_)) {
      // rtmp2sink sends deleteStream with the stream name: the stream the
      // message was sent on is the one meant.
      id = m.stream_id;
    }
    on_delete_stream(static_cast<uint32_t>(id));
    return true;
  }
  if (c.name == "FCPublish") {
    std::string name;
    command_string_arg(c, 0, name);
    send(build_on_fcpublish(name, false));
    if (c.transaction_id != 0) send(build_result(c.transaction_id));
    return true;
  }
  if (c.name == "FCUnpublish") {
    std::string name;
    command_string_arg(c, 0, name);
    send(build_on_fcpublish(name, true));
    if (c.transaction_id != 0) send(build_result(c.transaction_id));
    return true;
  }
  if (c.name == "releaseStream" || c.name == "FCSubscribe" || c.name == "getStreamLength") {
    if (c.transaction_id != 0) send(build_result(c.transaction_id, {amf0::Value::make_undefined()}));
    return true;
  }
  if (c.name == "_checkbw") {
    if (c.transaction_id != 0) send(build_result(c.transaction_id));
    send(build_on_bw_done());
    return true;
  }
  if (c.name == "play2") {
    PlayParams p;
    if (parse_play(c, p, nullptr)) log(log::Level::Info, "play2 ignored (no multi-bitrate)", {{"name", p.name}});
    return true;
  }
  if (c.name == "pause" || c.name == "receiveAudio" || c.name == "receiveVideo" || c.name == "seek" ||
      c.name == "_result" || c.name == "_error" || c.name == "onStatus")
    return true;
  if (c.transaction_id != 0)
    send(build_error(c.transaction_id, "NetConnection.Call.Failed", "Method not found (" + c.name + ")"));
  return true;
}

bool ServerSession::on_connect(const Command& c, GError** error) {
  if (connected_ || auth_pending()) return fail(error, GRTMP_ERROR_PROTOCOL, "connect sent twice");
  ConnectParams p;
  if (!parse_connect(c, p, error)) return false;
  if (p.app.empty()) {
    send(build_connect_error(c.transaction_id, status::kConnectRejected, "No application name"));
    return fail(error, GRTMP_ERROR_PROTOCOL, "connect without app");
  }
  app_ = p.app;
  // Some clients send "app/" or "app?x": the first segment names it.
  if (auto q = app_.find('?'); q != std::string::npos) app_.resize(q);
  while (!app_.empty() && app_.back() == '/') app_.pop_back();
  tc_url_ = p.tc_url;
  fourcc_list_ = p.fourcc_list;
  double txn = c.transaction_id;
  double encoding = p.object_encoding;
  std::string flash_ver = p.flash_ver;
  auto accept = [this, txn, encoding, flash_ver](const AuthDecision& d, GError** err) {
    if (!d.allow) {
      auth_denials_++;
      send(build_connect_error(txn, status::kConnectRejected, d.reason.empty() ? "Rejected" : d.reason));
      log(log::Level::Warn, "connect refused", {{"app", app_}, {"reason", d.reason}});
      return fail(err, GRTMP_ERROR_UNAUTHORIZED, "connect not authorized");
    }
    connected_ = true;
    send(control::window_ack_size(config_.window_ack_size));
    send(control::set_peer_bandwidth(config_.peer_bandwidth, control::PeerBandwidthLimit::Dynamic));
    send(control::set_chunk_size(config_.chunk_size));
    writer_.set_chunk_size(config_.chunk_size);
    send(build_connect_result(txn, encoding));
    log(log::Level::Info, "client connected", {{"app", app_}, {"flash_ver", flash_ver}, {"tc_url", tc_url_}});
    return true;
  };
  if (request_auth(AuthRequest::Action::Connect, "", "", accept)) return true;
  return accept(AuthDecision{true, "", ""}, error);
}

bool ServerSession::on_create_stream(const Command& c) {
  if (streams_created_ >= kMaxStreamsPerConnection) {
    send(build_error(c.transaction_id, "NetConnection.Call.Failed", "Too many streams"));
    return true;
  }
  streams_created_++;
  uint32_t id = next_stream_id_++;
  send(build_result(c.transaction_id, {amf0::Value::make_number(id)}));
  return true;
}

bool ServerSession::on_publish(const Command& c, const Message& m, GError** error) {
  PublishParams p;
  if (!parse_publish(c, p, error)) return false;
  uint32_t sid = m.stream_id;
  if (role_ != Role::None) {
    send_status(sid, "error", status::kPublishBadName, "Connection is already publishing or playing");
    return fail(error, GRTMP_ERROR_PROTOCOL, "publish on a connection already publishing or playing");
  }
  if (sid == 0 || sid >= next_stream_id_) {
    send_status(sid, "error", status::kPublishBadName, "Unknown stream id");
    return fail(error, GRTMP_ERROR_PROTOCOL, "publish on a stream id that was never created");
  }
  if (p.name.empty()) {
    send_status(sid, "error", status::kPublishBadName, "Empty stream name");
    return fail(error, GRTMP_ERROR_BAD_NAME, "publish with an empty stream name");
  }
  auto then = [this, p, sid](const AuthDecision& d, GError** err) {
    if (!d.allow) {
      auth_denials_++;
      key_ = app_ + "/" + p.name;
      send_status(sid, "error", status::kPublishUnauthorized, d.reason.empty() ? "Not authorized" : d.reason);
      log(log::Level::Warn, "publish refused", {{"reason", d.reason.empty() ? "not authorized" : d.reason}});
      return fail(err, GRTMP_ERROR_UNAUTHORIZED, "publish not authorized");
    }
    PublishParams q = p;
    if (!d.rename.empty()) q.name = d.rename;
    return start_publish(q, sid, err);
  };
  if (request_auth(AuthRequest::Action::Publish, p.name, p.query, then)) return true;
  return start_publish(p, sid, error);
}

bool ServerSession::start_publish(const PublishParams& p, uint32_t sid, GError** error) {
  std::string key = app_ + "/" + p.name;
  key_ = key;
  if (config_.max_streams) {
    uint32_t live = 0;
    for (auto& i : registry_.list()) live += i.live ? 1 : 0;
    if (live >= config_.max_streams) {
      send_status(sid, "error", status::kPublishBadName, "Server stream limit reached");
      log(log::Level::Warn, "publish refused", {{"reason", "max_streams reached"}});
      return fail(error, GRTMP_ERROR_LIMIT, "max_streams reached");
    }
  }
  publisher_ = std::make_unique<PublisherHandle>(host_);
  GError* local = nullptr;
  auto stream = registry_.publish(key, p.query, publisher_.get(), &local);
  if (!stream) {
    send_status(sid, "error", status::kPublishBadName, local->message);
    log(log::Level::Warn, "publish refused", {{"reason", local->message}});
    g_propagate_error(error, local);
    publisher_.reset();
    return false;
  }
  auth_name_ = p.name;
  query_ = p.query;
  stream_ = stream;
  role_ = Role::Publisher;
  media_stream_id_ = sid;
  last_media_us_ = g_get_monotonic_time();
  send(control::stream_begin(sid));
  send_status(sid, "status", status::kPublishStart, p.name + " is now published.");
  log(log::Level::Info, "publish started", {{"type", p.type}});
  return true;
}

bool ServerSession::on_play(const Command& c, const Message& m, GError** error) {
  PlayParams p;
  if (!parse_play(c, p, error)) return false;
  uint32_t sid = m.stream_id;
  if (role_ != Role::None) {
    send_status(sid, "error", status::kPlayFailed, "Connection is already publishing or playing");
    return fail(error, GRTMP_ERROR_PROTOCOL, "play on a connection already publishing or playing");
  }
  if (sid == 0 || sid >= next_stream_id_) {
    send_status(sid, "error", status::kPlayFailed, "Unknown stream id");
    return fail(error, GRTMP_ERROR_PROTOCOL, "play on a stream id that was never created");
  }
  auto then = [this, p, sid](const AuthDecision& d, GError** err) {
    if (!d.allow) {
      auth_denials_++;
      key_ = app_ + "/" + p.name;
      send_status(sid, "error", status::kPlayUnauthorized, d.reason.empty() ? "Not authorized" : d.reason);
      log(log::Level::Warn, "play refused", {{"reason", d.reason.empty() ? "not authorized" : d.reason}});
      return fail(err, GRTMP_ERROR_UNAUTHORIZED, "play not authorized");
    }
    PlayParams q = p;
    if (!d.rename.empty()) q.name = d.rename;
    return start_play(q, sid, err);
  };
  if (request_auth(AuthRequest::Action::Play, p.name, p.query, then)) return true;
  return start_play(p, sid, error);
}

bool ServerSession::start_play(const PlayParams& p, uint32_t sid, GError** error) {
  std::string key = app_ + "/" + p.name;
  key_ = key;
  if (config_.max_players_per_stream) {
    auto existing = registry_.find(key);
    if (existing && existing->info().players >= config_.max_players_per_stream) {
      send_status(sid, "error", status::kPlayFailed, "Too many players on this stream");
      log(log::Level::Warn, "play refused", {{"reason", "max_players_per_stream reached"}});
      return fail(error, GRTMP_ERROR_LIMIT, "max_players_per_stream reached");
    }
  }
  player_ = std::make_shared<PlayerSink>(config_.player_queue_max_bytes, host_);
  caught_up_us_ = clean_since_us_ = g_get_monotonic_time();
  drops_seen_ = 0;
  media_stream_id_ = sid;
  role_ = Role::Player;
  auth_name_ = p.name;
  query_ = p.query;
  // The play preamble goes out before the registry can deliver anything.
  send(control::stream_begin(sid));
  if (p.reset) send_status(sid, "status", status::kPlayReset, "Playing and resetting " + p.name + ".");
  send_status(sid, "status", status::kPlayStart, "Started playing " + p.name + ".");
  send(build_sample_access(sid));
  GError* local = nullptr;
  auto stream = registry_.subscribe(key, player_, false, &local);
  if (!stream) {
    // Clients (FFmpeg, rtmpdump, rtmp2src) treat StreamNotFound after
    // Play.Start as the end of the play.
    send_status(sid, "error", status::kPlayStreamNotFound, local->message);
    log(log::Level::Info, "play refused", {{"reason", local->message}});
    g_propagate_error(error, local);
    role_ = Role::None;
    player_.reset();
    return false;
  }
  stream_ = stream;
  log(log::Level::Info, "subscriber added", {{"total_subscribers", std::to_string(stream->info().players)}});
  return true;
}

bool ServerSession::request_auth(AuthRequest::Action action, const std::string& name, const std::string& query,
                                 std::function<bool(const AuthDecision&, GError**)> then) {
  if (!config_.authorizer) return false;
  uint64_t ticket = next_ticket_++;
  pending_auth_ = {ticket, std::move(then)};
  AuthRequest req;
  req.action = action;
  req.app = app_;
  req.name = name;
  req.query = query;
  req.tc_url = tc_url_;
  req.remote_ip = remote_.substr(0, remote_.rfind(':'));
  req.conn_id = conn_id_;
  auto poster = host_->make_poster();
  config_.authorizer->authorize(req, [poster, ticket](AuthDecision d) {
    poster([ticket, d](ServerSession& s, GError** err) { return s.on_auth_decision(ticket, d, err); });
  });
  return true;
}

bool ServerSession::on_auth_decision(uint64_t ticket, const AuthDecision& decision, GError** error) {
  if (closed_ || ticket != pending_auth_.ticket) return true;  // stale
  auto then = std::move(pending_auth_.then);
  pending_auth_ = {};
  if (!then(decision, error)) return false;
  return drain_deferred(error);
}

bool ServerSession::drain_deferred(GError** error) {
  while (!auth_pending() && !deferred_.empty()) {
    Message m = std::move(deferred_.front());
    deferred_.pop_front();
    if (!handle_message(m, error)) return false;
  }
  return true;
}

void ServerSession::notify_done() {
  if (!config_.authorizer) return;
  AuthRequest req;
  req.action = AuthRequest::Action::Done;
  req.app = app_;
  req.name = auth_name_;
  req.query = query_;
  req.tc_url = tc_url_;
  req.remote_ip = remote_.substr(0, remote_.rfind(':'));
  req.conn_id = conn_id_;
  config_.authorizer->authorize(req, [](AuthDecision) {});
}

void ServerSession::on_delete_stream(uint32_t stream_id) {
  if (role_ == Role::None || stream_id != media_stream_id_) return;
  if (role_ == Role::Publisher) stop_publishing("deleteStream");
  else stop_playing("deleteStream");
}

bool ServerSession::on_media(Message& m, GError** error) {
  if (role_ != Role::Publisher || m.stream_id != media_stream_id_) {
    // Media on a play stream or an unknown stream id: dropped.
    return true;
  }
  last_media_us_ = g_get_monotonic_time();
  m.csid = m.type == kMsgAudio ? kCsidAudio : kCsidVideo;
  if (stream_) {
    const uint8_t type = m.type;
    const size_t size = m.payload.size();
    // The stream classifies each message once; the log line reuses it.
    uint8_t flags = stream_->push(std::move(m));
    if ((flags & kFlagSequenceHeader) && log::enabled(log::Level::Info))
      log(log::Level::Info, type == kMsgAudio ? "cached audio sequence header" : "cached video sequence header",
          {{"size", std::to_string(size)}});
  }
  return true;
}

void ServerSession::stop_publishing(const char* reason) {
  if (role_ != Role::Publisher) return;
  StreamInfo info = stream_ ? stream_->info() : StreamInfo{};
  registry_.unpublish(stream_, publisher_.get());
  if (publisher_) publisher_->detach_host();
  log(log::Level::Info, "publish stopped",
      {{"reason", reason}, {"bytes_in", std::to_string(info.bytes_in)},
       {"messages", std::to_string(info.messages_in)}});
  publisher_.reset();
  stream_.reset();
  role_ = Role::None;
  notify_done();
}

void ServerSession::stop_playing(const char* reason) {
  if (role_ != Role::Player) return;
  if (player_) player_->detach_host();
  registry_.unsubscribe(stream_, player_.get());
  log(log::Level::Info, "subscriber removed",
      {{"reason", reason}, {"dropped", std::to_string(player_ ? player_->queue.dropped_messages() : 0)}});
  stream_.reset();
  role_ = Role::None;
  notify_done();
  // player_ stays for stats (dropped_messages) until the session ends.
}

bool ServerSession::pump(GError** error) {
  if (!player_ || role_ != Role::Player) return true;
  while (out_.bytes() < kOutputHighWater) {
    pending_.clear();
    player_->queue.take(pending_, kOutputHighWater - out_.bytes());
    if (pending_.empty()) break;
    for (auto& ev : pending_) {
      if (!deliver(ev, error)) {
        pending_.clear();
        return false;
      }
    }
  }
  pending_.clear();
  return true;
}

bool ServerSession::deliver(StreamEvent& ev, GError** error) {
  const uint32_t sid = media_stream_id_;
  switch (ev.kind) {
    case StreamEvent::Kind::Publish:
      if (played_once_ || saw_unpublish_) {
        send(control::stream_begin(sid));
        send_status(sid, "status", status::kPlayPublishNotify, key_ + " is now published.");
      }
      played_once_ = true;
      return true;
    case StreamEvent::Kind::Unpublish:
      saw_unpublish_ = true;
      send(control::stream_eof(sid));
      send_status(sid, "status", status::kPlayUnpublishNotify, key_ + " is now unpublished.");
      if (!config_.keep_players_on_unpublish) {
        send_status(sid, "status", status::kPlayStop, "Stopped playing " + key_ + ".");
        return fail(error, GRTMP_ERROR_CLOSED, "publisher left and players are not kept");
      }
      return true;
    case StreamEvent::Kind::Media: {
      // The queue's payload reference moves on into the wire queue.
      Message& m = ev.media.msg;
      m.stream_id = sid;
      m.csid = m.type == kMsgAudio ? kCsidAudio : m.type == kMsgVideo ? kCsidVideo : kCsidData;
      send(std::move(m));
      return true;
    }
  }
  return true;
}

void ServerSession::on_sent(size_t n, int64_t now_us) {
  if (n == 0) return;
  bytes_out_ += n;
  out_.consume(n);
  last_progress_us_ = now_us;
  if (out_.empty()) note_if_caught_up(now_us);
}

void ServerSession::note_if_caught_up(int64_t now_us) {
  if (role_ != Role::Player || !player_) return;
  // A drop (an overflow, or video skipped while the queue waits for the
  // keyframe after one) means the player did not get everything live: it
  // restarts the clean period. A player reading at half speed drains its
  // queue right after each overflow, but keeps dropping, so it never
  // counts as caught up.
  uint64_t dropped = player_->queue.dropped_messages();
  if (dropped != drops_seen_) {
    drops_seen_ = dropped;
    clean_since_us_ = now_us;
    return;
  }
  if (!out_.empty() || !player_->queue.empty()) return;
  // A lag limit below the clean period would close every player.
  int64_t clean_ms = std::min<int64_t>(kCaughtUpCleanMs, config_.player_max_lag_ms / 2);
  if ((now_us - clean_since_us_) / 1000 < clean_ms) return;
  caught_up_us_ = now_us;
}

bool ServerSession::check_timers(int64_t now_us, GError** error) {
  auto ms = [&](int64_t since) { return (now_us - since) / 1000; };
  if (!handshake_.done()) {
    if (config_.handshake_timeout_ms && ms(created_us_) > config_.handshake_timeout_ms)
      return fail(error, GRTMP_ERROR_TIMEOUT, "handshake timeout");
    return true;
  }
  if (config_.idle_timeout_ms) {
    if (ms(last_rx_us_) > config_.idle_timeout_ms) return fail(error, GRTMP_ERROR_TIMEOUT, "idle timeout");
    // Players may send nothing for a long time (acks come per window):
    // ping them so a live peer answers and a dead one times out.
    if (connected_ && ms(last_rx_us_) > config_.idle_timeout_ms / 3 && ms(last_ping_us_) > config_.idle_timeout_ms / 3) {
      send(control::ping_request(static_cast<uint32_t>(now_us / 1000)));
      last_ping_us_ = now_us;
    }
  }
  if (role_ == Role::Publisher && config_.publisher_timeout_ms && ms(last_media_us_) > config_.publisher_timeout_ms)
    return fail(error, GRTMP_ERROR_TIMEOUT, "publisher sent no media before the publisher timeout");
  if (!out_.empty() && config_.player_stall_timeout_ms && ms(last_progress_us_) > config_.player_stall_timeout_ms)
    return fail(error, GRTMP_ERROR_SLOW_CONSUMER, "peer stopped reading (stall timeout)");
  if (out_.empty()) last_progress_us_ = now_us;
  if (role_ == Role::Player && config_.player_max_lag_ms) {
    note_if_caught_up(now_us);
    int64_t lag_ms = ms(caught_up_us_);
    if (lag_ms > config_.player_max_lag_ms) {
      log(log::Level::Warn, "player lagging behind live",
          {{"lag_ms", std::to_string(lag_ms)}, {"max_lag_ms", std::to_string(config_.player_max_lag_ms)},
           {"queued_bytes", std::to_string(queued_bytes())}, {"dropped", std::to_string(dropped_messages())}});
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_SLOW_CONSUMER, "player lagging %" G_GINT64_FORMAT " ms behind live",
                  lag_ms);
      return false;
    }
  }
  return true;
}

void ServerSession::close(const char* reason) {
  if (closed_) return;
  closed_ = true;
  stop_publishing(reason);
  stop_playing(reason);
  if (player_) player_->detach_host();
  if (publisher_) publisher_->detach_host();
}

}  // namespace grtmp
