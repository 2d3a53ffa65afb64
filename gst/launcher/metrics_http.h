// -metrics-addr: a libsoup 3 HTTP server on the main context with
//   GET /stats    JSON: server counters, live streams, relays
//   GET /metrics  Prometheus text format
// The documents are rendered from a Snapshot taken on each request.
#pragma once

#include <gio/gio.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "grtmp/registry.h"
#include "grtmp/server.h"
#include "router.h"

typedef struct _SoupServer SoupServer;

namespace grtmp::launcher {

struct MetricsInput {
  std::string version;
  std::string listen;         // host:port of the RTMP server
  double uptime_s = 0;        // of the launcher
  bool have_server = false;
  ServerStats server;
  std::vector<StreamInfo> streams;
  RouterSnapshot router;
  int64_t now_us = 0;         // g_get_monotonic_time()
};

// Players of a stream: subscribers minus the launcher's own source pad
// (rtmpserversrc subscribes to every live stream).
uint32_t stream_players(const StreamInfo& info);

std::string render_stats_json(const MetricsInput& in);
std::string render_prometheus(const MetricsInput& in);

class MetricsHttp {
 public:
  using Provider = std::function<MetricsInput()>;
  MetricsHttp() = default;
  ~MetricsHttp();
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  // addr "host:port" (port 0 = any). bound receives "host:port" actually used.
  bool start(const std::string& addr, Provider provider, std::string& bound, GError** error);
  void stop();
  MetricsInput collect() const { return provider_(); }

 private:
  SoupServer* server_ = nullptr;
  Provider provider_;
};

}  // namespace grtmp::launcher
