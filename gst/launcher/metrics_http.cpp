#include "metrics_http.h"

#include <libsoup/soup.h>

#include "json_log.h"
#include "options.h"

namespace grtmp::launcher {

namespace {

using jlog::quote;

std::string num(uint64_t v) { return std::to_string(v); }

std::string fixed(double v, int decimals) {
  if (!(v == v)) v = 0;
  char fmt[16];
  g_snprintf(fmt, sizeof fmt, "%%.%df", decimals);
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd(buf, sizeof buf, fmt, v);
  return buf;
}

// Prometheus label value: backslash, double quote and newline escaped.
std::string label(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

struct LiveTotals {
  uint32_t publishers = 0;
  uint32_t players = 0;
  uint64_t dropped = 0;
};

LiveTotals totals(const MetricsInput& in) {
  LiveTotals t;
  for (auto& s : in.streams) {
    if (s.live) t.publishers++;
    t.players += stream_players(s);
  }
  // The registry's total: present and departed subscribers, counted once.
  t.dropped = in.server.dropped_messages;
  return t;
}

void handle_request(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable*, gpointer user_data) {
  auto* self = static_cast<MetricsHttp*>(user_data);
  const char* method = soup_server_message_get_method(msg);
  if (g_strcmp0(method, "GET") != 0 && g_strcmp0(method, "HEAD") != 0) {
    soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, nullptr);
    soup_message_headers_append(soup_server_message_get_response_headers(msg), "Allow", "GET, HEAD");
    return;
  }
  std::string body;
  const char* type;
  if (g_strcmp0(path, "/stats") == 0) {
    body = render_stats_json(self->collect());
    type = "application/json";
  } else if (g_strcmp0(path, "/metrics") == 0) {
    body = render_prometheus(self->collect());
    type = "text/plain; version=0.0.4; charset=utf-8";
  } else {
    body = "not found: try /stats or /metrics\n";
    soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, nullptr);
    soup_server_message_set_response(msg, "text/plain", SOUP_MEMORY_COPY, body.data(), body.size());
    return;
  }
  soup_message_headers_append(soup_server_message_get_response_headers(msg), "Cache-Control", "no-store");
  soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, body.data(), body.size());
}

}  // namespace

uint32_t stream_players(const StreamInfo& info) {
  // RTMP play sessions only; the launcher's own pads are not players.
  return info.players;
}

std::string render_stats_json(const MetricsInput& in) {
  LiveTotals t = totals(in);
  std::string j = "{\"server\":{";
  j += "\"uptime\":" + fixed(in.uptime_s, 3);
  j += ",\"version\":" + quote(in.version);
  j += ",\"listen\":" + quote(in.listen);
  j += ",\"connections_current\":" + num(in.server.connections_current);
  j += ",\"connections_total\":" + num(in.server.connections_total);
  j += ",\"publishers\":" + num(t.publishers);
  j += ",\"players\":" + num(t.players);
  j += ",\"bytes_in\":" + num(in.server.bytes_in);
  j += ",\"bytes_out\":" + num(in.server.bytes_out);
  j += ",\"handshake_failures\":" + num(in.server.handshake_failures);
  j += ",\"rejected_connections\":" + num(in.server.rejected_connections);
  j += ",\"protocol_errors\":" + num(in.server.protocol_errors);
  j += ",\"auth_denials\":" + num(in.server.auth_denials);
  j += ",\"tls_failures\":" + num(in.server.tls_failures);
  j += ",\"slow_players_closed\":" + num(in.server.slow_players_closed);
  j += ",\"dropped_messages\":" + num(t.dropped);
  j += ",\"recordings_active\":" + num(in.router.recordings_active);
  j += "},\"streams\":[";
  bool first = true;
  for (auto& s : in.streams) {
    if (!s.live) continue;
    double up = s.publish_started_us > 0 ? (in.now_us - s.publish_started_us) / 1e6 : 0;
    double kbps = up > 0.05 ? (s.bytes_in * 8.0 / 1000.0) / up : 0;
    auto rec = in.router.recording_by_key.find(s.key);
    j += first ? "{" : ",{";
    first = false;
    j += "\"key\":" + quote(s.key);
    j += ",\"app\":" + quote(s.app);
    j += ",\"name\":" + quote(s.name);
    j += ",\"video_codec\":" + quote(s.video_codec);
    j += ",\"audio_codec\":" + quote(s.audio_codec);
    j += ",\"width\":" + num(s.width);
    j += ",\"height\":" + num(s.height);
    j += ",\"sample_rate\":" + num(s.sample_rate);
    j += ",\"channels\":" + num(s.channels);
    j += ",\"bitrate_kbps\":" + fixed(kbps, 1);
    j += ",\"bytes_in\":" + num(s.bytes_in);
    j += ",\"players\":" + num(stream_players(s));
    j += ",\"uptime_s\":" + fixed(up, 3);
    j += ",\"dropped_messages\":" + num(s.dropped_messages);
    j += ",\"recording\":";
    j += rec != in.router.recording_by_key.end() ? "true" : "false";
    j += ",\"file\":" + (rec != in.router.recording_by_key.end() ? quote(rec->second) : std::string("null"));
    j += "}";
  }
  j += "],\"relays\":[";
  first = true;
  for (auto& r : in.router.relays) {
    j += first ? "{" : ",{";
    first = false;
    j += "\"url\":" + quote(r.url);
    j += ",\"stream_key\":" + quote(r.stream_key);
    j += ",\"state\":" + quote(r.state);
    j += ",\"retries\":" + num(r.retries);
    j += "}";
  }
  j += "]}\n";
  return j;
}

