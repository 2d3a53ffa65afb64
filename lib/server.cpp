#include "grtmp/server.h"

#include <gio/gio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>

#include "event_loop.h"
#include "grtmp/error.h"
#include "grtmp/log.h"
#include "grtmp/session.h"

namespace grtmp {

namespace {

struct Counters {
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint32_t> connections_current{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> handshake_failures{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> dropped_by_closed{0};
  std::atomic<uint64_t> auth_denials{0};
  std::atomic<uint64_t> tls_failures{0};
  std::atomic<uint64_t> slow_players{0};
  std::mutex per_ip_mutex;
  std::unordered_map<std::string, uint32_t> per_ip;
};

std::string host_of(const std::string& remote) { return remote.substr(0, remote.rfind(':')); }

std::string address_to_string(GSocketAddress* addr) {
  if (!G_IS_INET_SOCKET_ADDRESS(addr)) return "unknown";
  auto* inet = G_INET_SOCKET_ADDRESS(addr);
  char* host = g_inet_address_to_string(g_inet_socket_address_get_address(inet));
  std::string s = host;
  g_free(host);
  if (g_inet_socket_address_get_address(inet) &&
      g_inet_address_get_family(g_inet_socket_address_get_address(inet)) == G_SOCKET_FAMILY_IPV6)
    s = "[" + s + "]";
  return s + ":" + std::to_string(g_inet_socket_address_get_port(inet));
}

// Raise the soft fd limit to the hard limit: a server holds one fd per
// connection, and the default soft limit (1024) is below what we accept.
void raise_fd_limit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

class LoopWorker;

// One TCP connection on one loop thread.
class Connection : public FdHandler, public SessionHost {
 public:
  Connection(LoopWorker* worker, GSocket* socket, uint64_t id, std::string remote, Registry& registry,
             const ServerConfig& config, Counters& counters, GTlsCertificate* tls_cert);
  ~Connection() override;
  void on_io(uint32_t events) override;
  void wake() override;
  void close_soon(const char* reason) override;
  std::function<void(SessionTask)> make_poster() override;
  void run_task(const SessionTask& task);
  void on_tls_handshake(GTlsConnection* tls, bool ok, GError* error);
  void pump();
  void tick(int64_t now_us);
  void close(const char* reason, GError* error);
  // Closes once the output queued so far has gone out: the end of a stream
  // a player must get whole (its last frames, StreamEOF, Play.Stop). Input
  // is read and dropped meanwhile; past kLingerUs it closes anyway.
  void close_when_flushed(const char* reason, GError* error);
  bool closed() const { return closed_; }
  ServerSession& session() { return session_; }
  std::atomic<bool> dirty{false};
  bool in_batch = false;  // listed in LoopWorker::batched_ (loop thread only)

 private:
  void flush();
  void update_events();
  gssize read_some(uint8_t* buf, size_t len, GError** error);
  gssize write_some(GOutputVector* vec, size_t n, GError** error);
  LoopWorker* worker_;
  GSocket* socket_;
  GIOStream* tls_ = nullptr;       // GTlsServerConnection, for RTMPS
  GCancellable* cancellable_ = nullptr;
  bool io_ready_ = false;          // plain: at once; TLS: after the TLS handshake
  int fd_;
  Counters& counters_;
  ServerSession session_;
  bool closed_ = false;
  bool want_write_ = false;
  uint32_t events_ = 0;
  bool lingering_ = false;  // close_when_flushed() waits for the output
  bool write_shut_ = false; // lingering: FIN sent, waiting for the peer's
  int64_t linger_deadline_us_ = 0;
  std::string linger_reason_;
  GError* linger_error_ = nullptr;
};

// How long a connection closed at the end of its stream may take to send
// what it still holds (a player with a full socket buffer).
constexpr int64_t kLingerUs = 5 * G_USEC_PER_SEC;

class LoopWorker : public std::enable_shared_from_this<LoopWorker> {
 public:
  LoopWorker(GMainContext* ctx, Registry& registry, const ServerConfig& config, Counters& counters)
      : loop(ctx), registry_(registry), config_(config), counters_(counters) {
    loop.set_dirty_handler([this](const std::vector<uint64_t>& ids) {
      for (uint64_t id : ids) {
        Connection* c = find(id);
        if (!c) continue;
        // Merged writes: wait up to output_batch_ms so one sendmsg()
        // carries several messages, unless a lot is already waiting.
        if (config_.output_batch_ms == 0 || c->session().queued_bytes() >= kBatchFlushBytes) {
          c->pump();
          continue;
        }
        if (!c->in_batch) {
          c->in_batch = true;
          batched_.push_back(c);
        }
        arm_batch_timer();
      }
    });
    loop.set_tick_handler([this](int64_t now) {
      std::vector<Connection*> all;
      all.reserve(connections_.size());
      for (auto& [id, c] : connections_) all.push_back(c.get());
      for (auto* c : all) c->tick(now);
    });
  }
  ~LoopWorker() {
    loop.stop();
    if (batch_timer_) {
      g_source_destroy(batch_timer_);
      g_source_unref(batch_timer_);
    }
  }

  static constexpr size_t kBatchFlushBytes = 64 * 1024;

  void arm_batch_timer() {
    if (batch_timer_) return;
    batch_timer_ = g_timeout_source_new(config_.output_batch_ms);
    g_source_set_callback(batch_timer_, [](gpointer self) -> gboolean {
      auto* w = static_cast<LoopWorker*>(self);
      g_source_unref(w->batch_timer_);
      w->batch_timer_ = nullptr;
      // Pointers, not ids (no map lookup per player): release() takes a
      // connection off this list, and deletes it only later, from a
      // posted task, so one closed by a pump() below stays valid. The list
      // does not change while it is walked: in_batch is cleared first (so
      // release() leaves it alone), and wakes reach the dirty handler only
      // from the next loop dispatch.
      for (Connection* c : w->batched_) c->in_batch = false;
      for (Connection* c : w->batched_) c->pump();
      w->batched_.clear();  // keeps the capacity
      return G_SOURCE_REMOVE;
    }, this, nullptr);
    g_source_attach(batch_timer_, loop.context());
  }

  void adopt(GSocket* socket, uint64_t id, std::string remote, GTlsCertificate* tls_cert) {
    auto c = std::make_unique<Connection>(this, socket, id, std::move(remote), registry_, config_, counters_, tls_cert);
    if (c->closed()) {
      release_now(std::move(c));
      return;
    }
    connections_.emplace(id, std::move(c));
  }
  Connection* find(uint64_t id) {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
  }
  void release_now(std::unique_ptr<Connection> c) {
    Connection* raw = c.release();
    loop.post([raw] { delete raw; });
  }
  void release(uint64_t id) {
    // Deferred: other ready events of this dispatch may still name it.
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    Connection* raw = it->second.release();
    connections_.erase(it);
    forget_batched(raw);
    loop.post([raw] { delete raw; });
  }
  void close_all() {
    std::vector<Connection*> all;
    for (auto& [id, c] : connections_) all.push_back(c.get());
    for (auto* c : all) c->close("server stopping", nullptr);
  }
  void close_by_id(uint64_t id, const std::string& reason) {
    if (Connection* c = find(id)) c->close(reason.c_str(), nullptr);
  }

  EventLoop loop;

 private:
  Registry& registry_;
  const ServerConfig& config_;
  Counters& counters_;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
  void forget_batched(Connection* c) {
    if (c->in_batch) {
      batched_.erase(std::remove(batched_.begin(), batched_.end(), c), batched_.end());
      c->in_batch = false;
    }
  }
  std::vector<Connection*> batched_;  // woken players waiting for the batch timer
  GSource* batch_timer_ = nullptr;
};

Connection::Connection(LoopWorker* worker, GSocket* socket, uint64_t id, std::string remote, Registry& registry,
                       const ServerConfig& config, Counters& counters, GTlsCertificate* tls_cert)
    : worker_(worker),
      socket_(socket),
      fd_(g_socket_get_fd(socket)),
      counters_(counters),
      session_(registry, config, id, std::move(remote), this) {
  g_socket_set_blocking(socket_, FALSE);
  GError* err = nullptr;
  g_socket_set_option(socket_, IPPROTO_TCP, TCP_NODELAY, 1, &err);
  g_clear_error(&err);
  GRTMP_INFO("connection accepted", {"conn_id", session_.conn_id()}, {"remote", session_.remote()},
             {"tls", tls_cert ? "true" : "false"});
  if (!tls_cert) {
    io_ready_ = true;
    events_ = EPOLLIN | EPOLLRDHUP;
    worker_->loop.add_fd(fd_, events_, this);
    return;
  }
  // RTMPS: the TLS handshake runs on GIO's own sources of this thread's
  // context; the fd joins the epoll set once it is done.
  GSocketConnection* base = g_socket_connection_factory_create_connection(socket_);
  tls_ = g_tls_server_connection_new(G_IO_STREAM(base), tls_cert, &err);
  g_object_unref(base);
  if (!tls_) {
    counters_.tls_failures++;
    close("TLS setup failed", err);
    g_clear_error(&err);
    return;
  }
  g_tls_connection_set_require_close_notify(G_TLS_CONNECTION(tls_), FALSE);
  cancellable_ = g_cancellable_new();
  struct Ctx {
    std::weak_ptr<LoopWorker> worker;
    uint64_t id;
  };
  auto* ctx = new Ctx{worker_->shared_from_this(), id};
  g_tls_connection_handshake_async(
      G_TLS_CONNECTION(tls_), G_PRIORITY_DEFAULT, cancellable_,
      [](GObject* src, GAsyncResult* res, gpointer data) {
        auto* c = static_cast<Ctx*>(data);
        GError* e = nullptr;
        bool ok = g_tls_connection_handshake_finish(G_TLS_CONNECTION(src), res, &e);
        if (auto w = c->worker.lock())
          if (Connection* conn = w->find(c->id)) conn->on_tls_handshake(G_TLS_CONNECTION(src), ok, e);
        g_clear_error(&e);
        delete c;
      },
      ctx);
}

void Connection::on_tls_handshake(GTlsConnection* tls, bool ok, GError* error) {
  if (closed_) return;
  if (!ok) {
    counters_.tls_failures++;
    counters_.handshake_failures++;
    close("TLS handshake failed", error);
    return;
  }
  GTlsProtocolVersion v = g_tls_connection_get_protocol_version(tls);
  if (v == G_TLS_PROTOCOL_VERSION_SSL_3_0 || v == G_TLS_PROTOCOL_VERSION_TLS_1_0 ||
      v == G_TLS_PROTOCOL_VERSION_TLS_1_1) {
    counters_.tls_failures++;
    close("TLS version below 1.2 refused", nullptr);
    return;
  }
  gchar* cipher = g_tls_connection_get_ciphersuite_name(tls);
  GRTMP_DEBUG("TLS handshake done", {"conn_id", session_.conn_id()}, {"cipher", cipher ? cipher : "?"});
  g_free(cipher);
  io_ready_ = true;
  events_ = EPOLLIN | EPOLLRDHUP;
  worker_->loop.add_fd(fd_, events_, this);
  // Bytes may already sit decrypted in the TLS layer.
  on_io(EPOLLIN);
}

Connection::~Connection() {
  if (!closed_) close("destroyed", nullptr);
  g_clear_error(&linger_error_);
  if (tls_) g_object_unref(tls_);
  if (cancellable_) g_object_unref(cancellable_);
  g_object_unref(socket_);
}

std::function<void(SessionHost::SessionTask)> Connection::make_poster() {
  std::weak_ptr<LoopWorker> w = worker_->shared_from_this();
  uint64_t id = session_.id();
  return [w, id](SessionTask task) {
    auto worker = w.lock();
    if (!worker) return;
    worker->loop.post([w, id, task] {
      if (auto wk = w.lock())
        if (Connection* c = wk->find(id)) c->run_task(task);
    });
  };
}

void Connection::run_task(const SessionTask& task) {
  if (closed_) return;
  GError* err = nullptr;
  if (!task(session_, &err)) {
    if (err && g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_UNAUTHORIZED)) counters_.auth_denials++;
    flush();
    close("refused", err);
    g_clear_error(&err);
    return;
  }
  flush();
}

gssize Connection::read_some(uint8_t* buf, size_t len, GError** error) {
  if (!tls_) return g_socket_receive(socket_, reinterpret_cast<gchar*>(buf), len, nullptr, error);
  return g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(g_io_stream_get_input_stream(tls_)), buf,
                                                  len, nullptr, error);
}

gssize Connection::write_some(GOutputVector* vec, size_t n, GError** error) {
  if (!tls_) return g_socket_send_message(socket_, nullptr, vec, static_cast<gint>(n), nullptr, 0, 0, nullptr, error);
  gsize written = 0;
  GPollableReturn r = g_pollable_output_stream_writev_nonblocking(
      G_POLLABLE_OUTPUT_STREAM(g_io_stream_get_output_stream(tls_)), vec, n, &written, nullptr, error);
  if (r == G_POLLABLE_RETURN_OK) return static_cast<gssize>(written);
  if (r == G_POLLABLE_RETURN_WOULD_BLOCK)
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "would block");
  return -1;
}

void Connection::wake() {
  if (!dirty.exchange(true)) worker_->loop.mark_dirty(session_.id());
}

void Connection::close_soon(const char* reason) {
  LoopWorker* w = worker_;
  uint64_t id = session_.id();
  std::string why = reason;
  // Runs on the loop thread; the connection may be gone by then.
  w->loop.post([w, id, why] { w->close_by_id(id, why); });
}

void Connection::on_io(uint32_t events) {
  if (closed_ || !io_ready_) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    uint8_t buf[65536];
    // Bounded reads per wakeup so one busy peer cannot starve the others
    // (epoll is level-triggered: the rest is read on the next wakeup). The
    // TLS layer may hold decrypted bytes epoll cannot see: drain it.
    for (int i = 0; tls_ || i < 4; i++) {
      GError* err = nullptr;
      gssize n = read_some(buf, sizeof buf, &err);
      if (n < 0) {
        if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
          g_error_free(err);
          break;
        }
        close("read error", err);
        g_error_free(err);
        return;
      }
      if (n == 0) {
        if (lingering_) close(linger_reason_.c_str(), linger_error_);
        else close("peer closed the connection", nullptr);
        return;
      }
      counters_.bytes_in += n;
      if (lingering_) continue;  // closing: only the peer's close matters now
      bool was_done = session_.handshake_done();
      if (!session_.on_receive(buf, n, &err)) {
        if (!session_.handshake_done()) counters_.handshake_failures++;
        else if (err && err->domain == GRTMP_ERROR &&
                 (err->code == GRTMP_ERROR_MALFORMED || err->code == GRTMP_ERROR_LIMIT ||
                  err->code == GRTMP_ERROR_PROTOCOL))
          counters_.protocol_errors++;
        if (err && g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_UNAUTHORIZED)) counters_.auth_denials++;
        flush();  // best effort: the status that explains the refusal
        close("protocol error", err);
        g_clear_error(&err);
        return;
      }
      (void)was_done;
      if (!tls_ && static_cast<size_t>(n) < sizeof buf) break;
    }
  }
  if (closed_) return;
  flush();
}

