// rtmp:// and rtmps:// URLs: rtmp://host[:port]/app[/stream[?query]]
#pragma once

#include <glib.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace grtmp {

struct Url {
  std::string scheme;    // "rtmp" or "rtmps"
  std::string host;      // without brackets for IPv6
  uint16_t port = 1935;  // 1935 for rtmp, 443 for rtmps when absent
  std::string app;       // first path segment
  std::string stream;    // the rest of the path (may contain '/'), without the query
  std::string query;     // after '?', without it
  bool tls() const { return scheme == "rtmps"; }
  // "rtmp://host[:port]/app" as sent in connect's tcUrl.
  std::string tc_url() const;
  // Stream name as sent in publish/play: stream + ("?" + query if any).
  std::string stream_with_query() const;
  // The registry key "app/stream".
  std::string key() const { return app + "/" + stream; }
  std::string to_string() const;
};

// Errors: GRTMP_ERROR_MALFORMED naming what is wrong (scheme, host, port, app).
// A URL without a stream is valid (stream empty); callers that need one check.
bool parse_url(std::string_view text, Url& out, GError** error);

}  // namespace grtmp
