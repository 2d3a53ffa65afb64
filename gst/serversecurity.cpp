#include "serversecurity.h"

#include <gio/gio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "elementutil.h"
#include "gstlog.h"
#include "grtmp/auth.h"

// Only rtmpserversrc has "authorize": its category.
#define GST_CAT_DEFAULT grtmp_serversrc_debug

namespace grtmp::gst {

// ---------------------------------------------------------------- TLS properties

GParamSpec* tls_param_spec(TlsProp which) {
  const auto rw = (GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto ro = (GParamFlags)(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  switch (which) {
    case TlsProp::Tls:
      return g_param_spec_boolean(
          "tls", "TLS",
          "Also listen for RTMPS on tls-address:tls-port (needs tls-cert-file and tls-key-file; a certificate that "
          "does not load is an error, never plain RTMP instead)",
          FALSE, rw);
    case TlsProp::CertFile:
      return g_param_spec_string("tls-cert-file", "TLS certificate file",
                                 "PEM certificate (chain: server certificate first) for RTMPS", nullptr, rw);
    case TlsProp::KeyFile:
      return g_param_spec_string("tls-key-file", "TLS key file", "PEM private key of tls-cert-file", nullptr, rw);
    case TlsProp::Address:
      return g_param_spec_string("tls-address", "TLS address",
                                 "Address the RTMPS listener binds (empty/NULL = the same as address)", nullptr, rw);
    case TlsProp::Port:
      return g_param_spec_uint("tls-port", "TLS port", "RTMPS port (0 = a free ephemeral port)", 0, 65535,
                               TlsSettings().port, rw);
    case TlsProp::CurrentPort:
      return g_param_spec_uint("current-tls-port", "Current TLS port",
                               "The RTMPS port of the running server (set when the server started; 0 before, or "
                               "when it has no RTMPS listener)",
                               0, 65535, 0, ro);
    case TlsProp::Count: break;
  }
  return nullptr;
}

void tls_set_property(TlsSettings& s, TlsProp which, const GValue* value) {
  auto str = [value] {
    const gchar* v = g_value_get_string(value);
    return std::string(v ? v : "");
  };
  switch (which) {
    case TlsProp::Tls: s.enabled = g_value_get_boolean(value); break;
    case TlsProp::CertFile: s.cert_file = str(); break;
    case TlsProp::KeyFile: s.key_file = str(); break;
    case TlsProp::Address: s.address = str(); break;
    case TlsProp::Port: s.port = g_value_get_uint(value); break;
    default: break;
  }
}

void tls_get_property(const TlsSettings& s, TlsProp which, GValue* value) {
  auto str = [value](const std::string& v) { g_value_set_string(value, v.empty() ? nullptr : v.c_str()); };
  switch (which) {
    case TlsProp::Tls: g_value_set_boolean(value, s.enabled); break;
    case TlsProp::CertFile: str(s.cert_file); break;
    case TlsProp::KeyFile: str(s.key_file); break;
    case TlsProp::Address: str(s.address); break;
    case TlsProp::Port: g_value_set_uint(value, s.port); break;
    default: break;
  }
}

// ---------------------------------------------------------------- certificate check

namespace {

struct HandshakeState {
  int pending = 2;
  GError* server_error = nullptr;
  GError* client_error = nullptr;
};

void on_handshake(GObject* source, GAsyncResult* result, gpointer data, GError** slot) {
  auto* st = static_cast<HandshakeState*>(data);
  g_tls_connection_handshake_finish(G_TLS_CONNECTION(source), result, slot);
  st->pending--;
}

// One handshake between a GTlsServerConnection with `cert` and a client
// that accepts any certificate, over a socket pair, on a private context.
bool self_handshake(GTlsCertificate* cert, std::string& why) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    why = "socketpair failed";
    return false;
  }
  GError* err = nullptr;
  GSocket* s0 = g_socket_new_from_fd(sv[0], &err);
  if (!s0) close(sv[0]);
  GSocket* s1 = s0 ? g_socket_new_from_fd(sv[1], &err) : nullptr;
  if (!s1) close(sv[1]);
  if (!s0 || !s1) {
    why = err ? err->message : "socket";
    g_clear_error(&err);
    if (s0) g_object_unref(s0);
    return false;
  }
  GSocketConnection* c0 = g_socket_connection_factory_create_connection(s0);
  GSocketConnection* c1 = g_socket_connection_factory_create_connection(s1);
  g_object_unref(s0);
  g_object_unref(s1);

  GMainContext* ctx = g_main_context_new();
  g_main_context_push_thread_default(ctx);
  GCancellable* cancel = g_cancellable_new();
  HandshakeState st;
  bool ok = false;
  GIOStream* server = g_tls_server_connection_new(G_IO_STREAM(c0), cert, &err);
  GIOStream* client = server ? g_tls_client_connection_new(G_IO_STREAM(c1), nullptr, &err) : nullptr;
  if (!server || !client) {
    why = err ? err->message : "TLS setup failed";
    g_clear_error(&err);
  } else {
    // Our own certificate: whoever signed it, it is the one we expect.
    g_signal_connect(client, "accept-certificate",
                     G_CALLBACK(+[](GTlsConnection*, GTlsCertificate*, GTlsCertificateFlags, gpointer) -> gboolean {
                       return TRUE;
                     }),
                     nullptr);
    g_tls_connection_handshake_async(
        G_TLS_CONNECTION(server), G_PRIORITY_DEFAULT, cancel,
        [](GObject* o, GAsyncResult* r, gpointer d) { on_handshake(o, r, d, &static_cast<HandshakeState*>(d)->server_error); },
        &st);
    g_tls_connection_handshake_async(
        G_TLS_CONNECTION(client), G_PRIORITY_DEFAULT, cancel,
        [](GObject* o, GAsyncResult* r, gpointer d) { on_handshake(o, r, d, &static_cast<HandshakeState*>(d)->client_error); },
        &st);
    // Wakes the loop now and then, for the deadline.
    GSource* tick = g_timeout_source_new(50);
    g_source_set_callback(tick, [](gpointer) -> gboolean { return G_SOURCE_CONTINUE; }, nullptr, nullptr);
    g_source_attach(tick, ctx);
    const gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    bool timed_out = false;
    // (After a cancel the handshakes end at once; the hard stop is a safety net:
    // a callback never dispatched is never run, the context is not iterated again.)
    while (st.pending > 0 && g_get_monotonic_time() < deadline + 10 * G_USEC_PER_SEC) {
      // The first failure decides: the peer may wait for bytes that never come.
      if (!g_cancellable_is_cancelled(cancel) &&
          (st.server_error || st.client_error || g_get_monotonic_time() > deadline)) {
        timed_out = !st.server_error && !st.client_error;
        g_cancellable_cancel(cancel);
      }
      g_main_context_iteration(ctx, TRUE);
    }
    g_source_destroy(tick);
    g_source_unref(tick);
    timed_out = timed_out || st.pending > 0;
    ok = !st.server_error && !st.client_error && !timed_out;
    if (timed_out) {
      why = "the test handshake timed out";
    } else if (!ok) {
      // The client names a signature that does not verify; the server a key it cannot use.
      const GError* e = st.client_error && !g_error_matches(st.client_error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
                            ? st.client_error
                            : st.server_error ? st.server_error : st.client_error;
      why = e && e->message ? e->message : "handshake failed";
    }
  }
  g_clear_error(&st.server_error);
  g_clear_error(&st.client_error);
  if (server) g_object_unref(server);
  if (client) g_object_unref(client);
  g_object_unref(c0);
  g_object_unref(c1);
  g_object_unref(cancel);
  // Anything the TLS objects left on the context goes with it.
  while (g_main_context_iteration(ctx, FALSE)) {
  }
  g_main_context_pop_thread_default(ctx);
  g_main_context_unref(ctx);
  return ok;
}

}  // namespace

bool check_tls_files(const std::string& cert_file, const std::string& key_file, GError** error) {
  if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "No TLS backend (install glib-networking)");
    return false;
  }
  GError* err = nullptr;
  GTlsCertificate* cert = g_tls_certificate_new_from_files(cert_file.c_str(), key_file.c_str(), &err);
  if (!cert) {
    g_set_error(error, err->domain, err->code, "Could not load TLS certificate %s / key %s: %s", cert_file.c_str(),
                key_file.c_str(), err->message);
    g_error_free(err);
    return false;
  }
  std::string why;
  bool ok = self_handshake(cert, why);
  g_object_unref(cert);
  if (!ok) {
    g_set_error(error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                "TLS key %s does not belong to certificate %s (a test handshake with them failed: %s)",
                key_file.c_str(), cert_file.c_str(), why.c_str());
  }
  return ok;
}

