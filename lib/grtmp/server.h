// The RTMP server: listening sockets on GIO, event-loop threads, the
// sessions and the stream registry. A process can run several servers;
// Server::acquire() shares one server per listening address.
#pragma once

#include <glib.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "grtmp/config.h"
#include "grtmp/registry.h"

namespace grtmp {

struct ServerStats {
  uint64_t connections_total = 0;   // accepted since start
  uint32_t connections_current = 0;
  uint32_t publishers = 0;
  uint32_t players = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t handshake_failures = 0;
  uint64_t rejected_connections = 0;  // over max_connections
  uint64_t dropped_messages = 0;      // by slow players
  uint64_t protocol_errors = 0;       // connections closed for bad input
  uint64_t auth_denials = 0;          // connect/publish/play refused by the authorizer
  uint64_t tls_failures = 0;          // TLS handshakes that failed
  uint64_t slow_players_closed = 0;   // players closed for stalling or lagging behind live
};

class Server {
 public:
  explicit Server(const ServerConfig& config);
  ~Server();  // stops
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // One server per host:port in the process: returns the running one or
  // starts a new one. Port 0 always starts a new server.
  static std::shared_ptr<Server> acquire(const ServerConfig& config, GError** error);

  // Binds and starts the loop threads (or attaches to config.main_context).
  // Errors: G_IO_ERROR_ADDRESS_IN_USE, bad address (G_IO_ERROR_INVALID_ARGUMENT).
  bool start(GError** error);
  // Closes every connection and joins the threads. Idempotent.
  void stop();
  bool running() const;

  uint16_t port() const;      // bound plain port (the ephemeral one for port 0); 0 if plain is off
  uint16_t tls_port() const;  // bound RTMPS port; 0 if TLS is off
  const ServerConfig& config() const;
  Registry& registry();
  ServerStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace grtmp
