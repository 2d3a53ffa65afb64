// rtmpserversrc: a grtmp::Client publishes generated H.264/AAC FLV into the
// element; the FLV that comes out of its pad is checked tag by tag, and
// decoded through flvdemux ! h264parse ! avdec_h264.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "test_helpers.h"

using namespace gsttest;

namespace {

Media* g_media = nullptr;

class ServerSrcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    init_gst();
    if (!have_elements({"x264enc", "avenc_aac", "flvmux", "flvdemux", "h264parse", "avdec_h264", "appsink"}))
      return;
    g_media = new Media(make_media(50));
  }
  void SetUp() override {
    if (!g_media) GTEST_SKIP() << "x264enc/avenc_aac/flvmux/avdec_h264 missing";
  }
  const Media& media() { return *g_media; }
};

// rtmpserversrc -> appsink, pads linked as they appear.
struct SrcPipeline {
  GstElement* pipe = nullptr;
  GstElement* src = nullptr;
  GstElement* sink = nullptr;
  std::atomic<int> pads_added{0}, pads_removed{0};
  std::mutex mu;
  std::vector<std::string> keys;
  const bool link;

  explicit SrcPipeline(const char* key, bool eos_on_unpublish = true, bool link_first = true) : link(link_first) {
    pipe = gst_pipeline_new(nullptr);
    src = gst_element_factory_make("rtmpserversrc", nullptr);
    g_object_set(src, "address", "127.0.0.1", "port", 0, "stream-key", key, "eos-on-unpublish",
                 gboolean(eos_on_unpublish), nullptr);
    sink = gst_element_factory_make("appsink", nullptr);
    g_object_set(sink, "sync", FALSE, nullptr);
    log_caps(sink);
    gst_bin_add_many(GST_BIN(pipe), src, sink, nullptr);
    g_signal_connect(src, "pad-added", G_CALLBACK(+[](GstElement*, GstPad* pad, SrcPipeline* self) {
                       gchar* k = nullptr;
                       g_object_get(pad, "stream-key", &k, nullptr);
                       {
                         std::lock_guard l(self->mu);
                         self->keys.push_back(k ? k : "");
                       }
                       g_free(k);
                       if (self->link && self->pads_added == 0) {
                         GstPad* sinkpad = gst_element_get_static_pad(self->sink, "sink");
                         EXPECT_EQ(gst_pad_link(pad, sinkpad), GST_PAD_LINK_OK);
                         gst_object_unref(sinkpad);
                       }
                       self->pads_added++;
                     }),
                     this);
    g_signal_connect(src, "pad-removed", G_CALLBACK(+[](GstElement*, GstPad*, SrcPipeline* self) {
                       self->pads_removed++;
                     }),
                     this);
  }
  uint16_t start() {
    EXPECT_NE(gst_element_set_state(pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    return element_port(src);
  }
  ~SrcPipeline() {
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pipe);
  }
};

TEST_F(ServerSrcTest, PublishedStreamComesOutAsFlvTags) {
  SrcPipeline p("live/t");
  uint16_t port = p.start();
  ASSERT_NE(port, 0);

  auto client = publisher(port, "live/t");
  ASSERT_TRUE(client);
  ASSERT_TRUE(send_all(*client, media().messages()));

  // Stats while the publisher is on (once the server has read it all).
  auto stream_stats = [&](guint& publishers, guint64& bytes_in, std::string& key, std::string& codec) {
    GstStructure* stats = nullptr;
    g_object_get(p.src, "stats", &stats, nullptr);
    if (!stats) return false;
    gst_structure_get_uint(stats, "publishers", &publishers);
    gst_structure_get_uint64(stats, "bytes-in", &bytes_in);
    const GValue* streams = gst_structure_get_value(stats, "streams");
    if (streams && GST_VALUE_HOLDS_ARRAY(streams) && gst_value_array_get_size(streams) == 1) {
      const GstStructure* s0 = gst_value_get_structure(gst_value_array_get_value(streams, 0));
      key = gst_structure_get_string(s0, "key");
      codec = gst_structure_get_string(s0, "video-codec");
    }
    gst_structure_free(stats);
    return true;
  };
  guint publishers = 0;
  guint64 bytes_in = 0;
  std::string key, codec;
  EXPECT_TRUE(wait_for([&] {
    return stream_stats(publishers, bytes_in, key, codec) && bytes_in >= media().flv.size() * 9 / 10;
  }));
  EXPECT_EQ(publishers, 1u);
  EXPECT_GE(bytes_in, media().flv.size() * 9 / 10);
  EXPECT_EQ(key, "live/t");
  EXPECT_EQ(codec, "H264");

  client->close();

  Collected c;
  collect(p.sink, c);
  EXPECT_TRUE(c.eos) << "EOS after the publisher left";
  check_flv_output(media(), c, from_start(media()));
  EXPECT_TRUE(wait_for([&] { return p.pads_removed.load() == 1; })) << "pad removed after EOS";
  EXPECT_EQ(p.pads_added.load(), 1);
  {
    std::lock_guard l(p.mu);
    ASSERT_EQ(p.keys.size(), 1u);
    EXPECT_EQ(p.keys[0], "live/t");
  }
  EXPECT_EQ(bus_error(p.pipe), "");
}

TEST_F(ServerSrcTest, RemovedPadsAreFreed) {
  // Each pad is owned by its port and, while added, by the element: once
  // removed and its port gone, nothing may keep it alive.
  GstPad* weak = nullptr;
  {
    SrcPipeline p("live/w", true, false);
    g_signal_connect(p.src, "pad-added", G_CALLBACK(+[](GstElement*, GstPad* pad, GstPad** out) {
                       *out = pad;
                       g_object_add_weak_pointer(G_OBJECT(pad), reinterpret_cast<gpointer*>(out));
                     }),
                     &weak);
    uint16_t port = p.start();
    ASSERT_NE(port, 0);
    auto client = publisher(port, "live/w");
    ASSERT_TRUE(client);
    ASSERT_TRUE(send_all(*client, media().messages()));
    ASSERT_TRUE(wait_for([&] { return p.pads_added.load() == 1; }));
    client->close();
    ASSERT_TRUE(wait_for([&] { return p.pads_removed.load() == 1; }));
  }
  // (Not before: the undrained bus holds the pad's stream-status messages.)
  EXPECT_EQ(weak, nullptr) << "pad leaked";
  if (weak) g_object_remove_weak_pointer(G_OBJECT(weak), reinterpret_cast<gpointer*>(&weak));
}

TEST_F(ServerSrcTest, StoppingWaitsForAPadRemovalInProgress) {
  // After an unpublish the pad goes away on another thread. A change to
  // NULL meanwhile returns only once it is gone: pad-removed handlers may use
  // what the application frees after set_state(NULL) returned.
  struct Flags {
    std::atomic<bool> entered{false}, left{false};
  } flags;
  SrcPipeline p("live/s", true, false);
  g_signal_connect(p.src, "pad-removed", G_CALLBACK(+[](GstElement*, GstPad*, Flags* f) {
                     f->entered = true;
                     std::this_thread::sleep_for(std::chrono::milliseconds(300));
                     f->left = true;
                   }),
                   &flags);
  uint16_t port = p.start();
  ASSERT_NE(port, 0);
  auto client = publisher(port, "live/s");
  ASSERT_TRUE(client);
  ASSERT_TRUE(send_all(*client, media().messages()));
  ASSERT_TRUE(wait_for([&] { return p.pads_added.load() == 1; }));
  client->close();
  ASSERT_TRUE(wait_for([&] { return flags.entered.load(); }));
  gst_element_set_state(p.pipe, GST_STATE_NULL);
  EXPECT_TRUE(flags.left.load()) << "set_state(NULL) returned while the pad was being removed";
  EXPECT_EQ(p.src->numsrcpads, 0u);
  EXPECT_EQ(p.pads_removed.load(), 1);
}

TEST_F(ServerSrcTest, DecodesThroughFlvdemux) {
  GError* err = nullptr;
  GstElement* pipe = gst_parse_launch(
      "rtmpserversrc name=src address=127.0.0.1 port=0 stream-key=live/d ! flvdemux name=d "
      "d.video ! queue ! h264parse ! avdec_h264 ! appsink name=out sync=false "
      "d.audio ! queue ! fakesink sync=false",
      &err);
  ASSERT_NE(pipe, nullptr) << (err ? err->message : "");
  GstElement* src = gst_bin_get_by_name(GST_BIN(pipe), "src");
  GstElement* out = gst_bin_get_by_name(GST_BIN(pipe), "out");
  ASSERT_NE(gst_element_set_state(pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  uint16_t port = element_port(src);
  ASSERT_NE(port, 0);

  auto client = publisher(port, "live/d");
  ASSERT_TRUE(client);
  ASSERT_TRUE(send_all(*client, media().messages()));
  client->close();

  size_t frames = 0;
  int width = 0, height = 0;
  while (GstSample* s = try_pull_sample(out, 10 * GST_SECOND)) {
    if (frames == 0) {
      GstStructure* st = gst_caps_get_structure(gst_sample_get_caps(s), 0);
      gst_structure_get_int(st, "width", &width);
      gst_structure_get_int(st, "height", &height);
    }
    frames++;
    gst_sample_unref(s);
  }
  EXPECT_TRUE(appsink_eos(out));
  EXPECT_EQ(frames, media().video_frames) << "every published frame decoded";
  EXPECT_EQ(width, 320);
  EXPECT_EQ(height, 240);
  EXPECT_EQ(bus_error(pipe), "");
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(src);
  gst_object_unref(out);
  gst_object_unref(pipe);
}

TEST_F(ServerSrcTest, KeepsPadForRepublishWithoutEos) {
  SrcPipeline p("live/r", /*eos_on_unpublish=*/false);
  uint16_t port = p.start();
  ASSERT_NE(port, 0);
  const size_t frames = expected_after_headers(media().tags).size();
  std::vector<Tag> twice = media().tags;
  twice.insert(twice.end(), media().tags.begin(), media().tags.end());
  const size_t both = expected_after_headers(twice).size();

  for (int round = 0; round < 2; round++) {
    auto client = publisher(port, "live/r");
    ASSERT_TRUE(client);
    ASSERT_TRUE(send_all(*client, media().messages()));
    client->close();
    // Let the pad drain before the next publisher.
    ASSERT_TRUE(wait_for([&] { return p.pads_added.load() == 1; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }

  Collected c;
  collect(p.sink, c, 2 * GST_SECOND);
  EXPECT_FALSE(c.eos) << "no EOS with eos-on-unpublish=false";
  EXPECT_EQ(p.pads_added.load(), 1);
  EXPECT_EQ(p.pads_removed.load(), 0);
  // 4 headers, then both sessions' tags (metadata and headers only where
  // they change).
  EXPECT_EQ(c.buffers.size(), 4 + both);
  GstClockTime last = 0;
  for (auto* b : c.buffers) {
    if (!GST_CLOCK_TIME_IS_VALID(GST_BUFFER_DTS(b))) continue;
    EXPECT_GE(GST_BUFFER_DTS(b), last);
    last = GST_BUFFER_DTS(b);
  }
  if (c.buffers.size() == 4 + both) {
    GstClockTime end_first = GST_BUFFER_DTS(c.buffers[4 + frames - 1]);
    // The second session's first audio/video tag. An onMetaData that differs
    // from the last one (flvmux sometimes updates it mid-stream) goes out
    // first, at the stream's position: script data is not a frame.
    size_t first = 4 + frames;
    while (first < c.buffers.size() && buffer_bytes(c.buffers[first]).at(0) == 18) first++;
    ASSERT_LT(first, c.buffers.size());
    GstClockTime start_second = GST_BUFFER_DTS(c.buffers[first]);
    EXPECT_GT(start_second, end_first) << "the second session continues after the first";
  }
}

TEST_F(ServerSrcTest, OnePadPerStreamWithoutStreamKey) {
  SrcPipeline p("", true, /*link=*/false);
  uint16_t port = p.start();
  ASSERT_NE(port, 0);
  auto a = publisher(port, "live/a");
  auto b = publisher(port, "other/b");
  ASSERT_TRUE(a && b);
  auto msgs = media().messages();
  std::vector<grtmp::Message> first(msgs.begin(), msgs.begin() + 10);
  ASSERT_TRUE(send_all(*a, first));
  ASSERT_TRUE(send_all(*b, first));
  EXPECT_TRUE(wait_for([&] { return p.pads_added.load() == 2; }));
  {
    std::lock_guard l(p.mu);
    std::set<std::string> keys(p.keys.begin(), p.keys.end());
    EXPECT_EQ(keys, (std::set<std::string>{"live/a", "other/b"}));
  }
  // Pads are GstGrtmpServerSrcPad with their key.
  GstPad* pad = gst_element_get_static_pad(p.src, "src_0");
  ASSERT_NE(pad, nullptr);
  EXPECT_STREQ(G_OBJECT_TYPE_NAME(pad), "GstGrtmpServerSrcPad");
  gst_object_unref(pad);
  a->close();
  b->close();
  EXPECT_TRUE(wait_for([&] { return p.pads_removed.load() == 2; }));
}

TEST_F(ServerSrcTest, LateJoinOnSharedServerStartsAtKeyframe) {
  grtmp::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = free_port();
  GError* err = nullptr;
  auto server = grtmp::Server::acquire(cfg, &err);
  ASSERT_TRUE(server) << (err ? err->message : "");
  uint16_t port = server->port();

  auto client = publisher(port, "live/late");
  ASSERT_TRUE(client);
  auto msgs = media().messages();
  // Everything up to the middle of the second GOP.
  size_t cut = 0, keys = 0;
  for (size_t i = 0; i < msgs.size(); i++) {
    Tag t{msgs[i].type, msgs[i].timestamp, msgs[i].payload};
    if (is_keyframe(t) && ++keys == 2) cut = i + 10;
  }
  ASSERT_GT(cut, 0u);
  std::vector<grtmp::Message> head(msgs.begin(), msgs.begin() + cut), tail(msgs.begin() + cut, msgs.end());
  ASSERT_TRUE(send_all(*client, head));
  ASSERT_TRUE(wait_for([&] {
    auto s = server->registry().find("live/late");
    return s && s->info().messages_in >= cut;
  }));

  // The element shares the running server (same address:port).
  auto p = std::make_unique<SrcPipeline>("live/late");
  g_object_set(p->src, "port", guint(port), nullptr);
  ASSERT_EQ(p->start(), port);
  ASSERT_TRUE(wait_for([&] { return p->pads_added.load() == 1; }));
  ASSERT_TRUE(send_all(*client, tail));
  client->close();

  Collected c;
  collect(p->sink, c);
  EXPECT_TRUE(c.eos);
  // From the second keyframe on: the GOP cache plus what followed.
  auto in = av_frames(media().tags);
  size_t first_key = 0, k = 0;
  for (size_t i = 0; i < in.size(); i++)
    if (is_keyframe(in[i]) && ++k == 2) first_key = i;
  std::string last_meta;
  for (auto& m : head)
    if (m.type == 18) last_meta = std::string(m.payload.view());
  Expect e{last_meta, std::vector<Tag>(in.begin() + first_key, in.end()), true};
  auto out = check_flv_output(media(), c, e);
  auto av = av_frames(out);
  ASSERT_FALSE(av.empty());
  EXPECT_TRUE(is_keyframe(av[0]));
  p.reset();
  server->stop();
}

// Records the payloads a stream fans out (a second subscriber next to the pad).
struct PayloadRecorder : grtmp::Subscriber {
  std::mutex mu;
  std::vector<grtmp::Bytes> payloads;
  void on_stream_event(const grtmp::StreamEvent& ev) override {
    if (ev.kind != grtmp::StreamEvent::Kind::Media) return;
    std::lock_guard l(mu);
    payloads.push_back(ev.media.msg.payload);
  }
};

TEST_F(ServerSrcTest, PayloadMemoryIsThePublishersBytes) {
  grtmp::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = free_port();
  GError* err = nullptr;
  auto server = grtmp::Server::acquire(cfg, &err);
  ASSERT_TRUE(server) << (err ? err->message : "");
  auto rec = std::make_shared<PayloadRecorder>();
  auto stream = server->registry().subscribe("live/zc", rec, true, &err);
  ASSERT_TRUE(stream);

  auto p = std::make_unique<SrcPipeline>("live/zc");
  g_object_set(p->src, "port", guint(cfg.port), nullptr);
  ASSERT_EQ(p->start(), cfg.port);
  auto client = publisher(cfg.port, "live/zc");
  ASSERT_TRUE(client);
  ASSERT_TRUE(send_all(*client, media().messages()));
  client->close();
  Collected c;
  collect(p->sink, c);
  ASSERT_GT(c.buffers.size(), 10u);

  // Every frame's payload memory points into a payload the registry fanned out.
  std::set<const uint8_t*> shared;
  {
    std::lock_guard l(rec->mu);
    for (auto& b : rec->payloads) shared.insert(b.data());
  }
  size_t checked = 0;
  for (size_t i = 4; i < c.buffers.size(); i++) {
    GstBuffer* b = c.buffers[i];
    ASSERT_EQ(gst_buffer_n_memory(b), 3u);
    GstMemory* m = gst_buffer_peek_memory(b, 1);
    GstMapInfo map;
    ASSERT_TRUE(gst_memory_map(m, &map, GST_MAP_READ));
    EXPECT_TRUE(shared.count(map.data)) << "buffer " << i << " payload was copied";
    gst_memory_unmap(m, &map);
    checked++;
  }
  EXPECT_GT(checked, 100u);
  p.reset();
  server->registry().unsubscribe(stream, rec.get());
  server->stop();
}

TEST_F(ServerSrcTest, MissingSequenceHeaderIsOnlyAWarning) {
  SrcPipeline p("live/w");
  uint16_t port = p.start();
  auto client = publisher(port, "live/w");
  ASSERT_TRUE(client);
  // Video frames of an AVC stream but no sequence header.
  std::vector<grtmp::Message> msgs;
  for (auto& m : media().messages()) {
    Tag t{m.type, m.timestamp, m.payload};
    if (is_video_frame(t)) msgs.push_back(m);
  }
  msgs.resize(10);
  ASSERT_TRUE(send_all(*client, msgs));
  ASSERT_TRUE(wait_for([&] { return p.pads_added.load() == 1; }, 5000)) << "pad after the 1 s header wait";
  std::string warning = bus_error(p.pipe, 2 * GST_SECOND, /*warnings=*/true);
  EXPECT_NE(warning.find("sequence header"), std::string::npos) << warning;
  client->close();
  Collected c;
  collect(p.sink, c);
  EXPECT_TRUE(c.eos);
  auto sh = streamheader(c.caps);
  ASSERT_EQ(sh.size(), 1u) << "only the FLV header";
  auto hdr = buffer_bytes(sh[0]);
  EXPECT_EQ(hdr[4], 0x01) << "video only";
  EXPECT_EQ(c.buffers.size(), 1 + msgs.size());
  EXPECT_EQ(bus_error(p.pipe), "") << "no error";
}

class ServerSrcBasics : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { init_gst(); }
};

TEST_F(ServerSrcBasics, BindErrorIsAnElementError) {
  GSocketListener* listener = g_socket_listener_new();
  GError* err = nullptr;
  guint16 port = g_socket_listener_add_any_inet_port(listener, nullptr, &err);
  ASSERT_NE(port, 0) << (err ? err->message : "");

  GstElement* pipe = gst_pipeline_new(nullptr);
  GstElement* src = gst_element_factory_make("rtmpserversrc", nullptr);
  GstElement* sink = gst_element_factory_make("fakesink", nullptr);
  gst_bin_add_many(GST_BIN(pipe), src, sink, nullptr);
  g_object_set(src, "address", "0.0.0.0", "port", guint(port), nullptr);
  EXPECT_EQ(gst_element_set_state(pipe, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  std::string text = bus_error(pipe);
  EXPECT_NE(text.find("Could not listen on 0.0.0.0:" + std::to_string(port)), std::string::npos) << text;
  EXPECT_EQ(text.rfind("Could not listen on 0.0.0.0:" + std::to_string(port) + ": Address already in use |", 0), 0u)
      << text;
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
  g_socket_listener_close(listener);
  g_object_unref(listener);
}

// AAC audio-only messages with publisher timestamps crossing 2^32 ms.
std::vector<grtmp::Message> wrapping_audio(uint32_t first_ts, int frames, uint32_t step) {
  std::vector<grtmp::Message> out;
  grtmp::Message hdr;
  hdr.type = grtmp::kMsgAudio;
  hdr.timestamp = first_ts;
  const uint8_t asc[] = {0xaf, 0x00, 0x12, 0x10};
  hdr.payload = grtmp::Bytes::copy(asc, sizeof asc);
  out.push_back(hdr);
  for (int i = 0; i < frames; i++) {
    grtmp::Message m;
    m.type = grtmp::kMsgAudio;
    m.timestamp = first_ts + uint32_t(i) * step;  // wraps
    std::vector<uint8_t> p(40, uint8_t(i));
    p[0] = 0xaf;
    p[1] = 0x01;
    m.payload = grtmp::Bytes::copy(p);
    out.push_back(m);
  }
  return out;
}

TEST_F(ServerSrcBasics, TimestampsStayMonotonicAcrossThe32BitWrap) {
  SrcPipeline p("live/wrap");
  uint16_t port = p.start();
  auto client = publisher(port, "live/wrap");
  ASSERT_TRUE(client);
  const int frames = 100;
  const uint32_t step = 23;
  auto msgs = wrapping_audio(0xFFFFFFFFu - 40 * step, frames, step);
  ASSERT_TRUE(send_all(*client, msgs));
  client->close();
  Collected c;
  collect(p.sink, c);
  EXPECT_TRUE(c.eos);
  auto sh = streamheader(c.caps);
  ASSERT_EQ(sh.size(), 2u) << "FLV header and the AAC sequence header";
  EXPECT_EQ(buffer_bytes(sh[0])[4], 0x04) << "audio only";
  ASSERT_EQ(c.buffers.size(), 2u + frames);
  for (int i = 0; i < frames; i++) {
    GstBuffer* b = c.buffers[2 + i];
    Tag t;
    ASSERT_TRUE(parse_tag_buffer(b, t));
    EXPECT_EQ(t.ts, uint32_t(i) * step) << "frame " << i;
    EXPECT_EQ(GST_BUFFER_DTS(b), GstClockTime(i) * step * GST_MSECOND) << "frame " << i;
    EXPECT_FALSE(GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT)) << "audio-only: every frame is a sync point";
  }
}

TEST_F(ServerSrcBasics, IsALiveSource) {
  GstElement* pipe = gst_pipeline_new(nullptr);
  GstElement* src = gst_element_factory_make("rtmpserversrc", nullptr);
  g_object_set(src, "address", "127.0.0.1", "port", 0, nullptr);
  gst_bin_add(GST_BIN(pipe), src);
  EXPECT_EQ(gst_element_set_state(pipe, GST_STATE_PAUSED), GST_STATE_CHANGE_NO_PREROLL);
  EXPECT_NE(element_port(src), 0);
  EXPECT_EQ(gst_element_set_state(pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  EXPECT_EQ(gst_element_set_state(pipe, GST_STATE_PAUSED), GST_STATE_CHANGE_NO_PREROLL);
  EXPECT_EQ(gst_element_set_state(pipe, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  EXPECT_EQ(element_port(src), 0);
  gst_object_unref(pipe);
}

}  // namespace
