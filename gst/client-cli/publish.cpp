// publish: FILE -> RTMP without transcoding.
//
// An FLV file goes as it is, tag by tag (any codec, the file's onMetaData):
//
//   appsrc (video/x-flv, streamheader) ! rtmpclientsink
//
// FlvFile scans the tag headers; the streamheader is the FLV header, the
// onMetaData tag and the first sequence headers; then one whole tag per
// buffer with PTS = DTS = its timestamp (rebased to 0), pushed from appsrc's
// need-data. --loop starts the tags over with timestamps after the end of
// the previous pass (the header tags go again unflagged: rtmpclientsink
// sends only the ones that changed, at the current time).
//
// Other containers are demuxed and remuxed:
//
//   filesrc ! parsebin ─┬─ h264parse ──────────────── queue ─┐
//                       └─ aacparse / mpegaudioparse ─ queue ─┴─ flvmux streamable=true ! rtmpclientsink
//
// parsebin picks the demuxer (flvdemux, qtdemux, matroskademux, tsdemux,
// ...); the parsers convert to what FLV carries (H.264 AVC, raw AAC), and
// H.264 without decoding timestamps (Matroska) gets them after h264parse.
// parsebin adds all the pads of a file before it lets data flow on any of
// them, so flvmux has all its pads before it writes the FLV header (parsebin
// does not signal no-more-pads: the first buffer on any pad says the same). Real-time pacing is
// the sink's clock sync (sync=true).
//
// --loop: a probe on each queue's sink pad swallows EOS; once every branch
// is at its end, the main thread sends a flushing seek to 0 upstream (to
// the demuxer). The probe drops the seek's flush events and new segments,
// so the queues, flvmux and the sink never see the restart, and maps the
// timestamps of the next pass after the end of the previous one: one
// continuous stream on one RTMP connection.
#include <glib-unix.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "commands.h"
#include "exitcode.h"
#include "flvframing.h"
#include "flvfile.h"
#include "grtmp/flv.h"
#include "progress.h"

namespace grtmp::cli {

namespace {

struct Publisher;

// One audio or video stream from parsebin to flvmux.
struct Branch {
  Publisher* pub = nullptr;
  std::string kind;              // "video" / "audio"
  GstElement* queue = nullptr;   // owned by the pipeline
  GstPad* probe_pad = nullptr;   // the queue's sink pad (a reference)
  // Guarded by Publisher::mutex.
  bool eos = false;
  bool have_first = false;
  GstSegment first;              // the first pass's segment (the one downstream sees)
  GstSegment current;            // the current pass's segment
  GstClockTime last_in = GST_CLOCK_TIME_NONE;
  GstClockTime last_delta = 0;   // a duration for buffers without one
  gint64 end = 0;                // where this branch's output ends, ns after first.start
};

struct Publisher {
  Options opts;
  GMainLoop* loop = nullptr;
  GstElement* pipeline = nullptr;
  GstElement* parsebin = nullptr;
  GstElement* mux = nullptr;
  GstElement* sink = nullptr;

  // FLV input (appsrc's streaming thread, after the start).
  std::unique_ptr<FlvFile> flv;
  size_t flv_next = 0;          // the next tag
  int64_t flv_offset_ms = 0;    // this pass's timestamps after the file's
  bool flv_ended = false;
  std::vector<GstBuffer*> flv_headers;  // to push first (owned until then)

  std::mutex mutex;  // branches' loop state, offset, looping, ignored, checked_streams
  std::vector<std::unique_ptr<Branch>> branches;
  bool checked_streams = false;  // the first buffer came: all pads are known
  std::vector<std::string> ignored;                 // caps of streams FLV cannot carry
  bool have_video = false, have_audio = false;
  bool looping = false;  // --loop and not stopping
  gint64 offset = 0;     // ns added to each pass's running time
  std::vector<gint64> pass_starts{0};  // each pass's offset (the input runs ahead of the output)

  // Progress, from the sink pad probe (streaming thread).
  std::atomic<uint64_t> bytes{0};
  std::atomic<int64_t> first_ts{-1};
  std::atomic<int64_t> last_ts{-1};
  int64_t start_us = 0;
  std::deque<std::pair<int64_t, uint64_t>> samples;  // (wall us, bytes) for the current rate
  Progress progress{true};

  int exit_code = kExitOk;
  bool failed = false;

