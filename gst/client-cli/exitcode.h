// Exit codes and the mapping of errors to them: library GErrors (probe),
// and GStreamer bus errors from rtmpclientsink / rtmpclientsrc (publish,
// play). See docs/client.md, "Exit codes".
#pragma once

#include <gst/gst.h>

#include <string>

namespace grtmp::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitOther = 1,
  kExitUsage = 2,        // usage error, missing/unreadable/unsupported input file
  kExitUnreachable = 3,  // connection refused, host not found or unreachable
  kExitNotFound = 4,     // NetStream.Play.StreamNotFound
  kExitBadName = 5,      // NetStream.Publish.BadName (stream busy / invalid)
  kExitUnauthorized = 6, // *.Unauthorized (token, rules)
  kExitTimeout = 7,      // no answer / no data in time
};

// A library error (grtmp::Client, GIO) as an exit code.
int exit_code_for_error(GQuark domain, int code, const std::string& message);
inline int exit_code_for_error(const GError* e) {
  return e ? exit_code_for_error(e->domain, e->code, e->message ? e->message : "") : kExitOther;
}

// An error message posted by rtmpclientsink / rtmpclientsrc. Their debug
// string carries the library error as "domain <quark>, code <n>"; when it
// does not, the GStreamer resource error code and the text decide.
int exit_code_for_rtmp_bus_error(const GError* error, const char* debug);

// One line: newlines and tabs become spaces, runs of spaces collapse.
std::string one_line(const std::string& text);

// A URL's query often carries a token: register it once and the messages
// below show "?..." instead (the library's own messages do the same).
void hide_query_of(const std::string& url);
// `url` without its query ("...?..." when it had one).
std::string display_url(const std::string& url);

// Prints "gst-rtmp-client: error: <text>" (one line) on stderr, with the
// registered query hidden.
void print_error(const std::string& text);
void print_warning(const std::string& text);

}  // namespace grtmp::cli
