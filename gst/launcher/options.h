// Command line of gst-rtmp-server: go-rtmp's flags (-listen, -log-level,
// -record-all, -record-dir, -version) plus relay, metrics and the server
// policies. Both -flag and --flag, "-flag value" and "-flag=value" work;
// boolean flags may stand alone ("-record-all") or take true/false.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "grtmp/log.h"

namespace grtmp::launcher {

struct Options {
  std::string listen = "localhost:1935";
  std::string log_level = "info";
  bool record_all = false;
  std::string record_dir = "./recordings";
  std::vector<std::string> relay_to;
  uint32_t chunk_size = 4096;
  std::string metrics_addr;  // empty: no HTTP endpoint
  bool version = false;
  bool help = false;

  // Server policies (defaults from grtmp::ServerConfig).
  bool gop_cache = true;
  uint32_t handshake_timeout_ms = 10000;
  uint32_t idle_timeout_ms = 60000;
  uint32_t publisher_timeout_ms = 15000;
  uint32_t max_lag_ms = 30000;
  uint32_t max_connections = 10000;
  uint32_t max_message_size = 16u << 20;

  // Secure ingest (docs/security.md).
  std::string tls_listen;  // empty: no RTMPS listener
  std::string tls_cert;    // PEM certificate (chain)
  std::string tls_key;     // PEM private key
  std::string auth_tokens;  // token file (TokenAuthorizer); reloaded on SIGHUP
  std::string on_connect, on_publish, on_play, on_done;  // HTTP callbacks (HttpAuthorizer)
  uint32_t auth_timeout_ms = 5000;
  // IP rules in command-line order, as IpRulesAuthorizer lines:
  // "allow publish 10.0.0.0/8", "deny play all".
  std::vector<std::string> ip_rules;
  uint32_t max_connections_per_ip = 0;  // 0 = unlimited
  uint32_t max_streams = 0;
  uint32_t max_players = 0;

  // Derived from the flags by parse().
  grtmp::log::Level level = grtmp::log::Level::Info;
  std::string listen_host = "127.0.0.1";  // "localhost" -> 127.0.0.1, "" -> 0.0.0.0
  uint16_t listen_port = 1935;
  std::string tls_listen_host;  // from -tls-listen (same rules as -listen)
  uint16_t tls_listen_port = 0;

  bool has_http_callbacks() const {
    return !on_connect.empty() || !on_publish.empty() || !on_play.empty() || !on_done.empty();
  }
};

enum class ParseResult { Ok, Exit0, Exit2 };

// Parses argv (without the program name handling: argv[0] is skipped).
// Exit0 for -help (usage already printed to stdout) and -version (version
// printed); Exit2 with the reason and the usage printed to stderr.
ParseResult parse_options(int argc, char** argv, Options& out);

// The usage text: every flag with its default.
std::string usage_text(const char* prog);

// "host:port" with IPv6 in brackets; "localhost" -> 127.0.0.1, empty host
// -> 0.0.0.0; a missing port takes default_port.
bool split_host_port(const std::string& s, uint16_t default_port, std::string& host, uint16_t& port,
                     std::string& error);

// Go-style durations: "10s", "500ms", "1m30s", "1.5s", "2h"; a plain number
// is seconds. Result in milliseconds (rounded).
bool parse_duration_ms(const std::string& s, uint32_t& out_ms, std::string& error);

// A duration in milliseconds back in Go's form ("10s", "500ms", "1m0s").
std::string format_duration_ms(uint32_t ms);

std::string version_string();

}  // namespace grtmp::launcher
