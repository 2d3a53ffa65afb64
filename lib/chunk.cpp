// RTMP chunk stream (RTMP 1.0 spec section 5.3): incremental reader and
// zero-copy writer.
//
// Reader decisions worth knowing (each has a test in test_chunk.cpp):
//
// * Timestamp delta after fmt 0. A fmt 3 chunk that starts a new message
//   adds the csid's last delta. After a fmt 0 header that delta is the fmt 0
//   timestamp itself (spec 5.3.1.2.4; FFmpeg and librtmp decode it this way,
//   nginx-rtmp uses 0). Our writer never sends fmt 3 for a new message
//   right after fmt 0, so both readings agree on what we send.
//
// * Extended timestamp on fmt 3 chunks. When the header that started the
//   message carried an extended timestamp, most peers (FFmpeg, OBS, nginx,
//   GStreamer rtmp2) repeat the 4-byte field on every fmt 3 continuation,
//   while rtmpdump/old librtmp omit it. For a continuation we peek 4 bytes:
//   equal to the message's extended field => consumed, otherwise they are
//   payload (and whatever follows) and are replayed through the parser. The
//   peek needs 4 bytes to decide, so it waits for them even when fewer
//   payload bytes remain; a payload of an omitting peer that starts with
//   exactly those 4 bytes is misread (unavoidable; vanishingly rare).
//   For a fmt 3 chunk that starts a NEW message on a csid whose last header
//   had an extended timestamp the 4 bytes are always read and taken as the
//   delta: every writer we know sends the field there (the spec requires it)
//   and FFmpeg may put a delta different from the previous one in it, so
//   comparing would corrupt its streams.
//
// * A fmt 0/1/2 chunk on a csid whose message is still incomplete abandons
//   the partial message (as FFmpeg does when the length changes) and starts
//   the new one, instead of failing the connection.
//
// * Set Chunk Size and Abort take effect when their message completes,
//   whatever their csid or message stream id (a peer switches its writer
//   after sending one, so ignoring it would desynchronise the stream).
//
// * buffered_bytes() counts the allocated size of incomplete messages (the
//   whole message is allocated by its first chunk), which is what
//   max_buffered_bytes bounds.
#include "grtmp/chunk.h"

#include <algorithm>
#include <cstring>

#include "grtmp/control.h"
#include "grtmp/error.h"

namespace grtmp {

namespace {

constexpr uint8_t kMessageHeaderLen[4] = {11, 7, 3, 0};
constexpr uint32_t kMaxCsid = 65599;
constexpr uint32_t kBackwards = 0x80000000u;  // uint32 deltas at or above this go backwards

// Writes the basic header for (fmt, csid); returns its length (1..3).
inline size_t put_basic_header(uint8_t* p, uint8_t fmt, uint32_t csid) {
  if (csid < 64) {
    p[0] = static_cast<uint8_t>((fmt << 6) | csid);
    return 1;
  }
  if (csid < 320) {
    p[0] = static_cast<uint8_t>(fmt << 6);
    p[1] = static_cast<uint8_t>(csid - 64);
    return 2;
  }
  uint32_t v = csid - 64;
  p[0] = static_cast<uint8_t>((fmt << 6) | 1);
  p[1] = static_cast<uint8_t>(v & 0xff);
  p[2] = static_cast<uint8_t>(v >> 8);
  return 3;
}

}  // namespace

// ---------------------------------------------------------------------------
// ChunkReader

struct ChunkReader::Impl {
  struct Stream {
    uint32_t csid = 0;
    // Header state (what fmt 1/2/3 inherit). A Stream exists only after fmt 0.
    uint32_t timestamp = 0;  // of the last message started on this csid
    uint32_t delta = 0;      // what a fmt 3 new message adds
    uint32_t length = 0;
    uint32_t stream_id = 0;
    uint8_t type = 0;
    bool ext = false;        // last fmt 0/1/2 header had the extended field
    uint32_t ext_value = 0;  // the extended field of the current/last message's first chunk
    // Message being assembled.
    bool in_progress = false;
    uint32_t received = 0;
    uint32_t cap = 0;        // allocated bytes of buf (grows as bytes arrive)
    uint8_t* buf = nullptr;
  };

  enum class State : uint8_t { Basic, Header, Ext, PeekExt, Payload };

