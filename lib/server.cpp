#include "grtmp/server.h"

#include <gio/gio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>

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
};

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
             const ServerConfig& config, Counters& counters);
  ~Connection() override;
  void on_io(uint32_t events) override;
  void wake() override;
  void close_soon(const char* reason) override;
  void pump();
  void tick(int64_t now_us);
  void close(const char* reason, GError* error);
  bool closed() const { return closed_; }
  ServerSession& session() { return session_; }
  std::atomic<bool> dirty{false};

 private:
  void flush();
  void update_events();
  LoopWorker* worker_;
  GSocket* socket_;
  int fd_;
  Counters& counters_;
  ServerSession session_;
  bool closed_ = false;
  bool want_write_ = false;
  uint32_t events_ = 0;
};

class LoopWorker {
 public:
  LoopWorker(GMainContext* ctx, Registry& registry, const ServerConfig& config, Counters& counters)
      : loop(ctx), registry_(registry), config_(config), counters_(counters) {
    loop.set_dirty_handler([this](const std::vector<uint64_t>& ids) {
      for (uint64_t id : ids) {
        auto it = connections_.find(id);
        if (it != connections_.end()) it->second->pump();
      }
    });
    loop.set_tick_handler([this](int64_t now) {
      std::vector<Connection*> all;
      all.reserve(connections_.size());
      for (auto& [id, c] : connections_) all.push_back(c.get());
      for (auto* c : all) c->tick(now);
    });
  }
  ~LoopWorker() { loop.stop(); }

  void adopt(GSocket* socket, uint64_t id, std::string remote) {
    auto c = std::make_unique<Connection>(this, socket, id, std::move(remote), registry_, config_, counters_);
    connections_.emplace(id, std::move(c));
  }
  void release(uint64_t id) {
    // Deferred: other ready events of this dispatch may still name it.
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    Connection* raw = it->second.release();
    connections_.erase(it);
    loop.post([raw] { delete raw; });
  }
  void close_all() {
    std::vector<Connection*> all;
    for (auto& [id, c] : connections_) all.push_back(c.get());
    for (auto* c : all) c->close("server stopping", nullptr);
  }
  void close_by_id(uint64_t id, const std::string& reason) {
    auto it = connections_.find(id);
    if (it != connections_.end()) it->second->close(reason.c_str(), nullptr);
  }

  EventLoop loop;

 private:
  Registry& registry_;
  const ServerConfig& config_;
  Counters& counters_;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
};

Connection::Connection(LoopWorker* worker, GSocket* socket, uint64_t id, std::string remote, Registry& registry,
                       const ServerConfig& config, Counters& counters)
    : worker_(worker),
      socket_(socket),
      fd_(g_socket_get_fd(socket)),
      counters_(counters),
      session_(registry, config, id, std::move(remote), this) {
  g_socket_set_blocking(socket_, FALSE);
  GError* err = nullptr;
  g_socket_set_option(socket_, IPPROTO_TCP, TCP_NODELAY, 1, &err);
  g_clear_error(&err);
  events_ = EPOLLIN | EPOLLRDHUP;
  worker_->loop.add_fd(fd_, events_, this);
  GRTMP_INFO("connection accepted", {"conn_id", session_.conn_id()}, {"remote", session_.remote()});
}

Connection::~Connection() {
  if (!closed_) close("destroyed", nullptr);
  g_object_unref(socket_);
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
  if (closed_) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    uint8_t buf[65536];
    // Bounded reads per wakeup so one busy peer cannot starve the others.
    for (int i = 0; i < 4; i++) {
      GError* err = nullptr;
      gssize n = g_socket_receive(socket_, reinterpret_cast<gchar*>(buf), sizeof buf, nullptr, &err);
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
        close("peer closed the connection", nullptr);
        return;
      }
      counters_.bytes_in += n;
      bool was_done = session_.handshake_done();
      if (!session_.on_receive(buf, n, &err)) {
        if (!session_.handshake_done()) counters_.handshake_failures++;
        else if (err && err->domain == GRTMP_ERROR &&
                 (err->code == GRTMP_ERROR_MALFORMED || err->code == GRTMP_ERROR_LIMIT ||
                  err->code == GRTMP_ERROR_PROTOCOL))
          counters_.protocol_errors++;
        flush();  // best effort: the status that explains the refusal
        close("protocol error", err);
        g_clear_error(&err);
        return;
      }
      (void)was_done;
      if (static_cast<size_t>(n) < sizeof buf) break;
    }
  }
  if (closed_) return;
  flush();
}

void Connection::pump() {
  dirty.store(false);
  if (closed_) return;
  GError* err = nullptr;
  if (!session_.pump(&err)) {
    flush();
    close("stream ended", err);
    g_clear_error(&err);
    return;
  }
  flush();
}

void Connection::tick(int64_t now_us) {
  if (closed_) return;
  GError* err = nullptr;
  if (!session_.check_timers(now_us, &err)) {
    if (!session_.handshake_done()) counters_.handshake_failures++;
    close("timeout", err);
    g_clear_error(&err);
    return;
  }
  flush();
}

void Connection::flush() {
  auto& out = session_.output();
  while (!out.empty()) {
    const void* bases[64];
    size_t lens[64];
    size_t n = out.gather(bases, lens, 64);
    GOutputVector vec[64];
    for (size_t i = 0; i < n; i++) vec[i] = {bases[i], lens[i]};
    GError* err = nullptr;
    gssize sent = g_socket_send_message(socket_, nullptr, vec, static_cast<gint>(n), nullptr, 0, 0, nullptr, &err);
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
    if (out.empty()) {
      // More player data may be waiting behind the high-water mark.
      GError* perr = nullptr;
      size_t before = out.bytes();
      if (!session_.pump(&perr)) {
        close("stream ended", perr);
        g_clear_error(&perr);
        return;
      }
      if (out.bytes() == before) break;
    }
  }
  want_write_ = false;
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
  worker_->loop.remove_fd(fd_);
  g_socket_close(socket_, nullptr);
  counters_.connections_current--;
  worker_->release(session_.id());
}

