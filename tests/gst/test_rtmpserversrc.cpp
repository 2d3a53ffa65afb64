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
    if (!g_media) GRTMP_MISSING_PEER("x264enc/avenc_aac/flvmux/avdec_h264");
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

TEST_F(ServerSrcTest, StreamKeyFilterGivesOtherStreamsNoPad) {
  SrcPipeline p("live/mine");
  uint16_t port = p.start();
  ASSERT_NE(port, 0);
  auto other = publisher(port, "live/other");
  auto mine = publisher(port, "live/mine");
  ASSERT_TRUE(other && mine);
  auto msgs = media().messages();
  ASSERT_TRUE(send_all(*other, msgs));
  ASSERT_TRUE(send_all(*mine, msgs));
  ASSERT_TRUE(wait_for([&] { return p.pads_added.load() >= 1; }));
  // The other stream is complete (headers and 2 s of frames): had it a pad,
  // it would be there by now.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(p.pads_added.load(), 1);
  {
    std::lock_guard l(p.mu);
    EXPECT_EQ(p.keys, std::vector<std::string>{"live/mine"});
  }
  other->close();
  mine->close();
  Collected c;
  collect(p.sink, c);
  EXPECT_TRUE(c.eos);
  check_flv_output(media(), c, from_start(media()));
  EXPECT_EQ(bus_error(p.pipe), "");
}

