// Shared helpers for the element tests (tests/gst/test_*.cpp): GStreamer
// init with the plugin from the build, generated H.264/AAC FLV media, FLV
// tag checks, a publishing client, appsink collection.
#pragma once

#include <gio/gio.h>
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grtmp/bytes.h"
#include "grtmp/client.h"
#include "grtmp/command.h"
#include "grtmp/error.h"
#include "grtmp/flv.h"
#include "grtmp/message.h"
#include "grtmp/registry.h"
#include "grtmp/server.h"
#include "grtmp/url.h"

// Skips the test because a peer is missing, or fails it under
// GRTMP_REQUIRE_PEERS=1. A macro: GTEST_SKIP and FAIL return from the test.
#define GRTMP_MISSING_PEER(what)                                                        \
  do {                                                                                  \
    if (gsttest::peers_required()) FAIL() << "missing peer: " << (what)                 \
                                          << " (GRTMP_REQUIRE_PEERS=1)";               \
    GTEST_SKIP() << "missing " << (what);                                               \
  } while (0)

namespace gsttest {

// True when a missing peer (a GStreamer element, openssl) must fail the test
// instead of skipping it: the README's test command installs every peer and
// sets GRTMP_REQUIRE_PEERS=1 (as tests/interop/rtmptest.py missing_peer).
inline bool peers_required() {
  const char* v = g_getenv("GRTMP_REQUIRE_PEERS");
  return v && *v && strcmp(v, "0") != 0;
}

// appsink through its action signals (the tests do not link gstreamer-app).
inline GstSample* try_pull_sample(GstElement* appsink, GstClockTime timeout) {
  GstSample* s = nullptr;
  g_signal_emit_by_name(appsink, "try-pull-sample", timeout, &s);
  return s;
}
inline bool appsink_eos(GstElement* appsink) {
  gboolean eos = FALSE;
  g_object_get(appsink, "eos", &eos, nullptr);
  return eos;
}

inline void init_gst() {
  static std::once_flag once;
  std::call_once(once, [] {
    gst_init(nullptr, nullptr);
    // The meson test environment points GST_PLUGIN_PATH_1_0 at <build>/gst.
    ASSERT_NE(gst_registry_find_plugin(gst_registry_get(), "grtmp"), nullptr)
        << "plugin grtmp not found; GST_PLUGIN_PATH_1_0=" << (g_getenv("GST_PLUGIN_PATH_1_0") ?: "(unset)");
  });
}

inline bool have_elements(std::initializer_list<const char*> names) {
  for (auto n : names) {
    GstElementFactory* f = gst_element_factory_find(n);
    if (!f) return false;
    gst_object_unref(f);
  }
  return true;
}

// ---------------------------------------------------------------- caps log

// Every caps event an appsink received, in order (appsink's samples carry
// its latest caps, not necessarily the caps their buffer came with).
struct CapsLog {
  std::mutex mu;
  std::vector<GstCaps*> caps;
  ~CapsLog() {
    for (auto* c : caps) gst_caps_unref(c);
  }
};

inline CapsLog* log_caps(GstElement* appsink) {
  auto* log = new CapsLog();
  GstPad* pad = gst_element_get_static_pad(appsink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                    [](GstPad*, GstPadProbeInfo* info, gpointer data) {
                      GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info);
                      if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
                        GstCaps* c = nullptr;
                        gst_event_parse_caps(ev, &c);
                        auto* l = static_cast<CapsLog*>(data);
                        std::lock_guard lock(l->mu);
                        l->caps.push_back(gst_caps_ref(c));
                      }
                      return GST_PAD_PROBE_OK;
                    },
                    log, nullptr);
  gst_object_unref(pad);
  g_object_set_data_full(G_OBJECT(appsink), "grtmp-caps-log", log, [](gpointer p) { delete static_cast<CapsLog*>(p); });
  return log;
}

// ---------------------------------------------------------------- media

struct Tag {
  uint8_t type;
  uint32_t ts;
  grtmp::Bytes payload;
};

