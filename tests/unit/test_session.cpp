// ServerSession with no sockets: a scripted client's bytes in, the
// server's bytes out decoded and checked message by message.
#include <gtest/gtest.h>

#include "grtmp/chunk.h"
#include "grtmp/command.h"
#include "grtmp/control.h"
#include "grtmp/error.h"
#include "grtmp/handshake.h"
#include "grtmp/session.h"

#include <glib/gstdio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <tuple>

using namespace grtmp;

namespace {

struct TestHost : SessionHost {
  int wakes = 0;
  std::string closed;
  std::vector<SessionTask> tasks;
  void wake() override { wakes++; }
  void close_soon(const char* reason) override { closed = reason; }
  std::function<void(SessionTask)> make_poster() override {
    return [this](SessionTask t) { tasks.push_back(std::move(t)); };
  }
  // Runs what an authorizer posted, as the loop thread would.
  bool run_tasks(ServerSession& s, GError** error) {
    auto pending = std::move(tasks);
    tasks.clear();
    for (auto& t : pending)
      if (!t(s, error)) return false;
    return true;
  }
};

// A client that speaks to a ServerSession in memory.
class ScriptedClient {
 public:
  ScriptedClient(Registry& reg, const ServerConfig& cfg, uint64_t id = 1)
      : session(reg, cfg, id, "127.0.0.1:5000", &host), hs(Handshake::Role::Client) {}

  void handshake() {
    auto c0c1 = hs.start();
    ASSERT_TRUE(session.on_receive(c0c1.data(), c0c1.size(), nullptr));
    auto s = drain_raw();
    ASSERT_EQ(s.size(), 1u + 2 * kHandshakeSize);
    size_t consumed = 0;
    std::vector<uint8_t> c2;
    ASSERT_EQ(hs.feed(s.data(), s.size(), consumed, c2, nullptr), Handshake::Status::Done);
    ASSERT_TRUE(session.on_receive(c2.data(), c2.size(), nullptr));
    EXPECT_TRUE(session.handshake_done());
  }

  bool send(const Message& m, GError** error = nullptr) {
    auto bytes = writer.write_flat(m);
    if (!session.on_receive(bytes.data(), bytes.size(), error)) return false;
    return host.run_tasks(session, error);
  }

  std::vector<uint8_t> drain_raw() {
    auto v = session.output().flatten();
    session.on_sent(v.size(), g_get_monotonic_time());
    return v;
  }

  std::vector<Message> receive() {
    GError* err = nullptr;
    session.pump(&err);
    auto bytes = drain_raw();
    std::vector<Message> out;
    EXPECT_TRUE(reader.feed(bytes.data(), bytes.size(), out, &err)) << (err ? err->message : "");
    g_clear_error(&err);
    return out;
  }

  static std::string command_name(const Message& m) {
    Command c;
    if (m.type == kMsgDataAmf0) {  // data: a handler name, then values (no transaction id)
      size_t off = 0;
      amf0::Value v;
      if (!amf0::decode(m.payload.data(), m.payload.size(), off, v, amf0::Limits{}, nullptr)) return "?";
      return v.string;
    }
    if (m.type != kMsgCommandAmf0) return "";
    if (!parse_command(m, c, amf0::Limits{}, nullptr)) return "?";
    return c.name;
  }
  static std::string status_code(const Message& m) {
    Command c;
    if (!parse_command(m, c, amf0::Limits{}, nullptr) || c.name != "onStatus" || c.args.empty()) return "";
    auto code = c.args[0].get_string("code");
    return code ? std::string(*code) : "";
  }

  void connect(const char* app = "live") {
    ConnectRequest req;
    req.app = app;
    req.tc_url = std::string("rtmp://127.0.0.1/") + app;
    ASSERT_TRUE(send(build_connect(1, req)));
    auto msgs = receive();
    ASSERT_EQ(msgs.size(), 4u);
    EXPECT_EQ(msgs[0].type, kMsgWindowAckSize);
    EXPECT_EQ(msgs[1].type, kMsgSetPeerBandwidth);
    EXPECT_EQ(msgs[2].type, kMsgSetChunkSize);
    EXPECT_EQ(command_name(msgs[3]), "_result");
    Command c;
    ASSERT_TRUE(parse_command(msgs[3], c, amf0::Limits{}, nullptr));
    EXPECT_EQ(c.transaction_id, 1);
    ASSERT_FALSE(c.args.empty());
    EXPECT_EQ(c.args[0].get_string("code").value_or(""), "NetConnection.Connect.Success");
  }

  uint32_t create_stream() {
    EXPECT_TRUE(send(build_create_stream(4)));
    auto msgs = receive();
    EXPECT_EQ(msgs.size(), 1u);
    Command c;
    EXPECT_TRUE(parse_command(msgs[0], c, amf0::Limits{}, nullptr));
    EXPECT_EQ(c.name, "_result");
    EXPECT_EQ(c.transaction_id, 4);
    return c.args.empty() ? 0 : static_cast<uint32_t>(c.args[0].number);
  }

