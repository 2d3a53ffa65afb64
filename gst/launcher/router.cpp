#include "router.h"

#include <glib/gstdio.h>

#include <algorithm>
#include <atomic>

#include "grtmp/media.h"
#include "grtmp/url.h"
#include "guard.h"
#include "json_log.h"
#include "recmeta.h"

namespace grtmp::launcher {

namespace {

// Runs fn on the main loop, always later (never inline, even when called
// from the main thread: callers may hold state they are about to change).
void run_on_main(std::function<void()> fn) {
  auto* f = new std::function<void()>(std::move(fn));
  GSource* source = g_idle_source_new();
  g_source_set_priority(source, G_PRIORITY_DEFAULT);
  g_source_set_callback(
      source,
      [](gpointer d) -> gboolean {
        (*static_cast<std::function<void()>*>(d))();
        return G_SOURCE_REMOVE;
      },
      f, [](gpointer d) { delete static_cast<std::function<void()>*>(d); });
  g_source_attach(source, nullptr);
  g_source_unref(source);
}

// How long a branch may take, after its stream was unpublished, to get the
// EOS through its queue to the sink: a recording writes whatever it holds
// (up to 10 s of media, 64 MiB) to disk; a relay gives a slow destination
// a moment, and never blocks the stream's end on a stalled one.
constexpr guint kRecordDrainMs = 10000;
constexpr guint kRelayDrainMs = 3000;

guint run_later(guint ms, std::function<void()> fn) {
  auto* f = new std::function<void()>(std::move(fn));
  return g_timeout_add_full(
      G_PRIORITY_DEFAULT, ms,
      [](gpointer d) -> gboolean {
        (*static_cast<std::function<void()>*>(d))();
        return G_SOURCE_REMOVE;
      },
      f, [](gpointer d) { delete static_cast<std::function<void()>*>(d); });
}

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) out += (g_ascii_isalnum(c) || c == '-' || c == '.') ? c : '_';
  if (out.empty()) out = "_";
  if (out[0] == '.') out[0] = '_';
  return out;
}

bool has_property(gpointer obj, const char* name) {
  return g_object_class_find_property(G_OBJECT_GET_CLASS(obj), name) != nullptr;
}

void set_if_exists(gpointer obj, const char* name, const char* value) {
  if (has_property(obj, name)) gst_util_set_object_arg(G_OBJECT(obj), name, value);
}

std::string flow_text(GstFlowReturn ret) { return std::string("flow ") + gst_flow_get_name(ret); }

