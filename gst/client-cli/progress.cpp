#include "progress.h"

#include <glib.h>
#include <unistd.h>

#include <cstdio>

namespace grtmp::cli {

namespace {
constexpr int64_t kPlainIntervalUs = 5 * G_USEC_PER_SEC;
}

Progress::Progress(bool enabled) : enabled_(enabled), tty_(isatty(STDOUT_FILENO) == 1) {
  last_plain_us_ = g_get_monotonic_time();
}

Progress::~Progress() { finish(); }

void Progress::update(const std::string& text) {
  if (!enabled_) return;
  if (tty_) {
    std::string line = "\r" + text;
    if (text.size() < last_len_) line += std::string(last_len_ - text.size(), ' ');
    last_len_ = text.size();
    fputs(line.c_str(), stdout);
    fflush(stdout);
    line_open_ = true;
    return;
  }
  int64_t now = g_get_monotonic_time();
  if (now - last_plain_us_ < kPlainIntervalUs) return;
  last_plain_us_ = now;
  printf("%s\n", text.c_str());
  fflush(stdout);
}

void Progress::finish() {
  if (line_open_) {
    fputs("\n", stdout);
    fflush(stdout);
    line_open_ = false;
    last_len_ = 0;
  }
}

std::string format_clock(double seconds) {
  if (seconds < 0) seconds = 0;
  auto tenths = static_cast<uint64_t>(seconds * 10 + 0.5);
  uint64_t s = tenths / 10;
  char buf[48];
  snprintf(buf, sizeof buf, "%02u:%02u:%02u.%u", unsigned(s / 3600), unsigned(s / 60 % 60), unsigned(s % 60),
           unsigned(tenths % 10));
  return buf;
}

std::string format_bitrate(double bps) {
  char buf[48];
  if (bps >= 1e6) snprintf(buf, sizeof buf, "%.2f Mbit/s", bps / 1e6);
  else snprintf(buf, sizeof buf, "%.0f kbit/s", bps / 1e3);
  return buf;
}

std::string format_bytes(uint64_t bytes) {
  char buf[48];
  if (bytes >= (1u << 20)) snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / (1 << 20));
  else snprintf(buf, sizeof buf, "%.0f KB", double(bytes) / 1024);
  return buf;
}

}  // namespace grtmp::cli
