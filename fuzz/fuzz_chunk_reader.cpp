// ChunkReader on arbitrary bytes, fed in slices chosen by the input.
//
// Input: byte 0 = size-table length (bits 0-2, see fuzz::Slicer) and
// options (bit 3: small limits; bits 4-5: writer chunk size 128/1/4096/65536),
// then the size table, then the chunk stream.
//
// Invariants checked:
// * the reader never holds more partial-message bytes than max_buffered_bytes;
// * slicing does not matter: the sliced feed and one whole feed yield the
//   same messages and the same verdict (the reader "accepts any slicing");
// * every message it produced, written again by ChunkWriter (through a
//   WireQueue drained with partial gathers), reads back identical.
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "grtmp/chunk.h"

using namespace grtmp;

namespace {

bool same(const Message& a, const Message& b) {
  return a.type == b.type && a.timestamp == b.timestamp && a.stream_id == b.stream_id && a.csid == b.csid &&
         a.payload.size() == b.payload.size() &&
         (a.payload.size() == 0 || memcmp(a.payload.data(), b.payload.data(), a.payload.size()) == 0);
}

bool same(const std::vector<Message>& a, const std::vector<Message>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (!same(a[i], b[i])) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::install_quiet_log();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t opts = data[0];
  ChunkReaderLimits lim;
  // The reader allocates a message's announced length at its first chunk,
  // and under ASan a 16 MiB allocation costs milliseconds (shadow memory):
  // 1 MiB keeps every path reachable (inputs are far smaller) at a useful
  // execution rate. The 16 MiB default is exercised by the unit tests.
  lim.max_message_size = 1u << 20;
  if (opts & 0x08) {
    lim.max_chunk_size = 4096;
    lim.max_message_size = 8192;
    lim.max_chunk_streams = 8;
    lim.max_buffered_bytes = 20000;
  }
  static const uint32_t kWriterSizes[4] = {128, 1, 4096, 65536};
  const uint32_t writer_chunk = kWriterSizes[(opts >> 4) & 3];

  fuzz::Slicer in(data, size);
  ChunkReader sliced(lim);
  std::vector<Message> a;
  bool ok_a = true;
  for (size_t off = 0; off < in.size() && ok_a;) {
    size_t k = in.next(in.size() - off);
    ok_a = sliced.feed(in.data() + off, k, a, nullptr);
    FUZZ_CHECK(sliced.buffered_bytes() <= lim.max_buffered_bytes);
    off += k;
  }

  ChunkReader whole(lim);
  std::vector<Message> b;
  GError* err = nullptr;
  bool ok_b = whole.feed(in.data(), in.size(), b, &err);
  FUZZ_CHECK(ok_b == (err == nullptr));
  if (err) g_error_free(err);
  FUZZ_CHECK(ok_a == ok_b);
  FUZZ_CHECK(same(a, b));
  if (!ok_b) {
    // A failed reader stays failed.
    std::vector<Message> more;
    FUZZ_CHECK(!whole.feed(in.data(), 1, more, nullptr));
  }

  // Write back what was read (control messages that change the reader's
  // framing are left out: the writer does not follow them).
  std::vector<Message> msgs;
  for (auto& m : b)
    if (m.type != kMsgSetChunkSize && m.type != kMsgAbort) msgs.push_back(m);
  ChunkWriter writer;
  writer.set_chunk_size(writer_chunk);
  WireQueue q;
  for (auto& m : msgs) writer.write(m, q);
  std::vector<uint8_t> flat = q.flatten();
  FUZZ_CHECK(flat.size() == q.bytes());
  // Drain the queue the way the server does, with partial writes.
  std::vector<uint8_t> drained;
  size_t step = 1;
  while (!q.empty()) {
    const void* bases[3];
    size_t lens[3];
    size_t n = q.gather(bases, lens, 3);
    FUZZ_CHECK(n > 0);
    size_t avail = 0;
    for (size_t i = 0; i < n; i++) avail += lens[i];
    size_t take = std::min(avail, step);
    size_t left = take;
    for (size_t i = 0; i < n && left; i++) {
      size_t t = std::min(left, lens[i]);
      auto p = static_cast<const uint8_t*>(bases[i]);
      drained.insert(drained.end(), p, p + t);
      left -= t;
    }
    q.consume(take);
    step = step * 3 + 1;
    if (step > 100000) step = 1;
  }
  FUZZ_CHECK(q.bytes() == 0);
  FUZZ_CHECK(drained == flat);

  ChunkReaderLimits big;
  big.max_chunk_size = 65536;
  ChunkReader back(big);
  back.set_chunk_size(writer_chunk);
  std::vector<Message> c;
  FUZZ_CHECK(back.feed(flat.data(), flat.size(), c, nullptr));
  FUZZ_CHECK(back.buffered_bytes() == 0);
  FUZZ_CHECK(same(msgs, c));
  return 0;
}