void Connection::pump() {
  dirty.store(false);
  if (closed_ || !io_ready_ || lingering_) return;
  GError* err = nullptr;
  if (!session_.pump(&err)) {
    close_when_flushed("stream ended", err);
    g_clear_error(&err);
    return;
  }
  flush();
}

void Connection::close_when_flushed(const char* reason, GError* error) {
  if (closed_ || lingering_) return;
  lingering_ = true;
  linger_reason_ = reason;
  linger_error_ = error ? g_error_copy(error) : nullptr;
  linger_deadline_us_ = g_get_monotonic_time() + kLingerUs;
  flush();  // closes at once when everything goes out now
}

void Connection::tick(int64_t now_us) {
  if (closed_) return;
  if (lingering_) {
    if (now_us >= linger_deadline_us_) {
      linger_reason_ += " (output not drained)";
      close(linger_reason_.c_str(), linger_error_);
    }
    return;
  }
  GError* err = nullptr;
  if (!session_.check_timers(now_us, &err)) {
    if (!session_.handshake_done()) counters_.handshake_failures++;
    if (g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_SLOW_CONSUMER)) counters_.slow_players++;
    close("timeout", err);
    g_clear_error(&err);
    return;
  }
  flush();
}

void Connection::flush() {
  if (!io_ready_) return;
  auto& out = session_.output();
  while (!out.empty()) {
    const void* bases[64];
    size_t lens[64];
    size_t n = out.gather(bases, lens, 64);
    GOutputVector vec[64];
    for (size_t i = 0; i < n; i++) vec[i] = {bases[i], lens[i]};
    GError* err = nullptr;
    gssize sent = write_some(vec, n, &err);
    if (sent < 0) {
      if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_error_free(err);
        want_write_ = true;
        update_events();
        return;
      }
      close("write error", err);
      g_error_free(err);
      return;
    }
    counters_.bytes_out += sent;
    session_.on_sent(static_cast<size_t>(sent), g_get_monotonic_time());
    if (out.empty() && lingering_) break;
    if (out.empty()) {
      // More player data may be waiting behind the high-water mark.
      GError* perr = nullptr;
      size_t before = out.bytes();
      if (!session_.pump(&perr)) {
        // The stream's end (and what came before it) was just queued: send
        // it, then close (close_when_flushed, without re-entering flush).
        lingering_ = true;
        linger_reason_ = "stream ended";
        linger_error_ = perr;
        linger_deadline_us_ = g_get_monotonic_time() + kLingerUs;
        continue;
      }
      if (out.bytes() == before) break;
    }
  }
  want_write_ = false;
  if (lingering_ && out.empty()) {
    // A close() now would reset the connection if the peer's last bytes
    // (an acknowledgement, say) sit unread in our receive buffer, and a
    // reset makes the peer's kernel drop what it has not read yet: the
    // tail of the stream. Send FIN behind the data instead and close when
    // the peer closes too (or at the linger deadline). TLS has no such
    // half-close here: close at once.
    if (tls_) {
      close(linger_reason_.c_str(), linger_error_);
      return;
    }
    if (!write_shut_) {
      write_shut_ = true;
      g_socket_shutdown(socket_, FALSE, TRUE, nullptr);
    }
  }
  update_events();
}