  explicit Publisher(const Options& o) : opts(o), progress(!o.quiet) {}
};

const char* kLoopMessage = "grtmp-client-loop";
const char* kNoStreamsMessage = "grtmp-client-no-streams";

void post_app(Publisher* p, const char* name, const std::string& text = {}) {
  GstStructure* s = gst_structure_new(name, "text", G_TYPE_STRING, text.c_str(), nullptr);
  gst_element_post_message(p->pipeline, gst_message_new_application(GST_OBJECT(p->pipeline), s));
}

// ---------------------------------------------------------------- branch probe

GstClockTime map_ts(const Branch* b, gint64 offset, GstClockTime t) {
  if (!GST_CLOCK_TIME_IS_VALID(t)) return t;
  gint64 v = gint64(b->first.start) + offset + (gint64(t) - gint64(b->current.start));
  return v < 0 ? 0 : GstClockTime(v);
}

// Maps one buffer of the current pass; the caller holds the mutex.
// The buffer-list form of a probe that rewrites timestamps: `fix` gets each
// buffer of the (writable) list, itself made writable in place.
template <typename Fix>
GstBufferList* rewrite_buffers(GstBufferList* list, Fix&& fix) {
  using F = std::remove_reference_t<Fix>;
  list = gst_buffer_list_make_writable(list);
  gst_buffer_list_foreach(
      list,
      [](GstBuffer** buf, guint, gpointer data) -> gboolean {
        *buf = gst_buffer_make_writable(*buf);
        (*static_cast<F*>(data))(*buf);
        return TRUE;
      },
      &fix);
  return list;
}

void map_buffer(Branch* b, Publisher* p, GstBuffer* buf) {
  GstClockTime in = GST_BUFFER_DTS_OR_PTS(buf);
  GST_BUFFER_PTS(buf) = map_ts(b, p->offset, GST_BUFFER_PTS(buf));
  GST_BUFFER_DTS(buf) = map_ts(b, p->offset, GST_BUFFER_DTS(buf));
  GstClockTime ts = GST_BUFFER_PTS(buf);
  if (GST_BUFFER_DTS_IS_VALID(buf) && (!GST_CLOCK_TIME_IS_VALID(ts) || GST_BUFFER_DTS(buf) > ts))
    ts = GST_BUFFER_DTS(buf);
  if (!GST_CLOCK_TIME_IS_VALID(ts)) return;
  if (GST_CLOCK_TIME_IS_VALID(in) && GST_CLOCK_TIME_IS_VALID(b->last_in) && in > b->last_in)
    b->last_delta = in - b->last_in;
  if (GST_CLOCK_TIME_IS_VALID(in)) b->last_in = in;
  GstClockTime dur = GST_BUFFER_DURATION_IS_VALID(buf) ? GST_BUFFER_DURATION(buf) : b->last_delta;
  gint64 end = gint64(ts) - gint64(b->first.start) + gint64(dur);
  if (end > b->end) b->end = end;
}

GstPadProbeReturn on_branch_data(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* b = static_cast<Branch*>(data);
  Publisher* p = b->pub;
  if (!p->opts.loop) return GST_PAD_PROBE_OK;
  std::lock_guard lock(p->mutex);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    if (!b->have_first || b->first.format != GST_FORMAT_TIME) return GST_PAD_PROBE_OK;
    GstBuffer* buf = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
    map_buffer(b, p, buf);
    info->data = buf;
    return GST_PAD_PROBE_OK;
  }
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    if (!b->have_first || b->first.format != GST_FORMAT_TIME) return GST_PAD_PROBE_OK;
    info->data = rewrite_buffers(GST_PAD_PROBE_INFO_BUFFER_LIST(info), [&](GstBuffer* buf) { map_buffer(b, p, buf); });
    return GST_PAD_PROBE_OK;
  }
  GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info);
  if (!ev) return GST_PAD_PROBE_OK;
  switch (GST_EVENT_TYPE(ev)) {
    case GST_EVENT_SEGMENT: {
      const GstSegment* seg = nullptr;
      gst_event_parse_segment(ev, &seg);
      if (!b->have_first) {
        // Downstream sees this one, open-ended: the passes after it go
        // beyond the file's duration (flvmux clips to the segment).
        gst_segment_copy_into(seg, &b->first);
        b->first.stop = GST_CLOCK_TIME_NONE;
        b->first.duration = GST_CLOCK_TIME_NONE;
        gst_segment_copy_into(seg, &b->current);
        b->have_first = true;
      } else {
        // A new pass: downstream keeps the first segment (the flush-stop we
        // dropped still cleared the pad's sticky one, so it goes again).
        gst_segment_copy_into(seg, &b->current);
        b->eos = false;
        b->last_in = GST_CLOCK_TIME_NONE;
      }
      GstEvent* again = gst_event_new_segment(&b->first);
      gst_event_set_seqnum(again, gst_event_get_seqnum(ev));
      gst_event_unref(ev);
      info->data = again;
      return GST_PAD_PROBE_OK;
    }
    case GST_EVENT_EOS: {
      if (!p->looping) return GST_PAD_PROBE_OK;
      b->eos = true;
      bool all = true;
      for (auto& o : p->branches) all = all && o->eos;
      if (all) post_app(p, kLoopMessage);
      return GST_PAD_PROBE_DROP;
    }
    case GST_EVENT_FLUSH_START:
    case GST_EVENT_FLUSH_STOP:
      // Only our loop seeks flush the input.
      return GST_PAD_PROBE_DROP;
    default:
      return GST_PAD_PROBE_OK;
  }
}

