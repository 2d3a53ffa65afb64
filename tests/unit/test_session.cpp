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

#include <cstring>

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
