/**
 * SECTION:element-rtmpserversrc
 * @title: rtmpserversrc
 *
 * An RTMP server as a live source. The element listens on #address:#port
 * (READY→PAUSED) and exposes every stream an RTMP encoder publishes (OBS,
 * ffmpeg, rtmpclientsink, ...) as a sometimes pad `src_%u` carrying
 * `video/x-flv` with a `streamheader`. With #stream-key set, only that
 * stream ("app/name") gets a pad.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e rtmpserversrc port=1935 stream-key=live/cam ! flvdemux name=d \
 *     d.video ! queue ! h264parse ! avdec_h264 ! autovideosink
 * ]|
 */
#include "rtmpserversrc.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "elementutil.h"
#include "flvframing.h"
#include "gstlog.h"
#include "serversecurity.h"
#include "grtmp/error.h"
#include "grtmp/registry.h"
#include "grtmp/server.h"

#define GST_CAT_DEFAULT grtmp_serversrc_debug

using grtmp::gst::FlvPacketizer;
using grtmp::gst::TlsProp;

namespace {

constexpr const char* kDefaultAddress = "0.0.0.0";
constexpr guint kDefaultPort = 1935;
constexpr guint kDefaultLatencyMs = 200;

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_CURRENT_PORT,
  PROP_STREAM_KEY,
  PROP_CHUNK_SIZE,
  PROP_GOP_CACHE,
  PROP_HANDSHAKE_TIMEOUT,
  PROP_IDLE_TIMEOUT,
  PROP_PUBLISHER_TIMEOUT,
  PROP_MAX_LAG,
  PROP_MAX_CONNECTIONS,
  PROP_MAX_MESSAGE_SIZE,
  PROP_EOS_ON_UNPUBLISH,
  PROP_LATENCY,
  PROP_STATS,
  PROP_TLS_FIRST,  // tls, tls-cert-file, tls-key-file, tls-address, tls-port, current-tls-port
  N_PROPS = PROP_TLS_FIRST + grtmp::gst::kTlsPropCount
};
GParamSpec* properties[N_PROPS];
constexpr guint prop_tls(TlsProp p) { return PROP_TLS_FIRST + guint(p); }

enum { SIGNAL_AUTHORIZE, N_SIGNALS };
guint signals[N_SIGNALS];

enum { PAD_PROP_0, PAD_PROP_STREAM_KEY, N_PAD_PROPS };
GParamSpec* pad_properties[N_PAD_PROPS];

GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src_%u", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS("video/x-flv"));

struct Port;

}  // namespace

// ---------------------------------------------------------------- pad

struct _GstGrtmpServerSrcPad {
  GstPad parent;
  gchar* stream_key;
};

G_DEFINE_TYPE(GstGrtmpServerSrcPad, gst_grtmp_server_src_pad, GST_TYPE_PAD)