// Codec names from the caps' streamheader (FLV header, metadata, sequence
// headers): a fallback when the registry has not named them.
void codecs_from_caps(GstCaps* caps, std::string& video, std::string& audio) {
  for (const std::vector<uint8_t>& b : streamheader_bytes(caps)) {
    if (b.size() <= 12 || (b[0] != 8 && b[0] != 9)) continue;
    const uint8_t* data = b.data() + 11;
    size_t len = b.size() - 11 >= 4 ? b.size() - 11 - 4 : 0;
    if (b[0] == 9 && video.empty()) {
      grtmp::media::VideoInfo vi;
      if (grtmp::media::inspect_video(data, len, vi)) video = grtmp::media::video_codec_name(vi);
    } else if (b[0] == 8 && audio.empty()) {
      grtmp::media::AudioInfo ai;
      if (grtmp::media::inspect_audio(data, len, ai)) audio = grtmp::media::audio_codec_name(ai);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- state

struct Router::Relay {
  std::string base;        // the -relay-to value
  std::string url;         // destination for this stream
  std::string stream_key;
  std::string state = "connecting";
  uint32_t retries = 0;
  uint32_t delay_s = 1;
  guint timer = 0;
  std::weak_ptr<Stream> stream;
  std::shared_ptr<Branch> branch;  // current attempt
};

struct Router::Branch {
  enum class Kind { Record, Relay };
  Kind kind = Kind::Record;
  Router* router = nullptr;
  uint32_t id = 0;
  std::string prefix;  // element name prefix: rec3, relay4
  std::weak_ptr<Stream> stream;
  std::string stream_key;
  std::string target;  // file path or destination URL
  std::shared_ptr<Relay> relay;
  std::shared_ptr<RecordingMeta> meta;  // Record: onMetaData first, finalized on close
  GstElement* queue = nullptr;
  GstElement* guard = nullptr;
  GstElement* sink = nullptr;
  GstPad* upstream = nullptr;  // ref: tee request pad or the source pad
  bool from_tee = false;
  int64_t started_us = 0;
  // Main loop only.
  bool closing = false;
  bool finished = false;
  bool failed = false;
  bool eos_requested = false;
  guint drain_timer = 0;  // after an unpublish: the limit for the EOS to reach the sink
  std::string reason;
  // Any thread.
  std::atomic<bool> detached{false};
  std::atomic<bool> connected{false};

  bool owns(GstObject* obj) const {
    for (GstElement* e : {queue, guard, sink}) {
      if (!e) continue;
      if (obj == GST_OBJECT(e) || gst_object_has_as_ancestor(obj, GST_OBJECT(e))) return true;
    }
    return false;
  }
};

struct Router::Stream {
  std::string key, app, name;
  GstPad* pad = nullptr;  // ref
  GstElement* tee = nullptr;
  bool gone = false;
  int64_t added_us = 0;
  bool codecs_logged = false;
  std::string caps_video, caps_audio;
  std::vector<std::shared_ptr<Branch>> branches;
  std::vector<std::shared_ptr<Relay>> relays;
  ~Stream() {
    if (pad) gst_object_unref(pad);
  }
};

struct DetachCtx {
  std::shared_ptr<Router::Branch> branch;
  bool send_eos = false;
  bool finish = false;
  std::atomic<bool> done{false};
};

// ---------------------------------------------------------------- helpers

std::string Router::relay_destination(const std::string& base, const std::string& stream_name) {
  grtmp::Url url;
  GError* err = nullptr;
  if (grtmp::parse_url(base, url, &err) && !url.stream.empty()) return base;
  g_clear_error(&err);
  std::string head = base, query;
  if (auto q = base.find('?'); q != std::string::npos) {
    head = base.substr(0, q);
    query = base.substr(q);
  }
  while (!head.empty() && head.back() == '/') head.pop_back();
  return head + "/" + stream_name + query;
}

std::string Router::recording_basename(const std::string& app, const std::string& name, GDateTime* when) {
  gchar* stamp = g_date_time_format(when, "%Y%m%d_%H%M%S");
  std::string s = sanitize(app) + "_" + sanitize(name) + "_" + stamp;
  g_free(stamp);
  return s;
}

std::string Router::unique_record_path(const std::string& app, const std::string& name) {
  GDateTime* now = g_date_time_new_now_local();
  std::string base = recording_basename(app, name, now);
  g_date_time_unref(now);
  std::string dir = options_.record_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::lock_guard lock(mutex_);
  for (int n = 0;; n++) {
    std::string path = dir + "/" + base + (n ? "_" + std::to_string(n) : "") + ".flv";
    bool reserved = std::find(reserved_paths_.begin(), reserved_paths_.end(), path) != reserved_paths_.end();
    if (!reserved && !g_file_test(path.c_str(), G_FILE_TEST_EXISTS)) {
      reserved_paths_.push_back(path);
      return path;
    }
  }
}

// ---------------------------------------------------------------- lifecycle

Router::Router(const Options& options, GstElement* pipeline, GstElement* src)
    : options_(options), pipeline_(pipeline), src_(src) {}

Router::~Router() {
  if (pad_added_id_) g_signal_handler_disconnect(src_, pad_added_id_);
  if (pad_removed_id_) g_signal_handler_disconnect(src_, pad_removed_id_);
  if (shutdown_timer_) g_source_remove(shutdown_timer_);
  std::lock_guard lock(mutex_);
  for (auto& [pad, s] : streams_)
    for (auto& r : s->relays)
      if (r->timer) g_source_remove(r->timer);
  for (auto& s : ending_) cancel_drain(s);
}

void Router::attach() {
  pad_added_id_ = g_signal_connect(src_, "pad-added", G_CALLBACK(pad_added_cb), this);
  pad_removed_id_ = g_signal_connect(src_, "pad-removed", G_CALLBACK(pad_removed_cb), this);
}

void Router::pad_added_cb(GstElement*, GstPad* pad, gpointer user_data) {
  static_cast<Router*>(user_data)->on_pad_added(pad);
}

void Router::pad_removed_cb(GstElement*, GstPad* pad, gpointer user_data) {
  static_cast<Router*>(user_data)->on_pad_removed(pad);
}

// The element's streaming thread, before any buffer flows on the pad: link
// synchronously (an unlinked pad drops its data).
void Router::on_pad_added(GstPad* pad) {
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  gchar* key_c = nullptr;
  if (has_property(pad, "stream-key")) g_object_get(pad, "stream-key", &key_c, nullptr);
  std::string key = key_c ? key_c : GST_PAD_NAME(pad);
  g_free(key_c);

  auto s = std::make_shared<Stream>();
  s->key = key;
  if (auto slash = key.find('/'); slash != std::string::npos) {
    s->app = key.substr(0, slash);
    s->name = key.substr(slash + 1);
  } else {
    s->app = "live";
    s->name = key;
  }
  s->pad = GST_PAD(gst_object_ref(pad));
  s->added_us = g_get_monotonic_time();
  if (GstCaps* caps = gst_pad_get_current_caps(pad)) {
    codecs_from_caps(caps, s->caps_video, s->caps_audio);
    gst_caps_unref(caps);
  }

  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) {
      jlog::debug("stream ignored: shutting down", {jlog::str("stream_key", key)});
      return;
    }
    streams_[pad] = s;
  }
  jlog::debug("stream pad added", {jlog::str("stream_key", key), jlog::str("pad", GST_PAD_NAME(pad))});

  std::vector<std::shared_ptr<Branch>> plan;
  if (options_.record_all) plan.push_back(make_record_branch(s));
  for (auto& base : options_.relay_to) {
    // One stream per destination URL: the first stream that maps to it while
    // it is free (an explicit-name URL, or two apps with the same stream name).
    std::string dest = relay_destination(base, s->name), holder;
    {
      std::lock_guard lock(mutex_);
      auto it = relay_claims_.find(dest);
      auto h = it == relay_claims_.end() ? nullptr : it->second.lock();
      if (h && !h->gone)
        holder = h->key;
      else
        relay_claims_[dest] = s;
    }
    if (!holder.empty()) {
      jlog::warn("relay skipped", {jlog::str("stream_key", key), jlog::str("url", dest),
                                   jlog::str("reason", "destination in use by " + holder)});
      continue;
    }
    auto r = std::make_shared<Relay>();
    r->base = base;
    r->url = dest;
    r->stream_key = key;
    r->stream = s;
    {
      std::lock_guard lock(mutex_);
      s->relays.push_back(r);
    }
    plan.push_back(make_relay_branch(s, r));
  }
  if (plan.empty()) return;  // players are served by the server itself

  if (plan.size() > 1 || !options_.relay_to.empty()) {
    gchar* name = g_strdup_printf("tee-%s", GST_PAD_NAME(pad));
    GstElement* tee = gst_element_factory_make("tee", name);
    g_free(name);
    g_object_set(tee, "allow-not-linked", TRUE, nullptr);
    gst_bin_add(GST_BIN(pipeline_), tee);
    gst_element_sync_state_with_parent(tee);
    GstPad* sinkpad = gst_element_get_static_pad(tee, "sink");
    GstPadLinkReturn lr = gst_pad_link(pad, sinkpad);
    gst_object_unref(sinkpad);
    if (lr != GST_PAD_LINK_OK) {
      jlog::error("could not link stream to tee",
                  {jlog::str("stream_key", key), jlog::str("reason", gst_pad_link_get_name(lr))});
      gst_element_set_state(tee, GST_STATE_NULL);
      gst_bin_remove(GST_BIN(pipeline_), tee);
      return;
    }
    std::lock_guard lock(mutex_);
    s->tee = tee;
  }
  for (auto& b : plan) start_branch(s, b);
}

void Router::on_pad_removed(GstPad* pad) {
  std::shared_ptr<Stream> s;
  {
    std::lock_guard lock(mutex_);
    auto it = streams_.find(pad);
    if (it == streams_.end()) return;
    s = it->second;
    streams_.erase(it);
    s->gone = true;
    ending_.push_back(s);
    for (auto c = relay_claims_.begin(); c != relay_claims_.end();) {
      auto h = c->second.lock();
      c = (!h || h == s) ? relay_claims_.erase(c) : std::next(c);
    }
  }
  run_on_main([this, s] { stream_gone(s); });
}

// ---------------------------------------------------------------- branches

std::shared_ptr<Router::Branch> Router::make_record_branch(const std::shared_ptr<Stream>& s) {
  auto b = std::make_shared<Branch>();
  b->kind = Branch::Kind::Record;
  b->router = this;
  b->stream = s;
  b->stream_key = s->key;
  b->target = unique_record_path(s->app, s->name);
  return b;
}

std::shared_ptr<Router::Branch> Router::make_relay_branch(const std::shared_ptr<Stream>& s,
                                                          const std::shared_ptr<Relay>& r) {
  auto b = std::make_shared<Branch>();
  b->kind = Branch::Kind::Relay;
  b->router = this;
  b->stream = s;
  b->stream_key = s->key;
  b->target = r->url;
  b->relay = r;
  return b;
}

// Adds the branch's elements, brings them to the pipeline's state, then
// links them to the stream (tee or pad): the upstream side never pushes
// into an inactive pad. Any thread that may change the pipeline's children.
bool Router::start_branch(const std::shared_ptr<Stream>& s, const std::shared_ptr<Branch>& b) {
  const bool record = b->kind == Branch::Kind::Record;
  {
    std::lock_guard lock(mutex_);
    b->id = ++branch_counter_;
  }
  b->prefix = (record ? "rec" : "relay") + std::to_string(b->id);
  auto make = [&](const char* factory, const char* role) {
    std::string name = b->prefix + "-" + role;
    return gst_element_factory_make(factory, name.c_str());
  };
  b->queue = make("queue", "queue");
  b->guard = guard_new((b->prefix + "-guard").c_str());
  b->sink = make(record ? "filesink" : "rtmpclientsink", "sink");
  if (!b->queue || !b->guard || !b->sink) {
    jlog::error(record ? "recorder failed" : "relay failed",
                {jlog::str("stream_key", s->key), jlog::str(record ? "file" : "url", b->target),
                 jlog::str("error", std::string("missing element ") + (b->sink ? "queue" : record ? "filesink" : "rtmpclientsink"))});
    for (GstElement* e : {b->queue, b->guard, b->sink})
      if (e) gst_object_unref(gst_object_ref_sink(e));
    b->queue = b->guard = b->sink = nullptr;
    return false;
  }
  if (record) {
    // Up to a few seconds of a big stream; never leaky: the file gets everything.
    g_object_set(b->queue, "max-size-buffers", 0u, "max-size-time", guint64(10 * GST_SECOND), "max-size-bytes",
                 64u << 20, nullptr);
    g_object_set(b->sink, "location", b->target.c_str(), nullptr);
    // One write per FLV tag: the file always ends on a whole tag, so even a
    // killed process leaves a playable recording (~100 small writes/s).
    set_if_exists(b->sink, "buffer-mode", "unbuffered");
  } else {
    // A slow or stuck destination drops its oldest data, never blocks the stream.
    gst_util_set_object_arg(G_OBJECT(b->queue), "leaky", "downstream");
    g_object_set(b->queue, "max-size-buffers", 0u, "max-size-time", guint64(5 * GST_SECOND), "max-size-bytes",
                 32u << 20, nullptr);
    g_object_set(b->sink, "location", b->target.c_str(), nullptr);
    set_if_exists(b->sink, "reconnect", "false");  // the launcher retries with backoff
    set_if_exists(b->sink, "chunk-size", std::to_string(options_.chunk_size).c_str());
  }
  set_if_exists(b->sink, "sync", "false");
  set_if_exists(b->sink, "async", "false");

  GuardCallbacks cb;
  cb.user_data = b.get();
  cb.on_failed = on_guard_failed;
  if (!record) cb.on_accepted = on_guard_accepted;
  guard_set_callbacks(b->guard, cb);

  gst_bin_add_many(GST_BIN(pipeline_), b->queue, b->guard, b->sink, nullptr);
  if (!gst_element_link_many(b->queue, b->guard, b->sink, nullptr)) {
    jlog::error("could not link branch", {jlog::str("stream_key", s->key), jlog::str("target", b->target)});
  }
  if (record) {
    b->meta = std::make_shared<RecordingMeta>();
    GstPad* guardsink = gst_element_get_static_pad(b->guard, "sink");
    gst_pad_add_probe(guardsink,
                      GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                      metadata_probe, new std::shared_ptr<RecordingMeta>(b->meta),
                      [](gpointer d) { delete static_cast<std::shared_ptr<RecordingMeta>*>(d); });
    gst_object_unref(guardsink);
  }
  GstPad* sinkpad = gst_element_get_static_pad(b->sink, "sink");
  gst_pad_add_probe(sinkpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, eos_probe, new std::shared_ptr<Branch>(b),
                    [](gpointer d) { delete static_cast<std::shared_ptr<Branch>*>(d); });
  gst_object_unref(sinkpad);
  b->started_us = g_get_monotonic_time();
  {
    std::lock_guard lock(mutex_);
    s->branches.push_back(b);
    if (b->relay) {
      b->relay->branch = b;
      b->relay->state = "connecting";
    }
  }
  // Sink first: data must never meet an inactive element.
  bool ok = true;
  for (GstElement* e : {b->sink, b->guard, b->queue}) {
    if (!gst_element_sync_state_with_parent(e)) ok = false;
  }
  if (!ok) {
    // The element posted an error: handle_error() removes the branch.
    jlog::debug("branch did not start", {jlog::str("stream_key", s->key), jlog::str("target", b->target)});
    auto self = b;
    run_on_main([this, self] {
      if (!self->failed) {
        self->failed = true;
        self->reason = "could not start";
      }
      teardown(self, "start failed");
    });
    return false;
  }

  GstPad* upstream;
  GstElement* tee;
  {
    std::lock_guard lock(mutex_);
    tee = s->tee ? GST_ELEMENT(gst_object_ref(s->tee)) : nullptr;
  }
  if (tee) {
    upstream = gst_element_request_pad_simple(tee, "src_%u");
    b->from_tee = true;
    gst_object_unref(tee);
  } else {
    upstream = GST_PAD(gst_object_ref(s->pad));
  }
  GstPad* qsink = gst_element_get_static_pad(b->queue, "sink");
  GstPadLinkReturn lr = upstream ? gst_pad_link(upstream, qsink) : GST_PAD_LINK_REFUSED;
  gst_object_unref(qsink);
  b->upstream = upstream;
  if (lr != GST_PAD_LINK_OK) {
    jlog::error("could not link branch",
                {jlog::str("stream_key", s->key), jlog::str("target", b->target),
                 jlog::str("reason", gst_pad_link_get_name(lr))});
    auto self = b;
    run_on_main([this, self] { teardown(self, "link failed"); });
    return false;
  }
  if (record) {
    jlog::info("recorder initialized", {jlog::str("stream_key", s->key), jlog::str("file", b->target)});
  } else {
    jlog::info("relay started", {jlog::str("stream_key", s->key), jlog::str("url", b->target),
                                 jlog::unum("attempt", b->relay ? b->relay->retries + 1 : 1)});
  }
  return true;
}

GstPadProbeReturn Router::eos_probe(GstPad*, GstPadProbeInfo* info, gpointer user_data) {
  GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info);
  if (ev && GST_EVENT_TYPE(ev) == GST_EVENT_EOS) {
    auto b = *static_cast<std::shared_ptr<Branch>*>(user_data);
    // Let the EOS through (the sink flushes); remove the branch from the
    // main loop: its state change waits for this thread to be done.
    run_on_main([b] { b->router->teardown(b, "eos"); });
  }
  return GST_PAD_PROBE_OK;
}

