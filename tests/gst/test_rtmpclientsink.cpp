// rtmpclientsink: FLV pushed into the element (GstHarness) is published to
// our server (Server::acquire in this process); a registry subscriber
// records what arrives.
#include <gst/check/gstharness.h>
#include <gtest/gtest.h>

#include "test_helpers.h"

using namespace gsttest;

namespace {

Media* g_media = nullptr;

struct Recorder : grtmp::Subscriber {
  std::mutex mu;
  std::vector<grtmp::StreamEvent> events;
  void on_stream_event(const grtmp::StreamEvent& ev) override {
    std::lock_guard l(mu);
    events.push_back(ev);
  }
  size_t count(grtmp::StreamEvent::Kind k) {
    std::lock_guard l(mu);
    size_t n = 0;
    for (auto& e : events) n += e.kind == k;
    return n;
  }
  std::vector<Tag> media() {
    std::lock_guard l(mu);
    std::vector<Tag> out;
    for (auto& e : events)
      if (e.kind == grtmp::StreamEvent::Kind::Media)
        out.push_back({e.media.msg.type, e.media.msg.timestamp, e.media.msg.payload});
    return out;
  }
};

struct FakePublisher : grtmp::Publisher {
  void evict(const char*) override {}
};

GstBuffer* tag_buffer(const Tag& t, bool header = false) {
  auto v = grtmp::flv::encode_tag(t.type, t.ts, t.payload.data(), t.payload.size());
  GstBuffer* b = gst_buffer_new_memdup(v.data(), v.size());
  if (header) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_HEADER);
  return b;
}

// Caps like flvmux streamable=true: FLV header, onMetaData, sequence headers.
GstCaps* streamheader_caps(const Media& m, std::vector<GstBuffer*>& headers) {
  auto h = grtmp::flv::file_header(true, true);
  headers.push_back(gst_buffer_new_memdup(h.data(), h.size()));
  headers.push_back(tag_buffer(*m.metadata()));
  headers.push_back(tag_buffer(*m.video_header()));
  headers.push_back(tag_buffer(*m.audio_header()));
  GstCaps* caps = gst_caps_new_empty_simple("video/x-flv");
  GValue array = G_VALUE_INIT;
  g_value_init(&array, GST_TYPE_ARRAY);
  for (auto* b : headers) {
    GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_HEADER);
    GValue v = G_VALUE_INIT;
    g_value_init(&v, GST_TYPE_BUFFER);
    g_value_set_boxed(&v, b);
    gst_value_array_append_and_take_value(&array, &v);
  }
  gst_structure_take_value(gst_caps_get_structure(caps, 0), "streamheader", &array);
  return caps;
}

class ClientSinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    init_gst();
    if (!have_elements({"x264enc", "avenc_aac", "flvmux", "appsink"})) return;
    g_media = new Media(make_media(50));
  }
  void SetUp() override {
    if (!g_media) GRTMP_MISSING_PEER("x264enc/avenc_aac/flvmux");
    grtmp::ServerConfig cfg;
    cfg.host = "127.0.0.1";
    cfg.port = free_port();
    GError* err = nullptr;
    server = grtmp::Server::acquire(cfg, &err);
    ASSERT_TRUE(server) << (err ? err->message : "");
  }
  void TearDown() override {
    if (h) gst_harness_teardown(h);
    unref_bus(bus);
    if (server) server->stop();
  }
  const Media& media() { return *g_media; }

  void make_harness(const std::string& key, const char* reconnect = "false") {
    std::string loc = "rtmp://127.0.0.1:" + std::to_string(server->port()) + "/" + key;
    bus = gst_bus_new();
    h = harness_for("rtmpclientsink",
                    {{"location", loc}, {"sync", "false"}, {"reconnect", reconnect}, {"reconnect-interval", "100"}},
                    bus);
  }
  std::string error_text() {
    std::string text;
    while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
      GError* err = nullptr;
      gst_message_parse_error(m, &err, nullptr);
      text = err->message;
      g_clear_error(&err);
      gst_message_unref(m);
    }
    return text;
  }
  std::shared_ptr<Recorder> record(const std::string& key) {
    auto r = std::make_shared<Recorder>();
    GError* err = nullptr;
    stream = server->registry().subscribe(key, r, true, &err);
    EXPECT_TRUE(stream);
    return r;
  }

  std::shared_ptr<grtmp::Server> server;
  std::shared_ptr<grtmp::Stream> stream;
  GstHarness* h = nullptr;
  GstBus* bus = nullptr;
};