  ~Impl() {
    for (auto& kv : streams) g_free(kv.second.buf);
  }

  Stream* find(uint32_t csid) {
    if (csid < fast.size()) return fast[csid];
    auto it = streams.find(csid);
    return it == streams.end() ? nullptr : &it->second;
  }

  Stream* create(uint32_t csid) {
    auto& s = streams[csid];  // node addresses are stable
    s.csid = csid;
    if (csid < fast.size()) fast[csid] = &s;
    return &s;
  }

  void drop_partial(Stream* s) {
    if (!s->in_progress) return;
    g_free(s->buf);
    s->buf = nullptr;
    s->cap = 0;
    buffered -= s->length;
    s->in_progress = false;
    s->received = 0;
  }

  void reset_header_staging() {
    state = State::Basic;
    have = 0;
    need = 1;
  }

  bool run(ChunkReader& r, const uint8_t* p, size_t n, std::vector<Message>& out, GError** error);
  bool on_message_header(ChunkReader& r, std::vector<Message>& out, GError** error);
  bool on_header_complete(ChunkReader& r, uint32_t t, bool ext, std::vector<Message>& out,
                          GError** error);
  bool start_message(ChunkReader& r, std::vector<Message>& out, GError** error);
  void begin_chunk(ChunkReader& r);
  bool complete_message(ChunkReader& r, std::vector<Message>& out, GError** error);

  std::unordered_map<uint32_t, Stream> streams;
  std::array<Stream*, 64> fast{};  // csid < 64 -> its Stream (or nullptr)

  State state = State::Basic;
  uint8_t hdr[18];     // staged header bytes of the current chunk
  uint8_t have = 0;    // bytes in hdr
  uint8_t need = 1;    // bytes hdr must hold before the next step
  uint8_t basic_len = 1;
  uint8_t fmt = 0;
  uint32_t csid = 0;
  // Fields of the header being parsed, until the extended timestamp is in.
  uint32_t pend_length = 0;
  uint32_t pend_stream_id = 0;
  uint8_t pend_type = 0;