// The recording's streaming thread: caps give the codec info, buffers go
// through RecordingMeta (an onMetaData in front when the stream has none).
GstPadProbeReturn Router::metadata_probe(GstPad*, GstPadProbeInfo* info, gpointer user_data) {
  auto& meta = *static_cast<std::shared_ptr<RecordingMeta>*>(user_data);
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info);
    if (ev && GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
      GstCaps* caps = nullptr;
      gst_event_parse_caps(ev, &caps);
      meta->set_caps(caps);
    }
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GST_PAD_PROBE_INFO_DATA(info) = meta->process(GST_PAD_PROBE_INFO_BUFFER(info));
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList* in = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    GstBufferList* out = gst_buffer_list_new_sized(gst_buffer_list_length(in));
    for (guint i = 0; i < gst_buffer_list_length(in); i++)
      gst_buffer_list_add(out, meta->process(gst_buffer_ref(gst_buffer_list_get(in, i))));
    gst_buffer_list_unref(in);
    GST_PAD_PROBE_INFO_DATA(info) = out;
  }
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn Router::idle_unlink_probe(GstPad* pad, GstPadProbeInfo*, gpointer user_data) {
  auto* ctx = static_cast<DetachCtx*>(user_data);
  if (ctx->done.exchange(true)) return GST_PAD_PROBE_REMOVE;
  auto b = ctx->branch;
  if (b->queue) {
    GstPad* qsink = gst_element_get_static_pad(b->queue, "sink");
    gst_pad_unlink(pad, qsink);
    b->detached = true;
    if (ctx->send_eos) gst_pad_send_event(qsink, gst_event_new_eos());
    gst_object_unref(qsink);
  }
  b->detached = true;
  if (ctx->finish) run_on_main([b] { b->router->finish(b); });
  return GST_PAD_PROBE_REMOVE;
}