void Connection::update_events() {
  uint32_t ev = EPOLLIN | EPOLLRDHUP | (want_write_ ? uint32_t(EPOLLOUT) : 0u);
  if (ev != events_) {
    events_ = ev;
    worker_->loop.modify_fd(fd_, events_, this);
  }
}

void Connection::close(const char* reason, GError* error) {
  if (closed_) return;
  closed_ = true;
  const char* detail = error ? error->message : reason;
  auto level = error && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) &&
                       !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE)
                   ? log::Level::Warn
                   : log::Level::Info;
  std::vector<log::Field> f = {{"conn_id", session_.conn_id()}, {"remote", session_.remote()}};
  if (!session_.stream_key().empty()) f.push_back({"stream_key", session_.stream_key()});
  f.push_back({"reason", detail});
  f.push_back({"bytes_in", std::to_string(session_.bytes_in())});
  f.push_back({"bytes_out", std::to_string(session_.bytes_out())});
  log::emit(level, "connection closed", f.data(), f.size());
  counters_.dropped_by_closed += session_.dropped_messages();
  session_.close(reason);
  if (cancellable_) g_cancellable_cancel(cancellable_);
  if (io_ready_) worker_->loop.remove_fd(fd_);
  g_socket_close(socket_, nullptr);
  counters_.connections_current--;
  {
    std::lock_guard lock(counters_.per_ip_mutex);
    auto it = counters_.per_ip.find(host_of(session_.remote()));
    if (it != counters_.per_ip.end() && --it->second == 0) counters_.per_ip.erase(it);
  }
  worker_->release(session_.id());
}

