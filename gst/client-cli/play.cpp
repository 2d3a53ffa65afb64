// play: records a stream to FLV, or shows it.
//
//   -o FILE:  rtmpclientsrc ! filesink location=FILE
//   window:   rtmpclientsrc ! decodebin ─┬─ queue ! videoconvert ! {xvimagesink|glimagesink|ximagesink|waylandsink}
//                                        └─ queue ! audioconvert ! audioresample ! autoaudiosink
//
// rtmpclientsrc already outputs a whole FLV byte stream (file header,
// onMetaData, sequence headers, then one tag per buffer with timestamps
// rebased to 0), so the recording is the stream's tags as the server sent
// them, no remuxing. A probe on the source pad reads each tag header:
// --duration counts media time from the first audio/video tag (the tag
// that reaches it is dropped and EOS sent), and at the end the recorded
// duration is written into the onMetaData "duration" field when the
// stream's metadata has one (live metadata says 0).
#include <glib-unix.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "exitcode.h"
#include "grtmp/flv.h"
#include "progress.h"

namespace grtmp::cli {

namespace {

const char* kDurationMessage = "grtmp-client-duration";

struct Player {
  Options opts;
  bool record = false;
  GMainLoop* loop = nullptr;
  GstElement* pipeline = nullptr;
  GstElement* src = nullptr;
  GstElement* decodebin = nullptr;
  std::string video_sink, audio_sink;  // window mode

  // From the source pad probe (streaming thread).
  std::atomic<int64_t> first_ms{-1};  // first audio/video tag timestamp
  std::atomic<int64_t> last_ms{-1};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> video_tags{0};
  std::atomic<uint64_t> audio_tags{0};
  std::atomic<bool> duration_reached{false};

  int64_t start_us = 0;
  Progress progress{true};
  int exit_code = kExitOk;
  bool failed = false;
  guint eos_guard = 0;

  explicit Player(const Options& o) : opts(o), progress(!o.quiet) {}
  double media_seconds() const {
    int64_t f = first_ms, l = last_ms;
    return f >= 0 && l >= f ? double(l - f) / 1000.0 : 0;
  }
};

GstPadProbeReturn on_src_data(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* p = static_cast<Player*>(data);
  GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
  if (!buf) return GST_PAD_PROBE_OK;
  if (p->duration_reached) return GST_PAD_PROBE_DROP;
  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ)) return GST_PAD_PROBE_OK;
  flv::TagHeader h;
  bool is_tag = map.size >= flv::kTagHeaderSize && memcmp(map.data, "FLV", 3) != 0 &&
                flv::parse_tag_header(map.data, map.size, h, nullptr);
  gst_buffer_unmap(buf, &map);
  if (is_tag && (h.type == flv::kTagAudio || h.type == flv::kTagVideo) &&
      !GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_HEADER)) {
    int64_t ts = h.timestamp;
    int64_t expected = -1;
    p->first_ms.compare_exchange_strong(expected, ts);
    if (p->opts.duration_s > 0 && ts - p->first_ms >= llround(p->opts.duration_s * 1000)) {
      p->duration_reached = true;
      gst_element_post_message(p->pipeline, gst_message_new_application(
                                                GST_OBJECT(p->pipeline), gst_structure_new_empty(kDurationMessage)));
      return GST_PAD_PROBE_DROP;
    }
    if (ts > p->last_ms) p->last_ms = ts;
    (h.type == flv::kTagVideo ? p->video_tags : p->audio_tags)++;
  }
  p->bytes += gst_buffer_get_size(buf);
  return GST_PAD_PROBE_OK;
}

// Writes `seconds` into the onMetaData "duration" number of an FLV file,
// in place (same size). Nothing happens when there is no such field.
bool patch_duration(const std::string& path, double seconds) {
  FILE* f = fopen(path.c_str(), "r+b");
  if (!f) return false;
  std::vector<uint8_t> buf(256 * 1024);
  size_t n = fread(buf.data(), 1, buf.size(), f);
  bool done = false;
  flv::FileHeader fh;
  if (n >= 13 && flv::parse_file_header(buf.data(), n, fh, nullptr)) {
    size_t pos = fh.header_size + flv::kPrevTagSizeSize;
    for (int tags = 0; tags < 16 && pos + flv::kTagHeaderSize <= n && !done; tags++) {
      flv::TagHeader th;
      if (!flv::parse_tag_header(buf.data() + pos, n - pos, th, nullptr)) break;
      size_t body = pos + flv::kTagHeaderSize;
      if (body + th.data_size > n) break;
      if (th.type == flv::kTagScript) {
        static const uint8_t key[] = {0x00, 0x08, 'd', 'u', 'r', 'a', 't', 'i', 'o', 'n', 0x00};
        const uint8_t* b = buf.data() + body;
        const uint8_t* hit = static_cast<const uint8_t*>(memmem(b, th.data_size, key, sizeof key));
        if (hit && size_t(hit - b) + sizeof key + 8 <= th.data_size &&
            memmem(b, std::min<size_t>(th.data_size, 16), "onMetaData", 10)) {
          uint64_t bits;
          memcpy(&bits, &seconds, 8);
          uint8_t be[8];
          for (int i = 0; i < 8; i++) be[i] = uint8_t(bits >> (56 - 8 * i));
          long off = long(body + size_t(hit - b) + sizeof key);
          done = fseek(f, off, SEEK_SET) == 0 && fwrite(be, 1, 8, f) == 8;
        }
      }
      pos = body + th.data_size + flv::kPrevTagSizeSize;
    }
  }
  fclose(f);
  return done;
}