static void gst_grtmp_server_src_pad_get_property(GObject* object, guint prop_id, GValue* value,
                                                  GParamSpec* pspec) {
  auto* pad = GST_GRTMP_SERVER_SRC_PAD(object);
  switch (prop_id) {
    case PAD_PROP_STREAM_KEY:
      GST_OBJECT_LOCK(pad);
      g_value_set_string(value, pad->stream_key);
      GST_OBJECT_UNLOCK(pad);
      break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_grtmp_server_src_pad_finalize(GObject* object) {
  g_free(GST_GRTMP_SERVER_SRC_PAD(object)->stream_key);
  G_OBJECT_CLASS(gst_grtmp_server_src_pad_parent_class)->finalize(object);
}

static void gst_grtmp_server_src_pad_class_init(GstGrtmpServerSrcPadClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->get_property = gst_grtmp_server_src_pad_get_property;
  gobject_class->finalize = gst_grtmp_server_src_pad_finalize;
  pad_properties[PAD_PROP_STREAM_KEY] =
      g_param_spec_string("stream-key", "Stream key", "The published stream on this pad (app/name)", nullptr,
                          (GParamFlags)(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties(gobject_class, N_PAD_PROPS, pad_properties);
}

static void gst_grtmp_server_src_pad_init(GstGrtmpServerSrcPad* pad) { pad->stream_key = nullptr; }

// ---------------------------------------------------------------- element state

namespace {

struct Settings {
  std::string address = kDefaultAddress;
  guint port = kDefaultPort;
  std::string stream_key;
  grtmp::ServerConfig config;
  bool eos_on_unpublish = true;
  guint latency_ms = kDefaultLatencyMs;
  grtmp::gst::TlsSettings tls;
};

// One published stream: a registry subscriber whose bounded queue feeds
// the pad's streaming task.
struct Port : grtmp::Subscriber {
  Port(GstGrtmpServerSrc* src, std::string key, uint64_t queue_bytes)
      : src(src), key(std::move(key)), queue(queue_bytes),
        packetizer([src] { return grtmp::gst::running_time_now(GST_ELEMENT(src)); }) {}
  ~Port() override {
    if (pad) gst_object_unref(pad);
  }

  // Publisher thread, stream lock held: enqueue and wake only.
  void on_stream_event(const grtmp::StreamEvent& ev) override {
    if (finished.load(std::memory_order_relaxed)) return;
    if (queue.push(ev)) wake();
  }
  uint64_t dropped_messages() const override { return queue.dropped_messages(); }

  void wake() {
    std::lock_guard lock(mutex);
    cond.notify_one();
  }

  GstGrtmpServerSrc* src;  // not a reference: the element outlives its ports
  const std::string key;
  GstPad* pad = nullptr;
  std::shared_ptr<grtmp::Server> server;
  std::shared_ptr<grtmp::Stream> stream;
  grtmp::PlayerQueue queue;

  std::mutex mutex;  // taken after the stream lock (see registry.h)
  std::condition_variable cond;
  bool flushing = false;  // mutex

  // Streaming thread only.
  FlvPacketizer packetizer;
  bool added = false;
  bool downstream_eos = false;
  bool warned_not_linked = false;
  std::atomic<bool> finished{false};   // no more data will be pushed

  // teardown_port: held for the whole teardown, so a second caller (the
  // state change racing the asynchronous removal after an unpublish) waits
  // until the pad is gone instead of returning early. Recursive: a
  // pad-removed handler on the removing thread that stops the element
  // re-enters and finds the port torn down. Taken before every other lock.
  std::recursive_mutex teardown_mutex;
  bool torn_down = false;  // teardown_mutex
};

struct Observer : grtmp::Registry::Observer {
  GstGrtmpServerSrc* src = nullptr;
  void on_publish(const std::shared_ptr<grtmp::Stream>& stream) override;
};

}  // namespace

struct ServerSrcPrivate {
  std::mutex settings_mutex;
  Settings settings;

  // Lock order: Port::teardown_mutex -> state_mutex -> Registry -> Stream -> Port::mutex.
  std::mutex state_mutex;
  std::shared_ptr<grtmp::Server> server;
  std::map<std::string, std::shared_ptr<Port>> ports;  // by stream key, live ones
  std::vector<std::shared_ptr<Port>> all_ports;         // including finished ones not yet removed
  bool running = false;
  guint pad_counter = 0;
  guint group_id = 0;
  std::atomic<guint> current_port{0};
  std::atomic<guint> current_tls_port{0};
  std::atomic<bool> playing{false};
  Observer observer;
};

struct _GstGrtmpServerSrc {
  GstElement parent;
  ServerSrcPrivate* priv;
};

G_DEFINE_TYPE(GstGrtmpServerSrc, gst_grtmp_server_src, GST_TYPE_ELEMENT)
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE(rtmpserversrc, "rtmpserversrc", GST_RANK_NONE, GST_TYPE_GRTMP_SERVER_SRC,
                                      grtmp::gst::log_init());

static void port_loop(gpointer data);
static void teardown_port(GstGrtmpServerSrc* src, const std::shared_ptr<Port>& port);

// ---------------------------------------------------------------- ports

static gboolean pad_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  auto* src = GST_GRTMP_SERVER_SRC(parent);
  switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_LATENCY: {
      guint ms;
      {
        std::lock_guard lock(src->priv->settings_mutex);
        ms = src->priv->settings.latency_ms;
      }
      gst_query_set_latency(query, TRUE, GstClockTime(ms) * GST_MSECOND, GST_CLOCK_TIME_NONE);
      return TRUE;
    }
    case GST_QUERY_SCHEDULING:
      gst_query_set_scheduling(query, GST_SCHEDULING_FLAG_SEQUENTIAL, 1, -1, 0);
      gst_query_add_scheduling_mode(query, GST_PAD_MODE_PUSH);
      return TRUE;
    default: return gst_pad_query_default(pad, parent, query);
  }
}

static gboolean pad_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  // Live: no seeking; everything else is answered by default.
  if (GST_EVENT_TYPE(event) == GST_EVENT_SEEK) {
    gst_event_unref(event);
    return FALSE;
  }
  return gst_pad_event_default(pad, parent, event);
}

// Creates the port for `stream` unless one exists (state_mutex held).
static void create_port_locked(GstGrtmpServerSrc* src, const std::string& key) {
  ServerSrcPrivate* priv = src->priv;
  if (!priv->running || priv->ports.count(key)) return;
  {
    std::lock_guard lock(priv->settings_mutex);
    const std::string& filter = priv->settings.stream_key;
    if (!filter.empty() && filter != key) return;
  }
  auto port = std::make_shared<Port>(src, key, priv->server->config().player_queue_max_bytes);
  port->server = priv->server;

  gchar* name = g_strdup_printf("src_%u", priv->pad_counter++);
  GstPadTemplate* templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(src), "src_%u");
  auto* pad = GST_GRTMP_SERVER_SRC_PAD(g_object_new(GST_TYPE_GRTMP_SERVER_SRC_PAD, "name", name, "direction",
                                                    GST_PAD_SRC, "template", templ, nullptr));
  g_free(name);
  pad->stream_key = g_strdup(key.c_str());
  gst_object_ref_sink(pad);
  port->pad = GST_PAD(pad);
  gst_pad_set_query_function(port->pad, pad_query);
  gst_pad_set_event_function(port->pad, pad_event);
  gst_pad_use_fixed_caps(port->pad);

  GError* err = nullptr;
  port->stream = priv->server->registry().subscribe(key, port, true, &err);
  if (!port->stream) {
    GST_ELEMENT_WARNING(src, RESOURCE, READ, ("Could not subscribe to stream %s", key.c_str()),
                        ("%s", grtmp::gst::error_text(err).c_str()));
    g_clear_error(&err);
    return;
  }
  GST_INFO_OBJECT(src, "stream %s published: %s (pad added once its headers arrived)", key.c_str(),
                  GST_PAD_NAME(port->pad));
  priv->ports[key] = port;
  priv->all_ports.push_back(port);
  // The task owns no reference: teardown joins it before the port goes.
  gst_pad_start_task(port->pad, port_loop, port.get(), nullptr);
}

