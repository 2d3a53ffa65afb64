// Regressions found by fuzzing (fuzz/, docs/hardening.md) and by the
// hostile-peer suites. Two kinds of tests:
//
// * Replays: every golden/fuzz-regressions/<target>-<name>.bin is run
//   through the same harness code that found it (the fuzz/*.cpp files are
//   compiled into this test, each in its own namespace). A harness aborts
//   on a broken invariant; under scripts/sanitize.sh ASan/UBSan also stop
//   on memory errors and undefined behaviour, which is how most of these
//   inputs failed first.
// * Behaviour: the observable effect of each bug in a normal build, so the
//   regression is caught without sanitizers too.
#include <gtest/gtest.h>

#include <glib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/chunk.h"
#include "grtmp/command.h"
#include "grtmp/control.h"
#include "grtmp/error.h"
#include "grtmp/flv.h"
#include "grtmp/handshake.h"
#include "grtmp/log.h"
#include "grtmp/media.h"
#include "grtmp/registry.h"
#include "grtmp/session.h"

// ---- the fuzz harnesses, renamed so they coexist in one executable ----
#include "../../fuzz/fuzz_common.h"

#define LLVMFuzzerTestOneInput fuzz_chunk_reader_one
#define LLVMFuzzerInitialize fuzz_chunk_reader_init
namespace h_chunk_reader {
#include "../../fuzz/fuzz_chunk_reader.cpp"
}
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define LLVMFuzzerTestOneInput fuzz_amf0_one
#define LLVMFuzzerInitialize fuzz_amf0_init
namespace h_amf0 {
#include "../../fuzz/fuzz_amf0.cpp"
}
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define LLVMFuzzerTestOneInput fuzz_handshake_server_one
#define LLVMFuzzerInitialize fuzz_handshake_server_init
namespace h_handshake_server {
#include "../../fuzz/fuzz_handshake_server.cpp"
}
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define LLVMFuzzerTestOneInput fuzz_handshake_client_one
#define LLVMFuzzerInitialize fuzz_handshake_client_init
namespace h_handshake_client {
#include "../../fuzz/fuzz_handshake_client.cpp"
}
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define LLVMFuzzerTestOneInput fuzz_session_one
#define LLVMFuzzerInitialize fuzz_session_init
namespace h_session {
#include "../../fuzz/fuzz_session.cpp"
}
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

#define LLVMFuzzerTestOneInput fuzz_flv_one
#define LLVMFuzzerInitialize fuzz_flv_init
namespace h_flv {
#include "../../fuzz/fuzz_flv.cpp"
}
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize

using namespace grtmp;

namespace {

using Harness = int (*)(const uint8_t*, size_t);

const std::map<std::string, Harness>& harnesses() {
  static const std::map<std::string, Harness> m = {
      {"fuzz_chunk_reader", h_chunk_reader::fuzz_chunk_reader_one},
      {"fuzz_amf0", h_amf0::fuzz_amf0_one},
      {"fuzz_handshake_server", h_handshake_server::fuzz_handshake_server_one},
      {"fuzz_handshake_client", h_handshake_client::fuzz_handshake_client_one},
      {"fuzz_session", h_session::fuzz_session_one},
      {"fuzz_flv", h_flv::fuzz_flv_one},
  };
  return m;
}

std::string regressions_dir() { return std::string(GOLDEN_DIR) + "/fuzz-regressions"; }

std::vector<uint8_t> read_file(const std::string& path) {
  gchar* data = nullptr;
  gsize len = 0;
  std::vector<uint8_t> v;
  if (g_file_get_contents(path.c_str(), &data, &len, nullptr)) v.assign(data, data + len);
  g_free(data);
  return v;
}

// The target a stored input belongs to: the longest harness name that
// prefixes the file name.
Harness harness_for(const std::string& file, std::string& target) {
  Harness h = nullptr;
  for (auto& [name, fn] : harnesses())
    if (file.rfind(name + "-", 0) == 0 && name.size() > target.size()) {
      target = name;
      h = fn;
    }
  return h;
}

// Restores the default log sink when a test is done. GLib criticals are
// counted (fuzz::critical_count), not fatal, so one bad input does not take
// the other tests down.
struct QuietLog {
  QuietLog() { fuzz::install_quiet_log(false); }
  ~QuietLog() {
    log::set_sink(nullptr, nullptr);
    log::set_level(log::Level::Info);
  }
};

}  // namespace