  Stream* cur = nullptr;    // stream of the chunk being read
  uint32_t chunk_left = 0;  // payload bytes left in the current chunk
  uint64_t buffered = 0;    // allocated bytes of incomplete messages
  bool failed = false;
};

bool ChunkReader::Impl::run(ChunkReader& r, const uint8_t* p, size_t n, std::vector<Message>& out,
                            GError** error) {
  while (n > 0) {
    if (state == State::Payload) {
      size_t k = std::min<size_t>(n, chunk_left);
      if (cur->received + k > cur->cap) {
        // The buffer grows with what arrived (doubling, up to the announced
        // length): a peer announcing a 16 MB message and sending nothing
        // costs 64 KiB, not 16 MB, so many such peers cannot exhaust memory.
        uint32_t want = std::max<uint32_t>(cur->cap * 2, cur->received + static_cast<uint32_t>(k));
        cur->cap = std::min(cur->length, want);
        cur->buf = static_cast<uint8_t*>(g_realloc(cur->buf, cur->cap));
      }
      std::memcpy(cur->buf + cur->received, p, k);
      cur->received += static_cast<uint32_t>(k);
      chunk_left -= static_cast<uint32_t>(k);
      p += k;
      n -= k;
      if (chunk_left == 0) {
        reset_header_staging();
        if (cur->received == cur->length && !complete_message(r, out, error)) return false;
      }
      continue;
    }

    if (state == State::Basic) {
      hdr[have++] = *p++;
      n--;
      if (have == 1) {
        fmt = hdr[0] >> 6;
        uint8_t c = hdr[0] & 0x3f;
        basic_len = c == 0 ? 2 : c == 1 ? 3 : 1;
        need = basic_len;
      }
      if (have < need) continue;
      uint8_t c = hdr[0] & 0x3f;
      csid = basic_len == 1 ? c : basic_len == 2 ? 64u + hdr[1] : 64u + hdr[1] + (uint32_t(hdr[2]) << 8);
      need = static_cast<uint8_t>(basic_len + kMessageHeaderLen[fmt]);
      state = State::Header;
      if (have == need && !on_message_header(r, out, error)) return false;
      continue;
    }

    // Header, Ext, PeekExt: stage bytes until `need`.
    size_t k = std::min<size_t>(n, size_t(need - have));
    std::memcpy(hdr + have, p, k);
    have = static_cast<uint8_t>(have + k);
    p += k;
    n -= k;
    if (have < need) continue;

    if (state == State::Header) {
      if (!on_message_header(r, out, error)) return false;
    } else if (state == State::Ext) {
      if (!on_header_complete(r, load_u32(hdr + have - 4), true, out, error)) return false;
    } else {  // PeekExt: fmt 3 continuation of a message with an extended timestamp
      uint32_t v = load_u32(hdr + have - 4);
      if (v == cur->ext_value) {
        begin_chunk(r);
      } else {
        // The peer omitted the field: these 4 bytes are payload (and maybe
        // the start of the next chunk). Replay them.
        uint8_t replay[4];
        std::memcpy(replay, hdr + have - 4, 4);
        begin_chunk(r);
        if (!run(r, replay, 4, out, error)) return false;
      }
    }
  }
  return true;
}

// Basic header and message header are staged in hdr.
bool ChunkReader::Impl::on_message_header(ChunkReader& r, std::vector<Message>& out,
                                          GError** error) {
  Stream* s = find(csid);
  if (!s) {
    if (fmt != 0) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL, "fmt %u before fmt 0 on csid %u", fmt,
                  csid);
      return false;
    }
    if (streams.size() >= r.limits_.max_chunk_streams) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_LIMIT,
                  "csid %u would be chunk stream number %zu, over the limit of %u", csid,
                  streams.size() + 1, r.limits_.max_chunk_streams);
      return false;
    }
    s = create(csid);
  }
  cur = s;

  const uint8_t* h = hdr + basic_len;
  if (fmt <= 2) {
    uint32_t ts_field = load_u24(h);
    if (fmt <= 1) {
      pend_length = load_u24(h + 3);
      pend_type = h[6];
      if (pend_length > r.limits_.max_message_size) {
        g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_LIMIT,
                    "message length %u on csid %u exceeds the limit of %u bytes", pend_length, csid,
                    r.limits_.max_message_size);
        return false;
      }
      if (fmt == 0) pend_stream_id = load_u32le(h + 7);
    }
    if (ts_field == kExtendedTimestamp) {
      need = static_cast<uint8_t>(have + 4);
      state = State::Ext;
      return true;
    }
    return on_header_complete(r, ts_field, false, out, error);
  }

  // fmt 3
  if (s->in_progress) {
    if (s->ext) {
      need = static_cast<uint8_t>(have + 4);
      state = State::PeekExt;
    } else {
      begin_chunk(r);
    }
    return true;
  }
  if (s->ext) {
    need = static_cast<uint8_t>(have + 4);
    state = State::Ext;
    return true;
  }
  return on_header_complete(r, s->delta, false, out, error);
}

// The whole header of a chunk that starts a message is in. `t` is the
// timestamp (fmt 0) or delta (fmt 1/2/3).
bool ChunkReader::Impl::on_header_complete(ChunkReader& r, uint32_t t, bool ext,
                                           std::vector<Message>& out, GError** error) {
  Stream* s = cur;
  if (fmt != 3) drop_partial(s);  // a new header abandons an incomplete message
  switch (fmt) {
    case 0:
      s->stream_id = pend_stream_id;
      s->length = pend_length;
      s->type = pend_type;
      s->timestamp = t;
      s->delta = t;  // spec 5.3.1.2.4: fmt 3 after fmt 0 repeats the fmt 0 timestamp as delta
      break;
    case 1:
      s->length = pend_length;
      s->type = pend_type;
      s->delta = t;
      s->timestamp += t;
      break;
    case 2:
      s->delta = t;
      s->timestamp += t;
      break;
    default:  // fmt 3 starting a message: t is the delta (extended field or inherited)
      s->delta = t;
      s->timestamp += t;
      break;
  }
  if (fmt != 3) s->ext = ext;
  if (ext) s->ext_value = t;
  return start_message(r, out, error);
}

// First allocation for a message; larger messages grow as bytes arrive.
static constexpr uint32_t kInitialMessageBuffer = 64 * 1024;