// ---- Server ----

struct Server::Impl {
  explicit Impl(const ServerConfig& c) : config(c), registry(config) {}
  ServerConfig config;
  Registry registry;
  Counters counters;
  std::vector<std::shared_ptr<LoopWorker>> workers;
  GTlsCertificate* tls_cert = nullptr;
  std::atomic<bool> running{false};
  std::atomic<uint64_t> next_id{1};
  std::atomic<size_t> next_worker{0};

  class Listener : public FdHandler {
   public:
    Listener(Impl* impl, GSocket* socket, bool tls) : impl_(impl), socket(socket), tls(tls) {}
    ~Listener() override {
      if (resume_source) {
        g_source_destroy(resume_source);
        g_source_unref(resume_source);
      }
      g_socket_close(socket, nullptr);
      g_object_unref(socket);
    }
    void on_io(uint32_t) override { impl_->accept_ready(*this); }
    Impl* impl_;
    GSocket* socket;
    bool tls;
    uint16_t port = 0;
    bool paused = false;
    GSource* resume_source = nullptr;
  };
  std::vector<std::unique_ptr<Listener>> listeners;

  void accept_ready(Listener& l);
  static constexpr guint kAcceptPauseMs = 250;
  // Loop thread of workers[0] only.
  void pause_listener(Listener& l) {
    if (l.paused) return;
    l.paused = true;
    EventLoop& loop = workers[0]->loop;
    loop.remove_fd(g_socket_get_fd(l.socket));
    GSource* t = g_timeout_source_new(kAcceptPauseMs);
    g_source_set_callback(t, [](gpointer data) -> gboolean {
      auto* lp = static_cast<Listener*>(data);
      lp->paused = false;
      g_source_unref(lp->resume_source);
      lp->resume_source = nullptr;
      lp->impl_->workers[0]->loop.add_fd(g_socket_get_fd(lp->socket), EPOLLIN, lp);
      return G_SOURCE_REMOVE;
    }, &l, nullptr);
    g_source_attach(t, loop.context());
    l.resume_source = t;
  }
  bool listen(const std::string& host, uint16_t port, bool tls, GError** error);
};