// Counts what reaches the sink, for the progress line.
GstPadProbeReturn on_sink_data(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* p = static_cast<Publisher*>(data);
  auto account = [p](GstBuffer* buf) {
    p->bytes += gst_buffer_get_size(buf);
    GstClockTime ts = GST_BUFFER_DTS_OR_PTS(buf);
    if (!GST_CLOCK_TIME_IS_VALID(ts) || GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_HEADER)) return;
    int64_t expected = -1;
    p->first_ts.compare_exchange_strong(expected, int64_t(ts));
    if (int64_t(ts) > p->last_ts) p->last_ts = int64_t(ts);
  };
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    account(GST_PAD_PROBE_INFO_BUFFER(info));
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList* list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    for (guint i = 0; i < gst_buffer_list_length(list); i++) account(gst_buffer_list_get(list, i));
  }
  return GST_PAD_PROBE_OK;
}

// ---------------------------------------------------------------- decoding timestamps

// Matroska/WebM store no DTS: matroskademux gives H.264 with PTS only, and
// with B-frames the PTS go back and forth in decoding order; flvmux then
// takes PTS for DTS and writes tags whose timestamps go back (players warn
// of non-monotonic DTS and misplace the B-frames). A probe after h264parse
// derives the DTS without holding buffers:
//
//   DTS_i = max(PTS_i - D, DTS_(i-1) + 1 ms), the first one at least the segment start
//
// With D longer than the reorder span (an earlier-decoded frame presented at
// most D before a later-decoded one) this is ≤ PTS_i, strictly increasing in
// whole FLV milliseconds, and follows the frame rate. D is kReorderFrames
// frames: enough for 3 B-frames with a B-pyramid.
constexpr int kReorderFrames = 4;
constexpr GstClockTime kDefaultFrameDuration = 40 * GST_MSECOND;

struct DtsDeriver {
  GstClockTime floor = 0;                     // the segment start
  GstClockTime last = GST_CLOCK_TIME_NONE;    // the previous DTS
  GstClockTime delay = GST_CLOCK_TIME_NONE;   // D, from the first buffer
  bool have_segment = false;
  GstSegment segment;                         // the one downstream sees
};

void derive_dts(GstPad* pad, DtsDeriver* d, GstBuffer* buf) {
  if (GST_BUFFER_DTS_IS_VALID(buf) || !GST_BUFFER_PTS_IS_VALID(buf)) return;
  if (!GST_CLOCK_TIME_IS_VALID(d->delay)) {
    GstClockTime frame = kDefaultFrameDuration;
    int num = 0, den = 0;
    GstCaps* caps = gst_pad_get_current_caps(pad);
    if (caps && gst_structure_get_fraction(gst_caps_get_structure(caps, 0), "framerate", &num, &den) && num > 0 &&
        den > 0)
      frame = gst_util_uint64_scale_int(GST_SECOND, den, num);
    else if (GST_BUFFER_DURATION_IS_VALID(buf) && GST_BUFFER_DURATION(buf) > 0)
      frame = GST_BUFFER_DURATION(buf);
    if (caps) gst_caps_unref(caps);
    d->delay = kReorderFrames * frame;
  }
  const gint64 pts = gint64(GST_BUFFER_PTS(buf));
  gint64 dts = pts - gint64(d->delay);
  if (GST_CLOCK_TIME_IS_VALID(d->last)) dts = std::max(dts, gint64(d->last + GST_MSECOND));
  else dts = std::max(dts, gint64(d->floor));
  GST_BUFFER_DTS(buf) = GstClockTime(dts);
  d->last = GstClockTime(dts);
}

