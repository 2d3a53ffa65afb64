// Progress output: on a terminal one line rewritten in place with "\r";
// otherwise (a pipe, a log file) a plain line every few seconds.
#pragma once

#include <cstdint>
#include <string>

namespace grtmp::cli {

class Progress {
 public:
  explicit Progress(bool enabled);
  ~Progress();

  // Called often (every 500 ms); prints when due. `text` is the whole line.
  void update(const std::string& text);
  // Ends the in-place line (if any) so the next output starts clean.
  void finish();
  bool tty() const { return tty_; }

 private:
  bool enabled_;
  bool tty_;
  bool line_open_ = false;
  size_t last_len_ = 0;
  int64_t last_plain_us_ = 0;
};

// "00:01:23.4"
std::string format_clock(double seconds);
// "640 kbit/s", "1.25 Mbit/s"
std::string format_bitrate(double bits_per_second);
// "512 KB", "1.2 MB"
std::string format_bytes(uint64_t bytes);

}  // namespace grtmp::cli