// The first of `candidates` that opens (reaches READY), or "".
std::string first_working_sink(std::initializer_list<const char*> candidates) {
  for (const char* name : candidates) {
    GstElement* e = gst_element_factory_make(name, nullptr);
    if (!e) continue;
    bool ok = gst_element_set_state(e, GST_STATE_READY) != GST_STATE_CHANGE_FAILURE;
    gst_element_set_state(e, GST_STATE_NULL);
    gst_object_unref(e);
    if (ok) return name;
  }
  return {};
}

// Decoded pads from decodebin: a converter and the chosen sink each.
void on_decoded_pad(GstElement*, GstPad* pad, gpointer data) {
  auto* p = static_cast<Player*>(data);
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  std::string name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
  gst_caps_unref(caps);
  std::string desc;
  if (name.rfind("video/", 0) == 0) desc = "queue ! videoconvert ! " + p->video_sink;
  else if (name.rfind("audio/", 0) == 0) desc = "queue ! audioconvert ! audioresample ! " + p->audio_sink;
  else return;
  GError* err = nullptr;
  GstElement* bin = gst_parse_bin_from_description(desc.c_str(), TRUE, &err);
  if (!bin) {
    print_warning("cannot show the " + name + " stream: " + (err ? err->message : "?"));
    g_clear_error(&err);
    return;
  }
  gst_bin_add(GST_BIN(p->pipeline), bin);
  GstPad* sinkpad = gst_element_get_static_pad(bin, "sink");
  gst_pad_link(pad, sinkpad);
  gst_object_unref(sinkpad);
  gst_element_sync_state_with_parent(bin);
}

std::string progress_text(Player* p, bool final) {
  double media = p->media_seconds();
  uint64_t bytes = p->bytes;
  if (final) {
    std::string t = (p->record ? "recorded " : "played ") + format_clock(media) + " (" +
                    std::to_string(uint64_t(p->video_tags)) + " video, " + std::to_string(uint64_t(p->audio_tags)) +
                    " audio frames, " + format_bytes(bytes) + ")";
    if (p->record) t += " to " + p->opts.output;
    return t;
  }
  double rate = media > 0.5 ? bytes * 8.0 / media : 0;
  return std::string(p->record ? "recording " : "playing ") + format_clock(media) + "  " + format_bitrate(rate) +
         "  " + format_bytes(bytes);
}

gboolean on_tick(gpointer data) {
  auto* p = static_cast<Player*>(data);
  if (p->first_ms >= 0) p->progress.update(progress_text(p, false));
  return G_SOURCE_CONTINUE;
}

gboolean on_signal(gpointer data) {
  auto* p = static_cast<Player*>(data);
  p->progress.finish();
  fprintf(stderr, "gst-rtmp-client: interrupted, stopping\n");
  g_main_loop_quit(p->loop);
  return G_SOURCE_CONTINUE;
}

gboolean on_eos_guard(gpointer data) {
  auto* p = static_cast<Player*>(data);
  p->eos_guard = 0;
  g_main_loop_quit(p->loop);
  return G_SOURCE_REMOVE;
}

void fail(Player* p, int code, const std::string& text) {
  if (p->failed) return;
  p->failed = true;
  p->exit_code = code;
  p->progress.finish();
  print_error(text);
  g_main_loop_quit(p->loop);
}

gboolean on_bus(GstBus*, GstMessage* msg, gpointer data) {
  auto* p = static_cast<Player*>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
      if (p->failed) break;  // basesrc's follow-up "Internal data stream error"
      GError* err = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_error(msg, &err, &debug);
      std::string text = err ? err->message : "unknown error";
      if (p->opts.verbose && debug) text += " (" + std::string(debug) + ")";
      if (GST_MESSAGE_SRC(msg) == GST_OBJECT(p->src)) {
        // The element ends an unpublished stream with EOS; a timeout error is
        // a stall (what was recorded stays in the file).
        fail(p, exit_code_for_rtmp_bus_error(err, debug), text);
      } else if (!p->record && strstr(text.c_str(), "window was closed")) {
        g_main_loop_quit(p->loop);
      } else {
        bool output = p->record && err && err->domain == GST_RESOURCE_ERROR;
        fail(p, output ? kExitUsage : kExitOther, output ? "cannot write " + p->opts.output + ": " + text : text);
      }
      g_clear_error(&err);
      g_free(debug);
      break;
    }
    case GST_MESSAGE_WARNING: {
      GError* err = nullptr;
      gst_message_parse_warning(msg, &err, nullptr);
      p->progress.finish();
      print_warning(err ? err->message : "unknown warning");
      g_clear_error(&err);
      break;
    }
    case GST_MESSAGE_EOS:
      g_main_loop_quit(p->loop);
      break;
    case GST_MESSAGE_APPLICATION:
      if (gst_structure_has_name(gst_message_get_structure(msg), kDurationMessage)) {
        // The live source turns this into EOS on its streaming thread.
        gst_element_send_event(p->pipeline, gst_event_new_eos());
        if (!p->eos_guard) p->eos_guard = g_timeout_add(5000, on_eos_guard, p);
      }
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

}  // namespace

