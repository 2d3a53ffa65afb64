// Chunk reader and writer throughput on a realistic live stream: 30 KB
// video frames (30 fps) interleaved with 400 B audio frames (~43 per
// second), at chunk sizes 128 (the RTMP default) and 4096 (what FFmpeg, OBS
// and nginx switch to). Throughput counts PAYLOAD bytes, so MB/s compares
// directly with a stream's bitrate.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "grtmp/chunk.h"

using namespace grtmp;

namespace {

// One second of media: messages in timestamp order.
std::vector<Message> make_stream(size_t& payload_bytes) {
  std::mt19937 rng(42);
  std::vector<uint8_t> buf(30 * 1024);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::vector<Message> msgs;
  payload_bytes = 0;
  uint32_t vts = 0, ats = 0;
  for (int v = 0; v < 30; v++) {
    while (ats <= vts) {
      Message a;
      a.type = kMsgAudio;
      a.csid = kCsidAudio;
      a.stream_id = 1;
      a.timestamp = ats;
      a.payload = Bytes::copy(buf.data() + 100, 400);
      payload_bytes += 400;
      msgs.push_back(a);
      ats += 23;
    }
    Message m;
    m.type = kMsgVideo;
    m.csid = kCsidVideo;
    m.stream_id = 1;
    m.timestamp = vts;
    // Frame sizes vary a little, as real ones do.
    size_t len = 30 * 1024 - (rng() % 2048);
    m.payload = Bytes::copy(buf.data(), len);
    payload_bytes += len;
    msgs.push_back(m);
    vts += 33;
  }
  return msgs;
}

std::vector<uint8_t> encode(const std::vector<Message>& msgs, uint32_t chunk_size) {
  ChunkWriter w;
  w.set_chunk_size(chunk_size);
  WireQueue q;
  for (const auto& m : msgs) w.write(m, q);
  return q.flatten();
}

void BM_ChunkRead(benchmark::State& state) {
  const uint32_t cs = static_cast<uint32_t>(state.range(0));
  size_t payload = 0;
  auto msgs = make_stream(payload);
  auto wire = encode(msgs, cs);
  ChunkReader r;
  r.set_chunk_size(cs);
  std::vector<Message> out;
  out.reserve(msgs.size());
  const size_t read_size = 16 * 1024;  // a typical socket read
  for (auto _ : state) {
    out.clear();
    for (size_t off = 0; off < wire.size(); off += read_size) {
      size_t n = std::min(read_size, wire.size() - off);
      if (!r.feed(wire.data() + off, n, out, nullptr)) state.SkipWithError("feed failed");
    }
    benchmark::DoNotOptimize(out.data());
  }
  if (out.size() != msgs.size()) state.SkipWithError("wrong message count");
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(payload));
  state.counters["wire_overhead_%"] = 100.0 * double(wire.size() - payload) / double(payload);
}

// write() + gather() in 64-vector batches + consume(): the whole send path
// except the syscall.
void BM_ChunkWrite(benchmark::State& state) {
  const uint32_t cs = static_cast<uint32_t>(state.range(0));
  size_t payload = 0;
  auto msgs = make_stream(payload);
  ChunkWriter w;
  w.set_chunk_size(cs);
  WireQueue q;
  const void* bases[64];
  size_t lens[64];
  for (auto _ : state) {
    for (const auto& m : msgs) w.write(m, q);
    while (!q.empty()) {
      size_t n = q.gather(bases, lens, 64);
      size_t total = 0;
      for (size_t i = 0; i < n; i++) total += lens[i];
      benchmark::DoNotOptimize(bases);
      q.consume(total);
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(payload));
}

// write() alone (pieces then dropped with clear()).
void BM_ChunkWriteOnly(benchmark::State& state) {
  const uint32_t cs = static_cast<uint32_t>(state.range(0));
  size_t payload = 0;
  auto msgs = make_stream(payload);
  ChunkWriter w;
  w.set_chunk_size(cs);
  WireQueue q;
  for (auto _ : state) {
    for (const auto& m : msgs) w.write(m, q);
    benchmark::DoNotOptimize(q.bytes());
    q.clear();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(payload));
}

}  // namespace

BENCHMARK(BM_ChunkRead)->Arg(128)->Arg(4096);
BENCHMARK(BM_ChunkWrite)->Arg(128)->Arg(4096);
BENCHMARK(BM_ChunkWriteOnly)->Arg(128)->Arg(4096);

BENCHMARK_MAIN();
