// rtmpserversink: FLV pushed into the element (GstHarness) is served to a
// grtmp::Client player connected to the element's server.
#include <gst/check/gstharness.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_helpers.h"

using namespace gsttest;

namespace {

Media* g_media = nullptr;

// Plays in a thread, collecting audio/video/data messages, until an error
// (the connection closed, or 2 s without a message).
struct Player {
  std::unique_ptr<grtmp::Client> client;
  GCancellable* cancel = g_cancellable_new();
  std::thread thread;
  std::mutex mu;
  std::vector<Tag> got;
  std::atomic<bool> done{false};
  std::string error;        // mu
  std::string last_status;  // mu, set when done

  bool start(uint16_t port, const std::string& key) {
    grtmp::ClientOptions opts;
    opts.timeout_ms = 2000;
    client = std::make_unique<grtmp::Client>(opts);
    GError* err = nullptr;
    if (!client->connect(url_for(port, key), nullptr, &err) || !client->play(nullptr, &err)) {
      error = err ? err->message : "?";
      g_clear_error(&err);
      return false;
    }
    thread = std::thread([this] {
      for (;;) {
        grtmp::Message m;
        GError* err = nullptr;
        if (!client->receive(m, cancel, &err)) {
          std::lock_guard l(mu);
          error = err ? err->message : "?";
          last_status = client->last_status();
          g_clear_error(&err);
          break;
        }
        std::lock_guard l(mu);
        got.push_back({m.type, m.timestamp, m.payload});
      }
      done = true;
    });
    return true;
  }
  size_t count() {
    std::lock_guard l(mu);
    return got.size();
  }
  ~Player() {
    g_cancellable_cancel(cancel);
    if (thread.joinable()) thread.join();
    if (client) client->close();
    g_object_unref(cancel);
  }
};

GstBuffer* tag_buffer(const Tag& t, bool header = false) {
  auto v = grtmp::flv::encode_tag(t.type, t.ts, t.payload.data(), t.payload.size());
  GstBuffer* b = gst_buffer_new_memdup(v.data(), v.size());
  if (header) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_HEADER);
  return b;
}

class ServerSinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    init_gst();
    if (!have_elements({"x264enc", "avenc_aac", "flvmux", "appsink"})) return;
    g_media = new Media(make_media(50));
  }
  void SetUp() override {
    if (!g_media) GRTMP_MISSING_PEER("x264enc/avenc_aac/flvmux");
  }
  void TearDown() override {
    if (h) gst_harness_teardown(h);
    unref_bus(bus);
  }
  const Media& media() { return *g_media; }

  GstHarness* make_harness(const char* key, guint port = 0) {
    return harness_for("rtmpserversink",
                       {{"address", "127.0.0.1"}, {"port", std::to_string(port)}, {"stream-key", key}, {"sync", "false"}});
  }

  GstHarness* h = nullptr;
  GstBus* bus = nullptr;
};

// The player sees what was published (every frame, same timestamps;
// metadata and sequence headers again only when they changed).
void check_played(const Media& media, const std::vector<Tag>& got) {
  const std::vector<Tag> want = without_repeated_headers(media.tags);
  ASSERT_LT(want.size(), media.tags.size()) << "flvmux repeats onMetaData: the test checks they are not sent again";
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i++) {
    EXPECT_EQ(got[i].type, want[i].type) << i;
    EXPECT_EQ(bytes_str(got[i].payload), bytes_str(want[i].payload)) << "payload " << i;
    if (want[i].type != 18) {
      EXPECT_EQ(got[i].ts, want[i].ts) << "timestamp " << i;
    } else {
      EXPECT_EQ(got[i].ts, 0u) << "metadata at timestamp 0 (" << i << ")";
    }
  }
}

TEST_F(ServerSinkTest, PlayersReceiveAnFlvByteStream) {
  h = make_harness("live/s");
  uint16_t port = element_port(h->element);
  ASSERT_NE(port, 0);

  Player player;
  ASSERT_TRUE(player.start(port, "live/s")) << player.error;

  gst_harness_set_src_caps_str(h, "video/x-flv");
  const auto& flv = media().flv;
  for (size_t off = 0; off < flv.size(); off += 1000) {
    size_t n = std::min<size_t>(1000, flv.size() - off);
    ASSERT_EQ(gst_harness_push(h, gst_buffer_new_memdup(flv.data() + off, n)), GST_FLOW_OK);
  }
  ASSERT_TRUE(wait_for([&] { return player.count() >= without_repeated_headers(media().tags).size(); }));
  {
    std::lock_guard l(player.mu);
    check_played(media(), player.got);
  }

  // Stats count the player.
  GstStructure* stats = nullptr;
  g_object_get(h->element, "stats", &stats, nullptr);
  guint players = 0, publishers = 0;
  gst_structure_get_uint(stats, "players", &players);
  gst_structure_get_uint(stats, "publishers", &publishers);
  gst_structure_free(stats);
  EXPECT_EQ(players, 1u);

  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  // The stream ends for the player: the server keeps it waiting for a
  // republish by default, and the last status says the publisher left.
  ASSERT_TRUE(wait_for([&] { return player.done.load(); }, 6000));
  std::lock_guard l(player.mu);
  EXPECT_TRUE(player.last_status == grtmp::status::kPlayUnpublishNotify ||
              player.last_status == grtmp::status::kPlayStop)
      << player.last_status << " / " << player.error;
}