bool ChunkReader::Impl::start_message(ChunkReader& r, std::vector<Message>& out, GError** error) {
  Stream* s = cur;
  if (buffered + s->length > r.limits_.max_buffered_bytes) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_LIMIT,
                "a %u-byte message on csid %u would make %" G_GUINT64_FORMAT
                " bytes of partial messages, over the limit of %" G_GUINT64_FORMAT,
                s->length, s->csid, buffered + s->length, r.limits_.max_buffered_bytes);
    return false;
  }
  s->received = 0;
  s->in_progress = true;
  if (s->length == 0) {
    s->buf = nullptr;
    reset_header_staging();
    return complete_message(r, out, error);
  }
  s->cap = std::min<uint32_t>(s->length, kInitialMessageBuffer);
  s->buf = static_cast<uint8_t*>(g_malloc(s->cap));
  buffered += s->length;
  begin_chunk(r);
  return true;
}

void ChunkReader::Impl::begin_chunk(ChunkReader& r) {
  chunk_left = std::min(r.chunk_size_, cur->length - cur->received);
  state = State::Payload;
  have = 0;
}

bool ChunkReader::Impl::complete_message(ChunkReader& r, std::vector<Message>& out,
                                         GError** error) {
  Stream* s = cur;
  Message m;
  m.type = s->type;
  m.timestamp = s->timestamp;
  m.stream_id = s->stream_id;
  m.csid = s->csid;
  if (s->length == 0) {
    m.payload = Bytes::adopt(g_bytes_new(nullptr, 0));
  } else {
    m.payload = Bytes::take(s->buf, s->length);
    buffered -= s->length;
  }
  s->buf = nullptr;
  s->cap = 0;
  s->in_progress = false;
  s->received = 0;

  if (m.type == kMsgSetChunkSize) {
    uint32_t size = 0;
    if (!control::parse_set_chunk_size(m, size, error)) return false;
    if (size > r.limits_.max_chunk_size) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_LIMIT,
                  "Set Chunk Size %u exceeds the limit of %u", size, r.limits_.max_chunk_size);
      return false;
    }
    r.chunk_size_ = size;
  } else if (m.type == kMsgAbort) {
    uint32_t target = 0;
    if (!control::parse_abort(m, target, error)) return false;
    if (Stream* t = find(target)) drop_partial(t);
  }
  out.push_back(std::move(m));
  return true;
}

ChunkReader::ChunkReader(const ChunkReaderLimits& limits)
    : limits_(limits), impl_(std::make_unique<Impl>()) {}
ChunkReader::ChunkReader(ChunkReader&&) noexcept = default;
ChunkReader& ChunkReader::operator=(ChunkReader&&) noexcept = default;
ChunkReader::~ChunkReader() = default;

bool ChunkReader::feed(const uint8_t* data, size_t len, std::vector<Message>& out,
                       GError** error) {
  bytes_read_ += len;
  g_return_val_if_fail(impl_ != nullptr, false);
  if (impl_->failed) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL,
                "chunk reader already failed on an earlier error");
    return false;
  }
  if (!impl_->run(*this, data, len, out, error)) {
    impl_->failed = true;
    return false;
  }
  return true;
}

size_t ChunkReader::buffered_bytes() const { return impl_ ? static_cast<size_t>(impl_->buffered) : 0; }

// ---------------------------------------------------------------------------
// WireQueue

size_t WireQueue::gather(const void** bases, size_t* lengths, size_t max) const {
  size_t k = 0;
  size_t skip = front_consumed_;
  for (const WirePiece& p : pieces_) {
    if (k >= max) break;
    if (skip < p.header_len) {
      bases[k] = p.header.data() + skip;
      lengths[k] = p.header_len - skip;
      k++;
      skip = 0;
      if (k >= max) break;
    } else {
      skip -= p.header_len;
    }
    if (p.length > skip) {
      bases[k] = p.bytes() + skip;
      lengths[k] = p.length - skip;
      k++;
    }
    skip = 0;
  }
  return k;
}

void WireQueue::consume(size_t n) {
  g_return_if_fail(n <= bytes_);
  bytes_ -= n;
  while (n > 0) {
    size_t rem = pieces_.front().wire_size() - front_consumed_;
    if (n < rem) {
      front_consumed_ += n;
      return;
    }
    n -= rem;
    pieces_.pop_front();
    front_consumed_ = 0;
  }
}