// ---------------------------------------------------------------- authorization

namespace {

const char* action_name(AuthRequest::Action a) {
  switch (a) {
    case AuthRequest::Action::Connect: return "connect";
    case AuthRequest::Action::Publish: return "publish";
    case AuthRequest::Action::Play: return "play";
    case AuthRequest::Action::Done: return "done";
  }
  return "?";
}

GstStructure* request_structure(const AuthRequest& r) {
  const bool stream = r.action != AuthRequest::Action::Connect;
  return gst_structure_new("grtmp-authorize-request", "action", G_TYPE_STRING, action_name(r.action), "app",
                           G_TYPE_STRING, r.app.c_str(), "name", G_TYPE_STRING, r.name.c_str(), "key", G_TYPE_STRING,
                           stream ? r.key().c_str() : "", "query", G_TYPE_STRING, r.query.c_str(), "tc-url",
                           G_TYPE_STRING, r.tc_url.c_str(), "remote-ip", G_TYPE_STRING, r.remote_ip.c_str(),
                           "conn-id", G_TYPE_STRING, r.conn_id.c_str(), nullptr);
}

// Whether an emission with `detail` would reach a handler: one connected
// with that detail or without any (GLib 2.74's has_handler_pending only
// counts the exact detail).
bool wants(GstElement* element, guint signal_id, GQuark detail) {
  return g_signal_has_handler_pending(element, signal_id, detail, FALSE) ||
         g_signal_has_handler_pending(element, signal_id, 0, FALSE);
}

// Asked elements (references held) for one request, on a pool thread.
struct AuthJob {
  std::vector<std::pair<GstElement*, guint>> elements;
  AuthRequest request;
  Authorizer::Done done;
};

void run_auth_job(gpointer data, gpointer) {
  std::unique_ptr<AuthJob> job(static_cast<AuthJob*>(data));
  const AuthRequest& req = job->request;
  const GQuark detail = g_quark_from_static_string(action_name(req.action));
  GstStructure* s = request_structure(req);
  AuthDecision decision{true, "", ""};
  for (auto& [element, signal_id] : job->elements) {
    // A handler disconnected meanwhile: nothing to ask (emitting would answer FALSE).
    if (decision.allow && wants(element, signal_id, detail)) {
      gboolean allow = FALSE;
      g_signal_emit(element, signal_id, detail, s, &allow);
      if (!allow) {
        decision.allow = false;
        if (const gchar* reason = gst_structure_get_string(s, "reason")) decision.reason = reason;
        GST_INFO_OBJECT(element, "authorize: %s %s refused for %s (%s)%s%s", action_name(req.action),
                        req.action == AuthRequest::Action::Connect ? req.app.c_str() : req.key().c_str(),
                        req.remote_ip.c_str(), req.conn_id.c_str(), decision.reason.empty() ? "" : ": ",
                        decision.reason.c_str());
      } else {
        GST_DEBUG_OBJECT(element, "authorize: %s %s allowed for %s (%s)", action_name(req.action),
                         req.action == AuthRequest::Action::Connect ? req.app.c_str() : req.key().c_str(),
                         req.remote_ip.c_str(), req.conn_id.c_str());
      }
    }
    gst_object_unref(element);
  }
  gst_structure_free(s);
  job->done(decision);
}

// Handlers run here, never on a server loop thread: a handler may take its
// time (a database lookup) without stalling the media of other connections.
GThreadPool* auth_pool() {
  static GThreadPool* pool = [] {
    GError* err = nullptr;
    GThreadPool* p = g_thread_pool_new(run_auth_job, nullptr, 4, FALSE, &err);
    if (!p) g_error("cannot create the authorization thread pool: %s", err ? err->message : "?");
    return p;
  }();
  return pool;
}

}  // namespace