void Server::Impl::accept_ready(Listener& l) {
  for (;;) {
    GError* err = nullptr;
    GSocket* s = g_socket_accept(l.socket, nullptr, &err);
    if (!s) {
      if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        // Out of file descriptors (or similar): the pending connection
        // stays in the backlog and epoll would report it again at once.
        // Stop watching the listener for a moment instead of spinning, and
        // log once per pause.
        GRTMP_WARN("accept failed, pausing accepts", {"reason", err->message},
                   {"pause_ms", std::to_string(kAcceptPauseMs)});
        pause_listener(l);
      }
      g_error_free(err);
      return;
    }
    GSocketAddress* addr = g_socket_get_remote_address(s, nullptr);
    std::string remote = addr ? address_to_string(addr) : "unknown";
    if (addr) g_object_unref(addr);
    const char* refusal = nullptr;
    if (counters.connections_current.load() >= config.max_connections) {
      refusal = "max_connections reached";
    } else if (config.max_connections_per_ip) {
      std::lock_guard lock(counters.per_ip_mutex);
      uint32_t& n = counters.per_ip[host_of(remote)];
      if (n >= config.max_connections_per_ip) refusal = "max_connections_per_ip reached";
      else n++;
    } else {
      std::lock_guard lock(counters.per_ip_mutex);
      counters.per_ip[host_of(remote)]++;
    }
    if (refusal) {
      counters.rejected++;
      GRTMP_WARN("connection refused", {"remote", remote}, {"reason", refusal});
      g_socket_close(s, nullptr);
      g_object_unref(s);
      continue;
    }
    counters.connections_total++;
    counters.connections_current++;
    uint64_t id = next_id++;
    LoopWorker* w = workers[next_worker++ % workers.size()].get();
    GTlsCertificate* cert = l.tls ? tls_cert : nullptr;
    if (w->loop.on_loop_thread()) {
      w->adopt(s, id, remote, cert);
    } else {
      w->loop.post([w, s, id, remote, cert] { w->adopt(s, id, remote, cert); });
    }
  }
}

