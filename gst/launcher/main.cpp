// gst-rtmp-server: the standalone RTMP server. A GStreamer pipeline with
// rtmpserversrc (which runs the grtmp server: publishers and players
// connect to it directly) plus, per published stream, a recording branch
// and relay branches (see router.h). JSON logs on stdout, optional HTTP
// metrics, graceful shutdown on SIGINT/SIGTERM.
//
// The launcher starts the grtmp server itself (Server::acquire with the
// full configuration: TLS, authorization, limits) before the pipeline;
// rtmpserversrc, given the same address and port, attaches to that server
// instead of starting its own (one server per host:port in a process).
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "grtmp/auth.h"
#include "grtmp/server.h"
#include "http_authorizer.h"
#include "guard.h"
#include "json_log.h"
#include "metrics_http.h"
#include "options.h"
#include "router.h"

using namespace grtmp::launcher;

namespace {

constexpr guint kShutdownTimeoutMs = 5000;

struct App {
  Options options;
  GMainLoop* loop = nullptr;
  GstElement* pipeline = nullptr;
  GstElement* src = nullptr;
  std::unique_ptr<Router> router;
  std::shared_ptr<grtmp::Server> server;
  MetricsHttp metrics;
  std::string listen;  // host:port actually listened on
  std::string tls_listen;  // host:port of the RTMPS listener; empty without TLS
  std::shared_ptr<grtmp::TokenAuthorizer> tokens;  // -auth-tokens (reloaded on SIGHUP)
  int64_t start_us = 0;
  bool shutting_down = false;
  bool finalized = false;
  int exit_code = 0;
  guint tick_id = 0;
};

std::string element_path(GstObject* obj) {
  if (!obj) return "";
  gchar* p = gst_object_get_path_string(obj);
  std::string s = p ? p : "";
  g_free(p);
  return s;
}

std::string host_port(const std::string& host, unsigned port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// Stops everything (from the main loop) and quits it.
void finalize(App* app) {
  if (app->finalized) return;
  app->finalized = true;
  if (app->tick_id) {
    g_source_remove(app->tick_id);
    app->tick_id = 0;
  }
  app->metrics.stop();
  if (app->pipeline) gst_element_set_state(app->pipeline, GST_STATE_NULL);
  app->server.reset();  // the element released its reference: the server stops here
  jlog::info("shutdown complete", {jlog::num("exit_code", app->exit_code)});
  g_main_loop_quit(app->loop);
}

void begin_shutdown(App* app, const char* why) {
  if (app->shutting_down) return;
  app->shutting_down = true;
  jlog::info("shutting down", {jlog::str("reason", why)});
  app->router->shutdown(kShutdownTimeoutMs, [app] { finalize(app); });
}

gboolean on_signal(gpointer data) {
  auto* app = static_cast<App*>(data);
  if (!app->shutting_down) {
    begin_shutdown(app, "signal");
  } else {
    jlog::warn("second signal: exiting without waiting for recordings");
    finalize(app);
  }
  return G_SOURCE_CONTINUE;
}

gboolean on_sigterm(gpointer data) {
  auto* app = static_cast<App*>(data);
  if (!app->shutting_down) {
    jlog::info("signal received", {jlog::str("signal", "SIGTERM")});
  }
  return on_signal(data);
}

gboolean on_sigint(gpointer data) {
  auto* app = static_cast<App*>(data);
  if (!app->shutting_down) {
    jlog::info("signal received", {jlog::str("signal", "SIGINT")});
  }
  return on_signal(data);
}

// SIGHUP: reload the token file. A file that does not load (missing, bad
// line) keeps the rules in force.
gboolean on_sighup(gpointer data) {
  auto* app = static_cast<App*>(data);
  jlog::info("signal received", {jlog::str("signal", "SIGHUP")});
  if (!app->tokens) {
    jlog::info("nothing to reload", {jlog::str("reason", "no -auth-tokens")});
    return G_SOURCE_CONTINUE;
  }
  GError* err = nullptr;
  if (app->tokens->reload(&err)) {
    jlog::info("tokens reloaded", {jlog::str("file", app->options.auth_tokens),
                                   jlog::unum("rules", app->tokens->rule_count())});
  } else {
    jlog::warn("tokens reload failed", {jlog::str("file", app->options.auth_tokens),
                                        jlog::str("error", err ? err->message : "?"),
                                        jlog::unum("rules", app->tokens->rule_count())});
    g_clear_error(&err);
  }
  return G_SOURCE_CONTINUE;
}

gboolean on_bus(GstBus*, GstMessage* msg, gpointer data) {
  auto* app = static_cast<App*>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
      if (app->router && app->router->handle_error(msg)) break;
      GError* err = nullptr;
      gchar* dbg = nullptr;
      gst_message_parse_error(msg, &err, &dbg);
      jlog::error("gstreamer error", {jlog::str("element", element_path(GST_MESSAGE_SRC(msg))),
                                      jlog::str("error", err ? err->message : "?"), jlog::str("debug", dbg ? dbg : "")});
      g_clear_error(&err);
      g_free(dbg);
      app->exit_code = 1;
      finalize(app);
      break;
    }
    case GST_MESSAGE_WARNING: {
      GError* err = nullptr;
      gchar* dbg = nullptr;
      gst_message_parse_warning(msg, &err, &dbg);
      jlog::warn("gstreamer warning", {jlog::str("element", element_path(GST_MESSAGE_SRC(msg))),
                                       jlog::str("warning", err ? err->message : "?"), jlog::str("debug", dbg ? dbg : "")});
      g_clear_error(&err);
      g_free(dbg);
      break;
    }
    case GST_MESSAGE_EOS:
      // Every branch ended (all publishers left): keep serving.
      jlog::debug("all branches reached EOS");
      break;
    default: break;
  }
  return G_SOURCE_CONTINUE;
}

