#include "grtmp/url.h"

#include <gio/gio.h>

#include "grtmp/error.h"

namespace grtmp {
namespace {

uint16_t default_port(std::string_view scheme) { return scheme == "rtmps" ? 443 : 1935; }

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = g_ascii_tolower(c);
  return r;
}

bool fail(GError** error, const char* what, std::string_view text) {
  g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "bad RTMP URL \"%.*s\": %s",
              static_cast<int>(text.size()), text.data(), what);
  return false;
}

bool parse_port(std::string_view s, uint16_t& out) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (!g_ascii_isdigit(c)) return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v == 0 || v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

std::string host_for_url(const std::string& host) {
  if (host.find(':') != std::string::npos) return "[" + host + "]";
  return host;
}

}  // namespace

std::string Url::tc_url() const {
  std::string r = scheme + "://" + host_for_url(host);
  if (port != default_port(scheme)) r += ":" + std::to_string(port);
  r += "/" + app;
  return r;
}

std::string Url::stream_with_query() const {
  if (query.empty()) return stream;
  return stream + "?" + query;
}

std::string Url::to_string() const {
  std::string r = tc_url();
  if (!stream.empty()) r += "/" + stream;
  if (!query.empty()) r += "?" + query;
  return r;
}

bool parse_url(std::string_view text, Url& out, GError** error) {
  if (text.empty()) return fail(error, "empty URL", text);
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return fail(error, "contains whitespace or control characters", text);
  }

  size_t sep = text.find("://");
  if (sep == std::string_view::npos) return fail(error, "missing scheme (rtmp:// or rtmps://)", text);
  std::string scheme = lower(text.substr(0, sep));
  if (scheme != "rtmp" && scheme != "rtmps")
    return fail(error, "unknown scheme (only rtmp and rtmps are supported)", text);

  std::string_view rest = text.substr(sep + 3);
  size_t auth_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view path = auth_end == std::string_view::npos ? std::string_view{} : rest.substr(auth_end);

  if (authority.find('@') != std::string_view::npos)
    return fail(error, "credentials in the URL are not supported", text);

  std::string host;
  uint16_t port = default_port(scheme);
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail(error, "unterminated IPv6 address in host", text);
    host = std::string(authority.substr(1, close - 1));
    if (host.empty()) return fail(error, "empty host", text);
    if (!g_hostname_is_ip_address(host.c_str()) || host.find(':') == std::string::npos)
      return fail(error, "bad IPv6 address in host", text);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail(error, "unexpected characters after the IPv6 host", text);
      if (!parse_port(after.substr(1), port)) return fail(error, "bad port", text);
    }
  } else {
    size_t colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos)
      return fail(error, "bad host or port (an IPv6 address needs brackets)", text);
    host = std::string(authority.substr(0, colon));
    if (host.empty()) return fail(error, "empty host", text);
    if (colon != std::string_view::npos && !parse_port(authority.substr(colon + 1), port))
      return fail(error, "bad port", text);
    for (char c : host) {
      if (c == '[' || c == ']') return fail(error, "bad host", text);
    }
  }

  // Path: /app[/stream...][?query]. The first '?' ends the path.
  std::string_view query;
  size_t q = path.find('?');
  if (q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (path.size() < 2 || path.front() != '/') return fail(error, "missing app", text);
  path.remove_prefix(1);
  size_t slash = path.find('/');
  std::string_view app = path.substr(0, slash);
  if (app.empty()) return fail(error, "missing app", text);
  std::string_view stream = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);

  out.scheme = std::move(scheme);
  out.host = std::move(host);
  out.port = port;
  out.app = std::string(app);
  out.stream = std::string(stream);
  out.query = std::string(query);
  return true;
}

}  // namespace grtmp