  TestHost host;
  ServerSession session;
  Handshake hs;
  ChunkWriter writer;
  ChunkReader reader;
};

Message media(uint8_t type, uint32_t sid, uint32_t ts, std::vector<uint8_t> payload) {
  Message m;
  m.type = type;
  m.stream_id = sid;
  m.timestamp = ts;
  m.csid = type == kMsgAudio ? 4 : 6;
  m.payload = Bytes::copy(payload);
  return m;
}

Message set_data_frame(uint32_t sid) {
  amf0::Value meta = amf0::Value::make_ecma_array();
  meta.set("width", amf0::Value::make_number(320));
  meta.set("height", amf0::Value::make_number(240));
  Message m;
  m.type = kMsgDataAmf0;
  m.stream_id = sid;
  m.csid = 4;
  m.payload = amf0::encode_to_bytes(
      {amf0::Value::make_string("@setDataFrame"), amf0::Value::make_string("onMetaData"), meta});
  return m;
}

}  // namespace

TEST(Session, PublishThenLatePlayerGetsPreambleMetadataHeadersAndKeyframe) {
  ServerConfig cfg;
  Registry reg(cfg);
  ScriptedClient pub(reg, cfg, 1);
  pub.handshake();
  pub.connect();
  ASSERT_TRUE(pub.send(build_release_stream(2, "cam")));
  ASSERT_TRUE(pub.send(build_fcpublish(3, "cam")));
  auto fc = pub.receive();
  ASSERT_GE(fc.size(), 1u);
  uint32_t sid = pub.create_stream();
  EXPECT_EQ(sid, 1u);
  ASSERT_TRUE(pub.send(build_publish(5, sid, "cam?token=x")));
  auto st = pub.receive();
  ASSERT_FALSE(st.empty());
  EXPECT_EQ(ScriptedClient::status_code(st.back()), "NetStream.Publish.Start");
  EXPECT_EQ(pub.session.role(), ServerSession::Role::Publisher);
  EXPECT_EQ(pub.session.stream_key(), "live/cam");

  ASSERT_TRUE(pub.send(set_data_frame(sid)));
  ASSERT_TRUE(pub.send(media(kMsgVideo, sid, 0, {0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f})));
  ASSERT_TRUE(pub.send(media(kMsgAudio, sid, 0, {0xaf, 0, 0x12, 0x10})));
  ASSERT_TRUE(pub.send(media(kMsgVideo, sid, 0, {0x17, 1, 0, 0, 0, 0xaa})));
  ASSERT_TRUE(pub.send(media(kMsgAudio, sid, 23, {0xaf, 1, 0xbb})));
  ASSERT_TRUE(pub.send(media(kMsgVideo, sid, 40, {0x27, 1, 0, 0, 0, 0xcc})));
  auto info = reg.find("live/cam")->info();
  EXPECT_EQ(info.query, "token=x");
  EXPECT_EQ(info.messages_in, 6u);

  ScriptedClient player(reg, cfg, 2);
  player.handshake();
  player.connect();
  uint32_t psid = player.create_stream();
  ASSERT_TRUE(player.send(build_play(6, psid, "cam")));
  auto msgs = player.receive();
  EXPECT_GT(player.host.wakes, 0);
  std::vector<std::string> seq;
  for (auto& m : msgs) {
    if (m.type == kMsgUserControl) {
      control::UserControl uc;
      ASSERT_TRUE(control::parse_user_control(m, uc, nullptr));
      seq.push_back(std::string("uc:") + control::user_control_event_name(uc.event));
    } else if (m.type == kMsgCommandAmf0) {
      seq.push_back(ScriptedClient::status_code(m));
    } else if (m.type == kMsgDataAmf0) {
      seq.push_back("data:" + ScriptedClient::command_name(m));
    } else if (m.type == kMsgVideo) {
      seq.push_back("video:" + std::to_string(m.payload.data()[1]));
    } else if (m.type == kMsgAudio) {
      seq.push_back("audio:" + std::to_string(m.payload.data()[1]));
    }
    if (m.type == kMsgVideo || m.type == kMsgAudio) EXPECT_EQ(m.stream_id, psid);
  }
  std::vector<std::string> want = {
      std::string("uc:") + control::user_control_event_name(control::UserControlEvent::StreamBegin),
      "NetStream.Play.Reset",
      "NetStream.Play.Start",
      "data:|RtmpSampleAccess",
      "data:onMetaData",
      "video:0",
      "audio:0",
      "video:1",
      "audio:1",
      "video:1",
  };
  EXPECT_EQ(seq, want);

  // Live frames keep flowing to the player.
  ASSERT_TRUE(pub.send(media(kMsgVideo, sid, 80, {0x27, 1, 0, 0, 0, 0xdd})));
  auto more = player.receive();
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].timestamp, 80u);
  EXPECT_EQ(more[0].payload.view(), std::string_view("\x27\x01\x00\x00\x00\xdd", 6));

  // Publisher leaves: the player is told and stays connected.
  ASSERT_TRUE(pub.send(build_fcunpublish(7, "cam")));
  ASSERT_TRUE(pub.send(build_delete_stream(8, sid)));
  auto bye = player.receive();
  ASSERT_EQ(bye.size(), 2u);
  EXPECT_EQ(bye[0].type, kMsgUserControl);
  EXPECT_EQ(ScriptedClient::status_code(bye[1]), "NetStream.Play.UnpublishNotify");
  EXPECT_EQ(player.session.role(), ServerSession::Role::Player);

  // Republish on the same key is accepted and announced to the player.
  ScriptedClient pub2(reg, cfg, 3);
  pub2.handshake();
  pub2.connect();
  uint32_t sid2 = pub2.create_stream();
  ASSERT_TRUE(pub2.send(build_publish(5, sid2, "cam")));
  EXPECT_EQ(ScriptedClient::status_code(pub2.receive().back()), "NetStream.Publish.Start");
  auto again = player.receive();
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(ScriptedClient::status_code(again[1]), "NetStream.Play.PublishNotify");
}