inline std::string bytes_str(const grtmp::Bytes& b) { return std::string(b.view()); }

inline bool is_video_header(const Tag& t) { return t.type == 9 && t.payload.size() > 1 && t.payload.data()[1] == 0; }
inline bool is_audio_header(const Tag& t) {
  return t.type == 8 && t.payload.size() > 1 && (t.payload.data()[0] >> 4) == 10 && t.payload.data()[1] == 0;
}
// A coded picture (not a sequence header or an AVC end-of-sequence tag).
inline bool is_video_frame(const Tag& t) {
  if (t.type != 9 || t.payload.size() < 2 || is_video_header(t)) return false;
  return (t.payload.data()[0] & 0x0f) != 7 || t.payload.data()[1] == 1;
}
inline bool is_keyframe(const Tag& t) { return is_video_frame(t) && (t.payload.data()[0] >> 4) == 1; }
inline bool is_audio_frame(const Tag& t) { return t.type == 8 && !is_audio_header(t); }

// H.264 + AAC (or video only) FLV made by GStreamer itself (x264enc,
// avenc_aac, flvmux): `flv` the bytes, `tags` parsed back.
struct Media {
  std::vector<uint8_t> flv;
  std::vector<Tag> tags;
  size_t video_frames = 0, audio_frames = 0;
  const Tag* metadata() const {
    for (auto& t : tags)
      if (t.type == 18) return &t;
    return nullptr;
  }
  const Tag* video_header() const {
    for (auto& t : tags)
      if (is_video_header(t)) return &t;
    return nullptr;
  }
  const Tag* audio_header() const {
    for (auto& t : tags)
      if (is_audio_header(t)) return &t;
    return nullptr;
  }
  std::vector<grtmp::Message> messages() const {
    std::vector<grtmp::Message> out;
    for (auto& t : tags) {
      grtmp::Message m;
      m.type = t.type;
      m.timestamp = t.ts;
      m.payload = t.payload;
      out.push_back(m);
    }
    return out;
  }
};

inline std::vector<Tag> parse_flv(const uint8_t* data, size_t len) {
  grtmp::flv::TagParser parser;
  std::vector<grtmp::Message> msgs;
  GError* err = nullptr;
  EXPECT_TRUE(parser.feed(data, len, msgs, &err)) << (err ? err->message : "");
  g_clear_error(&err);
  std::vector<Tag> tags;
  for (auto& m : msgs) tags.push_back({m.type, m.timestamp, m.payload});
  return tags;
}

inline Media make_media(int video_frames, bool audio = true, int fps = 25) {
  Media media;
  std::string desc = "videotestsrc num-buffers=" + std::to_string(video_frames) +
                     " pattern=ball ! video/x-raw,width=320,height=240,framerate=" + std::to_string(fps) +
                     "/1 ! x264enc key-int-max=" + std::to_string(fps) +
                     " speed-preset=ultrafast tune=zerolatency ! h264parse ! "
                     "flvmux name=m streamable=true ! appsink name=out sync=false";
  if (audio) {
    int samples = video_frames * 44100 / fps;
    desc += " audiotestsrc num-buffers=" + std::to_string(samples / 1024) +
            " samplesperbuffer=1024 ! audio/x-raw,rate=44100,channels=2 ! avenc_aac ! aacparse ! m.";
  }
  GError* err = nullptr;
  GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
  EXPECT_NE(pipe, nullptr) << (err ? err->message : "");
  g_clear_error(&err);
  if (!pipe) return media;
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipe), "out");
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  for (;;) {
    GstSample* s = try_pull_sample(sink, 20 * GST_SECOND);
    if (!s) break;
    GstBuffer* b = gst_sample_get_buffer(s);
    GstMapInfo map;
    gst_buffer_map(b, &map, GST_MAP_READ);
    media.flv.insert(media.flv.end(), map.data, map.data + map.size);
    gst_buffer_unmap(b, &map);
    gst_sample_unref(s);
  }
  EXPECT_TRUE(appsink_eos(sink));
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipe);
  media.tags = parse_flv(media.flv.data(), media.flv.size());
  for (auto& t : media.tags) {
    if (is_video_frame(t)) media.video_frames++;
    if (is_audio_frame(t)) media.audio_frames++;
  }
  EXPECT_EQ(media.video_frames, size_t(video_frames));
  return media;
}

