#include "exitcode.h"

#include <gio/gio.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "grtmp/error.h"

namespace grtmp::cli {

namespace {

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// The server's status code in the text decides when the library code is
// the generic one (REFUSED) or unknown.
int exit_code_for_text(const std::string& m) {
  if (contains(m, "BadName")) return kExitBadName;
  if (contains(m, "StreamNotFound")) return kExitNotFound;
  if (contains(m, "Unauthorized") || contains(m, "not authorized") || contains(m, "Not authorized"))
    return kExitUnauthorized;
  if (contains(m, "Connection refused") || contains(m, "No route to host") || contains(m, "unreachable") ||
      contains(m, "Name or service not known") || contains(m, "Could not resolve"))
    return kExitUnreachable;
  if (contains(m, "timed out") || contains(m, "Timed out") || contains(m, "Timeout")) return kExitTimeout;
  return kExitOther;
}

}  // namespace

int exit_code_for_error(GQuark domain, int code, const std::string& message) {
  if (domain == GRTMP_ERROR) {
    switch (code) {
      case GRTMP_ERROR_NOT_FOUND: return kExitNotFound;
      case GRTMP_ERROR_BAD_NAME: return kExitBadName;
      case GRTMP_ERROR_UNAUTHORIZED: return kExitUnauthorized;
      case GRTMP_ERROR_TIMEOUT: return kExitTimeout;
      case GRTMP_ERROR_MALFORMED:
        // A URL that does not parse is bad input; bytes that do not parse are not.
        return contains(message, "URL") || contains(message, "url") ? kExitUsage : kExitOther;
      case GRTMP_ERROR_REFUSED: {
        // connect / publish / play refused with a code we know better.
        int c = exit_code_for_text(message);
        return c == kExitUnreachable || c == kExitTimeout ? kExitOther : c;
      }
      default: return kExitOther;
    }
  }
  if (domain == G_IO_ERROR) {
    switch (code) {
      case G_IO_ERROR_CONNECTION_REFUSED:
      case G_IO_ERROR_HOST_NOT_FOUND:
      case G_IO_ERROR_HOST_UNREACHABLE:
      case G_IO_ERROR_NETWORK_UNREACHABLE:
      case G_IO_ERROR_PROXY_FAILED:
        return kExitUnreachable;
      case G_IO_ERROR_TIMED_OUT: return kExitTimeout;
      case G_IO_ERROR_NOT_FOUND: return kExitUnreachable;  // e.g. no address for the host
      default: break;
    }
    int c = exit_code_for_text(message);
    return c == kExitUnreachable || c == kExitTimeout ? c : kExitOther;
  }
  if (domain == G_RESOLVER_ERROR) return kExitUnreachable;
  return exit_code_for_text(message);
}

int exit_code_for_rtmp_bus_error(const GError* error, const char* debug) {
  std::string text = error && error->message ? error->message : "";
  // "domain grtmp-error-quark, code 8" (see gst/rtmpclientsink.cpp post_error).
  if (debug) {
    const char* d = strstr(debug, "domain ");
    const char* c = d ? strstr(d, ", code ") : nullptr;
    if (d && c) {
      std::string quark(d + 7, c - (d + 7));
      GQuark q = g_quark_try_string(quark.c_str());
      char* end = nullptr;
      long code = strtol(c + 7, &end, 10);
      if (q && end != c + 7) return exit_code_for_error(q, int(code), text);
    }
  }
  if (error && error->domain == GST_RESOURCE_ERROR) {
    switch (error->code) {
      case GST_RESOURCE_ERROR_NOT_AUTHORIZED: return kExitUnauthorized;
      case GST_RESOURCE_ERROR_BUSY: return kExitBadName;
      case GST_RESOURCE_ERROR_NOT_FOUND:
        // Also "No RTMP location" (a usage error) and unknown hosts.
        if (contains(text, "No RTMP location")) return kExitUsage;
        if (contains(text, "StreamNotFound")) return kExitNotFound;
        return exit_code_for_text(text) == kExitOther ? kExitNotFound : exit_code_for_text(text);
      default: break;
    }
  }
  return exit_code_for_text(text);
}

std::string one_line(const std::string& text) {
  std::string r;
  r.reserve(text.size());
  bool space = false;
  for (char ch : text) {
    if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
      space = true;
      continue;
    }
    if (space && !r.empty()) r += ' ';
    space = false;
    r += ch;
  }
  return r;
}

namespace {
std::string g_query;  // "?token=..." of the command's URL

std::string hide(std::string text) {
  if (g_query.size() <= 1) return text;
  for (size_t pos = 0; (pos = text.find(g_query, pos)) != std::string::npos;) {
    text.replace(pos, g_query.size(), "?...");
    pos += 4;
  }
  return text;
}
}  // namespace

void hide_query_of(const std::string& url) {
  auto q = url.find('?');
  g_query = q == std::string::npos ? std::string() : url.substr(q);
}

std::string display_url(const std::string& url) {
  auto q = url.find('?');
  return q == std::string::npos ? url : url.substr(0, q) + "?...";
}

void print_error(const std::string& text) {
  fflush(stdout);
  fprintf(stderr, "gst-rtmp-client: error: %s\n", hide(one_line(text)).c_str());
}

void print_warning(const std::string& text) {
  fflush(stdout);
  fprintf(stderr, "gst-rtmp-client: warning: %s\n", hide(one_line(text)).c_str());
}

}  // namespace grtmp::cli
