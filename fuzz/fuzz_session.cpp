// A whole ServerSession (handshake, chunk stream, commands, publish/play,
// registry fan-out, timers) fed arbitrary bytes, with scripted players on
// the same registry so whatever the fuzzer publishes is fanned out.
//
// Input: byte 0 = mode, then a fuzz::Slicer stream (size-table length byte,
// size table, bytes for the session).
//   mode bits 0-1: what precedes the fuzzer's bytes
//       0 raw bytes (the fuzzer does the handshake itself)
//       1 a valid simple C0 C1 + C2
//       2 handshake + connect("live") + createStream + publish("test") on
//         stream 1, all on csid 3 at chunk size 128 (reaches the media path)
//       3 handshake + connect("live") + createStream
//   bit 2: an asynchronous authorizer (decisions arrive after each slice;
//          names containing "deny" are refused) - exercises deferral
//   bit 3: small caps (GOP cache 8 messages / 64 KiB, player queue 16 KiB,
//          AMF depth 8) - exercises trimming and drop-to-keyframe
//
// Invariants checked: no crash/leak/UB; whatever the server writes after
// the handshake, to the fuzzed peer and to both players, is a valid chunk
// stream (a client ChunkReader accepts it); a closed session refuses input.
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "fuzz_common.h"
#include "grtmp/chunk.h"
#include "grtmp/command.h"
#include "grtmp/handshake.h"
#include "grtmp/registry.h"
#include "grtmp/session.h"

using namespace grtmp;

namespace {

struct Host : SessionHost {
  int wakes = 0;
  bool close_requested = false;
  std::vector<SessionTask> tasks;
  void wake() override { wakes++; }
  void close_soon(const char*) override { close_requested = true; }
  std::function<void(SessionTask)> make_poster() override {
    return [this](SessionTask t) { tasks.push_back(std::move(t)); };
  }
  bool run_tasks(ServerSession& s) {
    auto pending = std::move(tasks);
    tasks.clear();
    bool ok = true;
    for (auto& t : pending) {
      GError* err = nullptr;
      if (ok && !t(s, &err)) ok = false;
      g_clear_error(&err);
    }
    return ok;
  }
};

// Holds decisions until the harness releases them (like an HTTP callback).
class DeferredAuthorizer : public Authorizer {
 public:
  void authorize(const AuthRequest& r, Done done) override {
    AuthDecision d;
    d.allow = r.name.find("deny") == std::string::npos;
    if (!d.allow) d.reason = "denied by the fuzz authorizer";
    if (r.name == "rename") d.rename = "test";
    pending_.push_back({std::move(done), d});
  }
  void release() {
    auto p = std::move(pending_);
    pending_.clear();
    for (auto& [done, d] : p) done(d);
  }

 private:
  std::vector<std::pair<Done, AuthDecision>> pending_;
};

std::vector<uint8_t> simple_handshake() {
  std::vector<uint8_t> v(1 + 2 * kHandshakeSize, 0);
  v[0] = kRtmpVersion;
  return v;  // C0, C1 (zero time, zero version, zero "random"), C2
}

void append(std::vector<uint8_t>& out, ChunkWriter& w, const Message& m) {
  auto b = w.write_flat(m);
  out.insert(out.end(), b.begin(), b.end());
}

std::vector<uint8_t> prefix(int mode, bool play, const char* name) {
  std::vector<uint8_t> v;
  if (mode == 0) return v;
  v = simple_handshake();
  if (mode == 1) return v;
  ChunkWriter w;
  ConnectRequest req;
  req.app = "live";
  req.tc_url = "rtmp://127.0.0.1/live";
  req.publisher = !play;
  append(v, w, build_connect(1, req));
  append(v, w, build_create_stream(2));
  if (mode == 2) append(v, w, play ? build_play(3, 1, name) : build_publish(3, 1, name));
  return v;
}

// Checks that what a session wrote is a valid chunk stream for a client.
struct OutputCheck {
  size_t handshake_left = 1 + 2 * kHandshakeSize;
  ChunkReader reader;
  std::vector<Message> msgs;
  void drain(ServerSession& s) {
    auto bytes = s.output().flatten();
    FUZZ_CHECK(bytes.size() == s.output().bytes());
    s.on_sent(bytes.size(), g_get_monotonic_time());
    FUZZ_CHECK(s.output().empty());
    size_t skip = std::min(handshake_left, bytes.size());
    handshake_left -= skip;
    msgs.clear();
    GError* err = nullptr;
    bool ok = reader.feed(bytes.data() + skip, bytes.size() - skip, msgs, &err);
    if (!ok) fprintf(stderr, "server output does not parse: %s\n", err ? err->message : "?");
    FUZZ_CHECK(ok);
  }
};

struct Peer {
  Peer(Registry& reg, const ServerConfig& cfg, uint64_t id) : session(reg, cfg, id, "127.0.0.1:4000", &host) {}
  Host host;
  ServerSession session;
  OutputCheck check;
  bool alive = true;