GstPadProbeReturn on_video_parsed(GstPad* pad, GstPadProbeInfo* info, gpointer data) {
  auto* d = static_cast<DtsDeriver*>(data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (GST_BUFFER_DTS_IS_VALID(buf) || !GST_BUFFER_PTS_IS_VALID(buf)) return GST_PAD_PROBE_OK;
    buf = gst_buffer_make_writable(buf);
    derive_dts(pad, d, buf);
    info->data = buf;
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    info->data = rewrite_buffers(GST_PAD_PROBE_INFO_BUFFER_LIST(info), [&](GstBuffer* buf) { derive_dts(pad, d, buf); });
  } else if (GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info)) {
    // matroskademux sends a segment starting at the first cluster, then,
    // after a frame or two, one starting at 0 (no flush): the frames before
    // it would go out early, out of order. Keep the first segment until a
    // flush (a --loop pass), which starts over.
    if (GST_EVENT_TYPE(ev) == GST_EVENT_FLUSH_STOP) {
      d->last = GST_CLOCK_TIME_NONE;
      d->have_segment = false;
    } else if (GST_EVENT_TYPE(ev) == GST_EVENT_SEGMENT) {
      const GstSegment* seg = nullptr;
      gst_event_parse_segment(ev, &seg);
      if (d->have_segment && seg->format == d->segment.format) {
        GstEvent* again = gst_event_new_segment(&d->segment);
        gst_event_set_seqnum(again, gst_event_get_seqnum(ev));
        gst_event_unref(ev);
        info->data = again;
      } else {
        gst_segment_copy_into(seg, &d->segment);
        d->have_segment = true;
        d->floor = seg->format == GST_FORMAT_TIME ? seg->start : 0;
      }
    }
  }
  return GST_PAD_PROBE_OK;
}

// ---------------------------------------------------------------- parsebin pads

void on_no_more_pads(Publisher* p);

// The first buffer from parsebin: every pad of the file has been added.
GstPadProbeReturn on_first_buffer(GstPad*, GstPadProbeInfo*, gpointer data) {
  on_no_more_pads(static_cast<Publisher*>(data));
  return GST_PAD_PROBE_REMOVE;
}

struct Route {
  const char* kind = nullptr;    // flvmux pad template: "video" / "audio"
  const char* parser = nullptr;  // nullptr: link as is
};

bool route_for(GstElement* mux, GstCaps* caps, Route& r) {
  if (!caps || gst_caps_is_empty(caps)) return false;
  const GstStructure* s = gst_caps_get_structure(caps, 0);
  const std::string name = gst_structure_get_name(s);
  if (name == "video/x-h264") {
    r = {"video", "h264parse"};
    return true;
  }
  if (name == "audio/mpeg") {
    int version = 0;
    gst_structure_get_int(s, "mpegversion", &version);
    if (version == 1) r = {"audio", "mpegaudioparse"};
    else r = {"audio", "aacparse"};
    return true;
  }
  for (const char* kind : {"video", "audio"}) {
    GstPadTemplate* t = gst_element_get_pad_template(mux, kind);
    if (!t) continue;
    GstCaps* tc = gst_pad_template_get_caps(t);
    bool ok = gst_caps_can_intersect(caps, tc);
    gst_caps_unref(tc);
    if (ok) {
      r = {kind, nullptr};
      return true;
    }
  }
  return false;
}

// Streams FLV cannot carry (or a second video/audio) go to a fakesink.
void drop_stream(Publisher* p, GstPad* pad) {
  GstElement* fs = gst_element_factory_make("fakesink", nullptr);
  g_object_set(fs, "sync", FALSE, "async", FALSE, nullptr);
  gst_bin_add(GST_BIN(p->pipeline), fs);
  GstPad* sinkpad = gst_element_get_static_pad(fs, "sink");
  gst_pad_link(pad, sinkpad);
  gst_object_unref(sinkpad);
  gst_element_sync_state_with_parent(fs);
}

