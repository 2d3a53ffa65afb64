// AMF0 decode / encode throughput on the two payloads a server handles most:
// a player's connect command (a realistic object as Flash / FFmpeg / OBS
// send it, with the Enhanced RTMP fourCcList) and an onMetaData data
// message (an ECMA array as OBS writes it). Reports MB/s via
// SetBytesProcessed.
#include <benchmark/benchmark.h>

#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/command.h"

using namespace grtmp;
using amf0::Value;

namespace {

std::vector<Value> connect_values() {
  Value o = Value::make_object({
      {"app", Value::make_string("live")},
      {"type", Value::make_string("nonprivate")},
      {"flashVer", Value::make_string("FMLE/3.0 (compatible; obs-studio/30.0.2; FMSc/1.0)")},
      {"swfUrl", Value::make_string("rtmp://live.example.com/live")},
      {"tcUrl", Value::make_string("rtmp://live.example.com/live")},
      {"fpad", Value::make_boolean(false)},
      {"capabilities", Value::make_number(15)},
      {"audioCodecs", Value::make_number(3191)},
      {"videoCodecs", Value::make_number(252)},
      {"videoFunction", Value::make_number(1)},
      {"pageUrl", Value::make_string("https://www.example.com/player.html")},
      {"objectEncoding", Value::make_number(0)},
      {"fourCcList", Value::make_strict_array({Value::make_string("av01"),
                                               Value::make_string("vp09"),
                                               Value::make_string("hvc1")})},
  });
  return {Value::make_string("connect"), Value::make_number(1), o};
}

std::vector<Value> metadata_values() {
  Value md = Value::make_ecma_array({
      {"duration", Value::make_number(0)},
      {"fileSize", Value::make_number(0)},
      {"width", Value::make_number(1920)},
      {"height", Value::make_number(1080)},
      {"videocodecid", Value::make_number(7)},
      {"videodatarate", Value::make_number(6000)},
      {"framerate", Value::make_number(60)},
      {"audiocodecid", Value::make_number(10)},
      {"audiodatarate", Value::make_number(160)},
      {"audiosamplerate", Value::make_number(48000)},
      {"audiosamplesize", Value::make_number(16)},
      {"audiochannels", Value::make_number(2)},
      {"stereo", Value::make_boolean(true)},
      {"2.1", Value::make_boolean(false)},
      {"3.1", Value::make_boolean(false)},
      {"4.0", Value::make_boolean(false)},
      {"4.1", Value::make_boolean(false)},
      {"5.1", Value::make_boolean(false)},
      {"7.1", Value::make_boolean(false)},
      {"encoder", Value::make_string("obs-output module (libobs version 30.0.2)")},
  });
  return {Value::make_string("onMetaData"), md};
}

void decode_bench(benchmark::State& state, const std::vector<Value>& values) {
  std::vector<uint8_t> bytes;
  {
    ByteWriter w;
    amf0::encode_all(values, w);
    bytes = w.buffer();
  }
  const amf0::Limits limits;
  for (auto _ : state) {
    std::vector<Value> out;
    bool ok = amf0::decode_all(bytes.data(), bytes.size(), out, limits, nullptr);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes.size()));
  state.counters["msg_bytes"] = double(bytes.size());
}

void encode_bench(benchmark::State& state, const std::vector<Value>& values) {
  size_t size = 0;
  for (auto _ : state) {
    ByteWriter w;
    amf0::encode_all(values, w);
    size = w.size();
    benchmark::DoNotOptimize(w.buffer().data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(size));
  state.counters["msg_bytes"] = double(size);
}

void BM_DecodeConnect(benchmark::State& state) { decode_bench(state, connect_values()); }
void BM_EncodeConnect(benchmark::State& state) { encode_bench(state, connect_values()); }
void BM_DecodeMetadata(benchmark::State& state) { decode_bench(state, metadata_values()); }
void BM_EncodeMetadata(benchmark::State& state) { encode_bench(state, metadata_values()); }

// The whole path a server takes for a connect: AMF0 decode into a Command,
// then the typed ConnectParams.
void BM_ParseConnectCommand(benchmark::State& state) {
  Message m;
  m.type = kMsgCommandAmf0;
  m.payload = amf0::encode_to_bytes(connect_values());
  const amf0::Limits limits;
  for (auto _ : state) {
    Command c;
    ConnectParams p;
    bool ok = parse_command(m, c, limits, nullptr) && parse_connect(c, p, nullptr);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(p.app.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(m.payload.size()));
}

// Stripping @setDataFrame slices the payload without decoding the metadata.
void BM_StripSetDataFrame(benchmark::State& state) {
  std::vector<Value> values = metadata_values();
  values.insert(values.begin(), Value::make_string("@setDataFrame"));
  Message m;
  m.type = kMsgDataAmf0;
  m.payload = amf0::encode_to_bytes(values);
  for (auto _ : state) {
    Bytes out;
    std::string handler;
    bool ok = strip_set_data_frame(m, out, handler, nullptr);
    benchmark::DoNotOptimize(ok);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(m.payload.size()));
}

}  // namespace

BENCHMARK(BM_DecodeConnect);
BENCHMARK(BM_EncodeConnect);
BENCHMARK(BM_DecodeMetadata);
BENCHMARK(BM_EncodeMetadata);
BENCHMARK(BM_ParseConnectCommand);
BENCHMARK(BM_StripSetDataFrame);

BENCHMARK_MAIN();