// Every stored input replays cleanly through its harness.
TEST(FuzzRegressions, ReplayStoredInputs) {
  QuietLog quiet;
  GDir* dir = g_dir_open(regressions_dir().c_str(), 0, nullptr);
  ASSERT_NE(dir, nullptr) << regressions_dir();
  std::vector<std::string> files;
  while (const char* name = g_dir_read_name(dir)) files.push_back(name);
  g_dir_close(dir);
  std::sort(files.begin(), files.end());  // a stable order for reports
  int replayed = 0;
  for (const std::string& file : files) {
    if (file.size() < 4 || file.compare(file.size() - 4, 4, ".bin") != 0) continue;
    std::string target;
    Harness h = harness_for(file, target);
    ASSERT_NE(h, nullptr) << file << ": no harness for this name (expected <fuzz_target>-<name>.bin)";
    auto data = read_file(regressions_dir() + "/" + file);
    SCOPED_TRACE(file);
    int criticals = fuzz::critical_count();
    EXPECT_EQ(h(data.data(), data.size()), 0);
    EXPECT_EQ(fuzz::critical_count() - criticals, 0) << "GLib criticals while replaying " << file;
    replayed++;
  }
  EXPECT_GT(replayed, 0);
}

// ---- R1: peer numbers converted to integers without a range check ---------
//
// R1a, lib/session.cpp:226 (at 574f434) handle_command: the debug log line formats
// `std::to_string((int64_t)c.transaction_id)`; the initializer list is built
// before log() checks the level, so every command with a NaN or huge
// transaction id is undefined behaviour (UBSan float-cast-overflow), with
// logging off too. Found by fuzz_session (scripts/fuzz.sh, 4154 executions):
// golden/fuzz-regressions/fuzz_session-command_txn_nan.bin.
//
// R1b, lib/session.cpp:225 (before 57a4b70) handle_command: `on_delete_stream(static_cast<uint32_t>(id))`
// converts a peer-supplied AMF0 number to uint32_t. For NaN, negative values
// and values >= 2^32 that is undefined behaviour (UBSan:
// float-cast-overflow, which scripts/sanitize.sh enables for gcc). What the
// conversion yields depends on the compiler and the code around it (a plain
// cvttsd2si truncation turns 4294967297 into 1, i.e. "delete stream 1");
// the behaviour tests below pin the intended result: ids that are not a
// uint32 never match a stream. Found with the fuzz_session harness; inputs
// golden/fuzz-regressions/fuzz_session-delete_stream_*.bin. Fixed in 57a4b70
// (the id is range-checked before the conversion).

namespace {

struct Host : SessionHost {
  void wake() override {}
  void close_soon(const char*) override {}
  std::function<void(SessionTask)> make_poster() override {
    return [](SessionTask) {};
  }
};

class Peer {
 public:
  Peer(Registry& reg, const ServerConfig& cfg) : session(reg, cfg, 1, "127.0.0.1:5000", &host) {
    std::vector<uint8_t> hs(1 + 2 * kHandshakeSize, 0);
    hs[0] = kRtmpVersion;
    EXPECT_TRUE(session.on_receive(hs.data(), hs.size(), nullptr));
    drain();
  }
  bool send(const Message& m) {
    auto b = writer.write_flat(m);
    GError* err = nullptr;
    bool ok = session.on_receive(b.data(), b.size(), &err);
    g_clear_error(&err);
    drain();
    return ok;
  }
  void drain() {
    auto v = session.output().flatten();
    session.on_sent(v.size(), g_get_monotonic_time());
  }
  Host host;
  ServerSession session;
  ChunkWriter writer;
};

Message delete_stream(double id) { return build_delete_stream(0, id); }

}  // namespace