TEST(Session, SecondPublisherGetsBadName) {
  ServerConfig cfg;
  Registry reg(cfg);
  ScriptedClient a(reg, cfg, 1), b(reg, cfg, 2);
  for (auto* c : {&a, &b}) {
    c->handshake();
    c->connect();
  }
  uint32_t sa = a.create_stream(), sb = b.create_stream();
  ASSERT_TRUE(a.send(build_publish(5, sa, "x")));
  GError* err = nullptr;
  EXPECT_FALSE(b.send(build_publish(5, sb, "x"), &err));
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_BAD_NAME));
  g_clear_error(&err);
  auto msgs = b.receive();
  ASSERT_FALSE(msgs.empty());
  EXPECT_EQ(ScriptedClient::status_code(msgs.back()), "NetStream.Publish.BadName");
  EXPECT_EQ(a.session.role(), ServerSession::Role::Publisher);
}

TEST(Session, PlayMissingStreamWithNotFoundPolicy) {
  ServerConfig cfg;
  cfg.missing_stream = MissingStreamPolicy::NotFound;
  Registry reg(cfg);
  ScriptedClient p(reg, cfg);
  p.handshake();
  p.connect();
  uint32_t sid = p.create_stream();
  GError* err = nullptr;
  EXPECT_FALSE(p.send(build_play(6, sid, "nothing"), &err));
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_NOT_FOUND));
  g_clear_error(&err);
  auto msgs = p.receive();
  ASSERT_FALSE(msgs.empty());
  EXPECT_EQ(ScriptedClient::status_code(msgs.back()), "NetStream.Play.StreamNotFound");
}

TEST(Session, CommandBeforeConnectIsAProtocolError) {
  ServerConfig cfg;
  Registry reg(cfg);
  ScriptedClient p(reg, cfg);
  p.handshake();
  GError* err = nullptr;
  EXPECT_FALSE(p.send(build_create_stream(2), &err));
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL));
  g_clear_error(&err);
}

TEST(Session, PingIsAnsweredAndAcksFollowTheWindow) {
  ServerConfig cfg;
  Registry reg(cfg);
  ScriptedClient p(reg, cfg);
  p.handshake();
  p.connect();
  ASSERT_TRUE(p.send(control::window_ack_size(5000)));
  ASSERT_TRUE(p.send(control::ping_request(1234)));
  auto msgs = p.receive();
  ASSERT_EQ(msgs.size(), 1u);
  control::UserControl uc;
  ASSERT_TRUE(control::parse_user_control(msgs[0], uc, nullptr));
  EXPECT_EQ(uc.event, control::UserControlEvent::PingResponse);
  EXPECT_EQ(uc.value, 1234u);
  // Enough bytes to pass the 5000-byte window: an Acknowledgement.
  uint32_t sid = p.create_stream();
  ASSERT_TRUE(p.send(build_publish(5, sid, "w")));
  p.receive();
  ASSERT_TRUE(p.send(media(kMsgVideo, sid, 0, std::vector<uint8_t>(6000, 0x27))));
  auto acks = p.receive();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].type, kMsgAck);
}

TEST(Session, BadHandshakeVersionFailsAtOnce) {
  ServerConfig cfg;
  Registry reg(cfg);
  TestHost host;
  ServerSession s(reg, cfg, 9, "peer", &host);
  uint8_t c0 = 0x06;
  GError* err = nullptr;
  EXPECT_FALSE(s.on_receive(&c0, 1, &err));
  EXPECT_TRUE(err);
  g_clear_error(&err);
}

TEST(Session, UnknownCallGetsAnError) {
  ServerConfig cfg;
  Registry reg(cfg);
  ScriptedClient p(reg, cfg);
  p.handshake();
  p.connect();
  ASSERT_TRUE(p.send(build_command("noSuchMethod", 9, amf0::Value::make_null(), {})));
  auto msgs = p.receive();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(ScriptedClient::command_name(msgs[0]), "_error");
}