void on_pad_added(GstElement*, GstPad* pad, gpointer data) {
  auto* p = static_cast<Publisher*>(data);
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  gchar* caps_str = gst_caps_to_string(caps);
  std::string caps_text = caps_str;
  g_free(caps_str);
  gst_pad_add_probe(pad, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST), on_first_buffer,
                    p, nullptr);
  Route r;
  bool usable = route_for(p->mux, caps, r);
  gst_caps_unref(caps);
  {
    std::lock_guard lock(p->mutex);
    bool& taken = std::string(usable ? r.kind : "") == "video" ? p->have_video : p->have_audio;
    if (!usable || taken) {
      p->ignored.push_back(caps_text);
      usable = false;
    } else {
      taken = true;
    }
  }
  if (!usable) {
    // Caps can be long (codec_data): the media type is enough.
    print_warning("ignoring a stream FLV cannot carry (or a second one of its kind): " +
                  caps_text.substr(0, caps_text.find(',')));
    drop_stream(p, pad);
    return;
  }
  GstElement* parser = nullptr;
  if (r.parser) {
    parser = make_element(r.parser, nullptr);
    if (!parser) {
      post_app(p, kNoStreamsMessage, std::string("missing GStreamer element ") + r.parser);
      drop_stream(p, pad);
      return;
    }
  }
  GstElement* queue = gst_element_factory_make("queue", nullptr);
  // Enough for badly interleaved files; the sink's pacing drains it.
  g_object_set(queue, "max-size-buffers", 0u, "max-size-bytes", 0u, "max-size-time", guint64(5 * GST_SECOND),
               nullptr);
  if (parser) gst_bin_add(GST_BIN(p->pipeline), parser);
  gst_bin_add(GST_BIN(p->pipeline), queue);

  auto b = std::make_unique<Branch>();
  b->pub = p;
  b->kind = r.kind;
  b->queue = queue;
  b->probe_pad = gst_element_get_static_pad(queue, "sink");
  gst_segment_init(&b->first, GST_FORMAT_TIME);
  gst_segment_init(&b->current, GST_FORMAT_TIME);
  gst_pad_add_probe(b->probe_pad,
                    GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                    GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_EVENT_FLUSH),
                    on_branch_data, b.get(), nullptr);

  bool ok = true;
  GstPad* first_sink = gst_element_get_static_pad(parser ? parser : queue, "sink");
  ok = gst_pad_link(pad, first_sink) == GST_PAD_LINK_OK;
  gst_object_unref(first_sink);
  if (ok && parser) ok = gst_element_link(parser, queue);
  GstPad* muxpad = ok ? gst_element_request_pad_simple(p->mux, r.kind) : nullptr;
  if (muxpad) {
    GstPad* qsrc = gst_element_get_static_pad(queue, "src");
    ok = gst_pad_link(qsrc, muxpad) == GST_PAD_LINK_OK;
    gst_object_unref(qsrc);
    gst_object_unref(muxpad);
  } else {
    ok = false;
  }
  if (parser && std::string(r.parser) == "h264parse") {
    GstPad* parsed = gst_element_get_static_pad(parser, "src");
    gst_pad_add_probe(parsed,
                      GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_EVENT_FLUSH),
                      on_video_parsed, new DtsDeriver, [](gpointer d) { delete static_cast<DtsDeriver*>(d); });
    gst_object_unref(parsed);
  }
  if (parser) gst_element_sync_state_with_parent(parser);
  gst_element_sync_state_with_parent(queue);
  if (!ok) {
    post_app(p, kNoStreamsMessage, "cannot link a " + std::string(r.kind) + " stream to flvmux (" + caps_text + ")");
    gst_object_unref(b->probe_pad);
    return;
  }
  std::lock_guard lock(p->mutex);
  p->branches.push_back(std::move(b));
}

void on_no_more_pads(Publisher* p) {
  std::lock_guard lock(p->mutex);
  if (p->checked_streams) return;
  p->checked_streams = true;
  if (p->branches.empty()) {
    std::string what = p->ignored.empty() ? std::string("no streams")
                                          : "only " + p->ignored.front().substr(0, p->ignored.front().find(','));
    post_app(p, kNoStreamsMessage, "no audio or video stream that FLV can carry in " + p->opts.file + " (" + what + ")");
  }
}


// ---------------------------------------------------------------- FLV input

const char* kFlvErrorMessage = "grtmp-client-flv-error";

// One whole tag (header + data + previous tag size) at `ts_ms`.
GstBuffer* flv_tag_buffer(uint8_t type, int64_t ts_ms, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> tag = flv::encode_tag(type, uint32_t(ts_ms), data.data(), data.size());
  GstBuffer* buf = gst_buffer_new_memdup(tag.data(), tag.size());
  GST_BUFFER_PTS(buf) = GST_BUFFER_DTS(buf) = GstClockTime(ts_ms) * GST_MSECOND;
  return buf;
}