// The authorizer of servers our elements start: asks the "authorize"
// handlers of every rtmpserversrc sharing the server (in the order they
// started; the first refusal wins). Without any handler it allows at once.
class ElementAuthorizer : public Authorizer {
 public:
  ~ElementAuthorizer() override {
    for (auto& e : entries_) g_weak_ref_clear(&e->ref);
  }

  void add(GstElement* element, guint signal_id) {
    std::lock_guard lock(mutex_);
    for (auto& e : entries_)
      if (e->element == element) return;
    auto e = std::make_unique<Entry>();
    g_weak_ref_init(&e->ref, element);
    e->element = element;
    e->signal_id = signal_id;
    entries_.push_back(std::move(e));
  }

  void remove(GstElement* element) {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if ((*it)->element != element) continue;
      g_weak_ref_clear(&(*it)->ref);
      entries_.erase(it);
      return;
    }
  }

  void authorize(const AuthRequest& request, Done done) override {
    if (request.action == AuthRequest::Action::Done) {
      done(AuthDecision{true, "", ""});
      return;
    }
    const GQuark detail = g_quark_from_static_string(action_name(request.action));
    auto job = std::make_unique<AuthJob>();
    {
      std::lock_guard lock(mutex_);
      for (auto& e : entries_) {
        auto* element = static_cast<GstElement*>(g_weak_ref_get(&e->ref));
        if (!element) continue;
        if (wants(element, e->signal_id, detail))
          job->elements.emplace_back(element, e->signal_id);
        else
          gst_object_unref(element);
      }
    }
    if (job->elements.empty()) {
      done(AuthDecision{true, "", ""});
      return;
    }
    job->request = request;
    job->done = std::move(done);
    g_thread_pool_push(auth_pool(), job.release(), nullptr);
  }

 private:
  struct Entry {
    GWeakRef ref;
    GstElement* element = nullptr;  // identity only, never dereferenced
    guint signal_id = 0;
  };
  std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

