// grtmp::Server on loopback with port 0, attached to a GMainContext the
// test owns and iterates (config.main_context): nothing happens unless the
// caller iterates, and every callback runs on the caller's thread. Peers
// are the library's blocking Client on helper threads.
#include "grtmp/server.h"

#include <gio/gio.h>
#include <gtest/gtest.h>

#include <chrono>
#include <atomic>
#include <future>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "grtmp/client.h"
#include "grtmp/error.h"
#include "grtmp/log.h"
#include "grtmp/url.h"

using namespace grtmp;

namespace {

struct Err {
  GError* e = nullptr;
  ~Err() { g_clear_error(&e); }
  GError** out() {
    g_clear_error(&e);
    return &e;
  }
  std::string msg() const { return e ? e->message : "(no error)"; }
};

Url make_url(uint16_t port, const std::string& stream) {
  Url u;
  std::string text = "rtmp://127.0.0.1:" + std::to_string(port) + "/live/" + stream;
  EXPECT_TRUE(parse_url(text, u, nullptr)) << text;
  return u;
}

Message video(uint32_t ts, bool key, bool seq = false, size_t size = 200) {
  std::vector<uint8_t> p(size, 0xab);
  p[0] = key || seq ? 0x17 : 0x27;
  p[1] = seq ? 0 : 1;
  p[2] = p[3] = p[4] = 0;
  Message m;
  m.type = kMsgVideo;
  m.timestamp = ts;
  m.payload = Bytes::copy(p);
  return m;
}

// A server on its own GMainContext, iterated only by the test thread.
class ServerOnContext : public ::testing::Test {
 protected:
  void SetUp() override { ctx = g_main_context_new(); }
  void TearDown() override {
    if (server) server->stop();
    server.reset();
    // Sources the server attached are gone: nothing left to dispatch.
    while (g_main_context_iteration(ctx, FALSE)) {
    }
    g_main_context_unref(ctx);
  }
  void start(ServerConfig cfg) {
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.main_context = ctx;
    server = std::make_unique<Server>(cfg);
    Err err;
    ASSERT_TRUE(server->start(err.out())) << err.msg();
    ASSERT_NE(server->port(), 0);
  }
  // Iterates the context until `done()` or `timeout_ms` passed.
  template <typename Pred>
  bool iterate_until(Pred done, int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if (!g_main_context_iteration(ctx, FALSE)) g_usleep(1000);
    }
    return true;
  }
  template <typename T>
  static bool ready(const std::future<T>& f) {
    return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

  GMainContext* ctx = nullptr;
  std::unique_ptr<Server> server;
};

// Records the thread each registry callback ran on.
struct ThreadRecorder : Registry::Observer {
  std::thread::id on_publish_thread;
  int publishes = 0;
  void on_publish(const std::shared_ptr<Stream>&) override {
    on_publish_thread = std::this_thread::get_id();
    publishes++;
  }
};

}  // namespace

TEST_F(ServerOnContext, ServesPublishAndPlayOnlyWhileTheCallerIterates) {
  start(ServerConfig{});
  ThreadRecorder recorder;
  server->registry().add_observer(&recorder);
  const uint16_t port = server->port();

  Client publisher;
  auto published = std::async(std::launch::async, [&] {
    Err err;
    bool ok = publisher.connect(make_url(port, "ctx"), nullptr, err.out()) && publisher.publish(nullptr, err.out()) &&
              publisher.send(video(0, false, true), nullptr, err.out()) &&
              publisher.send(video(0, true), nullptr, err.out()) && publisher.send(video(40, false), nullptr, err.out());
    return ok ? std::string() : err.msg();
  });
  // No thread of the server's own: without iterations the connection is
  // not even accepted, and the client waits for the handshake.
  g_usleep(500 * 1000);
  EXPECT_FALSE(ready(published)) << "the client got through without the context being iterated";
  EXPECT_EQ(server->stats().connections_total, 0u);

  ASSERT_TRUE(iterate_until([&] { return ready(published); }));
  EXPECT_EQ(published.get(), "");
  ASSERT_TRUE(iterate_until([&] {
    auto stream = server->registry().find("live/ctx");
    return recorder.publishes > 0 && stream && stream->info().messages_in >= 3;
  }));
  EXPECT_EQ(recorder.on_publish_thread, std::this_thread::get_id()) << "registry callbacks run on the caller's thread";
  EXPECT_EQ(server->stats().connections_total, 1u);

  // A late player gets the cached sequence header and keyframe.
  Client player;
  auto played = std::async(std::launch::async, [&] {
    Err err;
    if (!player.connect(make_url(port, "ctx"), nullptr, err.out()) || !player.play(nullptr, err.out()))
      return std::string("play failed: ") + err.msg();
    for (int i = 0; i < 50; i++) {
      Message m;
      if (!player.receive(m, nullptr, err.out())) return std::string("receive failed: ") + err.msg();
      if (m.type == kMsgVideo && m.payload.size() > 1 && m.payload.data()[0] == 0x17 && m.payload.data()[1] == 1)
        return std::string();
    }
    return std::string("no keyframe in 50 messages");
  });
  ASSERT_TRUE(iterate_until([&] { return ready(played); }));
  EXPECT_EQ(played.get(), "");
  auto stats = server->stats();
  EXPECT_EQ(stats.publishers, 1u);
  EXPECT_EQ(stats.players, 1u);
  EXPECT_EQ(stats.connections_current, 2u);

  publisher.close();
  player.close();
  EXPECT_TRUE(iterate_until([&] { return server->stats().connections_current == 0; }));
  EXPECT_EQ(server->registry().find("live/ctx"), nullptr);
  server->registry().remove_observer(&recorder);
}