TEST(Regression_R1_CommandNumbers, NanAndHugeTransactionIdsAreAnswered) {
  ServerConfig cfg;
  Registry reg(cfg);
  Peer p(reg, cfg);
  ConnectRequest req;
  req.app = "live";
  req.tc_url = "rtmp://127.0.0.1/live";
  ASSERT_TRUE(p.send(build_connect(std::nan(""), req)));
  for (double txn : {std::nan(""), 1e300, -1e300, HUGE_VAL, 9.3e18})
    EXPECT_TRUE(p.send(build_create_stream(txn))) << txn;
}

TEST(Regression_R1_DeleteStreamId, OutOfRangeIdDoesNotStopStreamOne) {
  ServerConfig cfg;
  Registry reg(cfg);
  Peer p(reg, cfg);
  ConnectRequest req;
  req.app = "live";
  req.tc_url = "rtmp://127.0.0.1/live";
  ASSERT_TRUE(p.send(build_connect(1, req)));
  ASSERT_TRUE(p.send(build_create_stream(2)));
  ASSERT_TRUE(p.send(build_publish(3, 1, "r1")));
  ASSERT_EQ(p.session.role(), ServerSession::Role::Publisher);
  // 2^32 + 1: not stream 1.
  EXPECT_TRUE(p.send(delete_stream(4294967297.0)));
  EXPECT_EQ(p.session.role(), ServerSession::Role::Publisher) << "deleteStream(2^32+1) stopped stream 1";
  ASSERT_NE(reg.find("live/r1"), nullptr);
  EXPECT_TRUE(reg.find("live/r1")->live());
}

TEST(Regression_R1_DeleteStreamId, NanNegativeAndHugeIdsAreIgnored) {
  ServerConfig cfg;
  Registry reg(cfg);
  Peer p(reg, cfg);
  ConnectRequest req;
  req.app = "live";
  req.tc_url = "rtmp://127.0.0.1/live";
  ASSERT_TRUE(p.send(build_connect(1, req)));
  ASSERT_TRUE(p.send(build_create_stream(2)));
  ASSERT_TRUE(p.send(build_publish(3, 1, "r1b")));
  for (double id : {std::nan(""), -1.0, -4294967295.0, 1e300, HUGE_VAL, 4294967296.0}) {
    EXPECT_TRUE(p.send(delete_stream(id))) << id;
    EXPECT_EQ(p.session.role(), ServerSession::Role::Publisher) << "deleteStream(" << id << ")";
  }
  // The real id still works.
  EXPECT_TRUE(p.send(delete_stream(1)));
  EXPECT_EQ(p.session.role(), ServerSession::Role::None);
}

// ---- R2: signed overflow in the SPS scaling-list skipper ------------------
//
// lib/media.cpp skip_scaling_list: `next = (last + delta + 256) % 256` with
// delta an se(v) up to 2^31-1 from the peer's SPS overflows int (UBSan:
// signed-integer-overflow). Reached by any publisher's AVC sequence header
// (Stream::push -> parse_avc_config -> parse_sps_size). Found by review and
// confirmed with the fuzz_flv harness; input
// golden/fuzz-regressions/fuzz_flv-sps_scaling_delta_overflow.bin (byte 0 is
// the harness option byte, the rest an AVC sequence header tag body).
// The UB is only visible under scripts/sanitize.sh; these tests pin the
// paths that reach it.

namespace {
std::vector<uint8_t> r2_tag_body() {
  auto v = read_file(regressions_dir() + "/fuzz_flv-sps_scaling_delta_overflow.bin");
  if (!v.empty()) v.erase(v.begin());  // harness option byte
  return v;
}
}  // namespace

