// grtmp-test-server: the library's Server alone (no GStreamer), for
// end-to-end tests of the protocol layer. Prints "PORT <n>" once bound,
// runs until SIGINT/SIGTERM or stdin closes (with --stdin).
//
//   grtmp-test-server [--host H] [--port P] [--gop-cache 0|1] [--missing notfound|wait]
//                     [--conflict reject|takeover] [--keep-players 0|1] [--chunk-size N]
//                     [--max-connections N] [--max-message-size N] [--handshake-timeout MS]
//                     [--idle-timeout MS] [--publisher-timeout MS] [--stall-timeout MS] [--max-lag MS]
//                     [--queue-bytes N] [--threads N] [--log-level L] [--stats-on-exit]
//                     [--tls-port P --tls-cert F --tls-key F] [--no-plain] [--tokens FILE]
//                     [--max-connections-per-ip N] [--max-streams N] [--max-players N]
#include <glib-unix.h>
#include <glib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "grtmp/log.h"
#include "grtmp/server.h"

static gboolean on_signal(gpointer loop) {
  g_main_loop_quit(static_cast<GMainLoop*>(loop));
  return G_SOURCE_REMOVE;
}

int main(int argc, char** argv) {
  grtmp::ServerConfig cfg;
  cfg.port = 0;
  bool stats_on_exit = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "missing value for %s\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") cfg.host = next();
    else if (a == "--port") cfg.port = static_cast<uint16_t>(std::stoi(next()));
    else if (a == "--gop-cache") cfg.gop_cache = next() == "1";
    else if (a == "--missing") cfg.missing_stream = next() == "notfound" ? grtmp::MissingStreamPolicy::NotFound : grtmp::MissingStreamPolicy::Wait;
    else if (a == "--conflict") cfg.publish_conflict = next() == "takeover" ? grtmp::PublishConflictPolicy::TakeOver : grtmp::PublishConflictPolicy::Reject;
    else if (a == "--keep-players") cfg.keep_players_on_unpublish = next() == "1";
    else if (a == "--chunk-size") cfg.chunk_size = std::stoul(next());
    else if (a == "--max-connections") cfg.max_connections = std::stoul(next());
    else if (a == "--max-message-size") cfg.max_message_size = std::stoul(next());
    else if (a == "--handshake-timeout") cfg.handshake_timeout_ms = std::stoul(next());
    else if (a == "--idle-timeout") cfg.idle_timeout_ms = std::stoul(next());
    else if (a == "--publisher-timeout") cfg.publisher_timeout_ms = std::stoul(next());
    else if (a == "--stall-timeout") cfg.player_stall_timeout_ms = std::stoul(next());
    else if (a == "--max-lag") cfg.player_max_lag_ms = std::stoul(next());
    else if (a == "--queue-bytes") cfg.player_queue_max_bytes = std::stoull(next());
    else if (a == "--threads") cfg.loop_threads = std::stoul(next());
    else if (a == "--log-level") {
      grtmp::log::Level l;
      if (!grtmp::log::parse_level(next(), l)) return 2;
      grtmp::log::set_level(l);
    } else if (a == "--stats-on-exit") stats_on_exit = true;
    else if (a == "--tls-port") { cfg.tls = true; cfg.tls_port = static_cast<uint16_t>(std::stoi(next())); }
    else if (a == "--tls-cert") cfg.tls_cert_file = next();
    else if (a == "--tls-key") cfg.tls_key_file = next();
    else if (a == "--no-plain") cfg.plain = false;
    else if (a == "--tokens") {
      auto t = std::make_shared<grtmp::TokenAuthorizer>();
      GError* e = nullptr;
      if (!t->load(next(), &e)) { fprintf(stderr, "error: %s\n", e->message); return 2; }
      cfg.authorizer = t;
    }
    else if (a == "--max-connections-per-ip") cfg.max_connections_per_ip = std::stoul(next());
    else if (a == "--max-streams") cfg.max_streams = std::stoul(next());
    else if (a == "--max-players") cfg.max_players_per_stream = std::stoul(next());
    else if (a == "--batch-ms") cfg.output_batch_ms = std::stoul(next());
    else {
      fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  // Library logs go to stderr through GLib; show info and up.
  g_setenv("G_MESSAGES_DEBUG", "grtmp", FALSE);
  GError* err = nullptr;
  grtmp::Server server(cfg);
  if (!server.start(&err)) {
    fprintf(stderr, "error: %s\n", err->message);
    return 1;
  }
  printf("PORT %u\n", server.port());
  if (cfg.tls) printf("TLS_PORT %u\n", server.tls_port());
  fflush(stdout);
  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  g_unix_signal_add(SIGINT, on_signal, loop);
  g_unix_signal_add(SIGTERM, on_signal, loop);
  g_main_loop_run(loop);
  auto s = server.stats();
  server.stop();
  if (stats_on_exit)
    printf("STATS connections_total=%lu handshake_failures=%lu protocol_errors=%lu rejected=%lu bytes_in=%lu bytes_out=%lu dropped=%lu auth_denials=%lu tls_failures=%lu slow_players_closed=%lu\n",
           (unsigned long)s.connections_total, (unsigned long)s.handshake_failures, (unsigned long)s.protocol_errors,
           (unsigned long)s.rejected_connections, (unsigned long)s.bytes_in, (unsigned long)s.bytes_out,
           (unsigned long)s.dropped_messages, (unsigned long)s.auth_denials, (unsigned long)s.tls_failures,
           (unsigned long)s.slow_players_closed);
  g_main_loop_unref(loop);
  return 0;
}