TEST_F(ServerOnContext, PublisherThatSendsNoMediaIsClosedAfterThePublisherTimeout) {
  ServerConfig cfg;
  cfg.publisher_timeout_ms = 500;
  start(cfg);
  const uint16_t port = server->port();
  Client publisher;
  auto published = std::async(std::launch::async, [&] {
    Err err;
    bool ok = publisher.connect(make_url(port, "quiet"), nullptr, err.out()) && publisher.publish(nullptr, err.out());
    return ok ? std::string() : err.msg();
  });
  ASSERT_TRUE(iterate_until([&] { return ready(published); }));
  ASSERT_EQ(published.get(), "");
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(iterate_until([&] { return server->stats().publishers == 1; }));
  // Checked on the once-a-second timer: closed within a few seconds.
  ASSERT_TRUE(iterate_until([&] { return server->stats().connections_current == 0; }, 5000))
      << "a publisher that sends no media was kept";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  EXPECT_EQ(server->stats().publishers, 0u);
  EXPECT_EQ(server->registry().find("live/quiet"), nullptr) << "the key is free again";
  // The client sees the connection end.
  auto received = std::async(std::launch::async, [&] {
    Message m;
    Err err;
    while (publisher.receive(m, nullptr, err.out())) {
    }
    return true;
  });
  EXPECT_TRUE(iterate_until([&] { return ready(received); }, 5000));
}

TEST_F(ServerOnContext, PublisherThatKeepsSendingMediaStays) {
  ServerConfig cfg;
  cfg.publisher_timeout_ms = 500;
  start(cfg);
  const uint16_t port = server->port();
  Client publisher;
  auto published = std::async(std::launch::async, [&] {
    Err err;
    if (!publisher.connect(make_url(port, "busy"), nullptr, err.out()) || !publisher.publish(nullptr, err.out()))
      return err.msg();
    // 2.5 s of a frame every 100 ms.
    for (uint32_t ts = 0; ts < 2500; ts += 100) {
      if (!publisher.send(video(ts, ts % 1000 == 0), nullptr, err.out())) return err.msg();
      g_usleep(100 * 1000);
    }
    return std::string();
  });
  ASSERT_TRUE(iterate_until([&] { return ready(published); }));
  EXPECT_EQ(published.get(), "");
  EXPECT_EQ(server->stats().publishers, 1u);
  EXPECT_EQ(server->stats().connections_current, 1u);
  publisher.close();
}

namespace {

// Keeps the reasons of "connection closed" log records.
struct CloseReasons {
  std::mutex mu;
  std::vector<std::string> reasons;
  static void sink(log::Level, std::string_view msg, const log::Field* f, size_t n, void* self) {
    if (msg != "connection closed") return;
    auto* me = static_cast<CloseReasons*>(self);
    std::lock_guard lock(me->mu);
    for (size_t i = 0; i < n; i++)
      if (std::string_view(f[i].key) == "reason") me->reasons.push_back(f[i].value);
  }
};

}  // namespace