  void feed(const uint8_t* p, size_t n) {
    if (!alive) return;
    GError* err = nullptr;
    if (!session.on_receive(p, n, &err)) {
      FUZZ_CHECK(err != nullptr);
      g_error_free(err);
      alive = false;
    }
  }
  void step(DeferredAuthorizer* auth, int64_t now) {
    if (auth) auth->release();
    if (alive && !host.run_tasks(session)) alive = false;
    GError* err = nullptr;
    if (alive && !session.pump(&err)) alive = false;
    g_clear_error(&err);
    if (alive && !session.check_timers(now, &err)) alive = false;
    g_clear_error(&err);
    check.drain(session);
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::install_quiet_log();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  fuzz::Slicer in(data + 1, size - 1);

  ServerConfig cfg;
  cfg.handshake_timeout_ms = 10000;
  cfg.idle_timeout_ms = 60000;
  cfg.max_message_size = 1u << 20;  // see fuzz_chunk_reader.cpp: ASan cost of 16 MiB allocations
  std::shared_ptr<DeferredAuthorizer> auth;
  if (mode & 4) {
    auth = std::make_shared<DeferredAuthorizer>();
    cfg.authorizer = auth;
  }
  if (mode & 8) {
    cfg.gop_cache_max_messages = 8;
    cfg.gop_cache_max_bytes = 64 * 1024;
    cfg.player_queue_max_bytes = 16 * 1024;
    cfg.amf_limits.max_depth = 8;
  }
  Registry registry(cfg);

  // A player waiting on live/test before anything is published.
  Peer player(registry, cfg, 2);
  auto pp = prefix(2, true, "test");
  player.feed(pp.data(), pp.size());
  player.step(auth.get(), g_get_monotonic_time());

  Peer peer(registry, cfg, 1);
  auto pre = prefix(mode & 3, false, "test");
  peer.feed(pre.data(), pre.size());
  peer.step(auth.get(), g_get_monotonic_time());

  for (size_t off = 0; off < in.size() && peer.alive;) {
    size_t k = in.next(in.size() - off);
    peer.feed(in.data() + off, k);
    off += k;
    int64_t now = g_get_monotonic_time();
    peer.step(auth.get(), now);
    player.step(auth.get(), now);
  }

  // A late joiner gets the cached headers and GOP.
  Peer late(registry, cfg, 3);
  late.feed(pp.data(), pp.size());
  late.step(auth.get(), g_get_monotonic_time());
  player.step(auth.get(), g_get_monotonic_time());

  // Far in the future every timer fires; sessions must say so, not crash.
  int64_t later = g_get_monotonic_time() + int64_t(3600) * G_USEC_PER_SEC;
  peer.step(auth.get(), later);
  player.step(auth.get(), later);
  late.step(auth.get(), later);

  // Leaving: the publisher first, then the players drain what is left.
  peer.session.close("fuzz end");
  FUZZ_CHECK(!peer.session.on_receive(data, size, nullptr));
  player.step(auth.get(), later);
  late.step(auth.get(), later);
  (void)peer.session.dropped_messages();
  (void)registry.list();
  return 0;
}