// What the server must have received: metadata, sequence headers (each
// again only when it changed) and frames, the first frame at timestamp 0.
void check_published(const Media& media, const std::vector<Tag>& got) {
  std::vector<Tag> want = without_repeated_headers(media.tags);
  ASSERT_LT(want.size(), media.tags.size()) << "flvmux repeats onMetaData: the test checks they are not sent again";
  ASSERT_EQ(got.size(), want.size());
  int64_t first_in = -1, first_out = -1;
  for (size_t i = 0; i < got.size(); i++) {
    EXPECT_EQ(got[i].type, want[i].type) << i;
    EXPECT_EQ(bytes_str(got[i].payload), bytes_str(want[i].payload)) << "payload " << i;
    if (is_video_frame(want[i]) || is_audio_frame(want[i])) {
      if (first_in < 0) {
        first_in = want[i].ts;
        first_out = got[i].ts;
        EXPECT_EQ(first_out, 0) << "the first frame goes out at 0";
      }
      EXPECT_EQ(int64_t(got[i].ts) - first_out, int64_t(want[i].ts) - first_in) << "timestamp " << i;
    }
  }
}

TEST_F(ClientSinkTest, PublishesFlvFromCapsAndBuffers) {
  auto rec = record("live/x");
  make_harness("live/x");
  std::vector<GstBuffer*> headers;
  GstCaps* caps = streamheader_caps(media(), headers);
  gst_harness_set_src_caps(h, caps);
  // flvmux repeats the headers in-band (HEADER flag): skipped.
  for (auto* b : headers) ASSERT_EQ(gst_harness_push(h, gst_buffer_ref(b)), GST_FLOW_OK);
  bool in_header = true;
  for (auto& t : media().tags) {
    if (in_header && (t.type == 18 || is_video_header(t) || is_audio_header(t))) continue;  // in the caps
    in_header = false;
    ASSERT_EQ(gst_harness_push(h, tag_buffer(t)), GST_FLOW_OK) << error_text();
  }
  for (auto* b : headers) gst_buffer_unref(b);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  ASSERT_TRUE(wait_for([&] { return rec->count(grtmp::StreamEvent::Kind::Unpublish) == 1; }))
      << "EOS closes the publishing connection";
  EXPECT_EQ(rec->count(grtmp::StreamEvent::Kind::Publish), 1u);
  check_published(media(), rec->media());
  EXPECT_EQ(error_text(), "");
}