// ---- Server ----

struct Server::Impl {
  explicit Impl(const ServerConfig& c) : config(c), registry(config) {}
  ServerConfig config;
  Registry registry;
  Counters counters;
  std::vector<std::unique_ptr<LoopWorker>> workers;
  GSocket* listener = nullptr;
  uint16_t port = 0;
  std::atomic<bool> running{false};
  std::atomic<uint64_t> next_id{1};
  size_t next_worker = 0;

  class Acceptor : public FdHandler {
   public:
    explicit Acceptor(Impl* impl) : impl_(impl) {}
    void on_io(uint32_t) override { impl_->accept_ready(); }

   private:
    Impl* impl_;
  };
  std::unique_ptr<Acceptor> acceptor;

  void accept_ready();
};

void Server::Impl::accept_ready() {
  for (;;) {
    GError* err = nullptr;
    GSocket* s = g_socket_accept(listener, nullptr, &err);
    if (!s) {
      if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        GRTMP_WARN("accept failed", {"reason", err->message});
      g_error_free(err);
      return;
    }
    GSocketAddress* addr = g_socket_get_remote_address(s, nullptr);
    std::string remote = addr ? address_to_string(addr) : "unknown";
    if (addr) g_object_unref(addr);
    if (counters.connections_current.load() >= config.max_connections) {
      counters.rejected++;
      GRTMP_WARN("connection refused", {"remote", remote}, {"reason", "max_connections reached"},
                 {"max_connections", std::to_string(config.max_connections)});
      g_socket_close(s, nullptr);
      g_object_unref(s);
      continue;
    }
    counters.connections_total++;
    counters.connections_current++;
    uint64_t id = next_id++;
    LoopWorker* w = workers[next_worker++ % workers.size()].get();
    if (w->loop.on_loop_thread()) {
      w->adopt(s, id, remote);
    } else {
      w->loop.post([w, s, id, remote] { w->adopt(s, id, remote); });
    }
  }
}

Server::Server(const ServerConfig& config) : impl_(std::make_unique<Impl>(config)) {}

Server::~Server() { stop(); }

static std::mutex g_servers_mutex;
static std::map<std::string, std::weak_ptr<Server>> g_servers;

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
  if (config.port != 0) g_servers[config.address_key()] = server;
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

bool Server::start(GError** error) {
  if (impl_->running) return true;
  auto& c = impl_->config;
  raise_fd_limit();
  GInetAddress* inet = resolve_host(c.host, error);
  if (!inet) {
    g_prefix_error(error, "Could not resolve listen address %s: ", c.host.c_str());
    return false;
  }
  GSocketAddress* addr = g_inet_socket_address_new(inet, c.port);
  GSocket* sock = g_socket_new(g_inet_address_get_family(inet), G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  g_object_unref(inet);
  if (!sock) {
    g_object_unref(addr);
    return false;
  }
  g_socket_set_blocking(sock, FALSE);
  g_socket_set_listen_backlog(sock, 1024);
  if (!g_socket_bind(sock, addr, TRUE, error) || !g_socket_listen(sock, error)) {
    g_prefix_error(error, "Could not listen on %s:%u: ", c.host.c_str(), c.port);
    g_object_unref(addr);
    g_object_unref(sock);
    return false;
  }
  g_object_unref(addr);
  GSocketAddress* local = g_socket_get_local_address(sock, nullptr);
  impl_->port = local ? g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local)) : c.port;
  if (local) g_object_unref(local);
  impl_->listener = sock;

  size_t n = c.main_context ? 1 : (c.loop_threads ? c.loop_threads : g_get_num_processors());
  for (size_t i = 0; i < n; i++) {
    auto w = std::make_unique<LoopWorker>(c.main_context, impl_->registry, impl_->config, impl_->counters);
    impl_->workers.push_back(std::move(w));
  }
  impl_->acceptor = std::make_unique<Impl::Acceptor>(impl_.get());
  // The listening socket lives on the first loop.
  LoopWorker* first = impl_->workers[0].get();
  int lfd = g_socket_get_fd(sock);
  Impl::Acceptor* acc = impl_->acceptor.get();
  for (auto& w : impl_->workers) {
    if (!w->loop.start(error)) return false;
  }
  if (c.main_context) {
    first->loop.add_fd(lfd, EPOLLIN, acc);
  } else {
    first->loop.post([first, lfd, acc] { first->loop.add_fd(lfd, EPOLLIN, acc); });
  }
  impl_->running = true;
  GRTMP_INFO("RTMP server listening", {"addr", c.host + ":" + std::to_string(impl_->port)},
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
  if (impl_->listener) {
    impl_->workers[0]->loop.post([] {});
  }
  impl_->workers.clear();  // joins the threads
  if (impl_->listener) {
    g_socket_close(impl_->listener, nullptr);
    g_object_unref(impl_->listener);
    impl_->listener = nullptr;
  }
  GRTMP_INFO("RTMP server stopped", {"port", std::to_string(impl_->port)});
}

bool Server::running() const { return impl_->running; }
uint16_t Server::port() const { return impl_->port; }
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
  s.dropped_messages = k.dropped_by_closed;
  for (auto& info : impl_->registry.list()) {
    if (info.live) s.publishers++;
    s.players += info.subscribers;
  }
  return s;
}

}  // namespace grtmp