// ---------------------------------------------------------------- acquiring

namespace {

void post_settings_error(GstElement* element, const std::string& text, const std::string& debug) {
  GRTMP_POST_RESOURCE_ERROR(element, GST_RESOURCE_ERROR_SETTINGS, text, debug);
}

bool has_any_handler(GstElement* element, guint signal_id) {
  return g_signal_handler_find(element, G_SIGNAL_MATCH_ID, signal_id, 0, nullptr, nullptr, nullptr) != 0;
}

std::string where(const std::string& host, unsigned port) { return host + ":" + std::to_string(port); }

// The server policies the elements expose as properties that this element
// asked for (set away from the default) and the shared running server
// does not have: "idle-timeout=5000 (running: 60000)", comma separated.
std::string differing_policies(const ServerConfig& wanted, const ServerConfig& running) {
  const ServerConfig defaults;
  std::string out;
  auto check = [&](const char* name, auto ServerConfig::*field) {
    if (wanted.*field == defaults.*field || wanted.*field == running.*field) return;
    if (!out.empty()) out += ", ";
    auto text = [](auto v) {
      if constexpr (std::is_same_v<decltype(v), bool>) return std::string(v ? "true" : "false");
      else return std::to_string(v);
    };
    out += std::string(name) + "=" + text(wanted.*field) + " (running: " + text(running.*field) + ")";
  };
  check("chunk-size", &ServerConfig::chunk_size);
  check("gop-cache", &ServerConfig::gop_cache);
  check("handshake-timeout", &ServerConfig::handshake_timeout_ms);
  check("idle-timeout", &ServerConfig::idle_timeout_ms);
  check("publisher-timeout", &ServerConfig::publisher_timeout_ms);
  check("max-lag", &ServerConfig::player_max_lag_ms);
  check("max-connections", &ServerConfig::max_connections);
  check("max-message-size", &ServerConfig::max_message_size);
  return out;
}

}  // namespace