TEST(Session, TokenAuthorizationAllowsTheRightTokenOnly) {
  gchar* path = nullptr;
  int fd = g_file_open_tmp("grtmp-tokens-XXXXXX", &path, nullptr);
  ASSERT_GE(fd, 0);
  const char* rules = "# tokens\npublish live/cam s3cret-token\nplay live/* viewer\n";
  ASSERT_EQ(write(fd, rules, strlen(rules)), (ssize_t)strlen(rules));
  close(fd);
  auto tokens = std::make_shared<TokenAuthorizer>();
  ASSERT_TRUE(tokens->load(path, nullptr));
  EXPECT_EQ(tokens->rule_count(), 2u);
  ServerConfig cfg;
  cfg.authorizer = tokens;
  Registry reg(cfg);

  // A token that differs only in its last byte is refused.
  ScriptedClient bad(reg, cfg, 1);
  bad.handshake();
  bad.connect();
  uint32_t sid = bad.create_stream();
  GError* err = nullptr;
  EXPECT_FALSE(bad.send(build_publish(5, sid, "cam?token=s3cret-tokem"), &err));
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_UNAUTHORIZED));
  g_clear_error(&err);
  auto msgs = bad.receive();
  ASSERT_FALSE(msgs.empty());
  EXPECT_EQ(ScriptedClient::status_code(msgs.back()), "NetStream.Publish.Unauthorized");
  EXPECT_FALSE(reg.find("live/cam"));
  EXPECT_EQ(bad.session.auth_denials(), 1u);

  // No token at all: refused too.
  ScriptedClient none(reg, cfg, 2);
  none.handshake();
  none.connect();
  sid = none.create_stream();
  EXPECT_FALSE(none.send(build_publish(5, sid, "cam"), &err));
  g_clear_error(&err);

  // The right token publishes; media sent right after publish (before
  // the decision arrived) is kept, in order.
  ScriptedClient good(reg, cfg, 3);
  good.handshake();
  good.connect();
  sid = good.create_stream();
  auto pub = good.writer.write_flat(build_publish(5, sid, "cam?token=s3cret-token"));
  auto vid = good.writer.write_flat(media(kMsgVideo, sid, 0, {0x17, 1, 0, 0, 0, 0x42}));
  pub.insert(pub.end(), vid.begin(), vid.end());
  ASSERT_TRUE(good.session.on_receive(pub.data(), pub.size(), nullptr));
  EXPECT_TRUE(good.session.auth_pending());
  ASSERT_TRUE(good.host.run_tasks(good.session, nullptr));
  EXPECT_FALSE(good.session.auth_pending());
  EXPECT_EQ(ScriptedClient::status_code(good.receive().back()), "NetStream.Publish.Start");
  ASSERT_TRUE(reg.find("live/cam"));
  EXPECT_EQ(reg.find("live/cam")->info().messages_in, 1u);

  // Players need the play token; streams without rules are open.
  ScriptedClient viewer(reg, cfg, 4);
  viewer.handshake();
  viewer.connect();
  sid = viewer.create_stream();
  EXPECT_FALSE(viewer.send(build_play(6, sid, "cam?token=nope"), &err));
  g_clear_error(&err);
  EXPECT_EQ(ScriptedClient::status_code(viewer.receive().back()), "NetStream.Play.Unauthorized");

  ScriptedClient open_pub(reg, cfg, 5);
  open_pub.handshake();
  open_pub.connect("other");
  sid = open_pub.create_stream();
  EXPECT_TRUE(open_pub.send(build_publish(5, sid, "free")));
  g_unlink(path);
  g_free(path);
}

TEST(Session, IpRulesDenyPublishFromOtherAddresses) {
  auto ip = std::make_shared<IpRulesAuthorizer>();
  ASSERT_TRUE(ip->add_rule("allow publish 10.0.0.0/8", nullptr));
  ASSERT_TRUE(ip->add_rule("deny publish all", nullptr));
  EXPECT_FALSE(ip->add_rule("permit publish all", nullptr));
  ServerConfig cfg;
  cfg.authorizer = ip;
  Registry reg(cfg);
  ScriptedClient c(reg, cfg);  // remote is 127.0.0.1
  c.handshake();
  c.connect();
  uint32_t sid = c.create_stream();
  GError* err = nullptr;
  EXPECT_FALSE(c.send(build_publish(5, sid, "x"), &err));
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_UNAUTHORIZED));
  g_clear_error(&err);
}

TEST(Session, PlayerLimitPerStream) {
  ServerConfig cfg;
  cfg.max_players_per_stream = 1;
  Registry reg(cfg);
  ScriptedClient a(reg, cfg, 1), b(reg, cfg, 2);
  for (auto* c : {&a, &b}) {
    c->handshake();
    c->connect();
  }
  EXPECT_TRUE(a.send(build_play(6, a.create_stream(), "s")));
  GError* err = nullptr;
  EXPECT_FALSE(b.send(build_play(6, b.create_stream(), "s"), &err));
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_LIMIT));
  g_clear_error(&err);
  EXPECT_EQ(ScriptedClient::status_code(b.receive().back()), "NetStream.Play.Failed");
}

TEST(Auth, SecureEqualsAndQueryValues) {
  EXPECT_TRUE(secure_equals("abc", "abc"));
  EXPECT_FALSE(secure_equals("abc", "abd"));
  EXPECT_FALSE(secure_equals("abc", "abcd"));
  EXPECT_FALSE(secure_equals("", "a"));
  EXPECT_EQ(query_value("a=1&token=x%20y&b", "token"), "x y");
  EXPECT_EQ(query_value("a=1", "token"), "");
}