TEST_F(ClientSinkTest, MidStreamCapsChangeSendsOnlyTheChangedHeaderAtTheCurrentTime) {
  auto rec = record("live/cc");
  make_harness("live/cc");
  std::vector<GstBuffer*> headers;
  gst_harness_set_src_caps(h, streamheader_caps(media(), headers));
  for (auto* b : headers) gst_buffer_unref(b);
  headers.clear();
  std::vector<Tag> frames;
  for (auto& t : media().tags)
    if (is_video_frame(t) || is_audio_frame(t)) frames.push_back(t);
  const size_t half = frames.size() / 2;
  for (size_t i = 0; i < half; i++) ASSERT_EQ(gst_harness_push(h, tag_buffer(frames[i])), GST_FLOW_OK);

  // A new audio configuration: new caps (every header of the streamheader,
  // at timestamp 0) and the changed tag in-band, as flvmux does.
  Media changed = media();
  std::vector<uint8_t> new_asc(media().audio_header()->payload.data(),
                               media().audio_header()->payload.data() + media().audio_header()->payload.size());
  new_asc.back() ^= 0x08;
  for (auto& t : changed.tags)
    if (is_audio_header(t)) t.payload = grtmp::Bytes::copy(new_asc.data(), new_asc.size());
  gst_harness_set_src_caps(h, streamheader_caps(changed, headers));
  for (auto* b : headers) gst_buffer_unref(b);
  Tag inband = *changed.audio_header();
  inband.ts = frames[half].ts;
  ASSERT_EQ(gst_harness_push(h, tag_buffer(inband)), GST_FLOW_OK);
  for (size_t i = half; i < frames.size(); i++) ASSERT_EQ(gst_harness_push(h, tag_buffer(frames[i])), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  ASSERT_TRUE(wait_for([&] { return rec->count(grtmp::StreamEvent::Kind::Unpublish) == 1; }));

  auto got = rec->media();
  size_t metadata = 0, video_headers = 0, audio_headers = 0, new_audio_headers = 0;
  uint32_t last_frame_ts = 0;
  for (auto& t : got) {
    if (t.type == 18) metadata++;
    if (is_video_header(t)) video_headers++;
    if (is_audio_header(t)) {
      audio_headers++;
      if (bytes_str(t.payload) == std::string(new_asc.begin(), new_asc.end())) {
        new_audio_headers++;
        EXPECT_GT(last_frame_ts, 0u);
        EXPECT_GE(t.ts, last_frame_ts) << "the new header goes out at the current time, not at 0";
      }
    }
    if (is_video_frame(t) || is_audio_frame(t)) {
      EXPECT_GE(t.ts + 1000, last_frame_ts) << "no jump back";
      last_frame_ts = std::max(last_frame_ts, t.ts);
    }
  }
  EXPECT_EQ(metadata, 1u) << "unchanged onMetaData is not sent again";
  EXPECT_EQ(video_headers, 1u) << "unchanged video sequence header is not sent again";
  EXPECT_EQ(audio_headers, 2u) << "the first and the changed audio sequence header";
  EXPECT_EQ(new_audio_headers, 1u) << "the changed header once, not from caps and in-band";
  EXPECT_EQ(got.size(), frames.size() + 4);
  EXPECT_EQ(error_text(), "");
}

TEST_F(ClientSinkTest, PublishesAnFlvByteStreamInArbitraryPieces) {
  // Like filesrc ! rtmpclientsink: no streamheader, the file header in-band,
  // tags split across buffers.
  auto rec = record("live/bytes");
  make_harness("live/bytes");
  gst_harness_set_src_caps_str(h, "video/x-flv");
  const auto& flv = media().flv;
  for (size_t off = 0; off < flv.size(); off += 1000) {
    size_t n = std::min<size_t>(1000, flv.size() - off);
    ASSERT_EQ(gst_harness_push(h, gst_buffer_new_memdup(flv.data() + off, n)), GST_FLOW_OK) << error_text();
  }
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  ASSERT_TRUE(wait_for([&] { return rec->count(grtmp::StreamEvent::Kind::Unpublish) == 1; }));
  check_published(media(), rec->media());
}

TEST_F(ClientSinkTest, BusyStreamKeyIsAnErrorWithTheServersCode) {
  FakePublisher other;
  GError* err = nullptr;
  auto busy = server->registry().publish("live/busy", "", &other, &err);
  ASSERT_TRUE(busy);
  make_harness("live/busy");
  gst_harness_set_src_caps_str(h, "video/x-flv");
  EXPECT_EQ(gst_harness_push(h, gst_buffer_new_memdup(media().flv.data(), 2000)), GST_FLOW_ERROR);
  std::string text = error_text();
  EXPECT_NE(text.find("NetStream.Publish.BadName"), std::string::npos) << text;
  EXPECT_NE(text.find("Could not publish to rtmp://127.0.0.1:"), std::string::npos) << text;
  server->registry().unpublish(busy, &other);
}

TEST_F(ClientSinkTest, ReconnectsAndResendsHeaders) {
  make_harness("live/re", "true");
  gst_harness_set_src_caps_str(h, "video/x-flv");
  auto tags = media().tags;
  size_t half = tags.size() / 2;
  // First half, including the file header.
  std::vector<uint8_t> flv_head(media().flv.begin(), media().flv.begin() + 13);
  ASSERT_EQ(gst_harness_push(h, gst_buffer_new_memdup(flv_head.data(), flv_head.size())), GST_FLOW_OK);
  for (size_t i = 0; i < half; i++) ASSERT_EQ(gst_harness_push(h, tag_buffer(tags[i])), GST_FLOW_OK);

  // The server goes away and comes back on the same port.
  uint16_t port = server->port();
  server->stop();
  server.reset();
  grtmp::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = port;
  GError* err = nullptr;
  server = grtmp::Server::acquire(cfg, &err);
  ASSERT_TRUE(server) << (err ? err->message : "");
  auto rec = record("live/re");

  for (size_t i = half; i < tags.size(); i++) {
    ASSERT_EQ(gst_harness_push(h, tag_buffer(tags[i])), GST_FLOW_OK);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  ASSERT_TRUE(wait_for([&] { return rec->count(grtmp::StreamEvent::Kind::Unpublish) == 1; }));
  auto got = rec->media();
  ASSERT_GE(got.size(), 4u);
  // Headers first again, then frames from a keyframe.
  EXPECT_EQ(got[0].type, 18);
  EXPECT_EQ(bytes_str(got[1].payload), bytes_str(media().video_header()->payload));
  EXPECT_EQ(bytes_str(got[2].payload), bytes_str(media().audio_header()->payload));
  const Tag* first_video = nullptr;
  size_t video = 0;
  for (auto& t : got)
    if (is_video_frame(t)) {
      if (!first_video) first_video = &t;
      video++;
    }
  ASSERT_NE(first_video, nullptr);
  EXPECT_TRUE(is_keyframe(*first_video)) << "video resumes at a keyframe";
  EXPECT_GT(video, 0u);
  GstStructure* stats = nullptr;
  g_object_get(h->element, "stats", &stats, nullptr);
  guint64 reconnects = 0;
  gst_structure_get_uint64(stats, "reconnects", &reconnects);
  gst_structure_free(stats);
  EXPECT_GE(reconnects, 1u);
}

TEST_F(ClientSinkTest, TimestampsAcrossThe32BitWrapAreRebasedAndMonotonic) {
  auto rec = record("live/wrap");
  make_harness("live/wrap");
  gst_harness_set_src_caps_str(h, "video/x-flv");
  auto fh = grtmp::flv::file_header(true, false);
  ASSERT_EQ(gst_harness_push(h, gst_buffer_new_memdup(fh.data(), fh.size())), GST_FLOW_OK);
  const uint32_t step = 23, first = 0xFFFFFFFFu - 40 * step;
  const uint8_t asc[] = {0xaf, 0x00, 0x12, 0x10};
  ASSERT_EQ(gst_harness_push(h, tag_buffer({8, first, grtmp::Bytes::copy(asc, 4)})), GST_FLOW_OK);
  const int frames = 100;
  for (int i = 0; i < frames; i++) {
    std::vector<uint8_t> p(40, uint8_t(i));
    p[0] = 0xaf;
    p[1] = 0x01;
    ASSERT_EQ(gst_harness_push(h, tag_buffer({8, first + uint32_t(i) * step, grtmp::Bytes::copy(p)})), GST_FLOW_OK);
  }
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  ASSERT_TRUE(wait_for([&] { return rec->count(grtmp::StreamEvent::Kind::Unpublish) == 1; }));
  auto got = rec->media();
  ASSERT_EQ(got.size(), 1u + frames);
  for (int i = 0; i < frames; i++) EXPECT_EQ(got[1 + i].ts, uint32_t(i) * step) << "frame " << i;
}

class ClientSinkBasics : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { init_gst(); }
};

TEST_F(ClientSinkBasics, ConnectionRefusedIsAnElementError) {
  uint16_t port = free_port();
  GstBus* bus = gst_bus_new();
  std::string loc = "rtmp://127.0.0.1:" + std::to_string(port) + "/live/x";
  GstHarness* h = harness_for("rtmpclientsink", {{"location", loc}, {"sync", "false"}}, bus);
  gst_harness_set_src_caps_str(h, "video/x-flv");
  auto hdr = grtmp::flv::file_header(true, true);
  std::vector<uint8_t> v(hdr.begin(), hdr.end());
  auto tag = grtmp::flv::encode_tag(8, 0, reinterpret_cast<const uint8_t*>("\xaf\x01xx"), 4);
  v.insert(v.end(), tag.begin(), tag.end());
  EXPECT_EQ(gst_harness_push(h, gst_buffer_new_memdup(v.data(), v.size())), GST_FLOW_ERROR);
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(m, nullptr);
  GError* err = nullptr;
  gst_message_parse_error(m, &err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_WRITE)) << err->message;
  EXPECT_NE(std::string(err->message).find("Could not connect to " + loc), std::string::npos) << err->message;
  g_clear_error(&err);
  gst_message_unref(m);
  gst_harness_teardown(h);
  unref_bus(bus);
}

