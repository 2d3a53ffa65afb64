// rtmpclientsrc: plays from our server (Server::acquire in this process)
// while a grtmp::Client publishes generated FLV; the output must look like
// rtmpserversrc's pads (streamheader, in-band headers, one tag a buffer).
#include <gtest/gtest.h>

#include "grtmp/amf0.h"
#include "test_helpers.h"

using namespace gsttest;

namespace {

Media* g_media = nullptr;

class ClientSrcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    init_gst();
    if (!have_elements({"x264enc", "avenc_aac", "flvmux", "appsink"})) return;
    g_media = new Media(make_media(50));
  }
  void SetUp() override {
    if (!g_media) GRTMP_MISSING_PEER("x264enc/avenc_aac/flvmux");
  }
  const Media& media() { return *g_media; }

  std::shared_ptr<grtmp::Server> start_server(bool keep_players) {
    grtmp::ServerConfig cfg;
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.keep_players_on_unpublish = keep_players;
    GError* err = nullptr;
    auto s = grtmp::Server::acquire(cfg, &err);
    EXPECT_TRUE(s) << (err ? err->message : "");
    g_clear_error(&err);
    return s;
  }

  struct Pipe {
    GstElement* pipe = nullptr;
    GstElement* sink = nullptr;
    Pipe(const std::string& location, guint timeout) {
      GError* err = nullptr;
      std::string desc = "rtmpclientsrc name=src location=" + location + " timeout=" + std::to_string(timeout) +
                         " ! appsink name=out sync=false";
      pipe = gst_parse_launch(desc.c_str(), &err);
      EXPECT_NE(pipe, nullptr) << (err ? err->message : "");
      g_clear_error(&err);
      sink = gst_bin_get_by_name(GST_BIN(pipe), "out");
      log_caps(sink);
    }
    ~Pipe() {
      gst_element_set_state(pipe, GST_STATE_NULL);
      gst_object_unref(sink);
      gst_object_unref(pipe);
    }
  };
};

std::string location(uint16_t port, const std::string& key) {
  return "rtmp://127.0.0.1:" + std::to_string(port) + "/" + key;
}