std::vector<uint8_t> WireQueue::flatten() const {
  std::vector<uint8_t> v;
  v.reserve(bytes_);
  size_t skip = front_consumed_;
  for (const WirePiece& p : pieces_) {
    if (skip < p.header_len) {
      v.insert(v.end(), p.header.data() + skip, p.header.data() + p.header_len);
      skip = 0;
    } else {
      skip -= p.header_len;
    }
    if (p.length > skip) {
      const uint8_t* d = p.bytes();
      v.insert(v.end(), d + skip, d + p.length);
    }
    skip = 0;
  }
  return v;
}

// ---------------------------------------------------------------------------
// ChunkWriter

void ChunkWriter::write(const Message& msg, WireQueue& out) { write_with(msg, Bytes(msg.payload), out); }

void ChunkWriter::write(Message&& msg, WireQueue& out) {
  Bytes ref = std::move(msg.payload);
  write_with(msg, std::move(ref), out);
}

// `msg` gives the header fields; its payload is read through `ref`.
void ChunkWriter::write_with(const Message& msg, Bytes&& ref, WireQueue& out) {
  g_return_if_fail(msg.csid >= 2 && msg.csid <= kMaxCsid);
  g_return_if_fail(ref.size() <= 0xffffff);
  g_return_if_fail(chunk_size_ > 0);

  const uint32_t len = static_cast<uint32_t>(ref.size());
  const uint32_t ts = msg.timestamp;
  CsidState& st = state(msg.csid);

  uint8_t fmt;
  uint32_t delta = ts - st.timestamp;  // wraps: forward when < 2^31
  if (!st.valid || st.stream_id != msg.stream_id || delta >= kBackwards) {
    fmt = 0;
  } else if (len != st.length || msg.type != st.type) {
    fmt = 1;
  } else if (st.has_delta && delta == st.delta) {
    // Only after fmt 1/2 set the same delta: FFmpeg, librtmp and nginx then
    // all add that delta. (After fmt 0 they disagree, so we send fmt 2.)
    fmt = 3;
  } else {
    fmt = 2;
  }

  WirePiece first;
  uint8_t* h = first.header.data();
  uint8_t* q = h + put_basic_header(h, fmt, msg.csid);
  const uint32_t tval = fmt == 0 ? ts : delta;  // fmt 3: delta == st.delta
  const bool ext = tval >= kExtendedTimestamp;
  if (fmt <= 2) {
    store_u24(q, ext ? kExtendedTimestamp : tval);
    q += 3;
    if (fmt <= 1) {
      store_u24(q, len);
      q[3] = msg.type;
      q += 4;
      if (fmt == 0) {
        store_u32le(q, msg.stream_id);
        q += 4;
      }
    }
  }
  if (ext) {
    store_u32(q, tval);
    q += 4;
  }
  first.header_len = static_cast<uint8_t>(q - h);
  first.base = ref.data();
  first.offset = 0;
  first.length = std::min(len, chunk_size_);
  if (len <= chunk_size_) {
    first.payload = std::move(ref);
    out.push(std::move(first));
  } else {
    const uint8_t* base = first.base;
    out.push(std::move(first));
    // Continuations: fmt 3, repeating the extended field when there is one.
    std::array<uint8_t, 18> ch{};
    size_t ch_len = put_basic_header(ch.data(), 3, msg.csid);
    if (ext) {
      store_u32(ch.data() + ch_len, tval);
      ch_len += 4;
    }
    for (uint32_t off = chunk_size_; off < len; off += chunk_size_) {
      WirePiece p;
      p.header = ch;
      p.header_len = static_cast<uint8_t>(ch_len);
      p.base = base;
      p.offset = off;
      p.length = std::min(chunk_size_, len - off);
      if (off + p.length == len) p.payload = std::move(ref);  // the last piece keeps the bytes alive
      out.push(std::move(p));
    }
  }

  st.valid = true;
  st.timestamp = ts;
  st.length = len;
  st.type = msg.type;
  st.stream_id = msg.stream_id;
  if (fmt == 0) {
    st.has_delta = false;
    st.delta = 0;
  } else if (fmt != 3) {
    st.has_delta = true;
    st.delta = delta;
  }
}

std::vector<uint8_t> ChunkWriter::write_flat(const Message& msg) {
  WireQueue q;
  write(msg, q);
  return q.flatten();
}

void ChunkWriter::reset() {
  small_.fill(CsidState{});
  large_.clear();
}

}  // namespace grtmp