void Observer::on_publish(const std::shared_ptr<grtmp::Stream>& stream) {
  std::lock_guard lock(src->priv->state_mutex);
  create_port_locked(src, stream->key());
}

static void post_warnings(GstGrtmpServerSrc* src, Port* port, FlvPacketizer::Output& out) {
  for (auto& w : out.warnings)
    GST_ELEMENT_WARNING(src, STREAM, FORMAT, ("Stream %s: %s", port->key.c_str(), w.c_str()), (nullptr));
  out.warnings.clear();
}

// Adds the pad once its caps (with the complete streamheader) are known.
static void add_pad(GstGrtmpServerSrc* src, Port* port, GstCaps* caps, GstClockTime base) {
  GstPad* pad = port->pad;
  gst_pad_set_active(pad, TRUE);
  gchar* stream_id = gst_pad_create_stream_id(pad, GST_ELEMENT(src), port->key.c_str());
  GstEvent* ev = gst_event_new_stream_start(stream_id);
  g_free(stream_id);
  gst_event_set_group_id(ev, src->priv->group_id);
  gst_pad_push_event(pad, ev);
  gst_pad_push_event(pad, gst_event_new_caps(caps));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  // Stream time 0 (the first tag) plays at the running time it arrived.
  segment.base = GST_CLOCK_TIME_IS_VALID(base) ? base : 0;
  gst_pad_push_event(pad, gst_event_new_segment(&segment));
  port->added = true;
  GST_INFO_OBJECT(src, "adding pad %s for stream %s with caps %" GST_PTR_FORMAT, GST_PAD_NAME(pad),
                  port->key.c_str(), caps);
  // The element takes its own reference (gst_object_set_parent); port->pad keeps ours.
  gst_element_add_pad(GST_ELEMENT(src), pad);
}