std::shared_ptr<Server> acquire_server(GstElement* element, const ServerRequest& request) {
  ServerConfig config = request.config;
  const TlsSettings& tls = request.tls;
  const std::string tls_host = tls.address.empty() ? config.host : tls.address;

  if (!tls.enabled && (!tls.cert_file.empty() || !tls.key_file.empty())) {
    post_settings_error(element, "tls-cert-file/tls-key-file are set but tls is false: set tls=true to serve RTMPS",
                        "");
    return nullptr;
  }
  if (tls.enabled) {
    if (tls.cert_file.empty() || tls.key_file.empty()) {
      post_settings_error(element, "tls=true needs tls-cert-file and tls-key-file", "");
      return nullptr;
    }
    GError* err = nullptr;
    if (!check_tls_files(tls.cert_file, tls.key_file, &err)) {
      post_settings_error(element, error_text(err),
                          std::string("domain ") + g_quark_to_string(err->domain) + ", code " +
                              std::to_string(err->code));
      g_clear_error(&err);
      return nullptr;
    }
    config.tls = true;
    config.tls_host = tls.address;
    config.tls_port = uint16_t(tls.port);
    config.tls_cert_file = tls.cert_file;
    config.tls_key_file = tls.key_file;
  }

  // Registered before the server listens: no request slips through unasked.
  auto hub = std::make_shared<ElementAuthorizer>();
  if (request.authorize_signal) hub->add(element, request.authorize_signal);
  config.authorizer = hub;

  GError* err = nullptr;
  auto server = Server::acquire(config, &err);
  if (!server) {
    const std::string msg = error_text(err);
    const std::string debug = msg + " (domain " + (err ? g_quark_to_string(err->domain) : "?") + ", code " +
                              std::to_string(err ? err->code : -1) + ")";
    if (config.tls && msg.rfind("Could not listen on " + where(tls_host, config.tls_port) + ":", 0) == 0) {
      GRTMP_POST_RESOURCE_ERROR(element, request.writing ? GST_RESOURCE_ERROR_OPEN_WRITE : GST_RESOURCE_ERROR_OPEN_READ,
                                "RTMPS: " + listen_error_text(tls_host, config.tls_port, err), debug);
    } else if (msg.rfind("Could not listen on ", 0) == 0 || g_error_matches(err, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE)) {
      GRTMP_POST_RESOURCE_ERROR(element, request.writing ? GST_RESOURCE_ERROR_OPEN_WRITE : GST_RESOURCE_ERROR_OPEN_READ,
                                listen_error_text(config.host, config.port, err), debug);
    } else {
      // Certificate or TLS backend problems found by the server itself.
      post_settings_error(element, msg, debug);
    }
    g_clear_error(&err);
    return nullptr;
  }

  if (server->config().authorizer == config.authorizer) return server;  // we started it

  // Shared: the server runs with the configuration of whoever started it.
  const ServerConfig& running = server->config();
  const std::string addr = where(config.host, server->port());
  if (tls.enabled) {
    if (server->tls_port() == 0) {
      post_settings_error(element,
                          "tls=true, but the RTMP server on " + addr +
                              " is already running without RTMPS (started by another element or the application); "
                              "give the TLS settings to every element sharing this address and port",
                          "");
      return nullptr;
    }
    if (running.tls_cert_file != tls.cert_file || running.tls_key_file != tls.key_file ||
        (tls.port != 0 && tls.port != server->tls_port())) {
      GST_ELEMENT_WARNING(element, RESOURCE, SETTINGS,
                          ("The RTMP server on %s is shared and already running: it serves RTMPS on port %u with "
                           "certificate %s; this element's TLS settings are ignored",
                           addr.c_str(), server->tls_port(), running.tls_cert_file.c_str()),
                          (nullptr));
    }
  }
  // Policies: the element's properties cannot change a running server.
  const std::string differing = differing_policies(config, running);
  if (!differing.empty()) {
    GST_WARNING_OBJECT(element, "shared server on %s keeps its settings; ignored: %s", addr.c_str(),
                       differing.c_str());
    GST_ELEMENT_WARNING(element, RESOURCE, SETTINGS,
                        ("The RTMP server on %s is shared and already running with other settings; this element's "
                         "settings are ignored: %s",
                         addr.c_str(), differing.c_str()),
                        ("give the same settings to every element sharing this address and port"));
  }
  if (request.authorize_signal) {
    if (auto other = std::dynamic_pointer_cast<ElementAuthorizer>(running.authorizer)) {
      other->add(element, request.authorize_signal);
    } else if (has_any_handler(element, request.authorize_signal)) {
      post_settings_error(element,
                          "\"authorize\" handlers are connected, but the RTMP server on " + addr +
                              " was started by the application with " +
                              (running.authorizer ? "its own authorizer" : "no authorizer") +
                              ": the handlers would never be asked",
                          "");
      return nullptr;
    } else {
      GST_INFO_OBJECT(element, "sharing %s, started by the application: \"authorize\" is not emitted", addr.c_str());
    }
  }
  return server;
}

void release_server(GstElement* element, const std::shared_ptr<Server>& server) {
  if (!server) return;
  if (auto hub = std::dynamic_pointer_cast<ElementAuthorizer>(server->config().authorizer)) hub->remove(element);
}

}  // namespace grtmp::gst