Server::Server(const ServerConfig& config) : impl_(std::make_unique<Impl>(config)) {}

Server::~Server() { stop(); }

static std::mutex g_servers_mutex;
static std::map<std::string, std::weak_ptr<Server>> g_servers;

std::string ServerConfig::address_key() const {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) h = "0.0.0.0";  // what listen() binds for an empty host
  if (GInetAddress* a = g_inet_address_new_from_string(h.c_str())) {
    char* text = g_inet_address_to_string(a);
    bool v6 = g_inet_address_get_family(a) == G_SOCKET_FAMILY_IPV6;
    h = v6 ? std::string("[") + text + "]" : std::string(text);
    g_free(text);
    g_object_unref(a);
  } else {
    char* lower = g_ascii_strdown(h.c_str(), -1);  // DNS names are case-insensitive
    h = lower;
    g_free(lower);
  }
  return h + ":" + std::to_string(port);
}

std::shared_ptr<Server> Server::acquire(const ServerConfig& config, GError** error) {
  std::lock_guard lock(g_servers_mutex);
  if (config.port != 0) {
    auto it = g_servers.find(config.address_key());
    if (it != g_servers.end()) {
      if (auto s = it->second.lock(); s && s->running()) return s;
    }
  }
  auto server = std::make_shared<Server>(config);
  if (!server->start(error)) return nullptr;
  // Port 0: registered under the port it got, so that others in the
  // process (a launcher reading stats) can find it.
  ServerConfig bound = config;
  bound.port = server->port();
  g_servers[bound.address_key()] = server;
  return server;
}