// Returns false when the task must stop.
static bool push_output(GstGrtmpServerSrc* src, Port* port, FlvPacketizer::Output& out) {
  post_warnings(src, port, out);
  bool ok = true;
  for (auto& item : out.items) {
    GstCaps* caps = std::exchange(item.caps, nullptr);
    GstBuffer* b = std::exchange(item.buffer, nullptr);
    if (caps) {
      if (ok) {
        if (!port->added) add_pad(src, port, caps, out.segment_base);
        else gst_pad_push_event(port->pad, gst_event_new_caps(caps));
      }
      gst_caps_unref(caps);
      continue;
    }
    if (!ok || port->downstream_eos || !port->added) {
      gst_buffer_unref(b);
      continue;
    }
    GstFlowReturn ret = gst_pad_push(port->pad, b);
    switch (ret) {
      case GST_FLOW_OK: break;
      case GST_FLOW_NOT_LINKED:
        if (!port->warned_not_linked) GST_DEBUG_OBJECT(port->pad, "not linked: dropping stream %s", port->key.c_str());
        port->warned_not_linked = true;
        break;
      case GST_FLOW_EOS:
        GST_DEBUG_OBJECT(port->pad, "downstream is EOS: dropping the rest of %s", port->key.c_str());
        port->downstream_eos = true;
        break;
      case GST_FLOW_FLUSHING:
        GST_DEBUG_OBJECT(port->pad, "flushing");
        ok = false;
        break;
      default:
        GST_ELEMENT_FLOW_ERROR(src, ret);
        gst_pad_push_event(port->pad, gst_event_new_eos());
        ok = false;
        break;
    }
  }
  out.items.clear();
  return ok;
}

static void remove_port_async(GstElement* element, gpointer data) {
  auto* holder = static_cast<std::shared_ptr<Port>*>(data);
  teardown_port(GST_GRTMP_SERVER_SRC(element), *holder);
}

static void delete_port_holder(gpointer data) { delete static_cast<std::shared_ptr<Port>*>(data); }

// The publisher left (eos-on-unpublish): EOS, then the pad goes away from
// another thread (a task cannot join itself).
static void finish_port(GstGrtmpServerSrc* src, Port* port) {
  port->finished = true;
  std::shared_ptr<Port> self;
  {
    std::lock_guard lock(src->priv->state_mutex);
    auto it = src->priv->ports.find(port->key);
    if (it != src->priv->ports.end() && it->second.get() == port) {
      self = it->second;
      src->priv->ports.erase(it);  // a republish gets a new pad
    }
    // A new publisher may already be on the key (its on_publish saw this
    // port still in place): give it its own pad now.
    if (port->stream && port->stream->live()) create_port_locked(src, port->key);
  }
  if (port->added) {
    GST_INFO_OBJECT(src, "stream %s unpublished: EOS on %s", port->key.c_str(), GST_PAD_NAME(port->pad));
    gst_pad_push_event(port->pad, gst_event_new_eos());
  }
  if (self) gst_element_call_async(GST_ELEMENT(src), remove_port_async, new std::shared_ptr<Port>(self),
                                   delete_port_holder);
}

static void port_loop(gpointer data) {
  auto* port = static_cast<Port*>(data);
  GstGrtmpServerSrc* src = port->src;
  ServerSrcPrivate* priv = src->priv;
  {
    std::unique_lock lock(port->mutex);
    for (;;) {
      if (port->flushing || port->finished) {
        lock.unlock();
        gst_pad_pause_task(port->pad);
        return;
      }
      const bool playing = priv->playing.load();
      if (playing && !port->queue.empty()) break;
      int64_t deadline = port->packetizer.deadline_us();  // streaming thread owns the packetizer
      if (playing && deadline) {
        int64_t now = g_get_monotonic_time();
        if (now >= deadline) break;
        port->cond.wait_for(lock, std::chrono::microseconds(deadline - now));
      } else {
        port->cond.wait(lock);
      }
    }
  }

  std::deque<grtmp::StreamEvent> events;
  port->queue.take(events, 1u << 20);
  FlvPacketizer::Output out;
  bool unpublished = false;
  bool eos_on_unpublish;
  {
    std::lock_guard lock(priv->settings_mutex);
    eos_on_unpublish = priv->settings.eos_on_unpublish;
  }
  for (auto& ev : events) {
    switch (ev.kind) {
      case grtmp::StreamEvent::Kind::Publish:
        GST_DEBUG_OBJECT(src, "stream %s: publish", port->key.c_str());
        port->packetizer.publish();
        break;
      case grtmp::StreamEvent::Kind::Media: port->packetizer.push(ev.media, out); break;
      case grtmp::StreamEvent::Kind::Unpublish:
        GST_DEBUG_OBJECT(src, "stream %s: unpublish", port->key.c_str());
        port->packetizer.flush(out);
        unpublished = true;
        break;
    }
    if (unpublished && eos_on_unpublish) break;
  }
  if (events.empty()) port->packetizer.tick(out);

  if (!push_output(src, port, out)) {
    gst_pad_pause_task(port->pad);
    return;
  }
  if (unpublished && eos_on_unpublish) finish_port(src, port);
}