bool Router::on_guard_accepted(void* user_data) {
  auto* b = static_cast<Branch*>(user_data);
  // rtmpclientsink connects in render(); a buffer it accepted without a
  // connection (the FLV file header) does not count: ask its stats.
  bool connected = true;
  if (has_property(b->sink, "stats")) {
    GstStructure* st = nullptr;
    g_object_get(b->sink, "stats", &st, nullptr);
    if (st) {
      guint64 sent = 0;
      if (gst_structure_get_uint64(st, "messages-sent", &sent)) connected = sent > 0;
      gst_structure_free(st);
    }
  }
  if (!connected || b->connected.exchange(true)) return connected;
  Router* router = b->router;
  std::weak_ptr<Relay> weak = b->relay;
  std::string url = b->target, key = b->stream_key;
  run_on_main([router, weak, url, key] {
    auto r = weak.lock();
    if (!r) return;
    {
      std::lock_guard lock(router->mutex_);
      r->state = "connected";
      r->delay_s = 1;
    }
    jlog::info("relay connected", {jlog::str("stream_key", key), jlog::str("url", url),
                                   jlog::unum("retries", r->retries)});
  });
  return true;
}

void Router::on_guard_failed(void* user_data, GstFlowReturn ret) {
  auto* b = static_cast<Branch*>(user_data);
  Router* router = b->router;
  // The element's error message usually says more: give the bus a moment.
  std::shared_ptr<Branch> self;
  {
    std::lock_guard lock(router->mutex_);
    auto find_in = [&](const std::shared_ptr<Stream>& s) {
      for (auto& x : s->branches)
        if (x.get() == b) self = x;
    };
    for (auto& [pad, s] : router->streams_) find_in(s);
    for (auto& s : router->ending_) find_in(s);
  }
  if (!self) return;
  std::string why = flow_text(ret);
  run_on_main([router, self, why] {
    run_later(200, [router, self, why] {
      if (self->closing) return;
      if (!self->failed) {
        self->failed = true;
        self->reason = why;
        const bool record = self->kind == Branch::Kind::Record;
        if (record) {
          jlog::error("recorder failed",
                      {jlog::str("stream_key", self->stream_key), jlog::str("file", self->target), jlog::str("error", why)});
        } else {
          {
            std::lock_guard lock(router->mutex_);
            if (self->relay) self->relay->state = "failed";
          }
          jlog::warn("relay failed",
                     {jlog::str("stream_key", self->stream_key), jlog::str("url", self->target), jlog::str("error", why)});
        }
      }
      router->teardown(self, "failed");
    });
  });
}

