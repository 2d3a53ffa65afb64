// Server-role Handshake on arbitrary bytes from a client (C0 C1 C2 ...).
//
// Input: byte 0 = size-table length (bits 0-2, see fuzz::Slicer) and bit 3
// = answer digest C1s with a digest (Options::digest), then the size table,
// then the client's bytes.
//
// Invariants checked: slicing does not change the verdict, the bytes sent
// or what was consumed; a wrong C0 fails before any answer; the answer is
// exactly S0 (3) + S1 + S2; a simple S2 echoes C1; Done consumes exactly
// 1 + 2 * 1536 bytes and later feeds consume nothing.
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "grtmp/handshake.h"

using namespace grtmp;

namespace {

Handshake::Options options(bool digest) {
  Handshake::Options o;
  o.digest = digest;
  uint32_t x = 0x12345678;  // deterministic "random" bytes
  o.random = [x](uint8_t* p, size_t n) mutable {
    for (size_t i = 0; i < n; i++) {
      x = x * 1103515245u + 12345u;
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
    FUZZ_CHECK(consumed == k);
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
  const bool digest = data[0] & 0x08;
  fuzz::Slicer in(data, size);

  Handshake a(Handshake::Role::Server, options(digest));
  Result ra = run(a, in.data(), in.size(), &in);
  Handshake b(Handshake::Role::Server, options(digest));
  Result rb = run(b, in.data(), in.size(), nullptr);

  FUZZ_CHECK(ra.status == rb.status);
  FUZZ_CHECK(ra.out == rb.out);
  FUZZ_CHECK(ra.consumed == rb.consumed);
  FUZZ_CHECK(a.done() == (ra.status == Handshake::Status::Done));

  const uint8_t* c = in.data();
  if (in.size() > 0 && c[0] != kRtmpVersion) {
    // Versions other than 3 are refused at C0 (nothing is answered).
    FUZZ_CHECK(ra.out.empty());
  }
  FUZZ_CHECK(ra.out.empty() || ra.out.size() == 1 + 2 * kHandshakeSize);
  if (!ra.out.empty()) {
    FUZZ_CHECK(ra.out[0] == kRtmpVersion);
    FUZZ_CHECK(in.size() >= 1 + kHandshakeSize);
    if (a.peer_scheme() == Handshake::Scheme::None)
      FUZZ_CHECK(memcmp(ra.out.data() + 1 + kHandshakeSize, c + 1, kHandshakeSize) == 0);
    else
      FUZZ_CHECK(digest);
  }
  if (ra.status == Handshake::Status::Done) {
    FUZZ_CHECK(ra.consumed == 1 + 2 * kHandshakeSize);
    size_t consumed = 1;
    std::vector<uint8_t> more;
    FUZZ_CHECK(a.feed(c, in.size(), consumed, more, nullptr) == Handshake::Status::Done);
    FUZZ_CHECK(consumed == 0 && more.empty());
  }
  if (ra.status == Handshake::Status::Error) {
    size_t consumed = 0;
    std::vector<uint8_t> more;
    FUZZ_CHECK(a.feed(c, in.size(), consumed, more, nullptr) == Handshake::Status::Error);
  }
  return 0;
}