// `video/x-flv, streamheader=<FLV header, onMetaData, sequence headers>`
// (the form rtmpserversrc produces and rtmpclientsink reads); the same
// buffers, flagged HEADER, go first in-band. nullptr on a read error.
GstCaps* flv_streamheader(Publisher* p, std::vector<GstBuffer*>& headers, GError** error) {
  auto h = flv::file_header(p->flv->has_audio(), p->flv->has_video());
  headers.push_back(gst_buffer_new_memdup(h.data(), h.size()));
  GST_BUFFER_PTS(headers.back()) = GST_BUFFER_DTS(headers.back()) = 0;
  std::vector<uint8_t> data;
  for (const FlvTag& t : p->flv->tags()) {
    if (!t.header) continue;
    if (!p->flv->read(t, data, error)) {
      for (GstBuffer* b : headers) gst_buffer_unref(b);
      headers.clear();
      return nullptr;
    }
    headers.push_back(flv_tag_buffer(t.type, t.ts_ms - p->flv->first_ms(), data));
  }
  return grtmp::gst::flv_caps(headers);  // flags the headers HEADER, as rtmpserversrc's
}

// appsrc wants data: push the next tags (up to kFlvPushBytes), starting
// the file over with --loop, EOS at its end.
constexpr size_t kFlvPushBytes = 256 * 1024;

void on_need_data(GstElement* src, guint, gpointer data) {
  auto* p = static_cast<Publisher*>(data);
  if (p->flv_ended) return;
  for (GstBuffer* b : p->flv_headers) {
    GstFlowReturn ret;
    g_signal_emit_by_name(src, "push-buffer", b, &ret);
    gst_buffer_unref(b);
  }
  p->flv_headers.clear();
  const auto& tags = p->flv->tags();
  size_t pushed = 0;
  std::vector<uint8_t> bytes;
  while (pushed < kFlvPushBytes) {
    if (p->flv_next == tags.size()) {
      bool again;
      {
        std::lock_guard lock(p->mutex);
        again = p->looping;
        if (again) {
          p->flv_offset_ms += p->flv->end_ms() - p->flv->first_ms();
          p->pass_starts.push_back(p->flv_offset_ms * gint64(GST_MSECOND));
        }
      }
      if (!again) {
        p->flv_ended = true;
        GstFlowReturn ret;
        g_signal_emit_by_name(src, "end-of-stream", &ret);
        return;
      }
      p->flv_next = 0;
    }
    const FlvTag& t = tags[p->flv_next++];
    // The first pass's header tags went with the caps.
    if (t.header && p->flv_offset_ms == 0) continue;
    GError* err = nullptr;
    if (!p->flv->read(t, bytes, &err)) {
      p->flv_ended = true;
      post_app(p, kFlvErrorMessage, err->message);
      g_clear_error(&err);
      return;
    }
    GstBuffer* buf = flv_tag_buffer(t.type, t.ts_ms - p->flv->first_ms() + p->flv_offset_ms, bytes);
    pushed += gst_buffer_get_size(buf);
    GstFlowReturn ret = GST_FLOW_OK;
    g_signal_emit_by_name(src, "push-buffer", buf, &ret);
    gst_buffer_unref(buf);
    if (ret != GST_FLOW_OK) return;  // flushing: stopping
  }
}

// ---------------------------------------------------------------- main loop

void restart_input(Publisher* p) {
  std::lock_guard lock(p->mutex);
  if (!p->looping || p->branches.empty()) return;
  gint64 end = 0;
  for (auto& b : p->branches) end = std::max(end, b->end);
  p->offset = end;
  p->pass_starts.push_back(end);
  GstEvent* seek = gst_event_new_seek(1.0, GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH, GST_SEEK_TYPE_SET, 0,
                                      GST_SEEK_TYPE_NONE, GST_CLOCK_TIME_NONE);
  GstElement* q = p->branches.front()->queue;
  p->mutex.unlock();
  bool ok = gst_element_send_event(q, seek);
  p->mutex.lock();
  if (ok) return;
  print_warning("--loop: the input does not seek back to the start; stopping after this pass");
  p->looping = false;
  std::vector<GstPad*> pads;
  for (auto& b : p->branches) pads.push_back(GST_PAD(gst_object_ref(b->probe_pad)));
  p->mutex.unlock();
  for (GstPad* pad : pads) {
    gst_pad_send_event(pad, gst_event_new_eos());
    gst_object_unref(pad);
  }
  p->mutex.lock();
}