// ---------------------------------------------------------------- FLV buffers

// A whole FLV tag in one buffer: header + data + previous tag size.
inline bool parse_tag_buffer(GstBuffer* buf, Tag& out, std::string* why = nullptr) {
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_READ);
  bool ok = false;
  do {
    if (map.size < 15) {
      if (why) *why = "short buffer " + std::to_string(map.size);
      break;
    }
    uint32_t size = grtmp::load_u24(map.data + 1);
    if (map.size != 11 + size + 4) {
      if (why) *why = "size " + std::to_string(map.size) + " != tag " + std::to_string(11 + size + 4);
      break;
    }
    if (grtmp::load_u32(map.data + 11 + size) != 11 + size) {
      if (why) *why = "bad previous tag size";
      break;
    }
    out.type = map.data[0];
    out.ts = grtmp::load_u24(map.data + 4) | (uint32_t(map.data[7]) << 24);
    out.payload = grtmp::Bytes::copy(map.data + 11, size);
    ok = true;
  } while (false);
  gst_buffer_unmap(buf, &map);
  return ok;
}

inline std::vector<uint8_t> buffer_bytes(GstBuffer* b) {
  std::vector<uint8_t> v(gst_buffer_get_size(b));
  gst_buffer_extract(b, 0, v.data(), v.size());
  return v;
}

inline std::vector<GstBuffer*> streamheader(GstCaps* caps) {
  std::vector<GstBuffer*> out;
  if (!caps) return out;
  const GValue* sh = gst_structure_get_value(gst_caps_get_structure(caps, 0), "streamheader");
  if (!sh || !GST_VALUE_HOLDS_ARRAY(sh)) return out;
  for (guint i = 0; i < gst_value_array_get_size(sh); i++)
    out.push_back(gst_value_get_buffer(gst_value_array_get_value(sh, i)));
  return out;
}

// ---------------------------------------------------------------- appsink

struct Collected {
  std::vector<GstBuffer*> buffers;
  GstCaps* caps = nullptr;  // caps of the first sample
  bool eos = false;
  GstCaps* last_caps = nullptr;  // with a CapsLog: the last caps event
  ~Collected() {
    for (auto* b : buffers) gst_buffer_unref(b);
    if (caps) gst_caps_unref(caps);
    if (last_caps) gst_caps_unref(last_caps);
  }
};

// Pulls until EOS, or until `max_wait` passes with no sample.
inline void collect(GstElement* appsink, Collected& c, GstClockTime max_wait = 10 * GST_SECOND) {
  for (;;) {
    GstSample* s = try_pull_sample(appsink, max_wait);
    if (!s) break;
    if (!c.caps && gst_sample_get_caps(s)) c.caps = gst_caps_ref(gst_sample_get_caps(s));
    c.buffers.push_back(gst_buffer_ref(gst_sample_get_buffer(s)));
    gst_sample_unref(s);
  }
  c.eos = appsink_eos(appsink);
  // The caps the first buffer came with, when the caps were logged.
  if (auto* log = static_cast<CapsLog*>(g_object_get_data(G_OBJECT(appsink), "grtmp-caps-log"))) {
    std::lock_guard lock(log->mu);
    if (!log->caps.empty()) {
      if (c.caps) gst_caps_unref(c.caps);
      c.caps = gst_caps_ref(log->caps.front());
      c.last_caps = gst_caps_ref(log->caps.back());
    }
  }
}

// ---------------------------------------------------------------- bus

