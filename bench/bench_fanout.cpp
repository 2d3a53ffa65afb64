// Fan-out: one 30 KB video message encoded for 1000 players, each with its
// own ChunkWriter and WireQueue, all sharing the payload Bytes (no payload
// copies). Per player: write() (header choice + pieces holding payload
// references), gather() the iovecs, consume() them as a socket would.
// The per_player counter is the cost of one message for one player.
#include <benchmark/benchmark.h>

#include <vector>

#include "grtmp/chunk.h"

using namespace grtmp;

namespace {

void BM_Fanout(benchmark::State& state) {
  const uint32_t cs = static_cast<uint32_t>(state.range(0));
  const int players = static_cast<int>(state.range(1));
  std::vector<uint8_t> buf(30 * 1024, 0x5a);
  Message msg;
  msg.type = kMsgVideo;
  msg.csid = kCsidVideo;
  msg.stream_id = 1;
  msg.payload = Bytes::copy(buf.data(), buf.size());

  std::vector<ChunkWriter> writers(players);
  std::vector<WireQueue> queues(players);
  for (auto& w : writers) w.set_chunk_size(cs);
  const void* bases[64];
  size_t lens[64];
  for (auto _ : state) {
    msg.timestamp += 33;
    for (int i = 0; i < players; i++) {
      WireQueue& q = queues[i];
      writers[i].write(msg, q);
      while (!q.empty()) {
        size_t n = q.gather(bases, lens, 64);
        size_t total = 0;
        for (size_t k = 0; k < n; k++) total += lens[k];
        benchmark::DoNotOptimize(bases);
        q.consume(total);
      }
    }
  }
  state.counters["per_player"] = benchmark::Counter(double(state.iterations()) * players,
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(int64_t(state.iterations()) * players);
}

// Only write() per player; the queues are cleared outside the per-player
// loop (what a burst costs before any socket is writable).
void BM_FanoutWriteOnly(benchmark::State& state) {
  const uint32_t cs = static_cast<uint32_t>(state.range(0));
  const int players = static_cast<int>(state.range(1));
  std::vector<uint8_t> buf(30 * 1024, 0x5a);
  Message msg;
  msg.type = kMsgVideo;
  msg.csid = kCsidVideo;
  msg.stream_id = 1;
  msg.payload = Bytes::copy(buf.data(), buf.size());
  std::vector<ChunkWriter> writers(players);
  std::vector<WireQueue> queues(players);
  for (auto& w : writers) w.set_chunk_size(cs);
  for (auto _ : state) {
    msg.timestamp += 33;
    for (int i = 0; i < players; i++) writers[i].write(msg, queues[i]);
    for (auto& q : queues) q.clear();
  }
  state.counters["per_player"] = benchmark::Counter(double(state.iterations()) * players,
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(int64_t(state.iterations()) * players);
}

}  // namespace

BENCHMARK(BM_Fanout)->Args({4096, 1000})->Args({128, 1000})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FanoutWriteOnly)->Args({4096, 1000})->Args({128, 1000})->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