gboolean on_tick(gpointer data) {
  auto* app = static_cast<App*>(data);
  app->router->tick(app->server.get());
  return G_SOURCE_CONTINUE;
}

// The server's configuration from the flags: every policy the element's
// properties carry, plus what only the launcher sets (TLS, authorization,
// access limits).
grtmp::ServerConfig server_config(const Options& o) {
  grtmp::ServerConfig c;
  c.host = o.listen_host;
  c.port = o.listen_port;
  c.chunk_size = o.chunk_size;
  c.gop_cache = o.gop_cache;
  c.handshake_timeout_ms = o.handshake_timeout_ms;
  c.idle_timeout_ms = o.idle_timeout_ms;
  c.publisher_timeout_ms = o.publisher_timeout_ms;
  c.player_max_lag_ms = o.max_lag_ms;
  c.max_connections = o.max_connections;
  c.max_message_size = o.max_message_size;
  if (!o.tls_listen.empty()) {
    c.tls = true;
    c.tls_host = o.tls_listen_host;
    c.tls_port = o.tls_listen_port;
    c.tls_cert_file = o.tls_cert;
    c.tls_key_file = o.tls_key;
  }
  c.max_connections_per_ip = o.max_connections_per_ip;
  c.max_streams = o.max_streams;
  c.max_players_per_stream = o.max_players;
  return c;
}

// Authorization chain: IP rules, then tokens, then HTTP callbacks (the
// first denial wins). Null when no flag asks for any. False (logged) when
// the token file cannot be loaded.
bool build_authorizer(App* app, std::shared_ptr<grtmp::Authorizer>& out) {
  const Options& o = app->options;
  auto chain = std::make_shared<grtmp::ChainAuthorizer>();
  if (!o.ip_rules.empty()) {
    auto ip = std::make_shared<grtmp::IpRulesAuthorizer>();
    for (auto& rule : o.ip_rules) {
      GError* err = nullptr;
      if (!ip->add_rule(rule, &err)) {  // checked by the option parser already
        jlog::error("bad IP rule", {jlog::str("rule", rule), jlog::str("error", err ? err->message : "?")});
        g_clear_error(&err);
        return false;
      }
    }
    chain->add(ip);
  }
  if (!o.auth_tokens.empty()) {
    auto tokens = std::make_shared<grtmp::TokenAuthorizer>();
    GError* err = nullptr;
    if (!tokens->load(o.auth_tokens, &err)) {
      jlog::error("cannot load token file",
                  {jlog::str("file", o.auth_tokens), jlog::str("error", err ? err->message : "?")});
      g_clear_error(&err);
      return false;
    }
    app->tokens = tokens;
    chain->add(tokens);
  }
  if (o.has_http_callbacks()) {
    grtmp::HttpAuthorizerOptions h;
    h.on_connect = o.on_connect;
    h.on_publish = o.on_publish;
    h.on_play = o.on_play;
    h.on_done = o.on_done;
    h.timeout_ms = o.auth_timeout_ms;
    chain->add(std::make_shared<grtmp::HttpAuthorizer>(h));
  }
  if (!chain->empty()) out = chain;
  return true;
}