// First ERROR (or WARNING with `warnings`) message text, "" if none.
inline std::string bus_error(GstElement* pipe, GstClockTime wait = 0, bool warnings = false) {
  GstBus* bus = gst_element_get_bus(pipe);
  std::string text;
  GstMessageType types = GstMessageType(GST_MESSAGE_ERROR | (warnings ? GST_MESSAGE_WARNING : 0));
  while (GstMessage* m = gst_bus_timed_pop_filtered(bus, wait, types)) {
    GError* err = nullptr;
    gchar* dbg = nullptr;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) gst_message_parse_error(m, &err, &dbg);
    else gst_message_parse_warning(m, &err, &dbg);
    text = std::string(err ? err->message : "") + " | " + (dbg ? dbg : "");
    g_clear_error(&err);
    g_free(dbg);
    gst_message_unref(m);
    break;
  }
  gst_object_unref(bus);
  return text;
}

// Drops a bus the test made with gst_bus_new() for an element outside a
// pipeline. Messages still queued hold references to their source element,
// which holds the bus: without flushing, bus, messages and element keep each
// other alive (a pipeline's bus is flushed when it goes to NULL; a bare
// element's is not).
inline void unref_bus(GstBus* bus) {
  if (!bus) return;
  gst_bus_set_flushing(bus, TRUE);
  gst_object_unref(bus);
}

// ---------------------------------------------------------------- harness

// A GstHarness around an element configured before it starts
// (gst_harness_new() would start a sink before its properties are set).
// `props` as for gst_util_set_object_arg: {"name", "value"} pairs.
inline GstHarness* harness_for(const char* factory,
                               std::initializer_list<std::pair<const char*, std::string>> props,
                               GstBus* bus = nullptr) {
  static GstStaticPadTemplate any_src = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
  GstElement* e = gst_element_factory_make(factory, nullptr);
  EXPECT_NE(e, nullptr) << factory;
  if (!e) return nullptr;
  for (auto& [k, v] : props) gst_util_set_object_arg(G_OBJECT(e), k, v.c_str());
  if (bus) gst_element_set_bus(e, bus);
  GstHarness* h = gst_harness_new_empty();
  gst_harness_add_element_full(h, e, &any_src, "sink", nullptr, nullptr);  // starts it
  gst_object_unref(e);
  return h;
}

// ---------------------------------------------------------------- publishing

inline grtmp::Url url_for(uint16_t port, const std::string& key) {
  grtmp::Url u;
  GError* err = nullptr;
  std::string s = "rtmp://127.0.0.1:" + std::to_string(port) + "/" + key;
  EXPECT_TRUE(grtmp::parse_url(s, u, &err)) << s;
  g_clear_error(&err);
  return u;
}

// Connects and publishes; ASSERT-style failures are reported by the caller.
inline std::unique_ptr<grtmp::Client> publisher(uint16_t port, const std::string& key) {
  auto c = std::make_unique<grtmp::Client>();
  GError* err = nullptr;
  if (!c->connect(url_for(port, key), nullptr, &err) || !c->publish(nullptr, &err)) {
    ADD_FAILURE() << "publish to port " << port << " key " << key << ": " << (err ? err->message : "?");
    g_clear_error(&err);
    return nullptr;
  }
  return c;
}

// Sends every tag; with `pace`, sleeps to follow the tags' timestamps
// (scaled by `speed`).
inline bool send_all(grtmp::Client& c, const std::vector<grtmp::Message>& msgs, bool pace = false,
                     double speed = 1.0) {
  auto start = std::chrono::steady_clock::now();
  uint32_t first = msgs.empty() ? 0 : msgs.front().timestamp;
  for (auto& m : msgs) {
    if (pace) {
      auto due = start + std::chrono::microseconds(int64_t((m.timestamp - first) * 1000 / speed));
      std::this_thread::sleep_until(due);
    }
    GError* err = nullptr;
    if (!c.send(m, nullptr, &err)) {
      ADD_FAILURE() << "send: " << (err ? err->message : "?");
      g_clear_error(&err);
      return false;
    }
  }
  return true;
}

// A TCP port that was free a moment ago (a fixed port for servers shared by
// address:port, or one nothing listens on).
inline uint16_t free_port() {
  GSocketListener* l = g_socket_listener_new();
  guint16 port = g_socket_listener_add_any_inet_port(l, nullptr, nullptr);
  g_socket_listener_close(l);
  g_object_unref(l);
  return port;
}