TEST_F(ClientSinkBasics, ErrorsLeaveTheQueryOut) {
  // Stream keys carry tokens (?token=...): messages show "?..." instead.
  uint16_t port = free_port();
  GstBus* bus = gst_bus_new();
  std::string loc = "rtmp://127.0.0.1:" + std::to_string(port) + "/live/x?token=t0psecret";
  GstHarness* h = harness_for("rtmpclientsink", {{"location", loc}, {"sync", "false"}}, bus);
  gst_harness_set_src_caps_str(h, "video/x-flv");
  auto hdr = grtmp::flv::file_header(true, true);
  std::vector<uint8_t> v(hdr.begin(), hdr.end());
  auto tag = grtmp::flv::encode_tag(8, 0, reinterpret_cast<const uint8_t*>("\xaf\x01xx"), 4);
  v.insert(v.end(), tag.begin(), tag.end());
  EXPECT_EQ(gst_harness_push(h, gst_buffer_new_memdup(v.data(), v.size())), GST_FLOW_ERROR);
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(m, nullptr);
  GError* err = nullptr;
  gchar* dbg = nullptr;
  gst_message_parse_error(m, &err, &dbg);
  std::string text = err->message, debug = dbg ? dbg : "";
  EXPECT_NE(text.find("Could not connect to rtmp://127.0.0.1:" + std::to_string(port) + "/live/x?..."),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("t0psecret"), std::string::npos) << text;
  EXPECT_EQ(debug.find("t0psecret"), std::string::npos) << debug;
  g_clear_error(&err);
  g_free(dbg);
  gst_message_unref(m);
  gst_harness_teardown(h);
  unref_bus(bus);

  // An invalid URI: the error returned to the application has no token either.
  GstElement* e = gst_element_factory_make("rtmpclientsink", nullptr);
  EXPECT_FALSE(gst_uri_handler_set_uri(GST_URI_HANDLER(e), "rtmp://h:99999/live/x?token=t0psecret", &err));
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(std::string(err->message).find("t0psecret"), std::string::npos) << err->message;
  EXPECT_NE(std::string(err->message).find("?..."), std::string::npos) << err->message;
  g_clear_error(&err);
  gst_object_unref(e);
}

