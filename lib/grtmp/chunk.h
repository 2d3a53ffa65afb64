// The RTMP chunk stream: an incremental reader (bytes in, whole messages
// out) and a writer (message out as chunk headers + payload slices).
//
// Pure code: no sockets. The reader accepts any slicing of the input, even
// one byte at a time. The writer never copies payload bytes: it produces
// WirePieces (a small inline header + a slice of the shared payload) that
// the I/O layer sends with scatter-gather writes.
#pragma once

#include <glib.h>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "grtmp/bytes.h"
#include "grtmp/message.h"

namespace grtmp {

constexpr uint32_t kDefaultChunkSize = 128;
constexpr uint32_t kMaxChunkSizeSpec = 0x7fffffff;
constexpr uint32_t kExtendedTimestamp = 0xffffff;

struct ChunkReaderLimits {
  uint32_t max_chunk_size = 65536;          // larger Set Chunk Size from the peer is an error
  uint32_t max_message_size = 16u << 20;    // larger message length is an error
  uint32_t max_chunk_streams = 256;         // distinct csids with state at once
  uint64_t max_buffered_bytes = 64u << 20;  // sum of partially assembled messages
};

class ChunkReader {
 public:
  explicit ChunkReader(const ChunkReaderLimits& limits = {});

  // Feeds bytes. Complete messages are appended to `out` in arrival order.
  // Set Chunk Size (type 1) and Abort (type 2) messages are applied by the
  // reader itself the moment they complete (so a chunk size change inside
  // one feed() takes effect for the very next chunk), and are also emitted.
  // Returns false on a protocol error; the reader is then unusable.
  bool feed(const uint8_t* data, size_t len, std::vector<Message>& out, GError** error);

  uint32_t chunk_size() const { return chunk_size_; }
  void set_chunk_size(uint32_t size) { chunk_size_ = size; }
  uint64_t bytes_read() const { return bytes_read_; }  // total bytes fed (for acks)
  size_t buffered_bytes() const;  // allocated bytes of incomplete messages

 ChunkReader(ChunkReader&&) noexcept;
  ChunkReader& operator=(ChunkReader&&) noexcept;
  ~ChunkReader();

 private:
  ChunkReaderLimits limits_;
  uint32_t chunk_size_ = kDefaultChunkSize;
  uint64_t bytes_read_ = 0;
  // Header staging and per-csid state live in the .cpp.
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One chunk on the wire: header bytes (basic + message header + extended
// timestamp, at most 18) followed by `length` payload bytes at `offset`.
//
// A message split into several chunks holds one payload reference, on its
// last piece: pieces leave the queue in order, so the earlier ones can
// point into the payload without a reference of their own (one atomic
// increment per message and player instead of one per chunk).
struct WirePiece {
  std::array<uint8_t, 18> header{};
  uint8_t header_len = 0;
  Bytes payload;                  // reference that keeps the bytes alive (may be empty, see above)
  const uint8_t* base = nullptr;  // payload start; nullptr: payload.data()
  uint32_t offset = 0;
  uint32_t length = 0;
  size_t wire_size() const { return header_len + length; }
  const uint8_t* bytes() const { return (base ? base : payload.data()) + offset; }
};

// A FIFO of pieces waiting to be written, with partial-write bookkeeping.
class WireQueue {
 public:
  void push(WirePiece&& p) { bytes_ += p.wire_size(); pieces_.push_back(std::move(p)); }
  bool empty() const { return pieces_.empty(); }
  size_t bytes() const { return bytes_; }  // wire bytes still to send
  size_t pieces() const { return pieces_.size(); }
  // Fills up to `max` (pointer, length) vectors from the front, starting
  // after what was already consumed. Returns how many were filled.
  size_t gather(const void** bases, size_t* lengths, size_t max) const;
  // Marks `n` wire bytes as written.
  void consume(size_t n);
  // Copies everything queued into a flat vector (tests, TLS fallbacks).
  std::vector<uint8_t> flatten() const;
  void clear() { pieces_.clear(); bytes_ = 0; front_consumed_ = 0; }

 private:
  std::deque<WirePiece> pieces_;
  size_t bytes_ = 0;
  size_t front_consumed_ = 0;  // bytes of pieces_.front() already written
};

class ChunkWriter {
 public:
  ChunkWriter() = default;
  // Chunk size for messages written after this call. The caller sends the
  // Set Chunk Size message itself (control::set_chunk_size) first.
  void set_chunk_size(uint32_t size) { chunk_size_ = size; }
  uint32_t chunk_size() const { return chunk_size_; }

  // Appends the chunks of `msg` to `out`, choosing fmt 0/1/2/3 per chunk
  // stream from what was last written on msg.csid: fmt 0 on first use, on a
  // message stream id change or a timestamp going backwards (wrap-aware:
  // a uint32 delta >= 2^31); fmt 1 when length or type changed; fmt 2 when
  // only the delta changed; fmt 3 when all equal and the previous header
  // was a fmt 1/2 with the same delta (never right after fmt 0, where
  // nginx and FFmpeg disagree). Extended timestamps are repeated on fmt 3
  // continuations.
  void write(const Message& msg, WireQueue& out);
  // Same, taking over msg.payload's reference instead of adding one.
  void write(Message&& msg, WireQueue& out);
  // Convenience for tests and small control traffic: encode to flat bytes.
  std::vector<uint8_t> write_flat(const Message& msg);

  // Forget per-csid state (next message on every csid is fmt 0).
  void reset();

 private:
  struct CsidState {
    bool valid = false;
    bool has_delta = false;  // the last header was fmt 1/2 (fmt 3 may follow)
    uint32_t timestamp = 0;
    uint32_t delta = 0;
    uint32_t length = 0;
    uint8_t type = 0;
    uint32_t stream_id = 0;
  };
  CsidState& state(uint32_t csid) { return csid < small_.size() ? small_[csid] : large_[csid]; }
  void write_with(const Message& msg, Bytes&& ref, WireQueue& out);
  uint32_t chunk_size_ = kDefaultChunkSize;
  // Every chunk stream this library writes has a csid below 16: their
  // state sits inline (one lookup per message and player on the fan-out
  // path); the map holds the rest.
  std::array<CsidState, 16> small_{};
  std::unordered_map<uint32_t, CsidState> large_;
};

}  // namespace grtmp