// A player that stops reading while the publisher sends faster than the
// socket buffers absorb: the stall timeout is off, so only the lag limit
// can close it; it is closed, logged with the reason and counted, and the
// publisher is not disturbed.
TEST_F(ServerOnContext, PlayerThatFallsBehindLiveIsClosedPastTheLagLimit) {
  ServerConfig cfg;
  cfg.player_max_lag_ms = 1000;
  cfg.player_stall_timeout_ms = 0;
  cfg.player_queue_max_bytes = 1u << 20;
  cfg.output_batch_ms = 0;
  start(cfg);
  CloseReasons closes;
  log::set_sink(&CloseReasons::sink, &closes);
  const uint16_t port = server->port();

  Client publisher, player;
  auto ready_to_play = std::async(std::launch::async, [&] {
    Err err;
    bool ok = publisher.connect(make_url(port, "lag"), nullptr, err.out()) && publisher.publish(nullptr, err.out()) &&
              player.connect(make_url(port, "lag"), nullptr, err.out()) && player.play(nullptr, err.out());
    return ok ? std::string() : err.msg();
  });
  ASSERT_TRUE(iterate_until([&] { return ready(ready_to_play); }));
  ASSERT_EQ(ready_to_play.get(), "");
  ASSERT_TRUE(iterate_until([&] { return server->stats().players == 1; }));

  // 100 KB frames every 10 ms (80 Mbit/s) until the player is gone; the
  // player never reads.
  std::atomic<bool> stop{false};
  auto sent = std::async(std::launch::async, [&] {
    Err err;
    for (uint32_t i = 0; !stop && i < 3000; i++) {
      if (!publisher.send(video(i * 10, i % 25 == 0, false, 100 * 1024), nullptr, err.out())) return err.msg();
      g_usleep(10 * 1000);
    }
    return std::string();
  });
  bool closed = iterate_until([&] { return server->stats().slow_players_closed > 0; }, 30000);
  stop = true;
  ASSERT_TRUE(iterate_until([&] { return ready(sent); }));
  log::set_sink(nullptr, nullptr);
  ASSERT_TRUE(closed) << "the lagging player was not closed";
  EXPECT_EQ(sent.get(), "") << "the publisher was disturbed";
  auto stats = server->stats();
  EXPECT_EQ(stats.players, 0u);
  EXPECT_EQ(stats.publishers, 1u);
  EXPECT_EQ(stats.slow_players_closed, 1u);
  EXPECT_GT(stats.dropped_messages, 0u);
  bool lag_reason = false;
  {
    std::lock_guard lock(closes.mu);
    for (auto& r : closes.reasons) lag_reason |= r.find("behind live") != std::string::npos;
  }
  EXPECT_TRUE(lag_reason) << "no connection closed with a lag reason";
  publisher.close();
  player.close();
}

// Servers are shared by address_key(): spellings of one address agree.
TEST(ServerConfig, AddressKeyIsCanonical) {
  auto key = [](const char* host, uint16_t port = 1935) {
    ServerConfig c;
    c.host = host;
    c.port = port;
    return c.address_key();
  };
  EXPECT_EQ(key("127.0.0.1"), "127.0.0.1:1935");
  EXPECT_EQ(key("::1"), "[::1]:1935");
  EXPECT_EQ(key("[::1]"), "[::1]:1935");
  EXPECT_EQ(key("0:0:0:0:0:0:0:1"), "[::1]:1935");
  EXPECT_EQ(key(""), key("0.0.0.0"));
  EXPECT_EQ(key("LocalHost"), "localhost:1935");
  EXPECT_NE(key("127.0.0.1"), key("127.0.0.1", 1936));
}

// acquire() returns the running server for the same address however it is
// spelled, and a new one for another port.
TEST(ServerAcquire, SameAddressSharesOneServer) {
  ServerConfig first;
  first.host = "127.0.0.1";
  first.port = 0;
  Err err;
  auto a = Server::acquire(first, err.out());
  ASSERT_TRUE(a) << err.msg();
  ServerConfig again;
  again.host = "127.0.0.1";
  again.port = a->port();
  auto b = Server::acquire(again, err.out());
  ASSERT_TRUE(b) << err.msg();
  EXPECT_EQ(a.get(), b.get());
  auto c = Server::acquire(first, err.out());  // port 0: always a new one
  ASSERT_TRUE(c) << err.msg();
  EXPECT_NE(a.get(), c.get());
  a->stop();
  c->stop();
}
