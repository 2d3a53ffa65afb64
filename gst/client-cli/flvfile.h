// An FLV file for publishing as it is: one scan of its tag headers (the
// library's FLV header/tag parsing; tag data is skipped, not read) gives an
// index of the tags, which tags are the stream's headers (onMetaData and
// the first sequence headers, for the streamheader caps), and its duration.
// Tags are then read one by one. Any codec (legacy or Enhanced RTMP FourCC
// tags: HEVC, AV1, VP9, Opus, ...) goes through untouched.
#pragma once

#include <glib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace grtmp::cli {

struct FlvTag {
  uint64_t offset = 0;     // of the tag header in the file
  uint8_t type = 0;        // 8 audio, 9 video, 18 script data
  uint32_t size = 0;       // tag data bytes
  int64_t ts_ms = 0;       // file timestamp, extended across 32-bit wraps
  bool header = false;     // onMetaData or a first sequence header: in the streamheader
};

class FlvFile {
 public:
  FlvFile() = default;
  ~FlvFile();
  FlvFile(const FlvFile&) = delete;
  FlvFile& operator=(const FlvFile&) = delete;

  // Does the file start with the FLV signature?
  static bool looks_like_flv(const std::string& path);

  // Opens and scans the whole file; a truncated or invalid file is an error
  // naming the byte offset.
  bool open(const std::string& path, GError** error);
  // The tag data of `t`.
  bool read(const FlvTag& t, std::vector<uint8_t>& data, GError** error);

  const std::vector<FlvTag>& tags() const { return tags_; }
  bool has_audio() const { return has_audio_; }
  bool has_video() const { return has_video_; }
  int64_t first_ms() const { return first_ms_; }
  // Where the media ends: the last timestamp plus that stream's last frame
  // interval (a --loop pass's length is end_ms() - first_ms()).
  int64_t end_ms() const { return end_ms_; }

 private:
  std::string path_;
  FILE* file_ = nullptr;
  std::vector<FlvTag> tags_;
  bool has_audio_ = false, has_video_ = false;
  int64_t first_ms_ = 0, end_ms_ = 0;
};

}  // namespace grtmp::cli