// The pass the output is in (the input may be a pass ahead).
int output_pass(Publisher* p, int64_t media_ns) {
  std::lock_guard lock(p->mutex);
  int n = 0;
  for (gint64 start : p->pass_starts) n += start <= media_ns ? 1 : 0;
  return std::max(n, 1);
}

std::string progress_text(Publisher* p, bool final) {
  int64_t now = g_get_monotonic_time();
  int64_t first = p->first_ts, last = p->last_ts;
  double media = first >= 0 && last >= first ? double(last - first) / GST_SECOND : 0;
  int pass = output_pass(p, first >= 0 && last >= first ? last - first : 0);
  double wall = double(now - p->start_us) / G_USEC_PER_SEC;
  uint64_t bytes = p->bytes;
  std::string text;
  if (final) {
    double avg = media > 0.1 ? bytes * 8.0 / media : 0;
    text = "published " + format_clock(media) + " of media in " + format_clock(wall) + " (" + format_bytes(bytes) +
           ", " + format_bitrate(avg) + " average";
    if (pass > 1) text += ", " + std::to_string(pass) + " passes";
    return text + ")";
  }
  p->samples.emplace_back(now, bytes);
  while (p->samples.size() > 2 && now - p->samples.front().first > 3 * G_USEC_PER_SEC) p->samples.pop_front();
  double rate = 0;
  if (p->samples.size() >= 2) {
    double dt = double(now - p->samples.front().first) / G_USEC_PER_SEC;
    if (dt > 0) rate = double(bytes - p->samples.front().second) * 8.0 / dt;
  }
  char speed[32];
  snprintf(speed, sizeof speed, "%.2fx", wall > 0 ? media / wall : 0.0);
  text = "publishing " + format_clock(media) + "  " + format_bitrate(rate) + "  " + format_bytes(bytes) + "  speed " +
         speed;
  if (p->opts.loop) text += "  pass " + std::to_string(pass);
  return text;
}

gboolean on_tick(gpointer data) {
  auto* p = static_cast<Publisher*>(data);
  if (p->first_ts >= 0) p->progress.update(progress_text(p, false));
  return G_SOURCE_CONTINUE;
}

gboolean on_signal(gpointer data) {
  auto* p = static_cast<Publisher*>(data);
  // Going to NULL closes the connection properly (FCUnpublish, deleteStream).
  p->progress.finish();
  fprintf(stderr, "gst-rtmp-client: interrupted, stopping\n");
  g_main_loop_quit(p->loop);
  return G_SOURCE_CONTINUE;
}

void fail(Publisher* p, int code, const std::string& text) {
  if (p->failed) return;
  p->failed = true;
  p->exit_code = code;
  p->progress.finish();
  print_error(text);
  g_main_loop_quit(p->loop);
}

