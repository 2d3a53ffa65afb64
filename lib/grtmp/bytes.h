// Ref-counted immutable byte buffers (GBytes) with RAII, and a growable
// byte writer used by the encoders.
//
// A media payload arrives once and leaves to N players: it lives in one
// GBytes and every consumer (player queues, GOP cache, GStreamer buffers
// via gst_buffer_new_wrapped_bytes) holds a reference, never a copy.
#pragma once

#include <glib.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace grtmp {

class Bytes {
 public:
  Bytes() = default;
  // Takes ownership of one reference to `b` (may be nullptr).
  static Bytes adopt(GBytes* b) { Bytes r; r.bytes_ = b; return r; }
  // Copies `len` bytes.
  static Bytes copy(const void* data, size_t len) { return adopt(g_bytes_new(data, len)); }
  static Bytes copy(const std::vector<uint8_t>& v) { return copy(v.data(), v.size()); }
  // Takes a g_malloc()ed block.
  static Bytes take(void* data, size_t len) { return adopt(g_bytes_new_take(data, len)); }

  Bytes(const Bytes& o) : bytes_(o.bytes_ ? g_bytes_ref(o.bytes_) : nullptr) {}
  Bytes(Bytes&& o) noexcept : bytes_(std::exchange(o.bytes_, nullptr)) {}
  Bytes& operator=(Bytes o) noexcept { std::swap(bytes_, o.bytes_); return *this; }
  ~Bytes() { if (bytes_) g_bytes_unref(bytes_); }

  const uint8_t* data() const {
    return bytes_ ? static_cast<const uint8_t*>(g_bytes_get_data(bytes_, nullptr)) : nullptr;
  }
  size_t size() const { return bytes_ ? g_bytes_get_size(bytes_) : 0; }
  bool empty() const { return size() == 0; }
  explicit operator bool() const { return bytes_ != nullptr; }
  GBytes* get() const { return bytes_; }
  // Returns a new reference for C APIs that take ownership.
  GBytes* ref() const { return bytes_ ? g_bytes_ref(bytes_) : nullptr; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data()), size()}; }

 private:
  GBytes* bytes_ = nullptr;
};

// Big-endian (network order) writer over a std::vector.
class ByteWriter {
 public:
  std::vector<uint8_t>& buffer() { return buf_; }
  const std::vector<uint8_t>& buffer() const { return buf_; }
  size_t size() const { return buf_.size(); }
  void u8(uint8_t v) { buf_.push_back(v); }
  void u16(uint16_t v) { u8(v >> 8); u8(v & 0xff); }
  void u24(uint32_t v) { u8((v >> 16) & 0xff); u8((v >> 8) & 0xff); u8(v & 0xff); }
  void u32(uint32_t v) { u16(v >> 16); u16(v & 0xffff); }
  void u32le(uint32_t v) { u8(v & 0xff); u8((v >> 8) & 0xff); u8((v >> 16) & 0xff); u8(v >> 24); }
  void f64(double v);
  void raw(const void* p, size_t n) {
    auto b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  void raw(std::string_view s) { raw(s.data(), s.size()); }
  Bytes to_bytes() const { return Bytes::copy(buf_); }

 private:
  std::vector<uint8_t> buf_;
};

// Bounds-checked big-endian reader over a byte range. Every read returns
// false (and leaves the value untouched) when the range is exhausted.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t len) : p_(data), end_(data + len) {}
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  size_t offset_from(const uint8_t* base) const { return static_cast<size_t>(p_ - base); }
  const uint8_t* pos() const { return p_; }
  bool u8(uint8_t& v);
  bool u16(uint16_t& v);
  bool u24(uint32_t& v);
  bool u32(uint32_t& v);
  bool u32le(uint32_t& v);
  bool f64(double& v);
  bool skip(size_t n);
  bool raw(const uint8_t*& out, size_t n);

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

inline uint32_t load_u24(const uint8_t* p) { return (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2]; }
inline uint32_t load_u32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
inline uint32_t load_u32le(const uint8_t* p) {
  return (uint32_t(p[3]) << 24) | (uint32_t(p[2]) << 16) | (uint32_t(p[1]) << 8) | p[0];
}
inline void store_u24(uint8_t* p, uint32_t v) { p[0] = v >> 16; p[1] = v >> 8; p[2] = v; }
inline void store_u32(uint8_t* p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
inline void store_u32le(uint8_t* p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }

}  // namespace grtmp
