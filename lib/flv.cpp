// FLV file framing (see grtmp/flv.h).
#include "grtmp/flv.h"

#include <algorithm>
#include <cstring>

#include "grtmp/error.h"

namespace grtmp::flv {
namespace {

constexpr uint8_t kFlagAudio = 0x04;
constexpr uint8_t kFlagVideo = 0x01;
constexpr uint8_t kTagTypeMask = 0x1f;
constexpr uint8_t kTagFilterBit = 0x20;
constexpr uint8_t kTagReservedBits = 0xc0;

bool known_tag_type(uint8_t t) { return t == kTagAudio || t == kTagVideo || t == kTagScript; }

uint32_t csid_for_tag(uint8_t t) {
  switch (t) {
    case kTagAudio: return kCsidAudio;
    case kTagVideo: return kCsidVideo;
    default: return kCsidData;
  }
}

}  // namespace

std::array<uint8_t, 13> file_header(bool has_audio, bool has_video) {
  std::array<uint8_t, 13> h{'F', 'L', 'V', 1, 0, 0, 0, 0, 9, 0, 0, 0, 0};
  h[4] = uint8_t((has_audio ? kFlagAudio : 0) | (has_video ? kFlagVideo : 0));
  return h;
}

bool parse_file_header(const uint8_t* data, size_t len, FileHeader& out, GError** error) {
  if (len < kFileHeaderSize) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "FLV header truncated (%zu bytes)", len);
    return false;
  }
  if (data[0] != 'F' || data[1] != 'L' || data[2] != 'V') {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "bad FLV signature %02x %02x %02x",
                data[0], data[1], data[2]);
    return false;
  }
  uint32_t size = load_u32(data + 5);
  if (size < kFileHeaderSize) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "FLV header size %u < 9", size);
    return false;
  }
  out.version = data[3];
  out.has_audio = (data[4] & kFlagAudio) != 0;
  out.has_video = (data[4] & kFlagVideo) != 0;
  out.header_size = size;
  return true;
}

std::array<uint8_t, kTagHeaderSize> encode_tag_header(uint8_t type, uint32_t data_size, uint32_t timestamp) {
  std::array<uint8_t, kTagHeaderSize> h{};
  h[0] = type & kTagTypeMask;
  store_u24(h.data() + 1, data_size & 0xffffff);
  store_u24(h.data() + 4, timestamp & 0xffffff);
  h[7] = uint8_t(timestamp >> 24);
  // stream id (3 bytes) stays 0
  return h;
}

bool parse_tag_header(const uint8_t* data, size_t len, TagHeader& out, GError** error) {
  if (len < kTagHeaderSize) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "FLV tag header truncated (%zu bytes)", len);
    return false;
  }
  out.type = data[0] & kTagTypeMask;
  out.filter = (data[0] & kTagFilterBit) != 0;
  out.data_size = load_u24(data + 1);
  out.timestamp = load_u24(data + 4) | (uint32_t(data[7]) << 24);
  out.stream_id = load_u24(data + 8);
  return true;
}

std::array<uint8_t, kPrevTagSizeSize> encode_prev_tag_size(uint32_t size) {
  std::array<uint8_t, kPrevTagSizeSize> b{};
  store_u32(b.data(), size);
  return b;
}

std::vector<uint8_t> encode_tag(uint8_t type, uint32_t timestamp, const uint8_t* data, size_t len) {
  std::vector<uint8_t> v;
  v.reserve(kTagHeaderSize + len + kPrevTagSizeSize);
  auto h = encode_tag_header(type, uint32_t(len), timestamp);
  v.insert(v.end(), h.begin(), h.end());
  if (len) v.insert(v.end(), data, data + len);
  auto p = encode_prev_tag_size(uint32_t(kTagHeaderSize + len));
  v.insert(v.end(), p.begin(), p.end());
  return v;
}

void TagParser::reset() {
  pending_.clear();
  started_ = false;
  header_seen_ = false;
  header_ = FileHeader{};
  prev_size_mismatches_ = 0;
  failed_ = false;
  expect_prev0_ = false;
  skip_ = 0;
}

size_t TagParser::parse(const uint8_t* p, size_t n, std::vector<Message>& out, GError** error) {
  size_t pos = 0;
  for (;;) {
    size_t avail = n - pos;
    if (!started_) {
      if (avail < 1) return pos;
      if (p[pos] == 'F') {
        // A tag never starts with 'F' (0x46): this is a file header.
        if (avail < kFileHeaderSize) return pos;
        if (!parse_file_header(p + pos, avail, header_, error)) {
          failed_ = true;
          return pos;
        }
        header_seen_ = true;
        skip_ = header_.header_size - kFileHeaderSize;
        expect_prev0_ = true;
        pos += kFileHeaderSize;
      } else if (p[pos] == 0) {
        // No file header, but a bare PreviousTagSize0 (a tag type is never 0).
        expect_prev0_ = true;
      }
      started_ = true;
      continue;
    }
    if (skip_ > 0) {
      size_t take = size_t(std::min<uint64_t>(skip_, avail));
      pos += take;
      skip_ -= take;
      if (skip_ > 0) return pos;
      continue;
    }
    if (expect_prev0_) {
      if (avail < kPrevTagSizeSize) return pos;
      if (load_u32(p + pos) != 0) prev_size_mismatches_++;
      pos += kPrevTagSizeSize;
      expect_prev0_ = false;
      continue;
    }
    if (avail < kTagHeaderSize) return pos;
    TagHeader h;
    parse_tag_header(p + pos, avail, h, nullptr);
    // The two reserved bits are 0 in every real file: set, they (like an
    // unknown type) mean the input is not FLV or the parser lost sync.
    if (!known_tag_type(h.type) || (p[pos] & kTagReservedBits)) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                  "bad FLV data: tag type %u (byte 0x%02x) is not audio/video/script", h.type, p[pos]);
      failed_ = true;
      return pos;
    }
    if (h.data_size > max_tag_size_) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_LIMIT, "FLV tag of %u bytes exceeds the limit of %u",
                  h.data_size, max_tag_size_);
      failed_ = true;
      return pos;
    }
    size_t total = kTagHeaderSize + size_t(h.data_size) + kPrevTagSizeSize;
    if (avail < total) return pos;
    Message m;
    m.type = h.type;
    m.timestamp = h.timestamp;
    m.stream_id = 0;
    m.csid = csid_for_tag(h.type);
    m.payload = Bytes::copy(p + pos + kTagHeaderSize, h.data_size);
    out.push_back(std::move(m));
    if (load_u32(p + pos + kTagHeaderSize + h.data_size) != kTagHeaderSize + h.data_size)
      prev_size_mismatches_++;
    pos += total;
  }
}

bool TagParser::feed(const uint8_t* data, size_t len, std::vector<Message>& out, GError** error) {
  if (failed_) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "FLV stream already failed to parse");
    return false;
  }
  if (pending_.empty()) {
    size_t used = parse(data, len, out, error);
    if (failed_) return false;
    pending_.insert(pending_.end(), data + used, data + len);
    return true;
  }
  pending_.insert(pending_.end(), data, data + len);
  size_t used = parse(pending_.data(), pending_.size(), out, error);
  if (failed_) return false;
  pending_.erase(pending_.begin(), pending_.begin() + ptrdiff_t(used));
  return true;
}

}  // namespace grtmp::flv