// Main loop. Unlinks the branch from the stream when the stream is not in
// the middle of pushing into it, then finish() removes it.
void Router::teardown(const std::shared_ptr<Branch>& b, const char* reason) {
  if (stopped_) return;
  if (b->closing) return;
  b->closing = true;
  if (b->reason.empty()) b->reason = reason;
  if (!b->detached && b->upstream && gst_pad_is_linked(b->upstream)) {
    auto* ctx = new DetachCtx();
    ctx->branch = b;
    ctx->finish = true;
    gst_pad_add_probe(b->upstream, GST_PAD_PROBE_TYPE_IDLE, idle_unlink_probe, ctx,
                      [](gpointer d) { delete static_cast<DetachCtx*>(d); });
  } else {
    b->detached = true;
    run_on_main([b] { b->router->finish(b); });
  }
}

void Router::finish(const std::shared_ptr<Branch>& b) {
  if (stopped_) return;
  if (b->finished) return;
  b->finished = true;
  if (b->drain_timer) {
    g_source_remove(b->drain_timer);
    b->drain_timer = 0;
  }
  GuardStats st;
  if (b->guard) st = guard_stats(b->guard);
  for (GstElement* e : {b->sink, b->guard, b->queue})
    if (e) gst_element_set_state(e, GST_STATE_NULL);
  auto s = b->stream.lock();
  GstElement* tee = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (s && s->tee) tee = GST_ELEMENT(gst_object_ref(s->tee));
  }
  if (b->upstream) {
    if (b->from_tee && tee) gst_element_release_request_pad(tee, b->upstream);
    gst_object_unref(b->upstream);
    b->upstream = nullptr;
  }
  if (tee) gst_object_unref(tee);
  for (GstElement* e : {b->sink, b->guard, b->queue})
    if (e) gst_bin_remove(GST_BIN(pipeline_), e);
  b->sink = b->guard = b->queue = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (s) s->branches.erase(std::remove(s->branches.begin(), s->branches.end(), b), s->branches.end());
    if (b->kind == Branch::Kind::Record)
      reserved_paths_.erase(std::remove(reserved_paths_.begin(), reserved_paths_.end(), b->target),
                            reserved_paths_.end());
  }
  const double wall_s = (g_get_monotonic_time() - b->started_us) / 1e6;
  if (b->kind == Branch::Kind::Record) {
    GStatBuf sb;
    int64_t size = g_stat(b->target.c_str(), &sb) == 0 ? int64_t(sb.st_size) : -1;
    double media_s = wall_s;
    if (b->meta && b->meta->media_seconds() > 0)
      media_s = b->meta->media_seconds();
    else if (GST_CLOCK_TIME_IS_VALID(st.first_ts) && GST_CLOCK_TIME_IS_VALID(st.last_ts) && st.last_ts >= st.first_ts)
      media_s = double(st.last_ts - st.first_ts) / GST_SECOND;
    // filesink has closed the file: duration and filesize go into onMetaData in place.
    bool patched = size > 0 && b->meta && b->meta->finalize(b->target, media_s, uint64_t(size));
    jlog::info("recorder closed", {jlog::str("stream_key", b->stream_key), jlog::str("file", b->target),
                                   jlog::num("size", size), jlog::dbl("duration", media_s, 3),
                                   jlog::unum("tags", st.buffers), jlog::str("reason", b->reason),
                                   jlog::boolean("metadata_synthesized", b->meta && b->meta->synthesized()),
                                   jlog::boolean("metadata_finalized", patched)});
  } else if (auto r = b->relay) {
    bool retry = false;
    {
      std::lock_guard lock(mutex_);
      if (r->branch == b) r->branch.reset();
      retry = b->failed && !shutting_down_ && s && !s->gone;
      if (!retry) r->state = "stopped";
    }
    if (retry) {
      schedule_retry(r);
    } else {
      jlog::info("relay stopped", {jlog::str("stream_key", b->stream_key), jlog::str("url", b->target),
                                   jlog::unum("bytes", st.bytes), jlog::dbl("duration", wall_s, 3),
                                   jlog::str("reason", b->reason)});
    }
  }
  if (s) maybe_release_tee(s);
  maybe_done();
}