TEST_F(ServerSinkTest, StreamheaderFromCapsIsSentOnce) {
  h = make_harness("live/sh");
  uint16_t port = element_port(h->element);
  Player player;
  ASSERT_TRUE(player.start(port, "live/sh")) << player.error;

  // Caps like flvmux's, with the headers again in-band (HEADER flag).
  std::vector<GstBuffer*> headers;
  auto fh = grtmp::flv::file_header(true, true);
  headers.push_back(gst_buffer_new_memdup(fh.data(), fh.size()));
  headers.push_back(tag_buffer(*media().metadata(), true));
  headers.push_back(tag_buffer(*media().video_header(), true));
  headers.push_back(tag_buffer(*media().audio_header(), true));
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
  gst_harness_set_src_caps(h, caps);
  for (auto* b : headers) ASSERT_EQ(gst_harness_push(h, b), GST_FLOW_OK);
  bool in_header = true;
  for (auto& t : media().tags) {
    if (in_header && (t.type == 18 || is_video_header(t) || is_audio_header(t))) continue;
    in_header = false;
    ASSERT_EQ(gst_harness_push(h, tag_buffer(t)), GST_FLOW_OK);
  }
  ASSERT_TRUE(wait_for([&] { return player.count() >= without_repeated_headers(media().tags).size(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::lock_guard l(player.mu);
  check_played(media(), player.got);
}

TEST_F(ServerSinkTest, MidStreamCapsChangeSendsOnlyTheChangedHeaderAtTheCurrentTime) {
  h = make_harness("live/cc");
  uint16_t port = element_port(h->element);
  Player player;
  ASSERT_TRUE(player.start(port, "live/cc")) << player.error;
  auto caps_for = [](const Tag& meta, const Tag& vh, const Tag& ah) {
    GstCaps* caps = gst_caps_new_empty_simple("video/x-flv");
    GValue array = G_VALUE_INIT;
    g_value_init(&array, GST_TYPE_ARRAY);
    auto fh = grtmp::flv::file_header(true, true);
    for (GstBuffer* b : {gst_buffer_new_memdup(fh.data(), fh.size()), tag_buffer(meta, true), tag_buffer(vh, true),
                         tag_buffer(ah, true)}) {
      GValue v = G_VALUE_INIT;
      g_value_init(&v, GST_TYPE_BUFFER);
      g_value_take_boxed(&v, b);
      gst_value_array_append_and_take_value(&array, &v);
    }
    gst_structure_take_value(gst_caps_get_structure(caps, 0), "streamheader", &array);
    return caps;
  };
  gst_harness_set_src_caps(h, caps_for(*media().metadata(), *media().video_header(), *media().audio_header()));
  std::vector<Tag> frames;
  for (auto& t : media().tags)
    if (is_video_frame(t) || is_audio_frame(t)) frames.push_back(t);
  const size_t half = frames.size() / 2;
  for (size_t i = 0; i < half; i++) ASSERT_EQ(gst_harness_push(h, tag_buffer(frames[i])), GST_FLOW_OK);
  // A new audio configuration: new caps and the changed tag in-band.
  Tag ah = *media().audio_header();
  std::string new_asc = bytes_str(ah.payload);
  new_asc.back() ^= 0x08;
  ah.payload = grtmp::Bytes::copy(reinterpret_cast<const uint8_t*>(new_asc.data()), new_asc.size());
  gst_harness_set_src_caps(h, caps_for(*media().metadata(), *media().video_header(), ah));
  ah.ts = frames[half].ts;
  ASSERT_EQ(gst_harness_push(h, tag_buffer(ah)), GST_FLOW_OK);
  for (size_t i = half; i < frames.size(); i++) ASSERT_EQ(gst_harness_push(h, tag_buffer(frames[i])), GST_FLOW_OK);
  ASSERT_TRUE(wait_for([&] { return player.count() >= frames.size() + 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::lock_guard l(player.mu);
  size_t metadata = 0, video_headers = 0, audio_headers = 0, new_headers = 0;
  uint32_t last_frame_ts = 0;
  for (auto& t : player.got) {
    metadata += t.type == 18;
    video_headers += is_video_header(t);
    if (is_audio_header(t)) {
      audio_headers++;
      if (bytes_str(t.payload) == new_asc) {
        new_headers++;
        EXPECT_GT(last_frame_ts, 0u);
        EXPECT_GE(t.ts, last_frame_ts) << "the new header goes out at the current time, not at 0";
      }
    }
    if (is_video_frame(t) || is_audio_frame(t)) last_frame_ts = std::max(last_frame_ts, t.ts);
  }
  EXPECT_EQ(metadata, 1u);
  EXPECT_EQ(video_headers, 1u);
  EXPECT_EQ(audio_headers, 2u);
  EXPECT_EQ(new_headers, 1u) << "the changed header once, not from caps and in-band";
  EXPECT_EQ(player.got.size(), frames.size() + 4);
}

TEST_F(ServerSinkTest, LateJoinGetsHeadersAndGop) {
  h = make_harness("live/late");
  uint16_t port = element_port(h->element);
  gst_harness_set_src_caps_str(h, "video/x-flv");
  const auto& flv = media().flv;
  ASSERT_EQ(gst_harness_push(h, gst_buffer_new_memdup(flv.data(), flv.size())), GST_FLOW_OK);
  Player player;
  ASSERT_TRUE(player.start(port, "live/late")) << player.error;
  ASSERT_TRUE(wait_for([&] { return player.count() >= 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::lock_guard l(player.mu);
  ASSERT_GE(player.got.size(), 4u);
  EXPECT_EQ(player.got[0].type, 18);
  EXPECT_TRUE(is_video_header(player.got[1]) || is_video_header(player.got[2]));
  const Tag* first = nullptr;
  for (auto& t : player.got)
    if (is_video_frame(t)) {
      first = &t;
      break;
    }
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(is_keyframe(*first));
}

TEST_F(ServerSinkTest, BusyKeyAndMissingKeyAreErrors) {
  uint16_t port = free_port();
  h = make_harness("live/busy", port);
  ASSERT_EQ(element_port(h->element), port);

  // A second sink on the same address:port shares the server; the key is taken.
  GstElement* second = gst_element_factory_make("rtmpserversink", nullptr);
  g_object_set(second, "address", "127.0.0.1", "port", guint(port), "stream-key", "live/busy", nullptr);
  bus = gst_bus_new();
  gst_element_set_bus(second, bus);
  EXPECT_EQ(gst_element_set_state(second, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(m, nullptr);
  GError* err = nullptr;
  gst_message_parse_error(m, &err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_BUSY)) << err->message;
  EXPECT_NE(std::string(err->message).find("live/busy"), std::string::npos) << err->message;
  g_clear_error(&err);
  gst_message_unref(m);
  gst_element_set_state(second, GST_STATE_NULL);

  gst_bus_set_flushing(bus, TRUE);
  gst_bus_set_flushing(bus, FALSE);
  g_object_set(second, "stream-key", "nokey", nullptr);
  EXPECT_EQ(gst_element_set_state(second, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  std::string all;
  while ((m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR))) {
    gst_message_parse_error(m, &err, nullptr);
    all += std::string(err->message) + "\n";
    g_clear_error(&err);
    gst_message_unref(m);
  }
  EXPECT_NE(all.find("stream-key must be \"app/name\""), std::string::npos) << all;
  gst_element_set_state(second, GST_STATE_NULL);
  gst_object_unref(second);
}

TEST_F(ServerSinkTest, RelayFromServerSrcInOnePipeline) {
  // rtmpserversrc ! rtmpserversink: what a publisher sends to one key is
  // served on another key of the same server.
  uint16_t port = free_port();
  std::string desc = "rtmpserversrc address=127.0.0.1 port=" + std::to_string(port) +
                     " stream-key=live/in ! rtmpserversink address=127.0.0.1 port=" + std::to_string(port) +
                     " stream-key=live/out";
  GError* err = nullptr;
  GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
  ASSERT_NE(pipe, nullptr) << (err ? err->message : "");
  ASSERT_NE(gst_element_set_state(pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  Player player;
  ASSERT_TRUE(player.start(port, "live/out")) << player.error;
  auto pub = publisher(port, "live/in");
  ASSERT_TRUE(pub);
  ASSERT_TRUE(send_all(*pub, media().messages()));
  size_t frames = media().video_frames + media().audio_frames;
  EXPECT_TRUE(wait_for([&] {
    std::lock_guard l(player.mu);
    size_t n = 0;
    for (auto& t : player.got) n += is_video_frame(t) || is_audio_frame(t);
    return n >= frames;
  }));
  {
    std::lock_guard l(player.mu);
    auto got = av_frames(player.got);
    auto want = av_frames(media().tags);
    ASSERT_GE(got.size(), want.size());
    for (size_t i = 0; i < want.size(); i++)
      EXPECT_EQ(bytes_str(got[i].payload), bytes_str(want[i].payload)) << "frame " << i;
  }
  pub->close();
  EXPECT_EQ(bus_error(pipe), "");
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
}

}  // namespace
