// JSON-lines logging for the launcher: one object per line on stdout,
// {"time":"2025-10-13T12:11:00.123+02:00","level":"INFO","msg":"...", fields...}.
// The same sink receives the library's records (grtmp::log) and the
// launcher's own events; GStreamer bus warnings/errors are logged through it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "grtmp/log.h"

namespace grtmp::launcher::jlog {

// A field whose value is already encoded as JSON.
struct Value {
  std::string key;
  std::string json;
};

std::string escape(std::string_view s);  // JSON string body (no quotes)
std::string quote(std::string_view s);   // "..." with escaping

inline Value str(const char* k, std::string_view v) { return {k, quote(v)}; }
inline Value num(const char* k, int64_t v) { return {k, std::to_string(v)}; }
inline Value unum(const char* k, uint64_t v) { return {k, std::to_string(v)}; }
Value dbl(const char* k, double v, int decimals = 3);
inline Value boolean(const char* k, bool v) { return {k, v ? "true" : "false"}; }

// RFC 3339 local time with milliseconds: 2025-10-13T12:11:00.123+02:00.
std::string rfc3339_now();

// Installs the JSON sink into grtmp::log and sets the level (the launcher's
// own events use the same level). Call again after the GStreamer plugin
// loaded: its plugin_init installs the GStreamer sink.
void install(grtmp::log::Level level);
grtmp::log::Level level();

void write(grtmp::log::Level level, std::string_view msg, std::initializer_list<Value> fields);

inline void info(std::string_view msg, std::initializer_list<Value> f = {}) {
  write(grtmp::log::Level::Info, msg, f);
}
inline void warn(std::string_view msg, std::initializer_list<Value> f = {}) {
  write(grtmp::log::Level::Warn, msg, f);
}
inline void error(std::string_view msg, std::initializer_list<Value> f = {}) {
  write(grtmp::log::Level::Error, msg, f);
}
inline void debug(std::string_view msg, std::initializer_list<Value> f = {}) {
  write(grtmp::log::Level::Debug, msg, f);
}

}  // namespace grtmp::launcher::jlog