// Stops the task, detaches from the stream and removes the pad. Any thread
// but the port's own task; idempotent. Returns once the pad is removed, also
// when another thread was already removing it: the element has no pads left
// when its change to READY returns.
static void teardown_port(GstGrtmpServerSrc* src, const std::shared_ptr<Port>& port) {
  std::lock_guard teardown(port->teardown_mutex);
  if (std::exchange(port->torn_down, true)) return;
  port->finished = true;
  if (port->server && port->stream) port->server->registry().unsubscribe(port->stream, port.get());
  {
    std::lock_guard lock(port->mutex);
    port->flushing = true;
    port->cond.notify_all();
  }
  gst_pad_stop_task(port->pad);
  gst_pad_set_active(port->pad, FALSE);
  if (port->added) {
    GST_INFO_OBJECT(src, "removing pad %s (stream %s)", GST_PAD_NAME(port->pad), port->key.c_str());
    gst_element_remove_pad(GST_ELEMENT(src), port->pad);
  }
  std::lock_guard lock(src->priv->state_mutex);
  auto& all = src->priv->all_ports;
  all.erase(std::remove(all.begin(), all.end(), port), all.end());
  auto it = src->priv->ports.find(port->key);
  if (it != src->priv->ports.end() && it->second == port) src->priv->ports.erase(it);
}

// ---------------------------------------------------------------- start / stop

static bool start_server(GstGrtmpServerSrc* src) {
  ServerSrcPrivate* priv = src->priv;
  grtmp::gst::ServerRequest request;
  {
    std::lock_guard lock(priv->settings_mutex);
    request.config = priv->settings.config;
    request.config.host = priv->settings.address;
    request.config.port = uint16_t(priv->settings.port);
    request.tls = priv->settings.tls;
  }
  request.authorize_signal = signals[SIGNAL_AUTHORIZE];
  // Pads wait for publishers; players of the same server follow its defaults.
  auto server = grtmp::gst::acquire_server(GST_ELEMENT(src), request);
  if (!server) return false;
  const grtmp::ServerConfig& config = request.config;
  priv->current_port = server->port();
  priv->current_tls_port = server->tls_port();
  if (server->tls_port())
    GST_INFO_OBJECT(src, "listening on %s:%u, RTMPS on port %u", config.host.c_str(), server->port(),
                    server->tls_port());
  else
    GST_INFO_OBJECT(src, "listening on %s:%u", config.host.c_str(), server->port());
  std::vector<grtmp::StreamInfo> live;
  {
    std::lock_guard lock(priv->state_mutex);
    priv->server = server;
    priv->running = true;
    priv->group_id = gst_util_group_id_next();
    server->registry().add_observer(&priv->observer);
  }
  // Streams already published on a shared server.
  for (auto& info : server->registry().list()) {
    if (!info.live) continue;
    std::lock_guard lock(priv->state_mutex);
    create_port_locked(src, info.key);
  }
  g_object_notify_by_pspec(G_OBJECT(src), properties[PROP_CURRENT_PORT]);
  g_object_notify_by_pspec(G_OBJECT(src), properties[prop_tls(TlsProp::CurrentPort)]);
  return true;
}