// ---------------------------------------------------------------- player lag

namespace {

std::vector<uint8_t> h264_frame(bool key, size_t size) {
  std::vector<uint8_t> p(size, 0xab);
  p[0] = key ? 0x17 : 0x27;
  p[1] = 1;
  p[2] = p[3] = p[4] = 0;
  return p;
}

// Writes everything the player has at `now_us`, as a reader that keeps up.
void drain_at(ScriptedClient& c, int64_t now_us) {
  for (;;) {
    GError* err = nullptr;
    ASSERT_TRUE(c.session.pump(&err)) << (err ? err->message : "");
    size_t n = c.session.output().bytes();
    if (n == 0) return;
    c.session.on_sent(n, now_us);
  }
}

// A publisher and a player of live/lag; the test drives the player's clock
// (on_sent and check_timers take the time) in 100 ms steps from t0.
class PlayerLag : public ::testing::Test {
 protected:
  void start(uint32_t max_lag_ms, uint64_t queue_max_bytes) {
    cfg.player_max_lag_ms = max_lag_ms;
    cfg.player_queue_max_bytes = queue_max_bytes;
    // Only the lag check may close the player here.
    cfg.player_stall_timeout_ms = 0;
    cfg.idle_timeout_ms = 0;
    cfg.publisher_timeout_ms = 0;
    reg = std::make_unique<Registry>(cfg);
    pub = std::make_unique<ScriptedClient>(*reg, cfg, 1);
    player = std::make_unique<ScriptedClient>(*reg, cfg, 2);
    pub->handshake();
    pub->connect();
    sid = pub->create_stream();
    ASSERT_TRUE(pub->send(build_publish(5, sid, "lag")));
    ASSERT_TRUE(pub->send(media(kMsgVideo, sid, 0, h264_frame(true, 1000))));
    player->handshake();
    player->connect();
    uint32_t psid = player->create_stream();
    ASSERT_TRUE(player->send(build_play(6, psid, "lag")));
    t0 = g_get_monotonic_time();
  }
  // Step i (i >= 1): one 1000-byte video frame, a keyframe every 10 steps.
  void publish_step(int i) {
    ASSERT_TRUE(pub->send(media(kMsgVideo, sid, i * 100, h264_frame(i % 10 == 0, 1000))));
  }
  int64_t at(int i) const { return t0 + int64_t(i) * 100 * 1000; }

  ServerConfig cfg;
  std::unique_ptr<Registry> reg;
  std::unique_ptr<ScriptedClient> pub, player;
  uint32_t sid = 0;
  int64_t t0 = 0;
};

}  // namespace

TEST_F(PlayerLag, PlayerThatNeverDrainsIsClosedPastTheLag) {
  start(3000, 8u << 20);
  for (int i = 1; i <= 25; i++) {
    publish_step(i);
    ASSERT_TRUE(player->session.check_timers(at(i), nullptr)) << "step " << i;
  }
  GError* err = nullptr;
  EXPECT_FALSE(player->session.check_timers(at(31), &err));
  ASSERT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_SLOW_CONSUMER));
  EXPECT_NE(strstr(err->message, "lagging"), nullptr) << err->message;
  EXPECT_NE(strstr(err->message, "behind live"), nullptr) << err->message;
  g_clear_error(&err);
}

TEST_F(PlayerLag, PlayerThatKeepsUpIsNotClosed) {
  start(3000, 8u << 20);
  for (int i = 1; i <= 100; i++) {
    publish_step(i);
    drain_at(*player, at(i));
    GError* err = nullptr;
    ASSERT_TRUE(player->session.check_timers(at(i), &err)) << "step " << i << ": " << err->message;
  }
  EXPECT_EQ(player->session.dropped_messages(), 0u);
}

// A limit below the 2 s clean period: the period shrinks to half of it.
TEST_F(PlayerLag, ShortLagLimitStillLetsAPlayerThatKeepsUpStay) {
  start(1000, 8u << 20);
  for (int i = 1; i <= 50; i++) {
    publish_step(i);
    drain_at(*player, at(i));
    GError* err = nullptr;
    ASSERT_TRUE(player->session.check_timers(at(i), &err)) << "step " << i << ": " << err->message;
  }
}

TEST_F(PlayerLag, LagCheckOffNeverCloses) {
  start(0, 8u << 20);
  publish_step(1);
  EXPECT_TRUE(player->session.check_timers(at(1000), nullptr));
}

// Reading at a fifth of the rate: the queue overflows and drops to the next
// keyframe between reads, so each read empties it; the drops still mark the
// player as behind live, and it is closed.
TEST_F(PlayerLag, PlayerThatKeepsOverflowingIsClosedThoughItsQueueEmpties) {
  start(3000, 3000);
  int closed_at = 0;
  for (int i = 1; i <= 100 && !closed_at; i++) {
    publish_step(i);
    if (i % 5 == 0) {
      drain_at(*player, at(i));
      EXPECT_EQ(player->session.output().bytes(), 0u);
      EXPECT_EQ(player->session.queued_bytes(), 0u);
    }
    GError* err = nullptr;
    if (!player->session.check_timers(at(i), &err)) {
      EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_SLOW_CONSUMER)) << err->message;
      closed_at = i;
    }
    g_clear_error(&err);
  }
  EXPECT_GT(player->session.dropped_messages(), 0u);
  EXPECT_GE(closed_at, 30);
  EXPECT_LE(closed_at, 32);
}

