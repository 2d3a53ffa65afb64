// Shared helpers for the element tests (tests/gst/test_*.cpp): GStreamer
// init with the plugin from the build, generated H.264/AAC FLV media, FLV
// tag checks, a publishing client, appsink collection.
#pragma once

#include <gio/gio.h>
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
#include "grtmp/error.h"
#include "grtmp/flv.h"
#include "grtmp/message.h"
#include "grtmp/registry.h"
#include "grtmp/server.h"
#include "grtmp/url.h"

namespace gsttest {

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
  ~Collected() {
    for (auto* b : buffers) gst_buffer_unref(b);
    if (caps) gst_caps_unref(caps);
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

// A TCP port that was free a moment ago (for servers that must be shared
// by address:port: Server::acquire registers only non-zero ports).
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

}  // namespace gsttest