void Router::schedule_retry(const std::shared_ptr<Relay>& r) {
  uint32_t delay;
  {
    std::lock_guard lock(mutex_);
    delay = r->delay_s;
    r->delay_s = std::min<uint32_t>(r->delay_s * 2, 30);
    r->retries++;
    r->state = "retrying";
  }
  jlog::info("relay retrying", {jlog::str("stream_key", r->stream_key), jlog::str("url", r->url),
                                jlog::unum("attempt", r->retries + 1), jlog::unum("delay_s", delay)});
  std::weak_ptr<Relay> weak = r;
  r->timer = run_later(delay * 1000, [this, weak] {
    if (auto rr = weak.lock()) {
      rr->timer = 0;
      retry_relay(rr);
    }
  });
}

void Router::retry_relay(const std::shared_ptr<Relay>& r) {
  if (stopped_) return;
  auto s = r->stream.lock();
  bool go;
  {
    std::lock_guard lock(mutex_);
    go = s && !s->gone && !shutting_down_ && s->tee;
    if (!go) r->state = "stopped";
  }
  if (!go) return;
  start_branch(s, make_relay_branch(s, r));
}

// Main loop: the publisher left and the element removed the pad.
void Router::stream_gone(const std::shared_ptr<Stream>& s) {
  if (stopped_) return;
  std::vector<std::shared_ptr<Branch>> left;
  std::vector<std::shared_ptr<Relay>> waiting;
  {
    std::lock_guard lock(mutex_);
    for (auto& r : s->relays) {
      if (r->timer) {
        g_source_remove(r->timer);
        r->timer = 0;
      }
      if (!r->branch) {
        r->state = "stopped";
        waiting.push_back(r);
      }
    }
    left = s->branches;
  }
  for (auto& r : waiting)
    jlog::info("relay stopped", {jlog::str("stream_key", r->stream_key), jlog::str("url", r->url),
                                 jlog::unum("retries", r->retries), jlog::str("reason", "unpublished")});
  // rtmpserversrc pushed EOS before it removed the pad, behind whatever the
  // branch queues still hold: a publisher that sent its media in a burst
  // and left at once can be seconds ahead of the file. Each branch closes
  // when that EOS reaches its sink (eos_probe); tearing it down here lost
  // the queued tags. A sink that never gets there (a stalled relay
  // destination, a stuck disk) is torn down after the drain limit.
  for (auto& b : left) {
    if (b->closing || b->drain_timer) continue;
    const guint limit_ms = b->kind == Branch::Kind::Record ? kRecordDrainMs : kRelayDrainMs;
    b->drain_timer = run_later(limit_ms, [this, b] {
      b->drain_timer = 0;
      teardown(b, "unpublished");
    });
  }
  maybe_release_tee(s);
}