int run_play(const Options& opts) {
  if (!check_url(opts.url, "play")) return kExitUsage;
  Player player(opts);
  Player* p = &player;
  p->record = !opts.output.empty();
  if (!p->record && !g_getenv("DISPLAY") && !g_getenv("WAYLAND_DISPLAY")) {
    print_error("no display: use -o FILE.flv");
    return kExitUsage;
  }
  if (!p->record) {
    // Window sinks only: autovideosink would fall back to console sinks
    // (dfbvideosink, kmssink) that fight a desktop session.
    p->video_sink = g_getenv("WAYLAND_DISPLAY") ? first_working_sink({"waylandsink", "glimagesink", "xvimagesink", "ximagesink"})
                                                 : first_working_sink({"xvimagesink", "glimagesink", "ximagesink"});
    if (p->video_sink.empty()) {
      const char* d = g_getenv("WAYLAND_DISPLAY") ? g_getenv("WAYLAND_DISPLAY") : g_getenv("DISPLAY");
      print_error(std::string("cannot open a window on display ") + (d ? d : "?") + ": use -o FILE.flv");
      return kExitOther;
    }
    p->audio_sink = first_working_sink({"autoaudiosink"});
    if (p->audio_sink.empty()) {
      print_warning("no audio output: the audio is not played");
      p->audio_sink = "fakesink sync=true";
    }
  }
  if (p->record && g_file_test(opts.output.c_str(), G_FILE_TEST_IS_DIR)) {
    print_error("cannot write " + opts.output + ": is a directory");
    return kExitUsage;
  }

  p->src = make_element("rtmpclientsrc", "src");
  GstElement* out = p->record ? make_element("filesink", "out") : make_element("decodebin", "decode");
  if (!p->src || !out) {
    if (p->src) gst_object_unref(p->src);
    if (out) gst_object_unref(out);
    return kExitOther;
  }
  g_object_set(p->src, "location", opts.url.c_str(), "timeout", guint(std::ceil(opts.timeout_s)), nullptr);
  p->pipeline = gst_pipeline_new("play");
  gst_bin_add_many(GST_BIN(p->pipeline), p->src, out, nullptr);
  if (p->record) {
    g_object_set(out, "location", opts.output.c_str(), "sync", FALSE, "async", FALSE, nullptr);
  } else {
    p->decodebin = out;
    g_signal_connect(out, "pad-added", G_CALLBACK(on_decoded_pad), p);
  }
  gst_element_link(p->src, out);
  GstPad* srcpad = gst_element_get_static_pad(p->src, "src");
  gst_pad_add_probe(srcpad, GST_PAD_PROBE_TYPE_BUFFER, on_src_data, p, nullptr);
  gst_object_unref(srcpad);

  p->loop = g_main_loop_new(nullptr, FALSE);
  GstBus* bus = gst_element_get_bus(p->pipeline);
  guint bus_watch = gst_bus_add_watch(bus, on_bus, p);
  guint sigint = g_unix_signal_add(SIGINT, on_signal, p);
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, p);
  guint tick = g_timeout_add(500, on_tick, p);

  p->start_us = g_get_monotonic_time();
  if (!opts.quiet) {
    if (p->record) printf("recording %s to %s\n", display_url(opts.url).c_str(), opts.output.c_str());
    else printf("playing %s\n", display_url(opts.url).c_str());
    fflush(stdout);
  }
  if (gst_element_set_state(p->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    if (m) {
      on_bus(bus, m, p);
      gst_message_unref(m);
    }
    if (!p->failed) fail(p, kExitOther, "cannot start the pipeline");
  } else {
    g_main_loop_run(p->loop);
  }
  if (p->eos_guard) g_source_remove(p->eos_guard);
  g_source_remove(tick);
  g_source_remove(sigint);
  g_source_remove(sigterm);
  gst_element_set_state(p->pipeline, GST_STATE_NULL);
  g_source_remove(bus_watch);
  gst_object_unref(bus);
  gst_object_unref(p->pipeline);
  g_main_loop_unref(p->loop);

  p->progress.finish();
  if (p->record && p->first_ms >= 0) patch_duration(opts.output, p->media_seconds());
  if (!p->failed && !opts.quiet) printf("%s\n", progress_text(p, true).c_str());
  if (!p->failed && p->record && p->first_ms < 0) {
    print_error("no audio or video received from " + display_url(opts.url));
    return kExitOther;
  }
  return p->exit_code;
}

}  // namespace grtmp::cli
