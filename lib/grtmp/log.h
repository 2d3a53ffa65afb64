// Structured logging. By default the library logs through
// g_log_structured() under the "grtmp" domain with fields such as
// CONN_ID, REMOTE and STREAM_KEY; an embedder (the GStreamer plugin, the
// launcher) installs its own sink to route the same records elsewhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace grtmp::log {

enum class Level { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4 };

struct Field {
  const char* key;      // lower_snake_case: conn_id, remote, stream_key, reason, ...
  std::string value;
};

// A sink receives every record at or above the current level. It may be
// called from any thread, concurrently.
using Sink = void (*)(Level level, std::string_view msg, const Field* fields, size_t n_fields,
                      void* user_data);

void set_sink(Sink sink, void* user_data);  // nullptr restores the GLib sink
void set_level(Level level);
Level level();
inline bool enabled(Level l) { return static_cast<int>(l) >= static_cast<int>(level()); }

void emit(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
void emit(Level level, std::string_view msg, const Field* fields, size_t n_fields);

const char* level_name(Level l);  // "debug", "info", ...
bool parse_level(std::string_view s, Level& out);

}  // namespace grtmp::log

// Convenience macros that skip formatting when the level is off.
#define GRTMP_LOG(lvl, msg, ...)                                              \
  do {                                                                        \
    if (::grtmp::log::enabled(lvl)) ::grtmp::log::emit(lvl, msg, {__VA_ARGS__}); \
  } while (0)
#define GRTMP_DEBUG(msg, ...) GRTMP_LOG(::grtmp::log::Level::Debug, msg, ##__VA_ARGS__)
#define GRTMP_INFO(msg, ...) GRTMP_LOG(::grtmp::log::Level::Info, msg, ##__VA_ARGS__)
#define GRTMP_WARN(msg, ...) GRTMP_LOG(::grtmp::log::Level::Warn, msg, ##__VA_ARGS__)
#define GRTMP_ERROR_LOG(msg, ...) GRTMP_LOG(::grtmp::log::Level::Error, msg, ##__VA_ARGS__)