inline uint16_t element_port(GstElement* e) {
  guint port = 0;
  g_object_get(e, "current-port", &port, nullptr);
  return uint16_t(port);
}

// Waits (polling) for `pred` up to `ms`.
template <typename F>
bool wait_for(F pred, int ms = 5000) {
  for (int i = 0; i < ms / 10; i++) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// ---------------------------------------------------------------- FLV output checks

// Audio and video frames (no metadata, no sequence headers).
inline std::vector<Tag> av_frames(const std::vector<Tag>& tags) {
  std::vector<Tag> out;
  for (auto& t : tags)
    if (t.type != 18 && !is_video_header(t) && !is_audio_header(t)) out.push_back(t);
  return out;
}

// What a pad carries after its headers when it saw the stream from the
// start: every frame, and metadata or sequence headers only when they
// change (flvmux repeats onMetaData with updated bitrates).
inline std::vector<Tag> expected_after_headers(const std::vector<Tag>& tags) {
  std::vector<Tag> out;
  std::string meta, vh, ah;
  bool started = false;
  for (auto& t : tags) {
    std::string* slot = t.type == 18 ? &meta : is_video_header(t) ? &vh : is_audio_header(t) ? &ah : nullptr;
    if (slot) {
      std::string p = bytes_str(t.payload);
      if (started && p != *slot) out.push_back(t);
      *slot = p;
      continue;
    }
    started = true;
    out.push_back(t);
  }
  return out;
}

// What a sink publishes: every tag, but metadata and sequence headers only
// when they change (flvmux repeats an identical onMetaData in-band).
inline std::vector<Tag> without_repeated_headers(const std::vector<Tag>& tags) {
  std::vector<Tag> out;
  std::string meta, vh, ah;
  bool have_meta = false, have_vh = false, have_ah = false;
  for (auto& t : tags) {
    std::string* slot = t.type == 18 ? &meta : is_video_header(t) ? &vh : is_audio_header(t) ? &ah : nullptr;
    bool* have = t.type == 18 ? &have_meta : is_video_header(t) ? &have_vh : is_audio_header(t) ? &have_ah : nullptr;
    if (slot) {
      std::string p = bytes_str(t.payload);
      if (*have && p == *slot) continue;
      *slot = p;
      *have = true;
    }
    out.push_back(t);
  }
  return out;
}

struct Expect {
  std::string metadata;           // in the streamheader
  std::vector<Tag> after_headers; // tags after the in-band headers
  bool av_only = false;           // compare audio/video frames only (late join)
};

// Checks the streamheader, in-band headers and every tag; returns the
// output tags after the headers.
inline std::vector<Tag> check_flv_output(const Media& media, Collected& c, const Expect& expect) {
  std::vector<Tag> out;
  EXPECT_NE(c.caps, nullptr);
  if (!c.caps) return out;
  GstStructure* st = gst_caps_get_structure(c.caps, 0);
  EXPECT_STREQ(gst_structure_get_name(st), "video/x-flv");
  auto sh = streamheader(c.caps);
  EXPECT_EQ(sh.size(), 4u) << "file header, onMetaData, video and audio sequence headers";
  if (sh.size() != 4) return out;
  for (auto* b : sh) EXPECT_TRUE(GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_HEADER));

  // FLV file header with the audio and video flags.
  auto hdr = buffer_bytes(sh[0]);
  const uint8_t expect_hdr[] = {'F', 'L', 'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0};
  EXPECT_EQ(hdr, std::vector<uint8_t>(expect_hdr, expect_hdr + 13));

  Tag meta, vh, ah;
  EXPECT_TRUE(parse_tag_buffer(sh[1], meta));
  EXPECT_TRUE(parse_tag_buffer(sh[2], vh));
  EXPECT_TRUE(parse_tag_buffer(sh[3], ah));
  EXPECT_EQ(meta.type, 18);
  EXPECT_EQ(bytes_str(meta.payload), expect.metadata) << "onMetaData as published";
  EXPECT_EQ(meta.ts, 0u) << "ffmpeg's FLV reader takes a script tag at ts != 0 for a subtitle stream";
  EXPECT_EQ(vh.type, 9);
  EXPECT_EQ(bytes_str(vh.payload), bytes_str(media.video_header()->payload));
  EXPECT_EQ(ah.type, 8);
  EXPECT_EQ(bytes_str(ah.payload), bytes_str(media.audio_header()->payload));

  // The same headers first in-band.
  EXPECT_GE(c.buffers.size(), 4u);
  if (c.buffers.size() < 4) return out;
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(buffer_bytes(c.buffers[i]), buffer_bytes(sh[i])) << "in-band header " << i;
    EXPECT_TRUE(GST_BUFFER_FLAG_IS_SET(c.buffers[i], GST_BUFFER_FLAG_HEADER));
  }

  // Then one whole tag per buffer.
  GstClockTime last_dts = 0;
  for (size_t i = 4; i < c.buffers.size(); i++) {
    GstBuffer* b = c.buffers[i];
    // (before mapping: a map merges the memories of a writable buffer)
    EXPECT_EQ(gst_buffer_n_memory(b), 3u) << "tag header, shared payload, previous tag size";
    Tag t;
    std::string why;
    EXPECT_TRUE(parse_tag_buffer(b, t, &why)) << "buffer " << i << ": " << why;
    EXPECT_TRUE(GST_CLOCK_TIME_IS_VALID(GST_BUFFER_DTS(b)));
    EXPECT_GE(GST_BUFFER_DTS(b), last_dts) << "DTS monotonic at buffer " << i;
    if (t.type == 18) {
      EXPECT_EQ(t.ts, 0u) << "script tags at timestamp 0";
    } else {
      EXPECT_EQ(GST_BUFFER_DTS(b), GstClockTime(t.ts) * GST_MSECOND) << "DTS = tag timestamp";
    }
    last_dts = GST_BUFFER_DTS(b);
    bool delta = GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
    if (is_video_frame(t)) {
      EXPECT_EQ(delta, !is_keyframe(t)) << "buffer " << i;
    } else if (t.type == 8) {
      EXPECT_TRUE(delta) << "audio is not a sync point when there is video";
    }
    out.push_back(t);
  }

  // Caps follow metadata updates: the last streamheader has the last metadata.
  if (c.last_caps && !expect.av_only) {
    std::string last_meta = expect.metadata;
    for (auto& t : expect.after_headers)
      if (t.type == 18) last_meta = bytes_str(t.payload);
    auto lsh = streamheader(c.last_caps);
    Tag lm;
    EXPECT_EQ(lsh.size(), 4u);
    if (lsh.size() == 4 && parse_tag_buffer(lsh[1], lm)) {
      EXPECT_EQ(bytes_str(lm.payload), last_meta) << "caps updated with the metadata";
    }
  }

  auto got = expect.av_only ? av_frames(out) : out;
  auto want = expect.av_only ? av_frames(expect.after_headers) : expect.after_headers;
  EXPECT_EQ(got.size(), want.size());
  const Tag* first_got = nullptr;
  const Tag* first_want = nullptr;
  for (size_t i = 0; i < std::min(got.size(), want.size()); i++) {
    const Tag& a = want[i];
    const Tag& b = got[i];
    EXPECT_EQ(a.type, b.type) << "tag " << i;
    EXPECT_EQ(bytes_str(a.payload), bytes_str(b.payload)) << "payload of tag " << i;
    if (a.type == 18) continue;
    if (!first_got) first_got = &b, first_want = &a;
    EXPECT_EQ(b.ts - first_got->ts, a.ts - first_want->ts) << "relative timestamp of tag " << i;
  }
  if (first_got) {
    EXPECT_EQ(first_got->ts, 0u) << "the first tag is at stream time 0";
  }
  return out;
}

inline Expect from_start(const Media& media) {
  return Expect{bytes_str(media.metadata()->payload), expected_after_headers(media.tags), false};
}

}  // namespace gsttest
