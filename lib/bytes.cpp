#include "grtmp/bytes.h"

#include <cstring>

namespace grtmp {

void ByteWriter::f64(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  u32(static_cast<uint32_t>(bits >> 32));
  u32(static_cast<uint32_t>(bits));
}

bool ByteReader::u8(uint8_t& v) {
  if (remaining() < 1) return false;
  v = *p_++;
  return true;
}
bool ByteReader::u16(uint16_t& v) {
  if (remaining() < 2) return false;
  v = uint16_t((p_[0] << 8) | p_[1]);
  p_ += 2;
  return true;
}
bool ByteReader::u24(uint32_t& v) {
  if (remaining() < 3) return false;
  v = load_u24(p_);
  p_ += 3;
  return true;
}
bool ByteReader::u32(uint32_t& v) {
  if (remaining() < 4) return false;
  v = load_u32(p_);
  p_ += 4;
  return true;
}
bool ByteReader::u32le(uint32_t& v) {
  if (remaining() < 4) return false;
  v = load_u32le(p_);
  p_ += 4;
  return true;
}
bool ByteReader::f64(double& v) {
  if (remaining() < 8) return false;
  uint64_t bits = (uint64_t(load_u32(p_)) << 32) | load_u32(p_ + 4);
  std::memcpy(&v, &bits, sizeof v);
  p_ += 8;
  return true;
}
bool ByteReader::skip(size_t n) {
  if (remaining() < n) return false;
  p_ += n;
  return true;
}
bool ByteReader::raw(const uint8_t*& out, size_t n) {
  if (remaining() < n) return false;
  out = p_;
  p_ += n;
  return true;
}

}  // namespace grtmp
