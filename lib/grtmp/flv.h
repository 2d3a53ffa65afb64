// FLV file framing: the 9-byte file header, 11-byte tag headers,
// previous-tag-size fields, and an incremental tag parser for FLV byte
// streams (from flvmux, files, or pipelines).
#pragma once

#include <glib.h>

#include <array>
#include <cstdint>
#include <vector>

#include "grtmp/bytes.h"
#include "grtmp/message.h"

namespace grtmp::flv {

constexpr size_t kFileHeaderSize = 9;
constexpr size_t kTagHeaderSize = 11;
constexpr size_t kPrevTagSizeSize = 4;

enum TagType : uint8_t { kTagAudio = 8, kTagVideo = 9, kTagScript = 18 };

// "FLV", version 1, flags (0x04 audio | 0x01 video), header size 9, then
// PreviousTagSize0 = 0: 13 bytes.
std::array<uint8_t, 13> file_header(bool has_audio, bool has_video);

struct FileHeader {
  uint8_t version = 1;
  bool has_audio = false;
  bool has_video = false;
  uint32_t header_size = 9;
};
bool parse_file_header(const uint8_t* data, size_t len, FileHeader& out, GError** error);

struct TagHeader {
  uint8_t type = 0;          // low 5 bits of byte 0 (filter bit kept apart)
  bool filter = false;
  uint32_t data_size = 0;    // 24-bit
  uint32_t timestamp = 0;    // 24 bits + extended byte = 32 bits
  uint32_t stream_id = 0;    // always 0 in valid files
};
std::array<uint8_t, kTagHeaderSize> encode_tag_header(uint8_t type, uint32_t data_size, uint32_t timestamp);
bool parse_tag_header(const uint8_t* data, size_t len, TagHeader& out, GError** error);
std::array<uint8_t, kPrevTagSizeSize> encode_prev_tag_size(uint32_t size);

// A whole tag (header + data + previous tag size) as one flat buffer.
std::vector<uint8_t> encode_tag(uint8_t type, uint32_t timestamp, const uint8_t* data, size_t len);

// A message as an FLV tag of the same type (audio, video, script data).
inline uint8_t tag_type_for_message(uint8_t msg_type) {
  return msg_type == kMsgDataAmf0 ? uint8_t(kTagScript) : msg_type;
}

// Incremental parser for an FLV byte stream: feed any slices; yields tags
// as Messages (type = tag type, timestamp, payload = tag data). The file
// header (if present at the start) is parsed and reported via header().
// Errors: bad signature, a tag bigger than max_tag_size, a previous tag
// size that disagrees (tolerated with a counter, as encoders get it wrong).
class TagParser {
 public:
  explicit TagParser(uint32_t max_tag_size = 16u << 20) : max_tag_size_(max_tag_size) {}
  bool feed(const uint8_t* data, size_t len, std::vector<Message>& out, GError** error);
  bool header_seen() const { return header_seen_; }
  const FileHeader& header() const { return header_; }
  uint64_t prev_size_mismatches() const { return prev_size_mismatches_; }
  // Starts a new stream (expects an optional file header again).
  void reset();

 private:
  uint32_t max_tag_size_;
  std::vector<uint8_t> pending_;
  bool started_ = false;
  bool header_seen_ = false;
  FileHeader header_;
  uint64_t prev_size_mismatches_ = 0;
  bool failed_ = false;
  bool expect_prev0_ = false;  // PreviousTagSize0 still to read
  uint64_t skip_ = 0;          // file header bytes beyond the 9 we parse

  // Parses what it can from one contiguous range; returns bytes used.
  size_t parse(const uint8_t* p, size_t n, std::vector<Message>& out, GError** error);
};

}  // namespace grtmp::flv