TEST_F(ServerSrcTest, MisbehavingPublisherNextToAGoodStreamIsOnlyAWarning) {
  SrcPipeline p("");
  g_object_set(p.src, "max-message-size", guint(256 * 1024), nullptr);
  uint16_t port = p.start();
  ASSERT_NE(port, 0);
  auto good = publisher(port, "live/good");
  ASSERT_TRUE(good);
  auto msgs = media().messages();
  const size_t split = msgs.size() / 2;
  ASSERT_TRUE(send_all(*good, std::vector<grtmp::Message>(msgs.begin(), msgs.begin() + split)));
  ASSERT_TRUE(wait_for([&] { return p.pads_added.load() == 1; })) << "the good stream's pad (linked)";

  // Bad 1: an onMetaData that does not parse, then AVC frames without a
  // sequence header and a video message too short to be a frame.
  auto bad = publisher(port, "live/bad");
  ASSERT_TRUE(bad);
  std::vector<grtmp::Message> junk;
  grtmp::Message meta;
  meta.type = grtmp::kMsgDataAmf0;
  const uint8_t broken_meta[] = {0x02, 0x00, 0x0a, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a', 0x08, 0xff};
  meta.payload = grtmp::Bytes::copy(broken_meta, sizeof broken_meta);
  junk.push_back(meta);
  uint32_t ts = 0;
  for (auto& m : msgs) {
    Tag t{m.type, m.timestamp, m.payload};
    if (!is_video_frame(t)) continue;
    grtmp::Message f = m;
    f.timestamp = ts += 40;
    junk.push_back(f);
    if (junk.size() == 5) {
      grtmp::Message tiny;
      tiny.type = grtmp::kMsgVideo;
      tiny.timestamp = ts;
      const uint8_t one = 0x17;
      tiny.payload = grtmp::Bytes::copy(&one, 1);
      junk.push_back(tiny);
    }
    if (junk.size() >= 12) break;
  }
  ASSERT_TRUE(send_all(*bad, junk));
  // Bad 2: a message larger than max-message-size (the server drops it).
  auto huge = publisher(port, "live/huge");
  ASSERT_TRUE(huge);
  grtmp::Message big;
  big.type = grtmp::kMsgVideo;
  std::vector<uint8_t> payload(1024 * 1024, 0);
  payload[0] = 0x17;
  payload[1] = 0x01;
  big.payload = grtmp::Bytes::copy(payload);
  GError* err = nullptr;
  huge->send(big, nullptr, &err);  // may fail once the server closes
  g_clear_error(&err);

  std::string warning = bus_error(p.pipe, 5 * GST_SECOND, /*warnings=*/true);
  EXPECT_NE(warning.find("live/bad"), std::string::npos) << warning;
  EXPECT_NE(warning.find("Stream"), std::string::npos) << "a warning, not an error: " << warning;

  // The good stream goes on to the end, every tag intact.
  ASSERT_TRUE(send_all(*good, std::vector<grtmp::Message>(msgs.begin() + split, msgs.end())));
  good->close();
  Collected c;
  collect(p.sink, c);
  EXPECT_TRUE(c.eos);
  check_flv_output(media(), c, from_start(media()));
  {
    std::lock_guard l(p.mu);
    ASSERT_FALSE(p.keys.empty());
    EXPECT_EQ(p.keys[0], "live/good");
  }
  bad->close();
  huge->close();
  EXPECT_EQ(bus_error(p.pipe, 500 * GST_MSECOND), "") << "no pipeline error";
}

TEST_F(ServerSrcTest, AudioStartingAfterVideoUpdatesTheFlvHeaderFlags) {
  SrcPipeline p("live/late-audio");
  uint16_t port = p.start();
  auto client = publisher(port, "live/late-audio");
  ASSERT_TRUE(client);
  // Video only for the first second, then the audio track begins.
  const uint32_t split_ts = 1000;
  std::vector<grtmp::Message> first, second;
  for (auto& m : media().messages()) {
    Tag t{m.type, m.timestamp, m.payload};
    if (t.type == 18) continue;
    if (is_audio_header(t)) {
      grtmp::Message h = m;
      h.timestamp = split_ts;
      second.insert(second.begin(), h);
    } else if (m.timestamp < split_ts) {
      if (t.type == 9) first.push_back(m);
    } else {
      second.push_back(m);
    }
  }
  ASSERT_TRUE(send_all(*client, first));
  ASSERT_TRUE(wait_for([&] { return p.pads_added.load() == 1; })) << "pad for the video-only stream";
  ASSERT_TRUE(send_all(*client, second));
  client->close();
  Collected c;
  collect(p.sink, c);
  EXPECT_TRUE(c.eos);
  ASSERT_NE(c.caps, nullptr);
  ASSERT_NE(c.last_caps, nullptr);
  auto sh = streamheader(c.caps);
  ASSERT_EQ(sh.size(), 2u) << "FLV header and the video sequence header";
  EXPECT_EQ(buffer_bytes(sh[0])[4], 0x01) << "video only at first";
  auto lsh = streamheader(c.last_caps);
  ASSERT_EQ(lsh.size(), 3u) << "FLV header, video and audio sequence headers";
  EXPECT_EQ(buffer_bytes(lsh[0])[4], 0x05) << "audio and video once audio started";
  Tag ah;
  ASSERT_TRUE(parse_tag_buffer(lsh[2], ah));
  EXPECT_EQ(bytes_str(ah.payload), bytes_str(media().audio_header()->payload));
  // In-band: the audio sequence header before the first audio frame.
  bool saw_header = false, audio_before_header = false;
  for (auto* b : c.buffers) {
    Tag t;
    if (!parse_tag_buffer(b, t)) continue;
    if (is_audio_header(t)) saw_header = true;
    if (is_audio_frame(t) && !saw_header) audio_before_header = true;
  }
  EXPECT_TRUE(saw_header);
  EXPECT_FALSE(audio_before_header);
  EXPECT_EQ(bus_error(p.pipe), "");
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

// The first bus ERROR: domain, code and "message | debug".
struct BusError {
  GQuark domain = 0;
  int code = 0;
  std::string text;
};
BusError first_error(GstElement* pipe) {
  BusError out;
  GstBus* bus = gst_element_get_bus(pipe);
  if (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
    GError* err = nullptr;
    gchar* dbg = nullptr;
    gst_message_parse_error(m, &err, &dbg);
    out.domain = err->domain;
    out.code = err->code;
    out.text = std::string(err->message) + " | " + (dbg ? dbg : "");
    g_clear_error(&err);
    g_free(dbg);
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  return out;
}

BusError start_with_address(const char* address, guint port) {
  GstElement* pipe = gst_pipeline_new(nullptr);
  GstElement* src = gst_element_factory_make("rtmpserversrc", nullptr);
  GstElement* sink = gst_element_factory_make("fakesink", nullptr);
  gst_bin_add_many(GST_BIN(pipe), src, sink, nullptr);
  g_object_set(src, "address", address, "port", port, nullptr);
  EXPECT_EQ(gst_element_set_state(pipe, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE) << address;
  BusError e = first_error(pipe);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
  return e;
}

TEST_F(ServerSrcBasics, UnresolvableAddressIsASettingsError) {
  BusError e = start_with_address("no-such-host.invalid", 0);
  EXPECT_EQ(e.domain, GST_RESOURCE_ERROR);
  EXPECT_EQ(e.code, GST_RESOURCE_ERROR_SETTINGS) << e.text;
  EXPECT_EQ(e.text.rfind("Could not resolve listen address no-such-host.invalid: ", 0), 0u) << e.text;
}

TEST_F(ServerSrcBasics, NonLocalAddressIsAnOpenError) {
  // 192.0.2.1 (TEST-NET-1) is on no interface of this machine.
  guint port = free_port();
  BusError e = start_with_address("192.0.2.1", port);
  EXPECT_EQ(e.domain, GST_RESOURCE_ERROR);
  EXPECT_EQ(e.code, GST_RESOURCE_ERROR_OPEN_READ) << e.text;
  const std::string want = "Could not listen on 192.0.2.1:" + std::to_string(port) + ": ";
  EXPECT_EQ(e.text.rfind(want, 0), 0u) << e.text;
  EXPECT_NE(e.text.find("ssign"), std::string::npos) << "the cause (Cannot assign requested address): " << e.text;
}

TEST_F(ServerSrcBasics, CurrentPortIsNotifiedOnceBound) {
  GstElement* pipe = gst_pipeline_new(nullptr);
  GstElement* src = gst_element_factory_make("rtmpserversrc", nullptr);
  gst_bin_add(GST_BIN(pipe), src);
  g_object_set(src, "address", "127.0.0.1", "port", 0, nullptr);
  struct Seen {
    std::mutex mu;
    std::vector<guint> values;
  } seen;
  g_signal_connect(src, "notify::current-port", G_CALLBACK(+[](GObject* obj, GParamSpec*, Seen* s) {
                     guint port = 0;
                     g_object_get(obj, "current-port", &port, nullptr);
                     std::lock_guard l(s->mu);
                     s->values.push_back(port);
                   }),
                   &seen);
  EXPECT_EQ(element_port(src), 0) << "not bound yet";
  ASSERT_NE(gst_element_set_state(pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  {
    std::lock_guard l(seen.mu);
    ASSERT_EQ(seen.values.size(), 1u) << "one notification when bound";
    EXPECT_NE(seen.values[0], 0u);
    EXPECT_EQ(seen.values[0], element_port(src));
  }
  // The notified port is the one that listens.
  GSocketClient* client = g_socket_client_new();
  GSocketConnection* conn = g_socket_client_connect_to_host(client, "127.0.0.1", guint16(seen.values[0]), nullptr,
                                                            nullptr);
  EXPECT_NE(conn, nullptr);
  if (conn) g_object_unref(conn);
  g_object_unref(client);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
}

TEST_F(ServerSrcBasics, SharedServerWithOtherPoliciesIsAWarning) {
  const guint port = free_port();
  auto make = [&](std::initializer_list<std::pair<const char*, const char*>> props) {
    GstElement* pipe = gst_pipeline_new(nullptr);
    GstElement* src = gst_element_factory_make("rtmpserversrc", nullptr);
    gst_bin_add(GST_BIN(pipe), src);
    g_object_set(src, "address", "127.0.0.1", "port", port, nullptr);
    for (auto& [k, v] : props) gst_util_set_object_arg(G_OBJECT(src), k, v);
    return pipe;
  };
  auto warning = [](GstElement* pipe) {
    GstBus* bus = gst_element_get_bus(pipe);
    std::string text;
    if (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_WARNING)) {
      GError* err = nullptr;
      gst_message_parse_warning(m, &err, nullptr);
      EXPECT_EQ(err->domain, GST_RESOURCE_ERROR);
      EXPECT_EQ(err->code, GST_RESOURCE_ERROR_SETTINGS);
      text = err->message;
      g_clear_error(&err);
      gst_message_unref(m);
    }
    gst_object_unref(bus);
    return text;
  };
  GstElement* first = make({{"idle-timeout", "20000"}});
  ASSERT_NE(gst_element_set_state(first, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_EQ(warning(first), "") << "it started the server";

  // Other policies: the running server keeps its own, with a warning naming them.
  GstElement* second = make({{"idle-timeout", "5000"}, {"max-connections", "10"}, {"gop-cache", "false"}});
  ASSERT_NE(gst_element_set_state(second, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string text = warning(second);
  EXPECT_NE(text.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << text;
  EXPECT_NE(text.find("idle-timeout=5000 (running: 20000)"), std::string::npos) << text;
  EXPECT_NE(text.find("max-connections=10 (running: 10000)"), std::string::npos) << text;
  EXPECT_NE(text.find("gop-cache=false (running: true)"), std::string::npos) << text;
  EXPECT_EQ(text.find("chunk-size"), std::string::npos) << "only the differing settings: " << text;
  EXPECT_EQ(bus_error(second), "");

  // The same settings (or defaults): nothing to warn about.
  GstElement* third = make({{"idle-timeout", "20000"}});
  ASSERT_NE(gst_element_set_state(third, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_EQ(warning(third), "");

  for (GstElement* pipe : {third, second, first}) {
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pipe);
  }
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
