// A server-side RTMP connection as a state machine with no I/O: bytes in
// (on_receive), bytes out (output()), registry effects and log lines.
// The I/O layer (io.h) owns the socket and calls these methods on the
// connection's loop thread only; other threads reach the session through
// SessionHost::wake() / close_soon().
#pragma once

#include <glib.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grtmp/chunk.h"
#include "grtmp/command.h"
#include "grtmp/config.h"
#include "grtmp/control.h"
#include "grtmp/handshake.h"
#include "grtmp/log.h"
#include "grtmp/registry.h"

namespace grtmp {

// Implemented by the I/O layer (or by tests).
class ServerSession;

class SessionHost {
 public:
  virtual ~SessionHost() = default;
  // Any thread: the session has player data queued; call pump() soon on
  // the session's thread. Cheap and idempotent.
  virtual void wake() = 0;
  // Any thread: close the connection soon (eviction by a new publisher).
  virtual void close_soon(const char* reason) = 0;
  // A function that runs `fn` on the session's thread with the session,
  // if the connection still exists then; safe to call from any thread at
  // any time, even after the connection is gone (used for asynchronous
  // authorization decisions).
  using SessionTask = std::function<bool(ServerSession&, GError**)>;  // false: close
  virtual std::function<void(SessionTask)> make_poster() = 0;
};

class ServerSession {
 public:
  enum class Role { None, Publisher, Player };

  ServerSession(Registry& registry, const ServerConfig& config, uint64_t id, std::string remote,
                SessionHost* host);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Bytes read from the socket. Returns false when the connection must be
  // closed; `error` says why (logged by the caller with the session fields).
  bool on_receive(const uint8_t* data, size_t len, GError** error);
  // Moves queued player events into output(). Returns false to close
  // (e.g. unpublish with keep_players_on_unpublish = false).
  bool pump(GError** error);
  // Periodic check (about once a second): handshake, idle, publisher and
  // player stall timeouts, player lag (player_max_lag_ms). Returns false to
  // close.
  bool check_timers(int64_t now_us, GError** error);
  // The socket accepted `n` bytes of output().
  void on_sent(size_t n, int64_t now_us);
  // Wire bytes waiting to be written.
  WireQueue& output() { return out_; }
  // Applies an authorization decision (on the session's thread; called
  // through SessionHost::make_poster). Returns false to close.
  bool on_auth_decision(uint64_t ticket, const AuthDecision& decision, GError** error);
  bool auth_pending() const { return pending_auth_.ticket != 0; }
  uint64_t auth_denials() const { return auth_denials_; }
  // Leaves the registry (unpublish / unsubscribe). Idempotent; also run by
  // the destructor. Sends nothing.
  void close(const char* reason);

  uint64_t id() const { return id_; }
  const std::string& conn_id() const { return conn_id_; }  // "c000001"
  const std::string& remote() const { return remote_; }
  const std::string& stream_key() const { return key_; }
  Role role() const { return role_; }
  bool handshake_done() const { return handshake_.done(); }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  uint64_t dropped_messages() const;
  // Payload bytes waiting in the player queue (0 when not playing).
  size_t queued_bytes() const;
  // Bytes the I/O layer should not exceed in output() before it stops
  // pumping player data (the rest waits in the player queue where the
  // drop-to-keyframe policy applies).
  static constexpr size_t kOutputHighWater = 256 * 1024;

 private:
  class PlayerSink;
  class PublisherHandle;

  bool handle_message(Message& m, GError** error);
  bool handle_command(const Command& c, const Message& m, GError** error);
  bool on_connect(const Command& c, GError** error);
  bool on_create_stream(const Command& c);
  bool on_publish(const Command& c, const Message& m, GError** error);
  bool on_play(const Command& c, const Message& m, GError** error);
  bool start_publish(const PublishParams& p, uint32_t sid, GError** error);
  bool start_play(const PlayParams& p, uint32_t sid, GError** error);
  // Asks the authorizer; true when a decision is pending (messages are
  // deferred until it arrives), false when there is no authorizer.
  bool request_auth(AuthRequest::Action action, const std::string& name, const std::string& query,
                    std::function<bool(const AuthDecision&, GError**)> then);
  bool drain_deferred(GError** error);
  void notify_done();
  void on_delete_stream(uint32_t stream_id);
  bool on_media(Message& m, GError** error);
  void send(const Message& m);
  void send(Message&& m);
  void send_status(uint32_t stream_id, const char* level, const char* code, const std::string& desc);
  bool deliver(StreamEvent& ev, GError** error);  // moves the payload out of ev
  void send_play_headers();
  void stop_publishing(const char* reason);
  void stop_playing(const char* reason);
  // Player: notes `now_us` as the last time it was caught up with live:
  // nothing waits for it (queue and output empty) and nothing was dropped
  // for kCaughtUpCleanMs, or half of player_max_lag_ms when that is shorter
  // (longer than a frame interval, so the video skipped while the queue
  // waits for a keyframe is seen).
  void note_if_caught_up(int64_t now_us);
  static constexpr int64_t kCaughtUpCleanMs = 2000;
  void log(log::Level level, std::string_view msg, std::initializer_list<log::Field> extra = {}) const;
  bool fail(GError** error, int code, const char* reason);

  Registry& registry_;
  const ServerConfig& config_;
  const uint64_t id_;
  const std::string conn_id_;
  const std::string remote_;
  SessionHost* host_;

  Handshake handshake_;
  ChunkReader reader_;
  ChunkWriter writer_;
  WireQueue out_;
  control::AckTracker ack_;
  std::vector<Message> inbox_;  // scratch for reader output

  bool connected_ = false;
  std::string app_;
  std::string tc_url_;
  std::vector<std::string> fourcc_list_;
  uint32_t next_stream_id_ = 1;
  Role role_ = Role::None;
  uint32_t media_stream_id_ = 0;  // the stream id publishing or playing
  std::string key_;
  std::string query_;

  std::shared_ptr<Stream> stream_;
  std::unique_ptr<PublisherHandle> publisher_;
  std::shared_ptr<PlayerSink> player_;
  std::deque<StreamEvent> pending_;  // scratch for pump()
  bool play_waiting_headers_ = false;

  int64_t created_us_;
  int64_t last_rx_us_;
  int64_t last_media_us_ = 0;
  int64_t last_progress_us_ = 0;
  int64_t last_ping_us_ = 0;
  int64_t caught_up_us_ = 0;     // player: last time it was caught up with live
  int64_t clean_since_us_ = 0;   // player: start of the current run without drops
  uint64_t drops_seen_ = 0;      // player: queue drops at the previous look
  bool played_once_ = false;      // a Publish event was already announced
  bool saw_unpublish_ = false;
  uint32_t streams_created_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  bool closed_ = false;

  struct PendingAuth {
    uint64_t ticket = 0;
    std::function<bool(const AuthDecision&, GError**)> then;
  };
  PendingAuth pending_auth_;
  uint64_t next_ticket_ = 1;
  std::deque<Message> deferred_;  // received while a decision was pending
  uint64_t auth_denials_ = 0;
  std::string auth_name_;  // name as authorized (for on_done)
};

}  // namespace grtmp
