// Shared helpers for the libFuzzer targets (one target per fuzz_*.cpp).
// Every target is deterministic for a given input: no clocks in decisions
// that change what is parsed, no global state kept between inputs.
#pragma once

#include <glib.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "grtmp/log.h"

namespace fuzz {

// Aborts with a message: libFuzzer reports it as a crash with the input.
[[noreturn]] inline void fail(const char* what) {
  fprintf(stderr, "FUZZ INVARIANT BROKEN: %s\n", what);
  abort();
}
#define FUZZ_CHECK(cond)                              \
  do {                                                \
    if (!(cond)) ::fuzz::fail(#cond " (" __FILE__ ")"); \
  } while (0)

// The library logs at every level into a sink that formats nothing but
// reads every field, so the logging paths are covered (and cost little).
inline void quiet_sink(grtmp::log::Level, std::string_view msg, const grtmp::log::Field* f, size_t n, void*) {
  volatile size_t sum = msg.size();
  for (size_t i = 0; i < n; i++) sum = sum + f[i].value.size() + (f[i].key ? f[i].key[0] : 0);
  (void)sum;
}
// GLib criticals in the library's domain (g_return_if_fail and friends) are
// bugs too. Fuzz targets abort on them, except for messages that contain
// one of the '|'-separated substrings in $FUZZ_KNOWN_CRITICALS (open bugs
// with a regression test; scripts/fuzz.sh sets it). The unit test that
// replays stored inputs counts them instead.
inline std::atomic<int>& critical_count() {
  static std::atomic<int> n{0};
  return n;
}
inline bool& abort_on_critical() {
  static bool v = true;
  return v;
}
inline void on_critical(const gchar* domain, GLogLevelFlags, const gchar* message, gpointer) {
  critical_count()++;
  fprintf(stderr, "GLIB CRITICAL (%s): %s\n", domain ? domain : "?", message ? message : "");
  if (!abort_on_critical()) return;
  if (const char* known = g_getenv("FUZZ_KNOWN_CRITICALS")) {
    gchar** parts = g_strsplit(known, "|", -1);
    bool hit = false;
    for (gchar** p = parts; *p && !hit; p++) hit = **p && message && strstr(message, *p);
    g_strfreev(parts);
    if (hit) return;
  }
  fail("GLib critical");
}

inline void install_quiet_log(bool abort_on_glib_critical = true) {
  grtmp::log::set_sink(quiet_sink, nullptr);
  grtmp::log::set_level(grtmp::log::Level::Trace);
  abort_on_critical() = abort_on_glib_critical;
  static bool handler_set = false;
  if (!handler_set) {
    g_log_set_handler("grtmp", GLogLevelFlags(G_LOG_LEVEL_CRITICAL | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION),
                      on_critical, nullptr);
    handler_set = true;
  }
}

// Cuts `data` into slices whose sizes come from a small size table: the
// table is `n` bytes taken from the front of the input (n = first byte % 8),
// each entry e giving a slice of e + 1 bytes, except 0xff = "everything
// left"; the table repeats. An empty table means one slice.
class Slicer {
 public:
  Slicer(const uint8_t* data, size_t len) {
    if (len == 0) return;
    size_t n = data[0] % 8;
    size_t i = 1;
    for (; i < len && sizes_.size() < n; i++) sizes_.push_back(data[i]);
    data_ = data + i;
    len_ = len - i;
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return len_; }
  // Next slice length for a remaining `left` bytes.
  size_t next(size_t left) {
    if (sizes_.empty()) return left;
    uint8_t e = sizes_[k_++ % sizes_.size()];
    size_t want = e == 0xff ? left : size_t(e) + 1;
    return want < left ? want : left;
  }

 private:
  const uint8_t* data_ = nullptr;
  size_t len_ = 0;
  std::vector<uint8_t> sizes_;
  size_t k_ = 0;
};

}  // namespace fuzz
