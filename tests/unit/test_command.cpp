// Commands: parsing what FFmpeg, rtmpdump and GStreamer rtmp2 send
// (captured), hand-made connect / publish / play / play2 messages, and the
// builders compared byte for byte with nginx-rtmp, FFmpeg and hand-made
// golden files.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "grtmp/command.h"
#include "grtmp/error.h"

using namespace grtmp;
using amf0::Marker;
using amf0::Value;

namespace {

using Buf = std::vector<uint8_t>;

Buf read_golden(const std::string& rel) {
  std::ifstream f(std::string(GOLDEN_DIR) + "/" + rel, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing golden file " << rel;
  return Buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

Message msg(uint8_t type, const Buf& payload, uint32_t stream_id = 0) {
  Message m;
  m.type = type;
  m.stream_id = stream_id;
  m.payload = Bytes::copy(payload);
  return m;
}

Message golden_msg(const std::string& name, uint8_t type = kMsgCommandAmf0) {
  return msg(type, read_golden("command/" + name));
}

Command parse(const Message& m) {
  Command c;
  GError* err = nullptr;
  EXPECT_TRUE(parse_command(m, c, amf0::Limits(), &err)) << (err ? err->message : "");
  g_clear_error(&err);
  return c;
}

Command parse_golden(const std::string& name) { return parse(golden_msg(name)); }

Buf payload(const Message& m) { return Buf(m.payload.data(), m.payload.data() + m.payload.size()); }

std::vector<Value> decode_payload(const Message& m) {
  std::vector<Value> vs;
  EXPECT_TRUE(amf0::decode_all(m.payload.data(), m.payload.size(), vs, amf0::Limits(), nullptr));
  return vs;
}

int error_code(GError*& err) {
  int c = err ? err->code : -1;
  g_clear_error(&err);
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------
// Parsing captured client commands.

TEST(CommandParse, FfmpegPublishSequence) {
  Command c = parse_golden("ffmpeg_connect_publish.bin");
  EXPECT_EQ(c.name, "connect");
  EXPECT_EQ(c.transaction_id, 1);
  EXPECT_EQ(c.object.type, Marker::Object);
  EXPECT_TRUE(c.args.empty());
  ConnectParams p;
  ASSERT_TRUE(parse_connect(c, p, nullptr));
  EXPECT_EQ(p.app, "live");
  EXPECT_EQ(p.type, "nonprivate");
  EXPECT_EQ(p.flash_ver, "FMLE/3.0 (compatible; Lavf59.27.100)");
  EXPECT_EQ(p.tc_url, "rtmp://127.0.0.1:46775/live");
  EXPECT_EQ(p.swf_url, "");
  EXPECT_EQ(p.object_encoding, 0);
  EXPECT_TRUE(p.fourcc_list.empty());

  Command rel = parse_golden("ffmpeg_release_stream.bin");
  EXPECT_EQ(rel.name, "releaseStream");
  EXPECT_EQ(rel.transaction_id, 2);
  EXPECT_EQ(rel.object.type, Marker::Null);
  std::string s;
  EXPECT_TRUE(command_string_arg(rel, 0, s));
  EXPECT_EQ(s, "stream1?token=abc");

  Command fc = parse_golden("ffmpeg_fcpublish.bin");
  EXPECT_EQ(fc.name, "FCPublish");
  EXPECT_EQ(fc.transaction_id, 3);

  Command cs = parse_golden("ffmpeg_create_stream.bin");
  EXPECT_EQ(cs.name, "createStream");
  EXPECT_EQ(cs.transaction_id, 4);
  EXPECT_EQ(cs.object.type, Marker::Null);
  EXPECT_TRUE(cs.args.empty());

  Command pub = parse_golden("ffmpeg_publish.bin");
  EXPECT_EQ(pub.name, "publish");
  EXPECT_EQ(pub.transaction_id, 5);
  PublishParams pp;
  ASSERT_TRUE(parse_publish(pub, pp, nullptr));
  EXPECT_EQ(pp.name, "stream1");
  EXPECT_EQ(pp.query, "token=abc");
  EXPECT_EQ(pp.type, "live");

  Command unp = parse_golden("ffmpeg_fcunpublish.bin");
  EXPECT_EQ(unp.name, "FCUnpublish");
  EXPECT_EQ(unp.transaction_id, 6);

  Command del = parse_golden("ffmpeg_delete_stream.bin");
  EXPECT_EQ(del.name, "deleteStream");
  double id = 0;
  EXPECT_TRUE(command_number_arg(del, 0, id));
  EXPECT_EQ(id, 1);
}

TEST(CommandParse, FfmpegPlay) {
  Command c = parse_golden("ffmpeg_connect_play.bin");
  ConnectParams p;
  ASSERT_TRUE(parse_connect(c, p, nullptr));
  EXPECT_EQ(p.app, "vod");
  EXPECT_EQ(p.flash_ver, "LNX 9,0,124,2");
  EXPECT_EQ(p.type, "");  // FFmpeg sends type only when publishing
  EXPECT_EQ(c.object.get_boolean("fpad"), false);
  EXPECT_EQ(c.object.get_number("capabilities"), 15.0);
  EXPECT_EQ(c.object.get_number("audioCodecs"), 4071.0);
  EXPECT_EQ(c.object.get_number("videoCodecs"), 252.0);
  EXPECT_EQ(c.object.get_number("videoFunction"), 1.0);

  Command len = parse_golden("ffmpeg_get_stream_length.bin");
  EXPECT_EQ(len.name, "getStreamLength");
  std::string name;
  EXPECT_TRUE(command_string_arg(len, 0, name));
  EXPECT_EQ(name, "movie?key=1");

  PlayParams pp;
  ASSERT_TRUE(parse_play(parse_golden("ffmpeg_play.bin"), pp, nullptr));
  EXPECT_EQ(pp.name, "movie");
  EXPECT_EQ(pp.query, "key=1");
  EXPECT_EQ(pp.start, -2000);  // FFmpeg's "any" (live * 1000)
  EXPECT_EQ(pp.duration, -1);
  EXPECT_TRUE(pp.reset);
}

TEST(CommandParse, RtmpdumpPlay) {
  ConnectParams p;
  ASSERT_TRUE(parse_connect(parse_golden("rtmpdump_connect.bin"), p, nullptr));
  EXPECT_EQ(p.app, "app");
  EXPECT_EQ(p.flash_ver, "LNX 10,0,32,18");
  EXPECT_EQ(p.tc_url, "rtmp://127.0.0.1:39909/app");
  Command sub = parse_golden("rtmpdump_fcsubscribe.bin");
  EXPECT_EQ(sub.name, "FCSubscribe");
  PlayParams pp;
  ASSERT_TRUE(parse_play(parse_golden("rtmpdump_play.bin"), pp, nullptr));
  EXPECT_EQ(pp.name, "stream");
  EXPECT_EQ(pp.query, "");
  EXPECT_EQ(pp.start, -1000);  // --live
}

TEST(CommandParse, GstRtmp2) {
  ConnectParams p;
  ASSERT_TRUE(parse_connect(parse_golden("gst_rtmp2_connect_publish.bin"), p, nullptr));
  EXPECT_EQ(p.app, "live");
  EXPECT_EQ(p.type, "nonprivate");
  Command pub = parse_golden("gst_rtmp2_publish.bin");
  EXPECT_EQ(pub.transaction_id, 0);  // rtmp2sink publishes with transaction 0
  PublishParams pp;
  ASSERT_TRUE(parse_publish(pub, pp, nullptr));
  EXPECT_EQ(pp.name, "gstream");
  EXPECT_EQ(pp.type, "live");
  ASSERT_TRUE(parse_connect(parse_golden("gst_rtmp2_connect_play.bin"), p, nullptr));
  EXPECT_EQ(p.type, "");
  PlayParams play;
  ASSERT_TRUE(parse_play(parse_golden("gst_rtmp2_play.bin"), play, nullptr));
  EXPECT_EQ(play.name, "gstream");
  EXPECT_EQ(play.start, -2);
}

// ---------------------------------------------------------------------------
// Hand-made messages.

TEST(CommandParse, ConnectEcmaArrayTcurlFourCc) {
  Command c = parse_golden("connect_ecma_tcurl.bin");
  EXPECT_EQ(c.object.type, Marker::EcmaArray);
  ConnectParams p;
  ASSERT_TRUE(parse_connect(c, p, nullptr));
  EXPECT_EQ(p.app, "live");
  EXPECT_EQ(p.tc_url, "rtmp://example.com/live");
  EXPECT_EQ(p.flash_ver, "FMLE/3.0");
  EXPECT_EQ(p.swf_url, "http://example.com/p.swf");
  EXPECT_EQ(p.page_url, "http://example.com/");
  EXPECT_EQ(p.type, "nonprivate");
  EXPECT_EQ(p.object_encoding, 3);
  // Non-string entries in fourCcList are skipped.
  EXPECT_EQ(p.fourcc_list, (std::vector<std::string>{"av01", "vp09", "hvc1"}));
}

TEST(CommandParse, ConnectNeedsAnObject) {
  Command c;
  c.name = "connect";
  c.object = Value::make_null();
  ConnectParams p;
  GError* err = nullptr;
  EXPECT_FALSE(parse_connect(c, p, &err));
  ASSERT_NE(err, nullptr);
  EXPECT_NE(std::string(err->message).find("null"), std::string::npos) << err->message;
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  // Missing fields are empty, not errors.
  c.object = Value::make_object();
  ASSERT_TRUE(parse_connect(c, p, nullptr));
  EXPECT_EQ(p.app, "");
  EXPECT_EQ(p.tc_url, "");
}

TEST(CommandParse, Play2) {
  Command c = parse_golden("play2.bin");
  EXPECT_EQ(c.name, "play2");
  PlayParams p;
  ASSERT_TRUE(parse_play(c, p, nullptr));
  EXPECT_EQ(p.name, "cam_hi");
  EXPECT_EQ(p.query, "tok=1");
  EXPECT_EQ(p.start, -2);
  EXPECT_EQ(p.duration, -1);
  // play2 without an options object.
  c.args = {Value::make_string("x")};
  GError* err = nullptr;
  EXPECT_FALSE(parse_play(c, p, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  c.args = {Value::make_object({{"start", Value::make_number(0)}})};
  EXPECT_FALSE(parse_play(c, p, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
}

TEST(CommandParse, PlayAllArguments) {
  PlayParams p;
  ASSERT_TRUE(parse_play(parse_golden("play_full.bin"), p, nullptr));
  EXPECT_EQ(p.name, "vod/file");
  EXPECT_EQ(p.start, 10);
  EXPECT_EQ(p.duration, 30);
  EXPECT_FALSE(p.reset);
  // reset as a number (some clients), missing name.
  Command c;
  c.name = "play";
  c.args = {Value::make_string("s"), Value::make_number(-1), Value::make_number(-1),
            Value::make_number(0)};
  ASSERT_TRUE(parse_play(c, p, nullptr));
  EXPECT_FALSE(p.reset);
  EXPECT_EQ(p.start, -1);
  c.args.clear();
  GError* err = nullptr;
  EXPECT_FALSE(parse_play(c, p, &err));
  ASSERT_NE(err, nullptr);
  EXPECT_NE(std::string(err->message).find("missing"), std::string::npos);
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  c.args = {Value::make_null()};
  EXPECT_FALSE(parse_play(c, p, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
}

TEST(CommandParse, PublishTypesAndErrors) {
  Command c;
  c.name = "publish";
  c.args = {Value::make_string("key?a=1&b=2"), Value::make_string("record")};
  PublishParams p;
  ASSERT_TRUE(parse_publish(c, p, nullptr));
  EXPECT_EQ(p.name, "key");
  EXPECT_EQ(p.query, "a=1&b=2");
  EXPECT_EQ(p.type, "record");
  c.args = {Value::make_string("key")};  // no type: live
  ASSERT_TRUE(parse_publish(c, p, nullptr));
  EXPECT_EQ(p.type, "live");
  EXPECT_EQ(p.query, "");
  c.args.clear();
  GError* err = nullptr;
  EXPECT_FALSE(parse_publish(c, p, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  c.args = {Value::make_number(1)};
  EXPECT_FALSE(parse_publish(c, p, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
}

TEST(CommandParse, Amf3EnvelopeType17) {
  // With the leading 0x00...
  Command c = parse(golden_msg("connect_amf3_envelope.bin", kMsgCommandAmf3));
  EXPECT_EQ(c.name, "connect");
  ConnectParams p;
  ASSERT_TRUE(parse_connect(c, p, nullptr));
  EXPECT_EQ(p.app, "live");
  // ...and without it.
  Command c2 = parse(golden_msg("ffmpeg_connect_publish.bin", kMsgCommandAmf3));
  EXPECT_EQ(c2.name, "connect");
  EXPECT_EQ(c2.object, c.object);
}

TEST(CommandParse, Errors) {
  Command c;
  GError* err = nullptr;
  // Not a command message.
  EXPECT_FALSE(parse_command(golden_msg("ffmpeg_connect_publish.bin", kMsgDataAmf0), c,
                             amf0::Limits(), &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_PROTOCOL);
  // Empty.
  EXPECT_FALSE(parse_command(msg(kMsgCommandAmf0, {}), c, amf0::Limits(), &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  EXPECT_FALSE(parse_command(msg(kMsgCommandAmf3, {0x00}), c, amf0::Limits(), &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  // Name not a string.
  EXPECT_FALSE(parse_command(msg(kMsgCommandAmf0, {0x05}), c, amf0::Limits(), &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  // Transaction id not a number.
  EXPECT_FALSE(parse_command(msg(kMsgCommandAmf0, {0x02, 0x00, 0x01, 'x', 0x05}), c,
                             amf0::Limits(), &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  // A bare name is accepted (transaction 0, null object).
  ASSERT_TRUE(
      parse_command(msg(kMsgCommandAmf0, {0x02, 0x00, 0x01, 'x'}), c, amf0::Limits(), nullptr));
  EXPECT_EQ(c.name, "x");
  EXPECT_EQ(c.transaction_id, 0);
  EXPECT_EQ(c.object.type, Marker::Null);
  // Truncated anywhere: an error, never a crash; the message says where.
  Buf full = read_golden("command/ffmpeg_connect_publish.bin");
  for (size_t cut = 1; cut < full.size(); cut++) {
    Buf part(full.begin(), full.begin() + cut);
    Command t;
    bool ok = parse_command(msg(kMsgCommandAmf0, part), t, amf0::Limits(), &err);
    // Cuts right after the name or the transaction id are complete commands.
    if (ok) {
      EXPECT_TRUE(cut == 10 || cut == 19) << cut;
      continue;
    }
    ASSERT_NE(err, nullptr);
    EXPECT_NE(std::string(err->message).find("offset"), std::string::npos) << err->message;
    EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  }
  // Limits are passed through.
  amf0::Limits tight;
  tight.max_elements = 2;
  EXPECT_FALSE(parse_command(golden_msg("ffmpeg_connect_publish.bin"), c, tight, &err));
  ASSERT_NE(err, nullptr);
  EXPECT_NE(std::string(err->message).find("max_elements"), std::string::npos);
  EXPECT_EQ(error_code(err), GRTMP_ERROR_LIMIT);
}

TEST(CommandParse, SplitStreamName) {
  std::string n, q;
  split_stream_name("cam?token=a&x=1", n, q);
  EXPECT_EQ(n, "cam");
  EXPECT_EQ(q, "token=a&x=1");
  split_stream_name("cam", n, q);
  EXPECT_EQ(n, "cam");
  EXPECT_EQ(q, "");
  split_stream_name("?only", n, q);
  EXPECT_EQ(n, "");
  EXPECT_EQ(q, "only");
  split_stream_name("cam?", n, q);
  EXPECT_EQ(n, "cam");
  EXPECT_EQ(q, "");
  split_stream_name("a?b?c", n, q);  // the first '?' splits
  EXPECT_EQ(n, "a");
  EXPECT_EQ(q, "b?c");
  split_stream_name("", n, q);
  EXPECT_EQ(n, "");
  EXPECT_EQ(q, "");
}

TEST(CommandParse, ArgumentAccessors) {
  Command c;
  c.args = {Value::make_number(3), Value::make_string("s"), Value::make_null()};
  double d = -1;
  std::string s = "unchanged";
  EXPECT_TRUE(command_number_arg(c, 0, d));
  EXPECT_EQ(d, 3);
  EXPECT_FALSE(command_number_arg(c, 1, d));
  EXPECT_FALSE(command_number_arg(c, 9, d));
  EXPECT_EQ(d, 3);
  EXPECT_TRUE(command_string_arg(c, 1, s));
  EXPECT_EQ(s, "s");
  EXPECT_FALSE(command_string_arg(c, 2, s));
  EXPECT_FALSE(command_string_arg(c, 3, s));
  EXPECT_EQ(s, "s");
}

// ---------------------------------------------------------------------------
// Server builders.

TEST(CommandBuild, ConnectResult) {
  Message m = build_connect_result(1, 0);
  EXPECT_EQ(m.type, kMsgCommandAmf0);
  EXPECT_EQ(m.stream_id, 0u);
  EXPECT_EQ(m.csid, uint32_t(kCsidCommand));
  EXPECT_EQ(payload(m), read_golden("command/connect_result.bin"));
  Command c = parse(m);
  EXPECT_EQ(c.name, "_result");
  EXPECT_EQ(c.transaction_id, 1);
  EXPECT_EQ(c.object.get_string("fmsVer"), "FMS/3,0,1,123");
  EXPECT_EQ(c.object.get_number("capabilities"), 31.0);
  EXPECT_EQ(c.object.get_number("mode"), 1.0);
  ASSERT_EQ(c.args.size(), 1u);
  EXPECT_EQ(c.args[0].get_string("level"), "status");
  EXPECT_EQ(c.args[0].get_string("code"), status::kConnectSuccess);
  EXPECT_EQ(c.args[0].get_string("description"), "Connection succeeded.");
  EXPECT_EQ(c.args[0].get_number("objectEncoding"), 0.0);
  EXPECT_EQ(c.args[0].get("fourCcList"), nullptr);

  Message f = build_connect_result(1, 0, {"av01", "hvc1"});
  EXPECT_EQ(payload(f), read_golden("command/connect_result_fourcc.bin"));
  EXPECT_EQ(build_connect_result(1, 3).payload.size(), m.payload.size());
  EXPECT_EQ(parse(build_connect_result(2, 3)).args[0].get_number("objectEncoding"), 3.0);
}

TEST(CommandBuild, NginxCompatibleAnswers) {
  // Byte-exact with what nginx-rtmp 1.2 sends.
  Message cs = build_result(4, {Value::make_number(1)});
  EXPECT_EQ(payload(cs), read_golden("command/nginx_create_stream_result.bin"));
  EXPECT_EQ(cs.csid, uint32_t(kCsidCommand));
  Message ps = build_on_status(1, "status", status::kPublishStart, "Start publishing");
  EXPECT_EQ(payload(ps), read_golden("command/nginx_on_status_publish_start.bin"));
  EXPECT_EQ(ps.stream_id, 1u);
  EXPECT_EQ(ps.csid, uint32_t(kCsidData));
  EXPECT_EQ(payload(build_on_status(1, "status", status::kUnpublishSuccess, "Stop publishing")),
            read_golden("command/nginx_on_status_unpublish.bin"));
  EXPECT_EQ(payload(build_on_status(1, "status", status::kPlayStart, "Start live")),
            read_golden("command/nginx_on_status_play_start.bin"));
  Message sa = build_sample_access(1);
  EXPECT_EQ(sa.type, kMsgDataAmf0);
  EXPECT_EQ(sa.stream_id, 1u);
  EXPECT_EQ(payload(sa), read_golden("command/nginx_sample_access.bin"));
  // nginx's connect _result has no "mode"; ours adds it (FMS does), the
  // rest is the same.
  Command ngx = parse_golden("nginx_connect_result.bin");
  Command ours = parse(build_connect_result(1, 0));
  EXPECT_EQ(ngx.args, ours.args);
  EXPECT_EQ(ngx.object.get_string("fmsVer"), ours.object.get_string("fmsVer"));
  EXPECT_EQ(ngx.object.get_number("capabilities"), ours.object.get_number("capabilities"));
}

TEST(CommandBuild, OnStatusOnStreamZeroUsesCommandChunkStream) {
  Message m = build_on_status(0, "error", status::kConnectRejected, "no");
  EXPECT_EQ(m.csid, uint32_t(kCsidCommand));
  EXPECT_EQ(m.stream_id, 0u);
  Message d = build_on_status(1, "status", status::kPlayReset, "Playing and resetting live/cam.",
                              "live/cam");
  EXPECT_EQ(payload(d), read_golden("command/on_status_details.bin"));
  Command c = parse(d);
  EXPECT_EQ(c.name, "onStatus");
  EXPECT_EQ(c.transaction_id, 0);
  EXPECT_EQ(c.object.type, Marker::Null);
  EXPECT_EQ(c.args[0].get_string("details"), "live/cam");
}

TEST(CommandBuild, ResultErrorAndNotifications) {
  Message e = build_error(5, status::kPublishBadName, "Stream already publishing");
  EXPECT_EQ(payload(e), read_golden("command/error_bad_name.bin"));
  Command ec = parse(e);
  EXPECT_EQ(ec.name, "_error");
  EXPECT_EQ(ec.args[0].get_string("level"), "error");
  Message ce = build_connect_error(1, status::kConnectRejected, "denied");
  Command cec = parse(ce);
  EXPECT_EQ(cec.name, "_error");
  EXPECT_EQ(cec.transaction_id, 1);
  EXPECT_EQ(cec.args[0].get_string("code"), status::kConnectRejected);
  EXPECT_EQ(cec.args[0].get_string("description"), "denied");

  Message r = build_result(7);
  auto vs = decode_payload(r);
  ASSERT_EQ(vs.size(), 3u);
  EXPECT_EQ(vs[0].string, "_result");
  EXPECT_EQ(vs[1].number, 7);
  EXPECT_EQ(vs[2].type, Marker::Null);

  EXPECT_EQ(payload(build_on_fcpublish("cam", false)), read_golden("command/on_fcpublish.bin"));
  EXPECT_EQ(payload(build_on_fcpublish("cam", true)), read_golden("command/on_fcunpublish.bin"));
  Message bw = build_on_bw_done();
  EXPECT_EQ(payload(bw), read_golden("command/on_bw_done.bin"));
  EXPECT_EQ(bw.stream_id, 0u);
  EXPECT_EQ(bw.csid, uint32_t(kCsidCommand));
}

// ---------------------------------------------------------------------------
// Client builders: byte-exact with what FFmpeg sends for the same values.

TEST(CommandBuild, ClientPublishSequenceMatchesFfmpeg) {
  ConnectRequest req;
  req.app = "live";
  req.tc_url = "rtmp://127.0.0.1:46775/live";
  req.flash_ver = "FMLE/3.0 (compatible; Lavf59.27.100)";
  Message c = build_connect(1, req);
  EXPECT_EQ(c.type, kMsgCommandAmf0);
  EXPECT_EQ(payload(c), read_golden("command/ffmpeg_connect_publish.bin"));
  EXPECT_EQ(payload(build_release_stream(2, "stream1?token=abc")),
            read_golden("command/ffmpeg_release_stream.bin"));
  EXPECT_EQ(payload(build_fcpublish(3, "stream1?token=abc")),
            read_golden("command/ffmpeg_fcpublish.bin"));
  EXPECT_EQ(payload(build_create_stream(4)), read_golden("command/ffmpeg_create_stream.bin"));
  Message p = build_publish(5, 1, "stream1?token=abc", "live");
  EXPECT_EQ(payload(p), read_golden("command/ffmpeg_publish.bin"));
  EXPECT_EQ(p.stream_id, 1u);
  EXPECT_NE(p.csid, uint32_t(kCsidControl));
  EXPECT_EQ(payload(build_fcunpublish(6, "stream1?token=abc")),
            read_golden("command/ffmpeg_fcunpublish.bin"));
  Message d = build_delete_stream(7, 1);
  EXPECT_EQ(payload(d), read_golden("command/ffmpeg_delete_stream.bin"));
  EXPECT_EQ(d.stream_id, 0u);
}

TEST(CommandBuild, ClientPlay) {
  Message p = build_play(4, 1, "movie?key=1", -2000);
  EXPECT_EQ(payload(p), read_golden("command/ffmpeg_play.bin"));
  EXPECT_EQ(p.stream_id, 1u);
  PlayParams pp;
  ASSERT_TRUE(parse_play(parse(build_play(3, 1, "cam")), pp, nullptr));
  EXPECT_EQ(pp.name, "cam");
  EXPECT_EQ(pp.start, -2);

  ConnectRequest req;
  req.app = "live";
  req.tc_url = "rtmp://localhost/live";
  req.flash_ver = "LNX 9,0,124,2";
  req.publisher = false;
  Message c = build_connect(1, req);
  EXPECT_EQ(payload(c), read_golden("command/connect_play_grtmp.bin"));
  Command cc = parse(c);
  EXPECT_EQ(cc.object.get_boolean("fpad"), false);
  EXPECT_EQ(cc.object.get_number("capabilities"), 15.0);
  EXPECT_EQ(cc.object.get_number("audioCodecs"), 3191.0);
  EXPECT_EQ(cc.object.get_number("videoCodecs"), 252.0);
  EXPECT_EQ(cc.object.get_number("videoFunction"), 1.0);
  EXPECT_EQ(cc.object.get_number("objectEncoding"), 0.0);
  ConnectParams p2;
  ASSERT_TRUE(parse_connect(cc, p2, nullptr));
  EXPECT_EQ(p2.tc_url, "rtmp://localhost/live");
  // A publisher's connect has none of the player fields.
  req.publisher = true;
  EXPECT_EQ(parse(build_connect(1, req)).object.get("fpad"), nullptr);
}

TEST(CommandBuild, GenericCommand) {
  Message m = build_command("myCall", 9, Value::make_null(),
                            {Value::make_string("a"), Value::make_number(2)}, 3, 8);
  EXPECT_EQ(m.type, kMsgCommandAmf0);
  EXPECT_EQ(m.stream_id, 3u);
  EXPECT_EQ(m.csid, 8u);
  EXPECT_EQ(m.timestamp, 0u);
  Command c = parse(m);
  EXPECT_EQ(c.name, "myCall");
  EXPECT_EQ(c.transaction_id, 9);
  ASSERT_EQ(c.args.size(), 2u);
  EXPECT_EQ(c.args[1].number, 2);
}

// ---------------------------------------------------------------------------
// Data messages.

TEST(DataMessage, StripSetDataFrameSlicesWithoutCopy) {
  for (const char* f : {"ffmpeg_set_data_frame.bin", "gst_rtmp2_set_data_frame.bin"}) {
    SCOPED_TRACE(f);
    Message m = golden_msg(f, kMsgDataAmf0);
    Bytes out;
    std::string handler;
    ASSERT_TRUE(strip_set_data_frame(m, out, handler, nullptr));
    EXPECT_EQ(handler, "onMetaData");
    // "@setDataFrame" as an AMF0 string is 16 bytes; the rest is untouched.
    ASSERT_EQ(out.size(), m.payload.size() - 16);
    EXPECT_EQ(out.data(), m.payload.data() + 16);  // a slice of the same buffer
    EXPECT_EQ(std::memcmp(out.data(), "\x02\x00\x0aonMetaData", 13), 0);
  }
}

TEST(DataMessage, StripSetDataFrameAmf3AndPassThrough) {
  Bytes out;
  std::string handler;
  // Type 15: the leading 0x00 goes too.
  Message m15 = golden_msg("set_data_frame_amf3_envelope.bin", kMsgDataAmf3);
  ASSERT_TRUE(strip_set_data_frame(m15, out, handler, nullptr));
  EXPECT_EQ(handler, "onMetaData");
  Buf ff = read_golden("command/ffmpeg_set_data_frame.bin");
  EXPECT_EQ(Buf(out.data(), out.data() + out.size()), Buf(ff.begin() + 16, ff.end()));
  // Already without @setDataFrame: the same payload comes back (same GBytes).
  Message plain = msg(kMsgDataAmf0, Buf(ff.begin() + 16, ff.end()));
  ASSERT_TRUE(strip_set_data_frame(plain, out, handler, nullptr));
  EXPECT_EQ(handler, "onMetaData");
  EXPECT_EQ(out.get(), plain.payload.get());
  // Type 15 without @setDataFrame: only the 0x00 goes.
  Buf env{0x00};
  env.insert(env.end(), ff.begin() + 16, ff.end());
  ASSERT_TRUE(strip_set_data_frame(msg(kMsgDataAmf3, env), out, handler, nullptr));
  EXPECT_EQ(out.size(), env.size() - 1);
  // Other handlers pass through.
  Message sa = build_sample_access(1);
  ASSERT_TRUE(strip_set_data_frame(sa, out, handler, nullptr));
  EXPECT_EQ(handler, "|RtmpSampleAccess");
  EXPECT_EQ(out.size(), sa.payload.size());
}

TEST(DataMessage, StripSetDataFrameErrors) {
  Bytes out;
  std::string handler;
  GError* err = nullptr;
  EXPECT_FALSE(strip_set_data_frame(golden_msg("ffmpeg_set_data_frame.bin", kMsgCommandAmf0), out,
                                    handler, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_PROTOCOL);
  EXPECT_FALSE(strip_set_data_frame(msg(kMsgDataAmf0, {}), out, handler, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  EXPECT_FALSE(strip_set_data_frame(msg(kMsgDataAmf0, {0x05}), out, handler, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  Buf ff = read_golden("command/ffmpeg_set_data_frame.bin");
  // @setDataFrame followed by nothing, or by a non-string.
  EXPECT_FALSE(
      strip_set_data_frame(msg(kMsgDataAmf0, Buf(ff.begin(), ff.begin() + 16)), out, handler, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  Buf bad(ff.begin(), ff.begin() + 16);
  bad.push_back(0x05);
  EXPECT_FALSE(strip_set_data_frame(msg(kMsgDataAmf0, bad), out, handler, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  // Every truncation: an error or a valid result, never a crash.
  for (size_t cut = 0; cut < ff.size(); cut++) {
    Bytes o;
    std::string h;
    GError* e = nullptr;
    if (!strip_set_data_frame(msg(kMsgDataAmf0, Buf(ff.begin(), ff.begin() + cut)), o, h, &e)) {
      EXPECT_NE(e, nullptr);
    }
    g_clear_error(&e);
  }
}

TEST(DataMessage, ParseMetadata) {
  Message m = golden_msg("ffmpeg_set_data_frame.bin", kMsgDataAmf0);
  Bytes stripped;
  std::string handler;
  ASSERT_TRUE(strip_set_data_frame(m, stripped, handler, nullptr));
  Value md;
  ASSERT_TRUE(parse_metadata(stripped, md, nullptr));
  EXPECT_EQ(md.type, Marker::EcmaArray);
  EXPECT_EQ(md.ecma_count, 13u);
  EXPECT_EQ(md.properties.size(), 13u);
  EXPECT_EQ(md.get_number("width"), 320.0);
  EXPECT_EQ(md.get_number("height"), 240.0);
  EXPECT_EQ(md.get_number("framerate"), 25.0);
  EXPECT_EQ(md.get_number("videocodecid"), 7.0);
  EXPECT_EQ(md.get_number("audiocodecid"), 10.0);
  EXPECT_EQ(md.get_number("audiosamplerate"), 44100.0);
  EXPECT_EQ(md.get_boolean("stereo"), false);
  EXPECT_EQ(md.get_string("encoder"), "Lavf59.27.100");
  // Still wrapped: also fine.
  ASSERT_TRUE(parse_metadata(m.payload, md, nullptr));
  EXPECT_EQ(md.get_number("width"), 320.0);
  // GStreamer flvmux metadata.
  Value g;
  ASSERT_TRUE(parse_metadata(golden_msg("gst_rtmp2_set_data_frame.bin").payload, g, nullptr));
  EXPECT_EQ(g.get_number("width"), 320.0);
  EXPECT_EQ(g.get_string("metadatacreator"), "GStreamer 1.22.0 FLV muxer");
  // A bare object.
  Bytes obj = amf0::encode_to_bytes({Value::make_object({{"width", Value::make_number(1)}})});
  ASSERT_TRUE(parse_metadata(obj, md, nullptr));
  EXPECT_EQ(md.type, Marker::Object);
  // No object after the name; garbage.
  GError* err = nullptr;
  EXPECT_FALSE(parse_metadata(amf0::encode_to_bytes({Value::make_string("onMetaData")}), md, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  EXPECT_FALSE(parse_metadata(amf0::encode_to_bytes({Value::make_string("onMetaData"),
                                                      Value::make_number(1),
                                                      Value::make_object()}),
                              md, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  Buf junk{0x03, 0x00};
  EXPECT_FALSE(parse_metadata(Bytes::copy(junk), md, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
  EXPECT_FALSE(parse_metadata(Bytes(), md, &err));
  EXPECT_EQ(error_code(err), GRTMP_ERROR_MALFORMED);
}

// closeStream (NetStream.close in Flash) and _checkbw (FMLE's bandwidth
// check): both carry only a transaction id and a null object; the session
// answers closeStream by ending the stream and _checkbw with onBWDone.
TEST(CommandParse, CloseStreamAndCheckBwRoundTrip) {
  Command close = parse(golden_msg("close_stream.bin"));
  EXPECT_EQ(close.name, "closeStream");
  EXPECT_EQ(close.transaction_id, 0);
  EXPECT_EQ(close.object.type, amf0::Marker::Null);
  EXPECT_TRUE(close.args.empty());
  Message re = build_command("closeStream", 0, amf0::Value::make_null(), {}, 1);
  EXPECT_EQ(re.stream_id, 1u);
  EXPECT_EQ(payload(re), read_golden("command/close_stream.bin"));

  Command bw = parse(golden_msg("checkbw.bin"));
  EXPECT_EQ(bw.name, "_checkbw");
  EXPECT_EQ(bw.transaction_id, 3);
  EXPECT_EQ(bw.object.type, amf0::Marker::Null);
  EXPECT_TRUE(bw.args.empty());
  EXPECT_EQ(payload(build_command("_checkbw", 3, amf0::Value::make_null(), {})),
            read_golden("command/checkbw.bin"));
}

// A Flash client with objectEncoding 3: a type-17 connect whose command
// object is AMF3 after the AvmPlus marker (golden/amf0, hand-made).
TEST(CommandParse, ConnectWithAmf3CommandObject) {
  Buf body = read_golden("amf0/amf3_connect_command.bin");
  for (bool envelope : {true, false}) {
    SCOPED_TRACE(envelope);
    Buf payload = body;
    if (envelope) payload.insert(payload.begin(), 0x00);
    Command c = parse(msg(kMsgCommandAmf3, payload));
    EXPECT_EQ(c.name, "connect");
    EXPECT_EQ(c.transaction_id, 1.0);
    EXPECT_EQ(c.object.type, Marker::Object);
    ConnectParams p;
    GError* err = nullptr;
    ASSERT_TRUE(parse_connect(c, p, &err)) << err->message;
    EXPECT_EQ(p.app, "live");
    EXPECT_EQ(p.tc_url, "rtmp://localhost/live");
    EXPECT_EQ(p.flash_ver, "WIN 32,0,0,0");
    EXPECT_EQ(p.object_encoding, 3.0);
    ASSERT_EQ(c.args.size(), 1u);
    EXPECT_EQ(c.args[0].get_string("user"), "live");
  }
}