void Router::cancel_drain(const std::shared_ptr<Stream>& s) {
  for (auto& b : s->branches)
    if (b->drain_timer) {
      g_source_remove(b->drain_timer);
      b->drain_timer = 0;
    }
}

void Router::maybe_release_tee(const std::shared_ptr<Stream>& s) {
  if (stopped_) return;
  GstElement* tee = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (!s->gone || !s->branches.empty()) return;
    tee = s->tee;
    s->tee = nullptr;
    ending_.erase(std::remove(ending_.begin(), ending_.end(), s), ending_.end());
  }
  if (tee) {
    gst_element_set_state(tee, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(pipeline_), tee);
  }
}

// ---------------------------------------------------------------- bus, tick, shutdown

bool Router::handle_error(GstMessage* message) {
  GstObject* src = GST_MESSAGE_SRC(message);
  std::shared_ptr<Branch> b;
  {
    std::lock_guard lock(mutex_);
    auto find_in = [&](const std::shared_ptr<Stream>& s) {
      for (auto& x : s->branches)
        if (!b && x->owns(src)) b = x;
    };
    for (auto& [pad, s] : streams_) find_in(s);
    for (auto& s : ending_) find_in(s);
  }
  if (!b) {
    // An element of a branch already removed: still ours, nothing to do.
    const char* name = src ? GST_OBJECT_NAME(src) : nullptr;
    if (name && (g_str_has_prefix(name, "rec") || g_str_has_prefix(name, "relay"))) return true;
    return false;
  }
  GError* err = nullptr;
  gchar* dbg = nullptr;
  gst_message_parse_error(message, &err, &dbg);
  std::string text = err ? err->message : "unknown error";
  if (!b->failed && !b->closing) {
    b->failed = true;
    b->reason = text;
    if (b->kind == Branch::Kind::Record) {
      jlog::error("recorder failed", {jlog::str("stream_key", b->stream_key), jlog::str("file", b->target),
                                      jlog::str("error", text), jlog::str("debug", dbg ? dbg : "")});
    } else {
      {
        std::lock_guard lock(mutex_);
        if (b->relay) b->relay->state = "failed";
      }
      jlog::warn("relay failed", {jlog::str("stream_key", b->stream_key), jlog::str("url", b->target),
                                  jlog::str("error", text)});
    }
  } else if (!b->failed) {
    b->failed = true;
  }
  g_clear_error(&err);
  g_free(dbg);
  teardown(b, "error");
  return true;
}