// One overflow (the player paused half a second), then it keeps up: it
// catches up and stays connected.
TEST_F(PlayerLag, PlayerThatRecoversFromOneOverflowStays) {
  start(5000, 3000);
  for (int i = 1; i <= 150; i++) {
    publish_step(i);
    if (i > 5) drain_at(*player, at(i));
    GError* err = nullptr;
    ASSERT_TRUE(player->session.check_timers(at(i), &err)) << "step " << i << ": " << err->message;
  }
  EXPECT_GT(player->session.dropped_messages(), 0u);
}

// ------------------------------------------------ timers and rarer commands

TEST(Session, PublisherThatSendsNoMediaIsDroppedAfterThePublisherTimeout) {
  ServerConfig cfg;
  cfg.publisher_timeout_ms = 2000;
  cfg.idle_timeout_ms = 0;
  Registry reg(cfg);
  ScriptedClient pub(reg, cfg);
  pub.handshake();
  pub.connect();
  uint32_t sid = pub.create_stream();
  ASSERT_TRUE(pub.send(build_publish(5, sid, "quiet")));
  int64_t t0 = g_get_monotonic_time();
  EXPECT_TRUE(pub.session.check_timers(t0 + 1500 * 1000, nullptr));
  // Media resets the clock: measured from the last media message.
  ASSERT_TRUE(pub.send(media(kMsgAudio, sid, 0, {0xaf, 1, 0x21})));
  int64_t t1 = g_get_monotonic_time();
  EXPECT_TRUE(pub.session.check_timers(t1 + 1900 * 1000, nullptr));
  GError* err = nullptr;
  EXPECT_FALSE(pub.session.check_timers(t1 + 2100 * 1000, &err));
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_TIMEOUT)) << (err ? err->message : "");
  g_clear_error(&err);
  // The I/O layer closes the session on that error: the key is free again.
  pub.session.close("timeout");
  EXPECT_EQ(reg.find("live/quiet"), nullptr);
}

TEST(Session, PublisherTimeoutDoesNotApplyToPlayers) {
  ServerConfig cfg;
  cfg.publisher_timeout_ms = 2000;
  cfg.idle_timeout_ms = 0;
  Registry reg(cfg);
  ScriptedClient player(reg, cfg);
  player.handshake();
  player.connect();
  uint32_t sid = player.create_stream();
  ASSERT_TRUE(player.send(build_play(6, sid, "nobody")));
  player.receive();
  EXPECT_TRUE(player.session.check_timers(g_get_monotonic_time() + 10 * 1000 * 1000, nullptr));
}

TEST(Session, CloseStreamStopsPlayingAndPublishing) {
  ServerConfig cfg;
  Registry reg(cfg);
  ScriptedClient pub(reg, cfg, 1), player(reg, cfg, 2);
  pub.handshake();
  pub.connect();
  uint32_t sid = pub.create_stream();
  ASSERT_TRUE(pub.send(build_publish(5, sid, "cs")));
  player.handshake();
  player.connect();
  uint32_t psid = player.create_stream();
  ASSERT_TRUE(player.send(build_play(6, psid, "cs")));
  player.receive();
  ASSERT_EQ(reg.find("live/cs")->info().players, 1u);

  // closeStream names no stream: the one it is sent on is meant.
  ASSERT_TRUE(player.send(build_command("closeStream", 0, amf0::Value::make_null(), {}, psid, 8)));
  EXPECT_EQ(player.session.role(), ServerSession::Role::None);
  EXPECT_EQ(reg.find("live/cs")->info().players, 0u);

  // On another stream id it is ignored.
  ASSERT_TRUE(pub.send(build_command("closeStream", 0, amf0::Value::make_null(), {}, sid + 1, 8)));
  EXPECT_EQ(pub.session.role(), ServerSession::Role::Publisher);
  ASSERT_TRUE(pub.send(build_command("closeStream", 0, amf0::Value::make_null(), {}, sid, 8)));
  EXPECT_EQ(pub.session.role(), ServerSession::Role::None);
  EXPECT_EQ(reg.find("live/cs"), nullptr) << "unpublished and unused";
}

TEST(Session, CheckBandwidthIsAnsweredWithResultAndOnBWDone) {
  ServerConfig cfg;
  Registry reg(cfg);
  ScriptedClient c(reg, cfg);
  c.handshake();
  c.connect();
  ASSERT_TRUE(c.send(build_command("_checkbw", 7, amf0::Value::make_null(), {})));
  auto msgs = c.receive();
  ASSERT_EQ(msgs.size(), 2u);
  Command r;
  ASSERT_TRUE(parse_command(msgs[0], r, amf0::Limits{}, nullptr));
  EXPECT_EQ(r.name, "_result");
  EXPECT_EQ(r.transaction_id, 7);
  EXPECT_EQ(ScriptedClient::command_name(msgs[1]), "onBWDone");
}