std::string render_prometheus(const MetricsInput& in) {
  LiveTotals t = totals(in);
  std::string p;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& value) {
    p += "# HELP ";
    p += name;
    p += " ";
    p += help;
    p += "\n# TYPE ";
    p += name;
    p += " ";
    p += type;
    p += "\n";
    p += name;
    p += " ";
    p += value;
    p += "\n";
  };
  metric("grtmp_connections", "gauge", "RTMP connections open now.", num(in.server.connections_current));
  metric("grtmp_connections_total", "counter", "RTMP connections accepted since start.",
         num(in.server.connections_total));
  metric("grtmp_publishers", "gauge", "Streams with a publisher now.", num(t.publishers));
  metric("grtmp_players", "gauge", "RTMP players connected to streams now.", num(t.players));
  metric("grtmp_bytes_in_total", "counter", "Bytes received from RTMP peers.", num(in.server.bytes_in));
  metric("grtmp_bytes_out_total", "counter", "Bytes sent to RTMP peers.", num(in.server.bytes_out));
  metric("grtmp_dropped_messages_total", "counter", "Media messages dropped for slow players.", num(t.dropped));
  metric("grtmp_handshake_failures_total", "counter", "Connections that failed the RTMP handshake.",
         num(in.server.handshake_failures));
  metric("grtmp_rejected_connections_total", "counter", "Connections refused over -max-connections or -max-connections-per-ip.",
         num(in.server.rejected_connections));
  metric("grtmp_auth_denials_total", "counter", "Connects, publishes and plays refused by authorization.",
         num(in.server.auth_denials));
  metric("grtmp_tls_failures_total", "counter", "RTMPS connections whose TLS handshake failed or was below TLS 1.2.",
         num(in.server.tls_failures));
  metric("grtmp_slow_players_closed_total", "counter",
         "Players closed for staying behind live (-max-lag) or not reading at all.", num(in.server.slow_players_closed));
  metric("grtmp_recordings_active", "gauge", "FLV recordings being written.", num(in.router.recordings_active));
  metric("grtmp_uptime_seconds", "gauge", "Seconds since the launcher started.", fixed(in.uptime_s, 3));

  p += "# HELP grtmp_stream_players RTMP players of a live stream.\n# TYPE grtmp_stream_players gauge\n";
  for (auto& s : in.streams)
    if (s.live) p += "grtmp_stream_players{stream=\"" + label(s.key) + "\"} " + num(stream_players(s)) + "\n";
  p += "# HELP grtmp_stream_bytes_in_total Media bytes published on a live stream (this session).\n"
       "# TYPE grtmp_stream_bytes_in_total counter\n";
  for (auto& s : in.streams)
    if (s.live) p += "grtmp_stream_bytes_in_total{stream=\"" + label(s.key) + "\"} " + num(s.bytes_in) + "\n";
  p += "# HELP grtmp_relay_up Relay destination state (1 connected, 0 otherwise).\n# TYPE grtmp_relay_up gauge\n";
  for (auto& r : in.router.relays)
    p += "grtmp_relay_up{stream=\"" + label(r.stream_key) + "\",url=\"" + label(r.url) + "\"} " +
         (r.state == "connected" ? "1" : "0") + "\n";
  return p;
}

MetricsHttp::~MetricsHttp() { stop(); }

bool MetricsHttp::start(const std::string& addr, Provider provider, std::string& bound, GError** error) {
  std::string host, perr;
  uint16_t port = 0;
  if (!split_host_port(addr, 0, host, port, perr)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "bad -metrics-addr %s: %s", addr.c_str(),
                perr.c_str());
    return false;
  }
  GInetAddress* inet = g_inet_address_new_from_string(host.c_str());
  if (!inet) {
    GResolver* resolver = g_resolver_get_default();
    GList* list = g_resolver_lookup_by_name(resolver, host.c_str(), nullptr, error);
    g_object_unref(resolver);
    if (!list) return false;
    inet = G_INET_ADDRESS(g_object_ref(list->data));
    g_resolver_free_addresses(list);
  }
  provider_ = std::move(provider);
  server_ = soup_server_new("server-header", "gst-rtmp-server", nullptr);
  soup_server_add_handler(server_, nullptr, handle_request, this, nullptr);
  GSocketAddress* sa = g_inet_socket_address_new(inet, port);
  g_object_unref(inet);
  gboolean ok = soup_server_listen(server_, sa, (SoupServerListenOptions)0, error);
  g_object_unref(sa);
  if (!ok) {
    g_object_unref(server_);
    server_ = nullptr;
    return false;
  }
  bound = addr;
  GSList* uris = soup_server_get_uris(server_);
  if (uris) {
    GUri* u = static_cast<GUri*>(uris->data);
    const char* h = g_uri_get_host(u);
    std::string hs = h ? h : host;
    if (hs.find(':') != std::string::npos) hs = "[" + hs + "]";
    bound = hs + ":" + std::to_string(g_uri_get_port(u));
  }
  g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
  return true;
}

void MetricsHttp::stop() {
  if (!server_) return;
  soup_server_disconnect(server_);
  g_object_unref(server_);
  server_ = nullptr;
}

}  // namespace grtmp::launcher