// A certificate and a private key that do not belong together load without
// error; every handshake would then fail. One TLS handshake with an RTMPS
// listener on 127.0.0.1:port (the start-up probe) tells.
bool tls_self_check(uint16_t port, std::string& error) {
  GSocketAddress* sa = g_inet_socket_address_new_from_string("127.0.0.1", port);
  GSocketClient* client = g_socket_client_new();
  g_socket_client_set_timeout(client, 5);
  GError* err = nullptr;
  GSocketConnection* conn = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(sa), nullptr, &err);
  g_object_unref(sa);
  g_object_unref(client);
  bool ok = false;
  if (conn) {
    GIOStream* tls = g_tls_client_connection_new(G_IO_STREAM(conn), nullptr, &err);
    if (tls) {
      // Our own certificate: whoever signed it, it is the one we want to see.
      g_signal_connect(tls, "accept-certificate",
                       G_CALLBACK(+[](GTlsConnection*, GTlsCertificate*, GTlsCertificateFlags, gpointer) -> gboolean {
                         return TRUE;
                       }),
                       nullptr);
      ok = g_tls_connection_handshake(G_TLS_CONNECTION(tls), nullptr, &err);
      g_io_stream_close(tls, nullptr, nullptr);
      g_object_unref(tls);
    }
    g_object_unref(conn);
  }
  if (!ok) error = err ? err->message : "unknown error";
  g_clear_error(&err);
  return ok;
}

std::string callbacks_list(const Options& o) {
  std::string s;
  auto add = [&s](const std::string& url, const char* name) {
    if (url.empty()) return;
    if (!s.empty()) s += ",";
    s += name;
  };
  add(o.on_connect, "connect");
  add(o.on_publish, "publish");
  add(o.on_play, "play");
  add(o.on_done, "done");
  return s;
}

bool set_prop(GstElement* e, const char* name, const std::string& value, bool required) {
  if (!g_object_class_find_property(G_OBJECT_GET_CLASS(e), name)) {
    if (required)
      jlog::warn("element property missing", {jlog::str("element", GST_OBJECT_NAME(e)), jlog::str("property", name)});
    return false;
  }
  gst_util_set_object_arg(G_OBJECT(e), name, value.c_str());
  return true;
}

MetricsInput collect(App* app) {
  MetricsInput in;
  in.version = version_string();
  in.listen = app->listen;
  in.now_us = g_get_monotonic_time();
  in.uptime_s = (in.now_us - app->start_us) / 1e6;
  if (app->server) {
    in.have_server = true;
    in.server = app->server->stats();
    in.streams = app->server->registry().list();
  }
  if (app->router) in.router = app->router->snapshot();
  return in;
}