static void stop_server(GstGrtmpServerSrc* src) {
  ServerSrcPrivate* priv = src->priv;
  std::shared_ptr<grtmp::Server> server;
  std::vector<std::shared_ptr<Port>> ports;
  {
    std::lock_guard lock(priv->state_mutex);
    priv->running = false;
    server = priv->server;
    if (server) server->registry().remove_observer(&priv->observer);
    ports = priv->all_ports;
  }
  grtmp::gst::release_server(GST_ELEMENT(src), server);
  for (auto& p : ports) teardown_port(src, p);
  {
    std::lock_guard lock(priv->state_mutex);
    priv->ports.clear();
    priv->all_ports.clear();
    priv->server.reset();
  }
  // The last reference stops the server (other elements may share it).
  server.reset();
  priv->current_port = 0;
  priv->current_tls_port = 0;
}

static void wake_all(GstGrtmpServerSrc* src) {
  std::vector<std::shared_ptr<Port>> ports;
  {
    std::lock_guard lock(src->priv->state_mutex);
    ports = src->priv->all_ports;
  }
  for (auto& p : ports) p->wake();
}

static GstStateChangeReturn gst_grtmp_server_src_change_state(GstElement* element, GstStateChange transition) {
  auto* src = GST_GRTMP_SERVER_SRC(element);
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!start_server(src)) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_PLAYING:
      src->priv->playing = true;
      wake_all(src);
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED: src->priv->playing = false; break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      // Before the pads are deactivated: the tasks may wait on a condition.
      stop_server(src);
      break;
    default: break;
  }
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_grtmp_server_src_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) stop_server(src);
    return ret;
  }
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED: ret = GST_STATE_CHANGE_NO_PREROLL; break;
    default: break;
  }
  return ret;
}

// ---------------------------------------------------------------- properties

