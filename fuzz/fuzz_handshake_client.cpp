// Client-role Handshake on arbitrary bytes from a server (S0 S1 S2 ...).
//
// Input: byte 0 = size-table length (bits 0-2, see fuzz::Slicer) and bit 3
// = send a simple C1 instead of a digest one, then the size table, then the
// server's bytes.
//
// Invariants checked: start() gives C0 + C1 (1537 bytes); slicing does not
// change the verdict, the C2 sent or what was consumed; C2 is 1536 bytes
// and goes out once S1 is in; a simple C2 echoes S1; Done consumes exactly
// 1 + 2 * 1536 bytes.
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "grtmp/handshake.h"

using namespace grtmp;

namespace {

Handshake::Options options(bool digest) {
  Handshake::Options o;
  o.digest = digest;
  o.epoch = 1000;
  uint32_t x = 0x9e3779b9;
  o.random = [x](uint8_t* p, size_t n) mutable {
    for (size_t i = 0; i < n; i++) {
      x = x * 1664525u + 1013904223u;
      p[i] = uint8_t(x >> 24);
    }
  };
  return o;
}

struct Result {
  Handshake::Status status = Handshake::Status::NeedMore;
  size_t consumed = 0;
  std::vector<uint8_t> out;
};

Result run(Handshake& hs, const uint8_t* data, size_t size, fuzz::Slicer* slicer) {
  Result r;
  for (size_t off = 0; off < size;) {
    size_t k = slicer ? slicer->next(size - off) : size - off;
    size_t consumed = 0;
    GError* err = nullptr;
    r.status = hs.feed(data + off, k, consumed, r.out, &err);
    FUZZ_CHECK(consumed <= k);
    FUZZ_CHECK((r.status == Handshake::Status::Error) == (err != nullptr));
    if (err) g_error_free(err);
    r.consumed += consumed;
    if (r.status != Handshake::Status::NeedMore) break;
    off += k;
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::install_quiet_log();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool digest = !(data[0] & 0x08);
  fuzz::Slicer in(data, size);

  Handshake a(Handshake::Role::Client, options(digest));
  auto c0c1 = a.start();
  FUZZ_CHECK(c0c1.size() == 1 + kHandshakeSize && c0c1[0] == kRtmpVersion);
  FUZZ_CHECK(a.start().empty());  // only once
  Result ra = run(a, in.data(), in.size(), &in);

  Handshake b(Handshake::Role::Client, options(digest));
  FUZZ_CHECK(b.start() == c0c1);
  Result rb = run(b, in.data(), in.size(), nullptr);

  FUZZ_CHECK(ra.status == rb.status);
  FUZZ_CHECK(ra.out == rb.out);
  FUZZ_CHECK(ra.consumed == rb.consumed);
  FUZZ_CHECK(ra.out.empty() || ra.out.size() == kHandshakeSize);
  const uint8_t* s = in.data();
  if (!ra.out.empty()) {
    FUZZ_CHECK(in.size() >= 1 + kHandshakeSize);
    if (a.peer_scheme() == Handshake::Scheme::None)
      FUZZ_CHECK(memcmp(ra.out.data(), s + 1, kHandshakeSize) == 0);
  }
  if (ra.status == Handshake::Status::Done) FUZZ_CHECK(ra.consumed == 1 + 2 * kHandshakeSize);

  // A client that never called start() refuses any input.
  Handshake c(Handshake::Role::Client, options(digest));
  size_t consumed = 0;
  std::vector<uint8_t> out;
  FUZZ_CHECK(c.feed(s, in.size(), consumed, out, nullptr) == Handshake::Status::Error || in.size() == 0);
  return 0;
}
