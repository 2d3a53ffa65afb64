#include "json_log.h"

#include <glib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

namespace grtmp::launcher::jlog {
namespace {

std::mutex g_write_mutex;
std::atomic<int> g_level{static_cast<int>(grtmp::log::Level::Info)};

const char* level_text(grtmp::log::Level l) {
  switch (l) {
    case grtmp::log::Level::Trace: return "TRACE";
    case grtmp::log::Level::Debug: return "DEBUG";
    case grtmp::log::Level::Info: return "INFO";
    case grtmp::log::Level::Warn: return "WARN";
    case grtmp::log::Level::Error: return "ERROR";
  }
  return "INFO";
}

// Library fields are strings; counts and sizes read better as numbers
// ("size":7). Keys that name things stay strings even when they look
// numeric (a stream called "123").
bool is_string_key(const char* key) {
  static const std::set<std::string, std::less<>> keys = {
      "stream_key", "conn_id", "remote", "addr", "app", "name", "stream", "url", "file",
      "query", "code", "reason", "tc_url", "version", "description", "level", "event",
  };
  return keys.count(std::string_view(key)) > 0;
}

bool is_canonical_integer(const std::string& v) {
  if (v.empty() || v.size() > 15) return false;
  size_t i = v[0] == '-' ? 1 : 0;
  if (i == v.size()) return false;
  if (v[i] == '0' && v.size() > i + 1) return false;
  for (; i < v.size(); i++)
    if (!g_ascii_isdigit(v[i])) return false;
  return true;
}

// "time", "level" and "msg" belong to the record: a field of the same name
// (the library's "client: status" has a "level") becomes "field_level".
std::string field_name(std::string_view key) {
  if (key == "time" || key == "level" || key == "msg") return "field_" + std::string(key);
  return std::string(key);
}

void emit_line(grtmp::log::Level level, std::string_view msg, const std::string& fields_json) {
  std::string line;
  line.reserve(96 + msg.size() + fields_json.size());
  line += "{\"time\":\"";
  line += rfc3339_now();
  line += "\",\"level\":\"";
  line += level_text(level);
  line += "\",\"msg\":";
  line += quote(msg);
  line += fields_json;
  line += "}\n";
  std::lock_guard lock(g_write_mutex);
  fwrite(line.data(), 1, line.size(), stdout);
  fflush(stdout);
}

void library_sink(grtmp::log::Level level, std::string_view msg, const grtmp::log::Field* fields, size_t n,
                  void* /*user_data*/) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  std::string f;
  for (size_t i = 0; i < n; i++) {
    const char* key = fields[i].key ? fields[i].key : "field";
    bool dup = false;  // a key given twice: the first (session context) wins
    for (size_t j = 0; j < i && !dup; j++) dup = fields[j].key && strcmp(fields[j].key, key) == 0;
    if (dup) continue;
    f += ',';
    f += quote(field_name(key));
    f += ':';
    const std::string& v = fields[i].value;
    if (!is_string_key(fields[i].key ? fields[i].key : "") &&
        (is_canonical_integer(v) || v == "true" || v == "false"))
      f += v;
    else
      f += quote(v);
  }
  emit_line(level, msg, f);
}

}  // namespace

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            char buf[8];
            g_snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      p++;
      continue;
    }
    // Multi-byte: copy valid UTF-8 sequences, replace invalid bytes with U+FFFD.
    gunichar ch = g_utf8_get_char_validated(p, end - p);
    if (ch == static_cast<gunichar>(-1) || ch == static_cast<gunichar>(-2)) {
      out += "\\ufffd";
      p++;
      continue;
    }
    const char* next = g_utf8_next_char(p);
    if (ch == 0x2028 || ch == 0x2029) {
      out += ch == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(p, next - p);
    }
    p = next;
  }
  return out;
}

std::string quote(std::string_view s) { return "\"" + escape(s) + "\""; }

Value dbl(const char* k, double v, int decimals) {
  if (!(v == v) || v > 1e300 || v < -1e300) return {k, "null"};
  char fmt[16];
  g_snprintf(fmt, sizeof fmt, "%%.%df", decimals < 0 ? 0 : decimals > 9 ? 9 : decimals);
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd(buf, sizeof buf, fmt, v);  // locale-independent '.'
  return {k, buf};
}

std::string rfc3339_now() {
  GDateTime* now = g_date_time_new_now_local();
  gchar* base = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");
  int ms = g_date_time_get_microsecond(now) / 1000;
  GTimeSpan off = g_date_time_get_utc_offset(now);  // microseconds
  g_date_time_unref(now);
  char tz[16];
  if (off == 0) {
    g_strlcpy(tz, "Z", sizeof tz);
  } else {
    int64_t mins = off / G_TIME_SPAN_MINUTE;
    char sign = mins < 0 ? '-' : '+';
    if (mins < 0) mins = -mins;
    g_snprintf(tz, sizeof tz, "%c%02d:%02d", sign, static_cast<int>(mins / 60), static_cast<int>(mins % 60));
  }
  char buf[64];
  g_snprintf(buf, sizeof buf, "%s.%03d%s", base, ms, tz);
  g_free(base);
  return buf;
}

void install(grtmp::log::Level level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
  grtmp::log::set_level(level);
  grtmp::log::set_sink(library_sink, nullptr);
}

grtmp::log::Level level() { return static_cast<grtmp::log::Level>(g_level.load(std::memory_order_relaxed)); }

void write(grtmp::log::Level lvl, std::string_view msg, std::initializer_list<Value> fields) {
  if (static_cast<int>(lvl) < g_level.load(std::memory_order_relaxed)) return;
  std::string f;
  for (auto& v : fields) {
    f += ',';
    f += quote(field_name(v.key));
    f += ':';
    f += v.json;
  }
  emit_line(lvl, msg, f);
}

}  // namespace grtmp::launcher::jlog