int run(App* app) {
  const Options& o = app->options;
  if (o.record_all) {
    if (g_mkdir_with_parents(o.record_dir.c_str(), 0755) != 0 || g_access(o.record_dir.c_str(), W_OK) != 0) {
      jlog::error("cannot use record directory", {jlog::str("dir", o.record_dir), jlog::str("error", g_strerror(errno))});
      return 1;
    }
  }
  app->pipeline = gst_pipeline_new("gst-rtmp-server");
  app->src = gst_element_factory_make("rtmpserversrc", "rtmpserversrc");
  // Loading the plugin installed its GStreamer log sink: take the library's logs back.
  jlog::install(o.level);
  if (!app->src) {
    jlog::error("GStreamer element rtmpserversrc not found",
                {jlog::str("hint", "install the grtmp plugin or set GST_PLUGIN_PATH to its directory")});
    return 1;
  }
  std::vector<const char*> needed = {"queue"};
  if (o.record_all) needed.push_back("filesink");
  if (!o.relay_to.empty()) {
    needed.push_back("tee");
    needed.push_back("rtmpclientsink");
  }
  if (o.record_all && !o.relay_to.empty()) needed.push_back("tee");
  for (const char* f : needed) {
    GstElementFactory* factory = gst_element_factory_find(f);
    if (!factory) {
      jlog::error("GStreamer element not found", {jlog::str("element", f)});
      return 1;
    }
    gst_object_unref(factory);
  }

  // The server, started here with the whole configuration. Any failure —
  // address in use, a certificate or key that does not load, a token file
  // that does not parse — is fatal: nothing listens, exit 1.
  grtmp::ServerConfig config = server_config(o);
  if (!build_authorizer(app, config.authorizer)) return 1;
  GError* err = nullptr;
  if (config.tls) {
    // Certificate check first, on a throw-away RTMPS-only server on a free
    // loopback port, so that nothing serves before the pair is known good.
    grtmp::ServerConfig probe_config = config;
    probe_config.host = probe_config.tls_host = "127.0.0.1";
    probe_config.plain = false;
    probe_config.port = probe_config.tls_port = 0;
    probe_config.loop_threads = 1;
    probe_config.authorizer = nullptr;
    probe_config.max_connections_per_ip = 0;
    std::string why;
    jlog::install(grtmp::log::Level::Error);  // the probe's own records are noise
    {
      grtmp::Server probe(probe_config);
      if (probe.start(&err)) {
        if (!tls_self_check(probe.tls_port(), why))
          why = "TLS self-check failed (does the key " + o.tls_key + " belong to the certificate " + o.tls_cert +
                "?): " + why;
      }
      // A start error (the certificate does not load) is reported by acquire() below.
      g_clear_error(&err);
    }
    jlog::install(o.level);
    if (!why.empty()) {
      jlog::error("server failed to start",
                  {jlog::str("addr", host_port(o.listen_host, o.listen_port)),
                   jlog::str("tls_addr", host_port(o.tls_listen_host, o.tls_listen_port)), jlog::str("error", why)});
      return 1;
    }
  }
  app->server = grtmp::Server::acquire(config, &err);
  if (!app->server) {
    std::string addr = host_port(o.listen_host, o.listen_port);
    std::string error = err ? err->message : "unknown error";
    g_clear_error(&err);
    if (config.tls)
      jlog::error("server failed to start", {jlog::str("addr", addr),
                                             jlog::str("tls_addr", host_port(o.tls_listen_host, o.tls_listen_port)),
                                             jlog::str("error", error)});
    else
      jlog::error("server failed to start", {jlog::str("addr", addr), jlog::str("error", error)});
    return 1;
  }
  // Port 0: the server registered itself under the port it got; the element
  // asks for exactly that host:port and so shares it.
  const uint16_t port = app->server->port();
  if (config.tls) app->tls_listen = host_port(o.tls_listen_host, app->server->tls_port());

  set_prop(app->src, "address", o.listen_host, true);
  set_prop(app->src, "port", std::to_string(port), true);
  set_prop(app->src, "stream-key", "", false);
  set_prop(app->src, "eos-on-unpublish", "true", true);
  set_prop(app->src, "chunk-size", std::to_string(o.chunk_size), true);
  set_prop(app->src, "gop-cache", o.gop_cache ? "true" : "false", true);
  set_prop(app->src, "handshake-timeout", std::to_string(o.handshake_timeout_ms), true);
  set_prop(app->src, "idle-timeout", std::to_string(o.idle_timeout_ms), true);
  set_prop(app->src, "publisher-timeout", std::to_string(o.publisher_timeout_ms), true);
  set_prop(app->src, "max-lag", std::to_string(o.max_lag_ms), true);
  set_prop(app->src, "max-connections", std::to_string(o.max_connections), true);
  set_prop(app->src, "max-message-size", std::to_string(o.max_message_size), true);
  gst_bin_add(GST_BIN(app->pipeline), app->src);

  app->router = std::make_unique<Router>(o, app->pipeline, app->src);
  app->router->attach();

  GstBus* bus = gst_pipeline_get_bus(GST_PIPELINE(app->pipeline));
  gst_bus_add_watch(bus, on_bus, app);

  GstStateChangeReturn ret = gst_element_set_state(app->pipeline, GST_STATE_PLAYING);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    std::string reason = "state change failed";
    if (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
      GError* gerr = nullptr;
      gst_message_parse_error(m, &gerr, nullptr);
      if (gerr) reason = gerr->message;
      g_clear_error(&gerr);
      gst_message_unref(m);
    }
    jlog::error("server failed to start", {jlog::str("addr", host_port(o.listen_host, port)), jlog::str("error", reason)});
    gst_bus_remove_watch(bus);
    gst_object_unref(bus);
    gst_element_set_state(app->pipeline, GST_STATE_NULL);
    app->server.reset();
    return 1;
  }

  guint current = 0;
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(app->src), "current-port"))
    g_object_get(app->src, "current-port", &current, nullptr);
  if (current == 0) current = port;
  if (current != port) {
    // The element did not attach to the launcher's server: it would run
    // without TLS, authorization and limits. Never serve like that.
    jlog::error("server failed to start",
                {jlog::str("addr", host_port(o.listen_host, port)),
                 jlog::str("error", "rtmpserversrc listens on port " + std::to_string(current) +
                                        ", not on the launcher's server")});
    gst_bus_remove_watch(bus);
    gst_object_unref(bus);
    gst_element_set_state(app->pipeline, GST_STATE_NULL);
    app->server.reset();
    return 1;
  }
  app->listen = host_port(o.listen_host, port);

  if (app->tls_listen.empty())
    jlog::info("server started", {jlog::str("addr", app->listen), jlog::str("version", version_string())});
  else
    jlog::info("server started", {jlog::str("addr", app->listen), jlog::str("tls_addr", app->tls_listen),
                                  jlog::str("version", version_string())});
  if (config.authorizer || o.max_connections_per_ip || o.max_streams || o.max_players)
    jlog::info("access control", {jlog::unum("ip_rules", o.ip_rules.size()),
                                  jlog::unum("token_rules", app->tokens ? app->tokens->rule_count() : 0),
                                  jlog::str("callbacks", callbacks_list(o)),
                                  jlog::unum("max_connections_per_ip", o.max_connections_per_ip),
                                  jlog::unum("max_streams", o.max_streams),
                                  jlog::unum("max_players", o.max_players)});

  if (!o.metrics_addr.empty()) {
    std::string bound;
    if (!app->metrics.start(o.metrics_addr, [app] { return collect(app); }, bound, &err)) {
      jlog::error("metrics server failed to start", {jlog::str("addr", o.metrics_addr),
                                                     jlog::str("error", err ? err->message : "?")});
      g_clear_error(&err);
      gst_bus_remove_watch(bus);
      gst_object_unref(bus);
      gst_element_set_state(app->pipeline, GST_STATE_NULL);
      app->server.reset();
      return 1;
    }
    jlog::info("metrics server listening", {jlog::str("addr", bound), jlog::str("stats", "http://" + bound + "/stats"),
                                            jlog::str("metrics", "http://" + bound + "/metrics")});
  }

  g_unix_signal_add(SIGINT, on_sigint, app);
  g_unix_signal_add(SIGTERM, on_sigterm, app);
  g_unix_signal_add(SIGHUP, on_sighup, app);
  app->tick_id = g_timeout_add(250, on_tick, app);

  g_main_loop_run(app->loop);

  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  return app->exit_code;
}

}  // namespace