TEST_F(ClientSrcTest, PlaysAStreamAsFlvTags) {
  auto server = start_server(/*keep_players=*/false);
  ASSERT_TRUE(server);
  auto pub = publisher(server->port(), "live/c");
  ASSERT_TRUE(pub);

  Pipe p(location(server->port(), "live/c"), 5);
  ASSERT_NE(gst_element_set_state(p.pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  // Publish once the player is attached, so it sees the stream from the start.
  ASSERT_TRUE(wait_for([&] {
    auto s = server->registry().find("live/c");
    return s && s->info().subscribers == 1;
  }));
  ASSERT_TRUE(send_all(*pub, media().messages()));
  pub->close();

  Collected c;
  collect(p.sink, c);
  EXPECT_TRUE(c.eos) << "EOS when the server ends the play";
  check_flv_output(media(), c, from_start(media()));
  EXPECT_EQ(bus_error(p.pipe), "");
  server->stop();
}

TEST_F(ClientSrcTest, DecodesThroughFlvdemuxAndAvdecH264) {
  if (!have_elements({"flvdemux", "h264parse", "avdec_h264", "aacparse"})) GRTMP_MISSING_PEER("flvdemux/avdec_h264");
  auto server = start_server(/*keep_players=*/false);
  ASSERT_TRUE(server);
  auto pub = publisher(server->port(), "live/dec");
  ASSERT_TRUE(pub);
  const std::string desc = "rtmpclientsrc location=" + location(server->port(), "live/dec") +
                           " timeout=5 ! flvdemux name=d d.video ! queue ! h264parse ! avdec_h264 ! "
                           "appsink name=out sync=false d.audio ! queue ! aacparse ! fakesink name=a sync=false";
  GError* err = nullptr;
  GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
  ASSERT_NE(pipe, nullptr) << (err ? err->message : "");
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipe), "out");
  ASSERT_NE(gst_element_set_state(pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(wait_for([&] {
    auto s = server->registry().find("live/dec");
    return s && s->info().subscribers == 1;
  }));
  ASSERT_TRUE(send_all(*pub, media().messages()));
  pub->close();

  size_t frames = 0;
  GstClockTime last_pts = 0;
  bool monotonic = true;
  std::string format;
  gint width = 0, height = 0;
  while (GstSample* s = try_pull_sample(sink, 10 * GST_SECOND)) {
    GstBuffer* b = gst_sample_get_buffer(s);
    if (GST_BUFFER_PTS(b) < last_pts) monotonic = false;
    last_pts = GST_BUFFER_PTS(b);
    if (frames++ == 0) {
      GstStructure* st = gst_caps_get_structure(gst_sample_get_caps(s), 0);
      format = gst_structure_get_name(st);
      gst_structure_get_int(st, "width", &width);
      gst_structure_get_int(st, "height", &height);
    }
    gst_sample_unref(s);
  }
  EXPECT_TRUE(appsink_eos(sink)) << "EOS after the publisher left";
  EXPECT_EQ(frames, media().video_frames) << "every picture decoded";
  EXPECT_TRUE(monotonic);
  EXPECT_EQ(format, "video/x-raw");
  EXPECT_EQ(width, 320);
  EXPECT_EQ(height, 240);
  EXPECT_EQ(bus_error(pipe), "") << "no decoder or demuxer error";
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipe);
  server->stop();
}

TEST_F(ClientSrcTest, MetadataUpdateAtTimestampZeroIsNotAClockJump) {
  // rtmpserversink (and our server for late joiners) send onMetaData
  // updates at timestamp 0 in the middle of a stream.
  auto server = start_server(/*keep_players=*/false);
  ASSERT_TRUE(server);
  auto pub = publisher(server->port(), "live/m");
  ASSERT_TRUE(pub);
  Pipe p(location(server->port(), "live/m"), 5);
  ASSERT_NE(gst_element_set_state(p.pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(wait_for([&] {
    auto s = server->registry().find("live/m");
    return s && s->info().subscribers == 1;
  }));
  auto msgs = media().messages();
  auto meta = grtmp::amf0::Value::make_ecma_array(
      {{"videocodecid", grtmp::amf0::Value::make_number(7)}, {"audiocodecid", grtmp::amf0::Value::make_number(10)},
       {"videodatarate", grtmp::amf0::Value::make_number(123)}});
  grtmp::Message update;
  update.type = grtmp::kMsgDataAmf0;
  update.timestamp = 0;
  update.payload = grtmp::amf0::encode_to_bytes({grtmp::amf0::Value::make_string("onMetaData"), meta});
  const size_t at = msgs.size() * 2 / 3;
  ASSERT_GT(msgs[at].timestamp, 1000u) << "late enough to look like a jump back";
  msgs.insert(msgs.begin() + at, update);
  ASSERT_TRUE(send_all(*pub, msgs));
  pub->close();

  Collected c;
  collect(p.sink, c);
  EXPECT_TRUE(c.eos);
  EXPECT_EQ(bus_error(p.pipe, 0, /*warnings=*/true), "") << "no \"timestamp jumped\" warning";
  GstClockTime last = 0;
  size_t frames = 0, updates = 0;
  for (size_t i = 4; i < c.buffers.size(); i++) {
    GstBuffer* b = c.buffers[i];
    EXPECT_GE(GST_BUFFER_DTS(b), last) << "DTS monotonic at buffer " << i;
    if (i > 4) EXPECT_FALSE(GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DISCONT)) << "buffer " << i;
    last = GST_BUFFER_DTS(b);
    Tag t;
    ASSERT_TRUE(parse_tag_buffer(b, t));
    if (t.type == 18) {
      updates++;
      EXPECT_EQ(t.ts, 0u);
      EXPECT_GE(GST_BUFFER_DTS(b), GstClockTime(1000) * GST_MSECOND) << "at the stream's position";
    }
    frames += is_video_frame(t);
  }
  // Ours, and flvmux's own repeats when they differ from the one before.
  std::vector<Tag> sent;
  for (auto& m : msgs) sent.push_back({m.type, m.timestamp, m.payload});
  size_t expected_updates = 0;
  for (auto& t : expected_after_headers(sent)) expected_updates += t.type == 18;
  EXPECT_GE(expected_updates, 1u);
  EXPECT_EQ(updates, expected_updates);
  EXPECT_EQ(frames, media().video_frames);
  server->stop();
}

TEST_F(ClientSrcTest, EosWhenTheStreamStaysUnpublished) {
  // nginx-rtmp style: players stay connected after Play.UnpublishNotify.
  auto server = start_server(/*keep_players=*/true);
  ASSERT_TRUE(server);
  auto pub = publisher(server->port(), "live/u");
  ASSERT_TRUE(pub);
  Pipe p(location(server->port(), "live/u"), 1);
  ASSERT_NE(gst_element_set_state(p.pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(wait_for([&] {
    auto s = server->registry().find("live/u");
    return s && s->info().subscribers == 1;
  }));
  ASSERT_TRUE(send_all(*pub, media().messages()));
  gint64 t0 = g_get_monotonic_time();
  pub->close();
  Collected c;
  collect(p.sink, c, 5 * GST_SECOND);
  EXPECT_TRUE(c.eos);
  EXPECT_LT(g_get_monotonic_time() - t0, 4 * G_USEC_PER_SEC) << "EOS within about the 1 s timeout";
  EXPECT_EQ(c.buffers.size(), 4 + expected_after_headers(media().tags).size());
  EXPECT_EQ(bus_error(p.pipe), "");
  server->stop();
}

TEST_F(ClientSrcTest, NotFoundIsAnElementError) {
  grtmp::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.missing_stream = grtmp::MissingStreamPolicy::NotFound;
  GError* err = nullptr;
  auto server = grtmp::Server::acquire(cfg, &err);
  ASSERT_TRUE(server);
  Pipe p(location(server->port(), "live/none"), 5);
  ASSERT_NE(gst_element_set_state(p.pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string text = bus_error(p.pipe, 10 * GST_SECOND);
  EXPECT_NE(text.find("NetStream.Play.StreamNotFound"), std::string::npos) << text;
  server->stop();
}

class ClientSrcBasics : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { init_gst(); }
};

TEST_F(ClientSrcBasics, ConnectionRefusedIsAnElementError) {
  uint16_t port = free_port();
  GError* err = nullptr;
  std::string desc = "rtmpclientsrc location=rtmp://127.0.0.1:" + std::to_string(port) + "/live/x ! fakesink";
  GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
  ASSERT_NE(pipe, nullptr);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  std::string text = bus_error(pipe, 10 * GST_SECOND);
  EXPECT_NE(text.find("Could not connect to rtmp://127.0.0.1:" + std::to_string(port) + "/live/x"),
            std::string::npos)
      << text;
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
}

TEST_F(ClientSrcBasics, ErrorsLeaveTheQueryOut) {
  uint16_t port = free_port();
  GError* err = nullptr;
  std::string desc =
      "rtmpclientsrc location=rtmp://127.0.0.1:" + std::to_string(port) + "/live/x?token=t0psecret ! fakesink";
  GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
  ASSERT_NE(pipe, nullptr);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  std::string text = bus_error(pipe, 10 * GST_SECOND);  // message | debug
  EXPECT_NE(text.find("Could not connect to rtmp://127.0.0.1:" + std::to_string(port) + "/live/x?..."),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("t0psecret"), std::string::npos) << text;
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
}

TEST_F(ClientSrcBasics, UriHandler) {
  GstElement* e = gst_element_factory_make("rtmpclientsrc", nullptr);
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(GST_IS_URI_HANDLER(e));
  EXPECT_EQ(gst_uri_handler_get_uri_type(GST_URI_HANDLER(e)), GST_URI_SRC);
  const gchar* const* protocols = gst_uri_handler_get_protocols(GST_URI_HANDLER(e));
  ASSERT_NE(protocols, nullptr);
  EXPECT_STREQ(protocols[0], "rtmp");
  EXPECT_STREQ(protocols[1], "rtmps");
  GError* err = nullptr;
  EXPECT_TRUE(gst_uri_handler_set_uri(GST_URI_HANDLER(e), "rtmp://example.com:1936/app/name?token=1", &err));
  gchar* uri = gst_uri_handler_get_uri(GST_URI_HANDLER(e));
  EXPECT_STREQ(uri, "rtmp://example.com:1936/app/name?token=1");
  g_free(uri);
  EXPECT_FALSE(gst_uri_handler_set_uri(GST_URI_HANDLER(e), "http://example.com/x", &err));
  g_clear_error(&err);
  // Below rtmp2src: playbin keeps using rtmp2src for rtmp://.
  GstElementFactory* f = gst_element_get_factory(e);
  EXPECT_EQ(gst_plugin_feature_get_rank(GST_PLUGIN_FEATURE(f)), guint(GST_RANK_MARGINAL));
  gst_object_unref(e);
}

}  // namespace