TEST(Session, Play2IsIgnoredWithoutAnErrorOrAPlay) {
  ServerConfig cfg;
  Registry reg(cfg);
  ScriptedClient c(reg, cfg);
  c.handshake();
  c.connect();
  uint32_t sid = c.create_stream();
  amf0::Value params = amf0::Value::make_object({{"streamName", amf0::Value::make_string("hd")},
                                                 {"transition", amf0::Value::make_string("switch")}});
  GError* err = nullptr;
  ASSERT_TRUE(c.send(build_command("play2", 0, amf0::Value::make_null(), {params}, sid, 8), &err))
      << (err ? err->message : "");
  EXPECT_TRUE(c.receive().empty());
  EXPECT_EQ(c.session.role(), ServerSession::Role::None);
  EXPECT_EQ(reg.find("live/hd"), nullptr);
  // With a transaction id it is still not an unknown method.
  ASSERT_TRUE(c.send(build_command("play2", 9, amf0::Value::make_null(), {amf0::Value::make_string("hd")}, sid, 8)));
  for (auto& m : c.receive()) EXPECT_NE(ScriptedClient::command_name(m), "_error");
}

// ------------------------------------------- real clients' captured bytes
// golden/captures/ (see its README): the bytes ffmpeg, rtmp2sink, rtmp2src
// and rtmpdump sent to nginx-rtmp, replayed into a ServerSession. Their C2
// answered nginx's S1, not ours, which a server must accept.

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "golden"
#endif

namespace {

std::vector<uint8_t> load_capture(const std::string& name) {
  std::string path = std::string(GOLDEN_DIR) + "/captures/" + name;
  gchar* data = nullptr;
  gsize len = 0;
  GError* err = nullptr;
  bool ok = g_file_get_contents(path.c_str(), &data, &len, &err);
  EXPECT_TRUE(ok) << path << ": " << (err ? err->message : "");
  g_clear_error(&err);
  std::vector<uint8_t> v(data, data + len);
  g_free(data);
  return v;
}

// What the server answered a replayed client, decoded.
struct Replay {
  std::vector<Message> msgs;
  std::vector<std::string> names;     // command/data names in order
  std::vector<std::string> statuses;  // onStatus codes in order
  Command result_for(double txn) const {
    for (auto& m : msgs) {
      Command c;
      if (m.type == kMsgCommandAmf0 && parse_command(m, c, amf0::Limits{}, nullptr) && c.name == "_result" &&
          c.transaction_id == txn)
        return c;
    }
    return Command{};
  }
};

// Feeds <peer>-c0c1, -c2, -c2s into `s` (c2s in `slice`-byte pieces) and
// decodes everything the session wrote after S0S1S2.
Replay replay_capture(ServerSession& s, const std::string& peer, size_t slice) {
  Replay r;
  auto c0c1 = load_capture(peer + "-c0c1.bin");
  auto c2 = load_capture(peer + "-c2.bin");
  auto c2s = load_capture(peer + "-c2s.bin");
  GError* err = nullptr;
  EXPECT_TRUE(s.on_receive(c0c1.data(), c0c1.size(), &err)) << (err ? err->message : "");
  auto s0s1s2 = s.output().flatten();
  s.on_sent(s0s1s2.size(), g_get_monotonic_time());
  EXPECT_EQ(s0s1s2.size(), 1 + 2 * kHandshakeSize);
  EXPECT_TRUE(s.on_receive(c2.data(), c2.size(), &err)) << (err ? err->message : "");
  EXPECT_TRUE(s.handshake_done());
  for (size_t off = 0; off < c2s.size(); off += slice) {
    size_t n = std::min(slice, c2s.size() - off);
    EXPECT_TRUE(s.on_receive(c2s.data() + off, n, &err)) << peer << " at byte " << off << ": "
                                                         << (err ? err->message : "");
    g_clear_error(&err);
  }
  EXPECT_TRUE(s.pump(&err));
  auto out = s.output().flatten();
  s.on_sent(out.size(), g_get_monotonic_time());
  ChunkReader reader;
  EXPECT_TRUE(reader.feed(out.data(), out.size(), r.msgs, &err)) << (err ? err->message : "");
  g_clear_error(&err);
  for (auto& m : r.msgs) {
    if (m.type != kMsgCommandAmf0 && m.type != kMsgDataAmf0) continue;
    r.names.push_back(ScriptedClient::command_name(m));
    std::string code = ScriptedClient::status_code(m);
    if (!code.empty()) r.statuses.push_back(code);
  }
  return r;
}

void expect_connect_answer(const Replay& r) {
  ASSERT_GE(r.msgs.size(), 4u);
  EXPECT_EQ(r.msgs[0].type, kMsgWindowAckSize);
  EXPECT_EQ(r.msgs[1].type, kMsgSetPeerBandwidth);
  EXPECT_EQ(r.msgs[2].type, kMsgSetChunkSize);
  Command c = r.result_for(1);
  ASSERT_EQ(c.name, "_result") << "connect (transaction 1) answered";
  ASSERT_FALSE(c.args.empty());
  EXPECT_EQ(c.args[0].get_string("code").value_or(""), status::kConnectSuccess);
}

void expect_stream_one(const Replay& r, double create_txn) {
  Command c = r.result_for(create_txn);
  ASSERT_EQ(c.name, "_result") << "createStream (transaction " << create_txn << ") answered";
  ASSERT_FALSE(c.args.empty());
  EXPECT_EQ(c.args[0].number, 1.0) << "the first stream id";
}

}  // namespace