// The launcher ships with its plugin: when GStreamer's registry does not
// know "grtmp" (not installed, GST_PLUGIN_PATH unset), load it from beside
// the executable (build tree: gst/launcher/../libgstgrtmp.so) or from the
// install directory.
static void ensure_plugin() {
  GstPlugin* found = gst_registry_find_plugin(gst_registry_get(), "grtmp");
  if (found) {
    gst_object_unref(found);
    return;
  }
  std::vector<std::string> candidates;
  if (gchar* exe = g_file_read_link("/proc/self/exe", nullptr)) {
    gchar* dir = g_path_get_dirname(exe);
    candidates.push_back(std::string(dir) + "/../libgstgrtmp.so");
    g_free(dir);
    g_free(exe);
  }
  candidates.push_back(GRTMP_PLUGIN_INSTALL_DIR "/libgstgrtmp.so");
  for (auto& path : candidates) {
    if (!g_file_test(path.c_str(), G_FILE_TEST_EXISTS)) continue;
    if (GstPlugin* p = gst_plugin_load_file(path.c_str(), nullptr)) {
      gst_object_unref(p);
      return;
    }
  }
}

int main(int argc, char** argv) {
  auto app = std::make_unique<App>();
  switch (parse_options(argc, argv, app->options)) {
    case ParseResult::Exit0: return 0;
    case ParseResult::Exit2: return 2;
    case ParseResult::Ok: break;
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  gst_init(nullptr, nullptr);
  ensure_plugin();
  jlog::install(app->options.level);
  guard_register();

  app->loop = g_main_loop_new(nullptr, FALSE);
  app->start_us = g_get_monotonic_time();
  int rc = run(app.get());

  if (app->pipeline) gst_element_set_state(app->pipeline, GST_STATE_NULL);
  if (app->router) app->router->stop();
  // Work handed to the main loop after it quit (pad-removed at NULL, ...)
  // holds references: run it, now as no-ops.
  for (int i = 0; i < 1000 && g_main_context_iteration(nullptr, FALSE); i++) {
  }
  app->router.reset();
  if (app->pipeline) {
    gst_element_set_state(app->pipeline, GST_STATE_NULL);
    gst_object_unref(app->pipeline);
  }
  app->server.reset();
  g_main_loop_unref(app->loop);
  app.reset();
  gst_deinit();  // lets GST_TRACERS=leaks report what is left
  return rc;
}