static GInetAddress* resolve_host(const std::string& host, GError** error) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) h = "0.0.0.0";
  if (GInetAddress* a = g_inet_address_new_from_string(h.c_str())) return a;
  GResolver* resolver = g_resolver_get_default();
  GList* list = g_resolver_lookup_by_name(resolver, h.c_str(), nullptr, error);
  g_object_unref(resolver);
  if (!list) return nullptr;
  // Prefer IPv4 for "localhost" so 127.0.0.1 clients reach us.
  GInetAddress* chosen = nullptr;
  for (GList* l = list; l; l = l->next)
    if (g_inet_address_get_family(G_INET_ADDRESS(l->data)) == G_SOCKET_FAMILY_IPV4) {
      chosen = G_INET_ADDRESS(g_object_ref(l->data));
      break;
    }
  if (!chosen) chosen = G_INET_ADDRESS(g_object_ref(list->data));
  g_resolver_free_addresses(list);
  return chosen;
}

bool Server::Impl::listen(const std::string& host, uint16_t port, bool tls, GError** error) {
  GInetAddress* inet = resolve_host(host, error);
  if (!inet) {
    g_prefix_error(error, "Could not resolve listen address %s: ", host.c_str());
    return false;
  }
  GSocketAddress* addr = g_inet_socket_address_new(inet, port);
  GSocket* sock = g_socket_new(g_inet_address_get_family(inet), G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  g_object_unref(inet);
  if (!sock) {
    g_object_unref(addr);
    return false;
  }
  g_socket_set_blocking(sock, FALSE);
  g_socket_set_listen_backlog(sock, 1024);
  if (!g_socket_bind(sock, addr, TRUE, error) || !g_socket_listen(sock, error)) {
    g_prefix_error(error, "Could not listen on %s:%u: ", host.c_str(), port);
    g_object_unref(addr);
    g_object_unref(sock);
    return false;
  }
  g_object_unref(addr);
  auto l = std::make_unique<Listener>(this, sock, tls);
  GSocketAddress* local = g_socket_get_local_address(sock, nullptr);
  l->port = local ? g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local)) : port;
  if (local) g_object_unref(local);
  listeners.push_back(std::move(l));
  return true;
}