TEST_F(ClientSinkBasics, LocationAndPartsAgree) {
  GstElement* e = gst_element_factory_make("rtmpclientsink", nullptr);
  ASSERT_NE(e, nullptr);
  g_object_set(e, "location", "rtmp://example.com:1936/app/name?token=abc", nullptr);
  gchar *host = nullptr, *app = nullptr, *stream = nullptr;
  guint port = 0;
  g_object_get(e, "host", &host, "port", &port, "application", &app, "stream", &stream, nullptr);
  EXPECT_STREQ(host, "example.com");
  EXPECT_EQ(port, 1936u);
  EXPECT_STREQ(app, "app");
  EXPECT_STREQ(stream, "name?token=abc");
  g_free(host);
  g_free(app);
  g_free(stream);
  g_object_set(e, "host", "10.0.0.1", "port", 1935u, "application", "live", "stream", "cam", nullptr);
  gchar* loc = nullptr;
  g_object_get(e, "location", &loc, nullptr);
  EXPECT_STREQ(loc, "rtmp://10.0.0.1/live/cam");
  g_free(loc);

  ASSERT_TRUE(GST_IS_URI_HANDLER(e));
  EXPECT_EQ(gst_uri_handler_get_uri_type(GST_URI_HANDLER(e)), GST_URI_SINK);
  GError* err = nullptr;
  EXPECT_TRUE(gst_uri_handler_set_uri(GST_URI_HANDLER(e), "rtmps://ingest.example.com/live2/key", &err));
  gchar* uri = gst_uri_handler_get_uri(GST_URI_HANDLER(e));
  EXPECT_STREQ(uri, "rtmps://ingest.example.com/live2/key");
  g_free(uri);
  EXPECT_FALSE(gst_uri_handler_set_uri(GST_URI_HANDLER(e), "rtmp://", &err));
  g_clear_error(&err);
  GstElementFactory* f = gst_element_get_factory(e);
  EXPECT_EQ(gst_plugin_feature_get_rank(GST_PLUGIN_FEATURE(f)), guint(GST_RANK_MARGINAL));
  gst_object_unref(e);
}

TEST_F(ClientSinkBasics, NoLocationFailsToStart) {
  GstElement* e = gst_element_factory_make("rtmpclientsink", nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(e, bus);
  EXPECT_EQ(gst_element_set_state(e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(m, nullptr);
  GError* err = nullptr;
  gst_message_parse_error(m, &err, nullptr);
  EXPECT_NE(std::string(err->message).find("No RTMP location"), std::string::npos) << err->message;
  g_clear_error(&err);
  gst_message_unref(m);
  gst_element_set_state(e, GST_STATE_NULL);
  gst_object_unref(e);
  unref_bus(bus);
}

}  // namespace
