#include "grtmp/log.h"

#include <glib.h>

#include <atomic>
#include <mutex>
#include <vector>

namespace grtmp::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::mutex g_sink_mutex;
Sink g_sink = nullptr;
void* g_sink_data = nullptr;

GLogLevelFlags glib_level(Level l) {
  switch (l) {
    case Level::Trace:
    case Level::Debug: return G_LOG_LEVEL_DEBUG;
    case Level::Info: return G_LOG_LEVEL_INFO;
    case Level::Warn: return G_LOG_LEVEL_WARNING;
    // Not G_LOG_LEVEL_ERROR: that aborts. Errors of one connection are
    // "critical" to that connection only.
    case Level::Error: return G_LOG_LEVEL_MESSAGE;
  }
  return G_LOG_LEVEL_INFO;
}

void glib_sink(Level level, std::string_view msg, const Field* fields, size_t n) {
  std::vector<GLogField> gf;
  gf.reserve(n + 3);
  std::string text(msg);
  for (size_t i = 0; i < n; i++) {
    text += ' ';
    text += fields[i].key;
    text += '=';
    text += fields[i].value;
  }
  gf.push_back({"GLIB_DOMAIN", "grtmp", -1});
  gf.push_back({"MESSAGE", text.c_str(), -1});
  std::vector<std::string> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; i++) {
    std::string k = fields[i].key;
    for (auto& c : k) c = g_ascii_toupper(c);
    keys.push_back("GRTMP_" + k);
  }
  for (size_t i = 0; i < n; i++) gf.push_back({keys[i].c_str(), fields[i].value.c_str(), -1});
  g_log_structured_array(glib_level(level), gf.data(), gf.size());
}

}  // namespace

void set_sink(Sink sink, void* user_data) {
  std::lock_guard lock(g_sink_mutex);
  g_sink = sink;
  g_sink_data = user_data;
}

void set_level(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }
Level level() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

void emit(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  emit(level, msg, fields.begin(), fields.size());
}

void emit(Level level, std::string_view msg, const Field* fields, size_t n_fields) {
  if (!enabled(level)) return;
  Sink sink;
  void* data;
  {
    std::lock_guard lock(g_sink_mutex);
    sink = g_sink;
    data = g_sink_data;
  }
  if (sink)
    sink(level, msg, fields, n_fields, data);
  else
    glib_sink(level, msg, fields, n_fields);
}

const char* level_name(Level l) {
  switch (l) {
    case Level::Trace: return "trace";
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "info";
}

bool parse_level(std::string_view s, Level& out) {
  std::string v(s);
  for (auto& c : v) c = g_ascii_tolower(c);
  if (v == "trace") out = Level::Trace;
  else if (v == "debug") out = Level::Debug;
  else if (v == "info") out = Level::Info;
  else if (v == "warn" || v == "warning") out = Level::Warn;
  else if (v == "error") out = Level::Error;
  else return false;
  return true;
}

}  // namespace grtmp::log