bool Server::start(GError** error) {
  if (impl_->running) return true;
  auto& c = impl_->config;
  raise_fd_limit();
  if (c.tls) {
    if (c.tls_cert_file.empty() || c.tls_key_file.empty()) {
      g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                          "RTMPS needs a certificate file and a key file");
      return false;
    }
    impl_->tls_cert = g_tls_certificate_new_from_files(c.tls_cert_file.c_str(), c.tls_key_file.c_str(), error);
    if (!impl_->tls_cert) {
      g_prefix_error(error, "Could not load TLS certificate %s / key %s: ", c.tls_cert_file.c_str(),
                     c.tls_key_file.c_str());
      return false;
    }
    if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
      g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                          "No TLS backend (install glib-networking)");
      return false;
    }
  }
  if (c.plain && !impl_->listen(c.host, c.port, false, error)) return false;
  if (c.tls && !impl_->listen(c.tls_host.empty() ? c.host : c.tls_host, c.tls_port, true, error)) {
    impl_->listeners.clear();
    return false;
  }
  if (impl_->listeners.empty()) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "Neither plain nor TLS listening is enabled");
    return false;
  }

  size_t n = c.main_context ? 1 : (c.loop_threads ? c.loop_threads : g_get_num_processors());
  for (size_t i = 0; i < n; i++)
    impl_->workers.push_back(
        std::make_shared<LoopWorker>(c.main_context, impl_->registry, impl_->config, impl_->counters));
  for (auto& w : impl_->workers) {
    if (!w->loop.start(error)) return false;
  }
  // The listening sockets live on the first loop.
  LoopWorker* first = impl_->workers[0].get();
  for (auto& l : impl_->listeners) {
    int lfd = g_socket_get_fd(l->socket);
    Impl::Listener* lp = l.get();
    if (c.main_context) first->loop.add_fd(lfd, EPOLLIN, lp);
    else first->loop.post([first, lfd, lp] { first->loop.add_fd(lfd, EPOLLIN, lp); });
  }
  impl_->running = true;
  for (auto& l : impl_->listeners)
    GRTMP_INFO(l->tls ? "RTMPS server listening" : "RTMP server listening",
               {"addr", (l->tls && !c.tls_host.empty() ? c.tls_host : c.host) + ":" + std::to_string(l->port)},
               {"threads", std::to_string(n)});
  return true;
}

void Server::stop() {
  if (!impl_->running.exchange(false)) return;
  for (auto& w : impl_->workers) {
    LoopWorker* wp = w.get();
    if (impl_->config.main_context || wp->loop.on_loop_thread()) {
      wp->close_all();
    } else {
      // Run close_all on the loop thread and wait for it.
      GMutex m;
      GCond cond;
      bool done = false;
      g_mutex_init(&m);
      g_cond_init(&cond);
      wp->loop.post([&] {
        wp->close_all();
        g_mutex_lock(&m);
        done = true;
        g_cond_signal(&cond);
        g_mutex_unlock(&m);
      });
      g_mutex_lock(&m);
      while (!done) g_cond_wait(&cond, &m);
      g_mutex_unlock(&m);
      g_mutex_clear(&m);
      g_cond_clear(&cond);
    }
  }
  uint16_t port = this->port();
  for (auto& l : impl_->listeners) {
    if (l->resume_source) {
      g_source_destroy(l->resume_source);
      g_source_unref(l->resume_source);
      l->resume_source = nullptr;
    }
  }
  impl_->workers.clear();  // joins the threads
  impl_->listeners.clear();
  if (impl_->tls_cert) {
    g_object_unref(impl_->tls_cert);
    impl_->tls_cert = nullptr;
  }
  GRTMP_INFO("RTMP server stopped", {"port", std::to_string(port)});
}

bool Server::running() const { return impl_->running; }
uint16_t Server::port() const {
  for (auto& l : impl_->listeners)
    if (!l->tls) return l->port;
  return 0;
}
uint16_t Server::tls_port() const {
  for (auto& l : impl_->listeners)
    if (l->tls) return l->port;
  return 0;
}
const ServerConfig& Server::config() const { return impl_->config; }
Registry& Server::registry() { return impl_->registry; }

ServerStats Server::stats() const {
  ServerStats s;
  auto& k = impl_->counters;
  s.connections_total = k.connections_total;
  s.connections_current = k.connections_current;
  s.bytes_in = k.bytes_in;
  s.bytes_out = k.bytes_out;
  s.handshake_failures = k.handshake_failures;
  s.rejected_connections = k.rejected;
  s.protocol_errors = k.protocol_errors;
  s.dropped_messages = impl_->registry.dropped_total();
  s.auth_denials = k.auth_denials;
  s.tls_failures = k.tls_failures;
  s.slow_players_closed = k.slow_players;
  for (auto& info : impl_->registry.list()) {
    if (info.live) s.publishers++;
    s.players += info.players;
  }
  return s;
}

}  // namespace grtmp