void Router::tick(Server* server) {
  std::vector<StreamInfo> infos;
  if (server) infos = server->registry().list();
  struct Detected {
    std::string key, video, audio;
  };
  std::vector<Detected> out;
  const int64_t now = g_get_monotonic_time();
  {
    std::lock_guard lock(mutex_);
    for (auto& [pad, s] : streams_) {
      if (s->codecs_logged) continue;
      std::string v = s->caps_video, a = s->caps_audio;
      bool complete = false;
      for (auto& i : infos) {
        if (i.key != s->key) continue;
        if (!i.video_codec.empty()) v = i.video_codec;
        if (!i.audio_codec.empty()) a = i.audio_codec;
        complete = (!i.has_video || !v.empty()) && (!i.has_audio || !a.empty());
      }
      if (!server) complete = true;  // the caps are all we have
      if ((v.empty() && a.empty()) || (!complete && now - s->added_us < 3 * G_USEC_PER_SEC)) continue;
      s->codecs_logged = true;
      out.push_back({s->key, v, a});
    }
  }
  for (auto& d : out)
    jlog::info("codecs detected", {jlog::str("stream_key", d.key), jlog::str("videoCodec", d.video),
                                   jlog::str("audioCodec", d.audio)});
}

void Router::shutdown(guint timeout_ms, std::function<void()> done) {
  std::vector<std::shared_ptr<Branch>> all;
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) return;
    shutting_down_ = true;
    shutdown_done_ = std::move(done);
    auto collect = [&](const std::shared_ptr<Stream>& s) {
      for (auto& r : s->relays) {
        if (r->timer) {
          g_source_remove(r->timer);
          r->timer = 0;
        }
        if (!r->branch) r->state = "stopped";
      }
      for (auto& b : s->branches) all.push_back(b);
    };
    for (auto& [pad, s] : streams_) collect(s);
    for (auto& s : ending_) collect(s);
  }
  for (auto& b : all) {
    if (b->closing || b->eos_requested) continue;
    b->eos_requested = true;
    if (b->failed) {
      teardown(b, "shutdown");
      continue;
    }
    if (!b->reason.size()) b->reason = "shutdown";
    // EOS into the branch (after unlinking it from a stream that may still
    // be flowing): the recorder flushes, the relay unpublishes.
    if (!b->detached && b->upstream && gst_pad_is_linked(b->upstream)) {
      auto* ctx = new DetachCtx();
      ctx->branch = b;
      ctx->send_eos = true;
      gst_pad_add_probe(b->upstream, GST_PAD_PROBE_TYPE_IDLE, idle_unlink_probe, ctx,
                        [](gpointer d) { delete static_cast<DetachCtx*>(d); });
    } else if (b->queue) {
      b->detached = true;
      GstPad* qsink = gst_element_get_static_pad(b->queue, "sink");
      gst_pad_send_event(qsink, gst_event_new_eos());
      gst_object_unref(qsink);
    }
  }
  shutdown_timer_ = run_later(timeout_ms, [this] {
    shutdown_timer_ = 0;
    std::vector<std::string> pending;
    {
      std::lock_guard lock(mutex_);
      for (auto& p : reserved_paths_) pending.push_back(p);
    }
    std::string files;
    for (auto& p : pending) files += (files.empty() ? "" : ",") + p;
    jlog::warn("shutdown timeout: closing branches that did not finish", {jlog::str("files", files)});
    auto done_fn = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    if (done_fn) done_fn();
  });
  maybe_done();
}

void Router::maybe_done() {
  if (!shutting_down_ || !shutdown_done_) return;
  {
    std::lock_guard lock(mutex_);
    auto busy = [](const std::shared_ptr<Stream>& s) {
      for (auto& b : s->branches)
        if (!b->finished && (b->kind == Branch::Kind::Record || b->connected)) return true;
      return false;
    };
    for (auto& [pad, s] : streams_)
      if (busy(s)) return;
    for (auto& s : ending_)
      if (busy(s)) return;
  }
  if (shutdown_timer_) {
    g_source_remove(shutdown_timer_);
    shutdown_timer_ = 0;
  }
  auto done_fn = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  // Later: the caller tears the pipeline down, not from inside finish().
  run_on_main([done_fn] { done_fn(); });
}

void Router::stop() {
  stopped_ = true;
  if (shutdown_timer_) {
    g_source_remove(shutdown_timer_);
    shutdown_timer_ = 0;
  }
  shutdown_done_ = nullptr;
  std::lock_guard lock(mutex_);
  auto cancel = [](const std::shared_ptr<Stream>& s) {
    for (auto& r : s->relays)
      if (r->timer) {
        g_source_remove(r->timer);
        r->timer = 0;
      }
  };
  for (auto& [pad, s] : streams_) cancel(s);
  for (auto& s : ending_) {
    cancel(s);
    cancel_drain(s);
  }
}

RouterSnapshot Router::snapshot() const {
  RouterSnapshot snap;
  std::lock_guard lock(mutex_);
  auto visit = [&](const std::shared_ptr<Stream>& s, bool live) {
    if (live) snap.pads_by_key[s->key]++;
    for (auto& b : s->branches) {
      if (b->kind == Branch::Kind::Record && !b->finished) {
        snap.recording_by_key[s->key] = b->target;
        snap.recordings_active++;
      }
    }
    for (auto& r : s->relays) snap.relays.push_back({r->url, r->stream_key, r->state, r->retries});
  };
  for (auto& [pad, s] : streams_) visit(s, true);
  for (auto& s : ending_) visit(s, false);
  return snap;
}

}  // namespace grtmp::launcher