static void gst_grtmp_server_src_set_property(GObject* object, guint prop_id, const GValue* value,
                                              GParamSpec* pspec) {
  auto* src = GST_GRTMP_SERVER_SRC(object);
  std::lock_guard lock(src->priv->settings_mutex);
  Settings& s = src->priv->settings;
  if (prop_id >= PROP_TLS_FIRST && prop_id < N_PROPS) {
    grtmp::gst::tls_set_property(s.tls, TlsProp(prop_id - PROP_TLS_FIRST), value);
    return;
  }
  switch (prop_id) {
    case PROP_ADDRESS: s.address = g_value_get_string(value) ? g_value_get_string(value) : kDefaultAddress; break;
    case PROP_PORT: s.port = g_value_get_uint(value); break;
    case PROP_STREAM_KEY: s.stream_key = g_value_get_string(value) ? g_value_get_string(value) : ""; break;
    case PROP_CHUNK_SIZE: s.config.chunk_size = g_value_get_uint(value); break;
    case PROP_GOP_CACHE: s.config.gop_cache = g_value_get_boolean(value); break;
    case PROP_HANDSHAKE_TIMEOUT: s.config.handshake_timeout_ms = g_value_get_uint(value); break;
    case PROP_IDLE_TIMEOUT: s.config.idle_timeout_ms = g_value_get_uint(value); break;
    case PROP_PUBLISHER_TIMEOUT: s.config.publisher_timeout_ms = g_value_get_uint(value); break;
    case PROP_MAX_LAG: s.config.player_max_lag_ms = g_value_get_uint(value); break;
    case PROP_MAX_CONNECTIONS: s.config.max_connections = g_value_get_uint(value); break;
    case PROP_MAX_MESSAGE_SIZE: s.config.max_message_size = g_value_get_uint(value); break;
    case PROP_EOS_ON_UNPUBLISH: s.eos_on_unpublish = g_value_get_boolean(value); break;
    case PROP_LATENCY: s.latency_ms = g_value_get_uint(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_grtmp_server_src_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  auto* src = GST_GRTMP_SERVER_SRC(object);
  if (prop_id == PROP_CURRENT_PORT) {
    g_value_set_uint(value, src->priv->current_port.load());
    return;
  }
  if (prop_id == prop_tls(TlsProp::CurrentPort)) {
    g_value_set_uint(value, src->priv->current_tls_port.load());
    return;
  }
  if (prop_id == PROP_STATS) {
    std::shared_ptr<grtmp::Server> server;
    {
      std::lock_guard lock(src->priv->state_mutex);
      server = src->priv->server;
    }
    g_value_take_boxed(value, grtmp::gst::server_stats_structure(server));
    return;
  }
  std::lock_guard lock(src->priv->settings_mutex);
  const Settings& s = src->priv->settings;
  if (prop_id >= PROP_TLS_FIRST && prop_id < N_PROPS) {
    grtmp::gst::tls_get_property(s.tls, TlsProp(prop_id - PROP_TLS_FIRST), value);
    return;
  }
  switch (prop_id) {
    case PROP_ADDRESS: g_value_set_string(value, s.address.c_str()); break;
    case PROP_PORT: g_value_set_uint(value, s.port); break;
    case PROP_STREAM_KEY: g_value_set_string(value, s.stream_key.c_str()); break;
    case PROP_CHUNK_SIZE: g_value_set_uint(value, s.config.chunk_size); break;
    case PROP_GOP_CACHE: g_value_set_boolean(value, s.config.gop_cache); break;
    case PROP_HANDSHAKE_TIMEOUT: g_value_set_uint(value, s.config.handshake_timeout_ms); break;
    case PROP_IDLE_TIMEOUT: g_value_set_uint(value, s.config.idle_timeout_ms); break;
    case PROP_PUBLISHER_TIMEOUT: g_value_set_uint(value, s.config.publisher_timeout_ms); break;
    case PROP_MAX_LAG: g_value_set_uint(value, s.config.player_max_lag_ms); break;
    case PROP_MAX_CONNECTIONS: g_value_set_uint(value, s.config.max_connections); break;
    case PROP_MAX_MESSAGE_SIZE: g_value_set_uint(value, s.config.max_message_size); break;
    case PROP_EOS_ON_UNPUBLISH: g_value_set_boolean(value, s.eos_on_unpublish); break;
    case PROP_LATENCY: g_value_set_uint(value, s.latency_ms); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

// ---------------------------------------------------------------- GObject

static void gst_grtmp_server_src_init(GstGrtmpServerSrc* src) {
  src->priv = new ServerSrcPrivate();
  src->priv->observer.src = src;
  GST_OBJECT_FLAG_SET(src, GST_ELEMENT_FLAG_SOURCE);
}

static void gst_grtmp_server_src_finalize(GObject* object) {
  auto* src = GST_GRTMP_SERVER_SRC(object);
  delete src->priv;
  src->priv = nullptr;
  G_OBJECT_CLASS(gst_grtmp_server_src_parent_class)->finalize(object);
}

static void gst_grtmp_server_src_class_init(GstGrtmpServerSrcClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = gst_grtmp_server_src_set_property;
  gobject_class->get_property = gst_grtmp_server_src_get_property;
  gobject_class->finalize = gst_grtmp_server_src_finalize;
  element_class->change_state = gst_grtmp_server_src_change_state;

  const grtmp::ServerConfig defaults;
  const auto rw = (GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto ro = (GParamFlags)(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_ADDRESS] =
      g_param_spec_string("address", "Address", "Address to listen on", kDefaultAddress, rw);
  properties[PROP_PORT] = g_param_spec_uint("port", "Port", "Port to listen on (0 = a free ephemeral port)", 0,
                                            65535, kDefaultPort, rw);
  properties[PROP_CURRENT_PORT] = g_param_spec_uint(
      "current-port", "Current port", "The port listened on (set when the server started; 0 before)", 0, 65535, 0, ro);
  properties[PROP_STREAM_KEY] = g_param_spec_string(
      "stream-key", "Stream key", "Only expose this stream (\"app/name\"); empty = every published stream", "", rw);
  properties[PROP_CHUNK_SIZE] = g_param_spec_uint("chunk-size", "Chunk size", "Chunk size the server announces",
                                                  128, 65536, defaults.chunk_size, rw);
  properties[PROP_GOP_CACHE] = g_param_spec_boolean(
      "gop-cache", "GOP cache", "Keep the last GOP for instant late join (players and new pads)", defaults.gop_cache, rw);
  properties[PROP_HANDSHAKE_TIMEOUT] =
      g_param_spec_uint("handshake-timeout", "Handshake timeout", "Milliseconds to complete the handshake (0 = none)",
                        0, G_MAXUINT, defaults.handshake_timeout_ms, rw);
  properties[PROP_IDLE_TIMEOUT] =
      g_param_spec_uint("idle-timeout", "Idle timeout",
                        "Milliseconds without any byte from a connection before closing it (0 = none)", 0, G_MAXUINT,
                        defaults.idle_timeout_ms, rw);
  properties[PROP_PUBLISHER_TIMEOUT] =
      g_param_spec_uint("publisher-timeout", "Publisher timeout",
                        "Milliseconds a publisher may send no media before it is dropped (0 = none)", 0, G_MAXUINT,
                        defaults.publisher_timeout_ms, rw);
  properties[PROP_MAX_LAG] = g_param_spec_uint(
      "max-lag", "Max player lag",
      "Milliseconds an RTMP player may stay behind live (its queue never drained, or still dropping to keyframes) "
      "before it is closed (0 = never)",
      0, G_MAXUINT, defaults.player_max_lag_ms, rw);
  properties[PROP_MAX_CONNECTIONS] = g_param_spec_uint(
      "max-connections", "Max connections", "Connections accepted at once", 1, G_MAXUINT, defaults.max_connections, rw);
  properties[PROP_MAX_MESSAGE_SIZE] =
      g_param_spec_uint("max-message-size", "Max message size", "Largest RTMP message accepted (bytes)", 1024,
                        G_MAXUINT, defaults.max_message_size, rw);
  properties[PROP_EOS_ON_UNPUBLISH] = g_param_spec_boolean(
      "eos-on-unpublish", "EOS on unpublish",
      "When a publisher leaves: EOS on its pad, then remove the pad (TRUE), or keep the pad for a republish (FALSE)",
      TRUE, (GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  properties[PROP_LATENCY] = g_param_spec_uint(
      "latency", "Latency", "Latency reported to the pipeline (ms): network jitter the sinks absorb", 0, 60000,
      kDefaultLatencyMs, rw);
  properties[PROP_STATS] = g_param_spec_boxed(
      "stats", "Statistics",
      "Server statistics: connections, publishers, players, bytes-in, bytes-out, streams", GST_TYPE_STRUCTURE, ro);
  for (guint i = 0; i < grtmp::gst::kTlsPropCount; i++)
    properties[PROP_TLS_FIRST + i] = grtmp::gst::tls_param_spec(TlsProp(i));
  g_object_class_install_properties(gobject_class, N_PROPS, properties);

  /**
   * GstGrtmpServerSrc::authorize:
   * @src: the element
   * @request: (transfer none): a "grtmp-authorize-request" structure with the
   *   string fields action ("connect", "publish" or "play"), app, name
   *   (stream name without the query), key ("app/name"; empty for connect),
   *   query (without '?'), tc-url, remote-ip and conn-id
   *
   * Asks whether a client may connect, publish or play. Detailed by the
   * action: connect to "authorize::publish" to be asked about publishes
   * only; "authorize" alone is asked about all three. Emitted from a thread
   * of the plugin's authorization pool (up to 4 requests at once; never the
   * application's main loop, a streaming thread or a server loop thread),
   * so a handler may take its time: only the asking client waits. The first
   * handler returning %FALSE denies (later handlers are not called); a
   * handler that denies may set a string field "reason" in @request, sent to
   * the client as the status description. A refused publish or play gets
   * NetStream.Publish.Unauthorized / NetStream.Play.Unauthorized, a refused
   * connect NetConnection.Connect.Rejected. Without handlers nothing is
   * asked. Every rtmpserversrc sharing the server (same address and port)
   * is asked, in the order they started.
   *
   * Returns: %TRUE to allow, %FALSE to deny
   */
  signals[SIGNAL_AUTHORIZE] = g_signal_new(
      "authorize", G_TYPE_FROM_CLASS(klass), (GSignalFlags)(G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED), 0,
      [](GSignalInvocationHint*, GValue* accu, const GValue* handler_return, gpointer) -> gboolean {
        const gboolean allow = g_value_get_boolean(handler_return);
        g_value_set_boolean(accu, allow);
        return allow;  // the first FALSE ends the emission
      },
      nullptr, nullptr, G_TYPE_BOOLEAN, 1, GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE);

  gst_element_class_add_static_pad_template_with_gtype(element_class, &src_template, GST_TYPE_GRTMP_SERVER_SRC_PAD);
  gst_element_class_set_static_metadata(element_class, "RTMP server source", "Source/Network",
                                        "Receives RTMP streams from publishers (an RTMP server); one FLV pad per stream",
                                        "grtmp project");
  gst_type_mark_as_plugin_api(GST_TYPE_GRTMP_SERVER_SRC_PAD, (GstPluginAPIFlags)0);
}