gboolean on_bus(GstBus*, GstMessage* msg, gpointer data) {
  auto* p = static_cast<Publisher*>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
      GError* err = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_error(msg, &err, &debug);
      bool from_sink = GST_MESSAGE_SRC(msg) == GST_OBJECT(p->sink);
      int code = from_sink ? exit_code_for_rtmp_bus_error(err, debug) : kExitUsage;
      std::string text = err ? err->message : "unknown error";
      if (!from_sink) text = "cannot publish " + p->opts.file + ": " + text;
      if (p->opts.verbose && debug) text += " (" + std::string(debug) + ")";
      fail(p, code, text);
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
    case GST_MESSAGE_APPLICATION: {
      const GstStructure* s = gst_message_get_structure(msg);
      if (gst_structure_has_name(s, kLoopMessage)) {
        restart_input(p);
      } else if (gst_structure_has_name(s, kNoStreamsMessage) || gst_structure_has_name(s, kFlvErrorMessage)) {
        fail(p, kExitUsage, gst_structure_get_string(s, "text"));
      }
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

}  // namespace

int run_publish(const Options& opts) {
  if (!g_file_test(opts.file.c_str(), G_FILE_TEST_EXISTS)) {
    print_error("cannot read " + opts.file + ": no such file");
    return kExitUsage;
  }
  if (g_file_test(opts.file.c_str(), G_FILE_TEST_IS_DIR) || access(opts.file.c_str(), R_OK) != 0) {
    print_error("cannot read " + opts.file + ": " + (g_file_test(opts.file.c_str(), G_FILE_TEST_IS_DIR)
                                                         ? std::string("is a directory")
                                                         : std::string(g_strerror(errno))));
    return kExitUsage;
  }
  if (!check_url(opts.url, "publish")) return kExitUsage;

  Publisher pub(opts);
  Publisher* p = &pub;
  p->looping = opts.loop;
  p->sink = make_element("rtmpclientsink", "sink");
  if (!p->sink) return kExitOther;
  g_object_set(p->sink, "location", opts.url.c_str(), "sync", gboolean(opts.realtime), "timeout",
               guint(opts.timeout_s + 0.999), "reconnect", gboolean(opts.reconnect), nullptr);
  p->pipeline = gst_pipeline_new("publish");
  gst_bin_add(GST_BIN(p->pipeline), p->sink);

  if (FlvFile::looks_like_flv(opts.file)) {
    p->flv = std::make_unique<FlvFile>();
    GError* err = nullptr;
    GstCaps* caps = p->flv->open(opts.file, &err) ? flv_streamheader(p, p->flv_headers, &err) : nullptr;
    GstElement* src = caps ? make_element("appsrc", "src") : nullptr;
    if (!src) {
      if (err) print_error(std::string("cannot publish ") + err->message);
      g_clear_error(&err);
      if (caps) gst_caps_unref(caps);
      for (GstBuffer* b : p->flv_headers) gst_buffer_unref(b);
      gst_object_unref(p->pipeline);
      return caps ? kExitOther : kExitUsage;
    }
    g_object_set(src, "caps", caps, "format", GST_FORMAT_TIME, "stream-type", 0 /* stream */, nullptr);
    gst_caps_unref(caps);
    g_signal_connect(src, "need-data", G_CALLBACK(on_need_data), p);
    gst_bin_add(GST_BIN(p->pipeline), src);
    gst_element_link(src, p->sink);
  } else {
    GstElement* src = make_element("filesrc", "src");
    p->parsebin = make_element("parsebin", "parse");
    p->mux = make_element("flvmux", "mux");
    if (!src || !p->parsebin || !p->mux) {
      for (GstElement* e : {src, p->parsebin, p->mux})
        if (e) gst_object_unref(e);
      gst_object_unref(p->pipeline);
      return kExitOther;
    }
    g_object_set(src, "location", opts.file.c_str(), nullptr);
    g_object_set(p->mux, "streamable", TRUE, nullptr);
    gst_bin_add_many(GST_BIN(p->pipeline), src, p->parsebin, p->mux, nullptr);
    gst_element_link(src, p->parsebin);
    gst_element_link(p->mux, p->sink);
    g_signal_connect(p->parsebin, "pad-added", G_CALLBACK(on_pad_added), p);
  }
  GstPad* sinkpad = gst_element_get_static_pad(p->sink, "sink");
  gst_pad_add_probe(sinkpad, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                    on_sink_data, p, nullptr);
  gst_object_unref(sinkpad);

  p->loop = g_main_loop_new(nullptr, FALSE);
  GstBus* bus = gst_element_get_bus(p->pipeline);
  guint bus_watch = gst_bus_add_watch(bus, on_bus, p);
  gst_object_unref(bus);
  guint sigint = g_unix_signal_add(SIGINT, on_signal, p);
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, p);
  guint tick = g_timeout_add(500, on_tick, p);

  p->start_us = g_get_monotonic_time();
  if (!opts.quiet) {
    printf("publishing %s to %s%s\n", opts.file.c_str(), display_url(opts.url).c_str(), opts.loop ? " (loop)" : "");
    fflush(stdout);
  }
  if (gst_element_set_state(p->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    // The bus has the reason.
    GstBus* b = gst_element_get_bus(p->pipeline);
    GstMessage* m = gst_bus_pop_filtered(b, GST_MESSAGE_ERROR);
    gst_object_unref(b);
    if (m) {
      on_bus(nullptr, m, p);
      gst_message_unref(m);
    } else {
      fail(p, kExitOther, "cannot start the pipeline");
    }
  } else {
    g_main_loop_run(p->loop);
  }
  g_source_remove(tick);
  g_source_remove(sigint);
  g_source_remove(sigterm);
  gst_element_set_state(p->pipeline, GST_STATE_NULL);
  g_source_remove(bus_watch);

  p->progress.finish();
  if (!opts.quiet && !p->failed) printf("%s\n", progress_text(p, true).c_str());
  {
    std::lock_guard lock(p->mutex);
    for (auto& b : p->branches) gst_object_unref(b->probe_pad);
    p->branches.clear();
  }
  for (GstBuffer* b : p->flv_headers) gst_buffer_unref(b);
  gst_object_unref(p->pipeline);
  g_main_loop_unref(p->loop);
  return p->exit_code;
}

}  // namespace grtmp::cli
