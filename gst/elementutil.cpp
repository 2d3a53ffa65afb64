#include "elementutil.h"

#include <gio/gio.h>

#include "grtmp/error.h"

namespace grtmp::gst {

GstClockTime running_time_now(GstElement* element) {
  GstClock* clock = gst_element_get_clock(element);
  if (!clock) return GST_CLOCK_TIME_NONE;
  GstClockTime now = gst_clock_get_time(clock);
  GstClockTime base = gst_element_get_base_time(element);
  gst_object_unref(clock);
  if (!GST_CLOCK_TIME_IS_VALID(now) || !GST_CLOCK_TIME_IS_VALID(base)) return GST_CLOCK_TIME_NONE;
  return now > base ? now - base : 0;
}

GstStructure* server_stats_structure(const std::shared_ptr<Server>& server) {
  GstStructure* s = gst_structure_new_empty("grtmp-server-stats");
  ServerStats st;
  std::vector<StreamInfo> streams;
  if (server) {
    st = server->stats();
    streams = server->registry().list();
  }
  gst_structure_set(s, "connections", G_TYPE_UINT, st.connections_current, "connections-total", G_TYPE_UINT64,
                    st.connections_total, "publishers", G_TYPE_UINT, st.publishers, "players", G_TYPE_UINT,
                    st.players, "bytes-in", G_TYPE_UINT64, st.bytes_in, "bytes-out", G_TYPE_UINT64, st.bytes_out,
                    "dropped-messages", G_TYPE_UINT64, st.dropped_messages, "protocol-errors", G_TYPE_UINT64,
                    st.protocol_errors, "rejected-connections", G_TYPE_UINT64, st.rejected_connections, "auth-denials", G_TYPE_UINT64,
                    st.auth_denials, "tls-failures", G_TYPE_UINT64, st.tls_failures, "slow-players-closed", G_TYPE_UINT64,
                    st.slow_players_closed, nullptr);
  GValue array = G_VALUE_INIT;
  g_value_init(&array, GST_TYPE_ARRAY);
  for (const StreamInfo& i : streams) {
    GstStructure* e = gst_structure_new("stream", "key", G_TYPE_STRING, i.key.c_str(), "live", G_TYPE_BOOLEAN,
                                        gboolean(i.live), "video-codec", G_TYPE_STRING, i.video_codec.c_str(),
                                        "audio-codec", G_TYPE_STRING, i.audio_codec.c_str(), "width", G_TYPE_UINT,
                                        i.width, "height", G_TYPE_UINT, i.height, "subscribers", G_TYPE_UINT,
                                        i.subscribers, "bytes-in", G_TYPE_UINT64, i.bytes_in, "messages-in",
                                        G_TYPE_UINT64, i.messages_in, "dropped-messages", G_TYPE_UINT64,
                                        i.dropped_messages, nullptr);
    GValue v = G_VALUE_INIT;
    g_value_init(&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed(&v, e);
    gst_value_array_append_and_take_value(&array, &v);
  }
  gst_structure_take_value(s, "streams", &array);
  return s;
}

GstResourceError resource_error_for(const GError* error, bool writing) {
  if (error && error->domain == GRTMP_ERROR) {
    switch (error->code) {
      case GRTMP_ERROR_NOT_FOUND: return GST_RESOURCE_ERROR_NOT_FOUND;
      case GRTMP_ERROR_UNAUTHORIZED: return GST_RESOURCE_ERROR_NOT_AUTHORIZED;
      case GRTMP_ERROR_BAD_NAME: return GST_RESOURCE_ERROR_BUSY;
      default: break;
    }
  }
  if (error && error->domain == G_IO_ERROR) {
    switch (error->code) {
      case G_IO_ERROR_ADDRESS_IN_USE: return GST_RESOURCE_ERROR_BUSY;
      case G_IO_ERROR_HOST_NOT_FOUND: return GST_RESOURCE_ERROR_NOT_FOUND;
      case G_IO_ERROR_PERMISSION_DENIED: return GST_RESOURCE_ERROR_NOT_AUTHORIZED;
      default: break;
    }
  }
  return writing ? GST_RESOURCE_ERROR_OPEN_WRITE : GST_RESOURCE_ERROR_OPEN_READ;
}

void post_resource_error(GstElement* element, GstResourceError code, const std::string& text,
                         const std::string& debug, const char* file, const char* function, int line) {
  gst_element_message_full(element, GST_MESSAGE_ERROR, GST_RESOURCE_ERROR, code, g_strdup(text.c_str()),
                           debug.empty() ? nullptr : g_strdup(debug.c_str()), file, function, line);
}

std::string listen_error_text(const std::string& host, unsigned port, const GError* error) {
  const std::string where = host + ":" + std::to_string(port);
  std::string reason = error_text(error);
  if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE)) {
    reason = "Address already in use";
  } else {
    const std::string prefix = "Could not listen on " + where + ": ";
    if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
  }
  return "Could not listen on " + where + ": " + reason;
}

std::string redacted_url(const Url& url) {
  if (url.host.empty()) return "";
  Url u = url;
  const bool query = !u.query.empty();
  u.query.clear();
  return u.to_string() + (query ? "?..." : "");
}

std::string redact_queries(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); i++) {
    out += text[i];
    if (text[i] != '?') continue;
    size_t end = i + 1;
    while (end < text.size() && !g_ascii_isspace(text[end]) && text[end] != '"' && text[end] != '\'') end++;
    if (end > i + 1) out += "...";
    i = end - 1;
  }
  return out;
}

std::string tls_flags_text(GTlsCertificateFlags flags) {
  if (!flags) return "0";
  auto* klass = static_cast<GFlagsClass*>(g_type_class_ref(G_TYPE_TLS_CERTIFICATE_FLAGS));
  std::string r;
  for (guint i = 0; i < klass->n_values && r.empty(); i++)
    if (klass->values[i].value == guint(flags)) r = klass->values[i].value_nick;  // "validate-all"
  if (r.empty()) {
    for (guint i = 0; i < klass->n_values; i++) {
      const guint v = klass->values[i].value;
      if (!v || (v & (v - 1)) || !(guint(flags) & v)) continue;  // single flags only
      if (!r.empty()) r += "+";
      r += klass->values[i].value_nick;
    }
  }
  g_type_class_unref(klass);
  return r;
}

std::string error_text(const GError* error) {
  return error && error->message ? error->message : "unknown error";
}

}  // namespace grtmp::gst