TEST(Regression_R2_SpsScalingList, ParseAvcConfigSurvivesHugeDelta) {
  auto body = r2_tag_body();
  ASSERT_GT(body.size(), 5u);
  media::VideoInfo v;
  ASSERT_TRUE(media::inspect_video(body.data(), body.size(), v));
  EXPECT_TRUE(v.sequence_header);
  media::AvcConfig c;
  // The record itself is well formed; the SPS inside is hostile.
  EXPECT_TRUE(media::parse_avc_config(body.data() + 5, body.size() - 5, c));
  EXPECT_EQ(c.sps_count, 1);
}

TEST(Regression_R2_SpsScalingList, PublishedSequenceHeaderSurvives) {
  ServerConfig cfg;
  Registry reg(cfg);
  struct P : Publisher {
    void evict(const char*) override {}
  } who;
  auto stream = reg.publish("live/r2", "", &who, nullptr);
  ASSERT_NE(stream, nullptr);
  Message m;
  m.type = kMsgVideo;
  m.csid = kCsidVideo;
  auto body = r2_tag_body();
  m.payload = Bytes::copy(body);
  stream->push(m);
  EXPECT_TRUE(stream->info().has_video);
  EXPECT_EQ(stream->info().video_header.size(), body.size());
  reg.unpublish(stream, &who);
}

// ---- R4: a set GError is passed on after a chunk framing error -------------
//
// Fixed in 06bfc00. lib/session.cpp:134-146 (at 57a4b70) ServerSession::on_receive: `ok = reader_.feed(...,
// error)` may fail and set *error, and then "messages completed before a
// framing error are still handled" with the same `error`: the first
// parse_command() hits g_return_val_if_fail(error == nullptr || *error ==
// nullptr) (a GLib CRITICAL, fatal under G_DEBUG=fatal-criticals) and
// returns false, so the complete connect that preceded the bad chunk in the
// same read is never answered. Any peer can trigger the CRITICAL at will
// (a valid command followed by a bad chunk header in one TCP segment).
// Found by fuzz_session; input
// golden/fuzz-regressions/fuzz_session-framing_error_after_connect.bin.

namespace {
void count_critical(const gchar*, GLogLevelFlags, const gchar*, gpointer data) { ++*static_cast<int*>(data); }
}  // namespace

TEST(Regression_R4_ErrorAfterFramingError, CommandBeforeBadChunkIsHandledWithoutCritical) {
  int criticals = 0;
  guint handler = g_log_set_handler("grtmp", GLogLevelFlags(G_LOG_LEVEL_CRITICAL | G_LOG_FLAG_FATAL),
                                    count_critical, &criticals);
  ServerConfig cfg;
  Registry reg(cfg);
  Peer p(reg, cfg);
  ConnectRequest req;
  req.app = "live";
  req.tc_url = "rtmp://127.0.0.1/live";
  ChunkWriter w;
  auto bytes = w.write_flat(build_connect(1, req));
  const uint8_t bad[] = {0xc9, 0x00, 0x00};  // fmt 3 on csid 9 before any fmt 0
  bytes.insert(bytes.end(), bad, bad + sizeof bad);
  GError* err = nullptr;
  EXPECT_FALSE(p.session.on_receive(bytes.data(), bytes.size(), &err));
  ASSERT_NE(err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL)) << err->message;
  g_clear_error(&err);
  // The connect, complete before the bad chunk, was answered.
  auto out = p.session.output().flatten();
  ChunkReader r;
  std::vector<Message> msgs;
  ASSERT_TRUE(r.feed(out.data(), out.size(), msgs, nullptr));
  bool answered = false;
  for (auto& m : msgs) {
    Command c;
    if (m.type == kMsgCommandAmf0 && parse_command(m, c, amf0::Limits{}, nullptr) && c.name == "_result")
      answered = true;
  }
  EXPECT_TRUE(answered) << "connect before the framing error was not answered";
  EXPECT_EQ(criticals, 0) << "GLib CRITICAL logged";
  g_log_remove_handler("grtmp", handler);
}