class CapturedPublisher : public ::testing::TestWithParam<size_t> {};

TEST_P(CapturedPublisher, FfmpegPublishIsAcceptedAsLiveTest) {
  ServerConfig cfg;
  Registry reg(cfg);
  TestHost host;
  ServerSession s(reg, cfg, 1, "127.0.0.1:5000", &host);
  Replay r = replay_capture(s, "ffmpeg-publish", GetParam());
  expect_connect_answer(r);
  // releaseStream 2, FCPublish 3 (onFCPublish + _result), createStream 4.
  EXPECT_EQ(r.result_for(2).name, "_result");
  EXPECT_EQ(r.result_for(3).name, "_result");
  EXPECT_NE(std::find(r.names.begin(), r.names.end(), "onFCPublish"), r.names.end());
  expect_stream_one(r, 4);
  ASSERT_FALSE(r.statuses.empty());
  EXPECT_EQ(r.statuses.back(), status::kPublishStart);
  EXPECT_EQ(s.role(), ServerSession::Role::Publisher);
  EXPECT_EQ(s.stream_key(), "live/test");
  auto stream = reg.find("live/test");
  ASSERT_NE(stream, nullptr);
  EXPECT_TRUE(stream->live());
}

TEST_P(CapturedPublisher, Rtmp2sinkPublishIsAcceptedAsLiveGst) {
  ServerConfig cfg;
  Registry reg(cfg);
  TestHost host;
  ServerSession s(reg, cfg, 1, "127.0.0.1:5000", &host);
  Replay r = replay_capture(s, "rtmp2sink-publish", GetParam());
  expect_connect_answer(r);
  // Transaction 0 (releaseStream, FCPublish, publish) wants no _result.
  EXPECT_EQ(r.result_for(0).name, "");
  expect_stream_one(r, 2);
  ASSERT_FALSE(r.statuses.empty());
  EXPECT_EQ(r.statuses.back(), status::kPublishStart);
  EXPECT_EQ(s.role(), ServerSession::Role::Publisher);
  EXPECT_EQ(s.stream_key(), "live/gst");
  ASSERT_NE(reg.find("live/gst"), nullptr);
  EXPECT_TRUE(reg.find("live/gst")->live());
}

INSTANTIATE_TEST_SUITE_P(Slices, CapturedPublisher, ::testing::Values(size_t(1), size_t(7), size_t(100000)));

class CapturedPlayer : public ::testing::TestWithParam<std::tuple<const char*, size_t>> {};

// Each captured player against a live stream published by the captured
// ffmpeg publisher: the play answers, then the stream's cached headers.
TEST_P(CapturedPlayer, PlaysLiveTest) {
  const std::string peer = std::get<0>(GetParam());
  ServerConfig cfg;
  Registry reg(cfg);
  TestHost pub_host, host;
  ServerSession pub(reg, cfg, 1, "127.0.0.1:5000", &pub_host);
  replay_capture(pub, "ffmpeg-publish", 100000);
  ASSERT_EQ(pub.role(), ServerSession::Role::Publisher);
  ServerSession s(reg, cfg, 2, "127.0.0.1:5001", &host);
  Replay r = replay_capture(s, peer, std::get<1>(GetParam()));
  expect_connect_answer(r);
  expect_stream_one(r, 2);
  EXPECT_EQ(s.role(), ServerSession::Role::Player);
  EXPECT_EQ(s.stream_key(), "live/test");
  ASSERT_FALSE(r.statuses.empty());
  EXPECT_NE(std::find(r.statuses.begin(), r.statuses.end(), status::kPlayStart), r.statuses.end());
  EXPECT_NE(std::find(r.names.begin(), r.names.end(), "|RtmpSampleAccess"), r.names.end());
  // Play.Start goes out on the stream the client played on (1).
  for (auto& m : r.msgs)
    if (ScriptedClient::status_code(m) == status::kPlayStart) EXPECT_EQ(m.stream_id, 1u);
  EXPECT_EQ(reg.find("live/test")->info().players, 1u);
  if (peer == "ffmpeg-play") {
    // getStreamLength (transaction 3) is answered.
    EXPECT_EQ(r.result_for(3).name, "_result");
  }
  if (peer == "rtmpdump-play") {
    // FCSubscribe (transaction 3) is answered.
    EXPECT_EQ(r.result_for(3).name, "_result");
  }
}

INSTANTIATE_TEST_SUITE_P(Peers, CapturedPlayer,
                         ::testing::Combine(::testing::Values("ffmpeg-play", "rtmp2src-play", "rtmpdump-play"),
                                            ::testing::Values(size_t(1), size_t(13), size_t(100000))),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param);
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n + "_" + std::to_string(std::get<1>(info.param));
                         });
