/**
 * SECTION:element-rtmpserversink
 * @title: rtmpserversink
 *
 * Serves a `video/x-flv` stream to RTMP players: the element runs (or
 * shares) an RTMP server on #address:#port and publishes its input as
 * #stream-key ("app/name"). Players connect to rtmp://host:port/app/name.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=30 ! \
 *     flvmux streamable=true ! rtmpserversink port=1935 stream-key=live/test
 * ffplay rtmp://127.0.0.1:1935/live/test
 * ]|
 */
#include "rtmpserversink.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "elementutil.h"
#include "flvframing.h"
#include "gstlog.h"
#include "serversecurity.h"
#include "grtmp/error.h"
#include "grtmp/registry.h"
#include "grtmp/server.h"

#define GST_CAT_DEFAULT grtmp_serversink_debug

namespace {

constexpr const char* kDefaultAddress = "0.0.0.0";
constexpr guint kDefaultPort = 1935;

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_CURRENT_PORT,
  PROP_STREAM_KEY,
  PROP_CHUNK_SIZE,
  PROP_GOP_CACHE,
  PROP_STATS,
  PROP_TLS_FIRST,  // tls, tls-cert-file, tls-key-file, tls-address, tls-port, current-tls-port
  N_PROPS = PROP_TLS_FIRST + grtmp::gst::kTlsPropCount
};
GParamSpec* properties[N_PROPS];
using grtmp::gst::TlsProp;
constexpr guint prop_tls(TlsProp p) { return PROP_TLS_FIRST + guint(p); }

GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-flv"));

struct Settings {
  std::string address = kDefaultAddress;
  guint port = kDefaultPort;
  std::string stream_key;
  grtmp::ServerConfig config;
  grtmp::gst::TlsSettings tls;
};

// The registry may ask us to leave (another publisher took over, shutdown).
struct SinkPublisher : grtmp::Publisher {
  std::atomic<bool> evicted{false};
  std::mutex mutex;
  std::string reason;
  void evict(const char* why) override {
    std::lock_guard lock(mutex);
    reason = why ? why : "evicted";
    evicted = true;
  }
};

bool valid_key(const std::string& key) {
  auto slash = key.find('/');
  return slash != std::string::npos && slash > 0 && slash + 1 < key.size();
}

}  // namespace

struct ServerSinkPrivate {
  std::mutex settings_mutex;
  Settings settings;

  std::mutex state_mutex;  // server, stream (streaming thread writes, property reads)
  std::shared_ptr<grtmp::Server> server;
  std::shared_ptr<grtmp::Stream> stream;
  std::string key;
  SinkPublisher publisher;
  grtmp::gst::FlvDepacketizer depay;
  // Streaming thread: the headers last pushed (sent again only when they
  // change) and the timestamp of the last frame (a changed sequence header
  // from a caps change goes out there, not at the streamheader's 0).
  grtmp::Bytes sent_metadata, sent_video_header, sent_audio_header;
  uint32_t last_frame_ts = 0;
  std::atomic<guint> current_port{0};
  std::atomic<guint> current_tls_port{0};
  uint64_t messages = 0;
};

struct _GstGrtmpServerSink {
  GstBaseSink parent;
  ServerSinkPrivate* priv;
};

G_DEFINE_TYPE(GstGrtmpServerSink, gst_grtmp_server_sink, GST_TYPE_BASE_SINK)
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE(rtmpserversink, "rtmpserversink", GST_RANK_NONE, GST_TYPE_GRTMP_SERVER_SINK,
                                      grtmp::gst::log_init());

static void unpublish(GstGrtmpServerSink* sink) {
  ServerSinkPrivate* priv = sink->priv;
  std::shared_ptr<grtmp::Server> server;
  std::shared_ptr<grtmp::Stream> stream;
  {
    std::lock_guard lock(priv->state_mutex);
    server = priv->server;
    stream = std::move(priv->stream);
    priv->stream.reset();
  }
  if (server && stream) {
    GST_INFO_OBJECT(sink, "unpublishing %s after %" G_GUINT64_FORMAT " messages", priv->key.c_str(), priv->messages);
    server->registry().unpublish(stream, &priv->publisher);
  }
}

static gboolean gst_grtmp_server_sink_start(GstBaseSink* bsink) {
  auto* sink = GST_GRTMP_SERVER_SINK(bsink);
  ServerSinkPrivate* priv = sink->priv;
  grtmp::gst::ServerRequest request;
  std::string key;
  {
    std::lock_guard lock(priv->settings_mutex);
    request.config = priv->settings.config;
    request.config.host = priv->settings.address;
    request.config.port = uint16_t(priv->settings.port);
    request.tls = priv->settings.tls;
    key = priv->settings.stream_key;
  }
  const grtmp::ServerConfig& config = request.config;
  request.writing = true;
  if (!valid_key(key)) {
    GST_ELEMENT_ERROR(sink, RESOURCE, SETTINGS, ("stream-key must be \"app/name\" (got \"%s\")", key.c_str()),
                      (nullptr));
    return FALSE;
  }
  GError* err = nullptr;
  auto server = grtmp::gst::acquire_server(GST_ELEMENT(sink), request);
  if (!server) return FALSE;
  priv->current_port = server->port();
  priv->current_tls_port = server->tls_port();
  priv->publisher.evicted = false;
  auto stream = server->registry().publish(key, "", &priv->publisher, &err);
  if (!stream) {
    GRTMP_POST_RESOURCE_ERROR(sink, grtmp::gst::resource_error_for(err, true),
                              "Could not publish " + key + ": " + grtmp::gst::error_text(err), "");
    g_clear_error(&err);
    return FALSE;
  }
  GST_INFO_OBJECT(sink, "publishing %s on %s:%u (RTMPS port %u)", key.c_str(), config.host.c_str(), server->port(),
                  server->tls_port());
  {
    std::lock_guard lock(priv->state_mutex);
    priv->server = server;
    priv->stream = stream;
    priv->key = key;
  }
  priv->depay.reset();
  priv->sent_metadata = priv->sent_video_header = priv->sent_audio_header = grtmp::Bytes();
  priv->last_frame_ts = 0;
  priv->messages = 0;
  g_object_notify_by_pspec(G_OBJECT(sink), properties[PROP_CURRENT_PORT]);
  g_object_notify_by_pspec(G_OBJECT(sink), properties[prop_tls(TlsProp::CurrentPort)]);
  return TRUE;
}

static gboolean gst_grtmp_server_sink_stop(GstBaseSink* bsink) {
  auto* sink = GST_GRTMP_SERVER_SINK(bsink);
  unpublish(sink);
  std::shared_ptr<grtmp::Server> server;
  {
    std::lock_guard lock(sink->priv->state_mutex);
    server = std::move(sink->priv->server);
    sink->priv->server.reset();
  }
  server.reset();  // the last reference stops it
  sink->priv->current_port = 0;
  sink->priv->current_tls_port = 0;
  return TRUE;
}

static GstFlowReturn push_messages(GstGrtmpServerSink* sink, std::vector<grtmp::Message>& msgs) {
  ServerSinkPrivate* priv = sink->priv;
  if (priv->publisher.evicted) {
    std::string reason;
    {
      std::lock_guard lock(priv->publisher.mutex);
      reason = priv->publisher.reason;
    }
    GST_ELEMENT_ERROR(sink, RESOURCE, WRITE, ("Stream %s stopped: %s", priv->key.c_str(), reason.c_str()), (nullptr));
    return GST_FLOW_ERROR;
  }
  std::shared_ptr<grtmp::Stream> stream;
  {
    std::lock_guard lock(priv->state_mutex);
    stream = priv->stream;
  }
  if (!stream) return GST_FLOW_EOS;  // unpublished at EOS
  for (auto& m : msgs) {
    if (m.type == grtmp::kMsgDataAmf0 && !grtmp::gst::is_on_metadata(m.payload)) {
      // Players take every data message of the stream for metadata.
      GST_DEBUG_OBJECT(sink, "skipping a script tag that is not onMetaData");
      continue;
    }
    // Metadata updates (flvmux repeats onMetaData with new bitrates) go out
    // at timestamp 0: ffmpeg-based players (and rtmpdump's files read by
    // ffmpeg) take a script tag at any other timestamp for a subtitle stream.
    if (m.type == grtmp::kMsgDataAmf0) m.timestamp = 0;
    // A caps change repeats every header of the new streamheader, and a
    // changed one also comes in-band (flvmux also repeats an identical
    // onMetaData): each header goes out only when it changed.
    const uint8_t flags = grtmp::classify_message(m);
    const bool header = flags & grtmp::kFlagSequenceHeader;
    if (m.type == grtmp::kMsgDataAmf0 || header) {
      grtmp::Bytes& sent = m.type == grtmp::kMsgDataAmf0 ? priv->sent_metadata
                           : m.type == grtmp::kMsgVideo  ? priv->sent_video_header
                                                         : priv->sent_audio_header;
      if (sent && grtmp::gst::same_bytes(sent, m.payload)) {
        GST_DEBUG_OBJECT(sink, "skipping an unchanged %s", header ? "sequence header" : "onMetaData");
        continue;
      }
      sent = m.payload;
      if (header && m.timestamp < priv->last_frame_ts) m.timestamp = priv->last_frame_ts;
    } else if (flags & (grtmp::kFlagAudio | grtmp::kFlagVideo)) {
      priv->last_frame_ts = m.timestamp;
    }
    m.stream_id = 1;
    stream->push(std::move(m));
    priv->messages++;
  }
  msgs.clear();
  return GST_FLOW_OK;
}

static gboolean gst_grtmp_server_sink_set_caps(GstBaseSink* bsink, GstCaps* caps) {
  auto* sink = GST_GRTMP_SERVER_SINK(bsink);
  std::vector<grtmp::Message> msgs;
  GError* err = nullptr;
  if (!sink->priv->depay.set_caps(caps, msgs, &err)) {
    GST_ELEMENT_ERROR(sink, STREAM, DECODE, ("Invalid FLV streamheader in caps"), ("%s", err->message));
    g_clear_error(&err);
    return FALSE;
  }
  GST_DEBUG_OBJECT(sink, "caps %" GST_PTR_FORMAT ": %zu header messages", caps, msgs.size());
  return push_messages(sink, msgs) == GST_FLOW_OK;
}

static GstFlowReturn gst_grtmp_server_sink_render(GstBaseSink* bsink, GstBuffer* buf) {
  auto* sink = GST_GRTMP_SERVER_SINK(bsink);
  std::vector<grtmp::Message> msgs;
  GError* err = nullptr;
  if (!sink->priv->depay.push(buf, msgs, &err)) {
    GST_ELEMENT_ERROR(sink, STREAM, DECODE, ("Input is not valid FLV"), ("%s", err->message));
    g_clear_error(&err);
    return GST_FLOW_ERROR;
  }
  return push_messages(sink, msgs);
}

static gboolean gst_grtmp_server_sink_event(GstBaseSink* bsink, GstEvent* event) {
  auto* sink = GST_GRTMP_SERVER_SINK(bsink);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    // Players see the end of the stream (Play.UnpublishNotify / Stop).
    unpublish(sink);
  }
  return GST_BASE_SINK_CLASS(gst_grtmp_server_sink_parent_class)->event(bsink, event);
}

static void gst_grtmp_server_sink_set_property(GObject* object, guint prop_id, const GValue* value,
                                               GParamSpec* pspec) {
  auto* sink = GST_GRTMP_SERVER_SINK(object);
  std::lock_guard lock(sink->priv->settings_mutex);
  Settings& s = sink->priv->settings;
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
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_grtmp_server_sink_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  auto* sink = GST_GRTMP_SERVER_SINK(object);
  if (prop_id == PROP_CURRENT_PORT) {
    g_value_set_uint(value, sink->priv->current_port.load());
    return;
  }
  if (prop_id == prop_tls(TlsProp::CurrentPort)) {
    g_value_set_uint(value, sink->priv->current_tls_port.load());
    return;
  }
  if (prop_id == PROP_STATS) {
    std::shared_ptr<grtmp::Server> server;
    {
      std::lock_guard lock(sink->priv->state_mutex);
      server = sink->priv->server;
    }
    g_value_take_boxed(value, grtmp::gst::server_stats_structure(server));
    return;
  }
  std::lock_guard lock(sink->priv->settings_mutex);
  const Settings& s = sink->priv->settings;
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
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_grtmp_server_sink_init(GstGrtmpServerSink* sink) {
  sink->priv = new ServerSinkPrivate();
  // Publishing must not wait for preroll: players can join any time.
  gst_base_sink_set_async_enabled(GST_BASE_SINK(sink), FALSE);
}

static void gst_grtmp_server_sink_finalize(GObject* object) {
  auto* sink = GST_GRTMP_SERVER_SINK(object);
  delete sink->priv;
  sink->priv = nullptr;
  G_OBJECT_CLASS(gst_grtmp_server_sink_parent_class)->finalize(object);
}

static void gst_grtmp_server_sink_class_init(GstGrtmpServerSinkClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSinkClass* basesink_class = GST_BASE_SINK_CLASS(klass);
  gobject_class->set_property = gst_grtmp_server_sink_set_property;
  gobject_class->get_property = gst_grtmp_server_sink_get_property;
  gobject_class->finalize = gst_grtmp_server_sink_finalize;
  basesink_class->start = gst_grtmp_server_sink_start;
  basesink_class->stop = gst_grtmp_server_sink_stop;
  basesink_class->set_caps = gst_grtmp_server_sink_set_caps;
  basesink_class->render = gst_grtmp_server_sink_render;
  basesink_class->event = gst_grtmp_server_sink_event;

  const grtmp::ServerConfig defaults;
  const auto rw = (GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto ro = (GParamFlags)(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_ADDRESS] = g_param_spec_string("address", "Address", "Address to listen on", kDefaultAddress, rw);
  properties[PROP_PORT] = g_param_spec_uint("port", "Port", "Port to listen on (0 = a free ephemeral port)", 0,
                                            65535, kDefaultPort, rw);
  properties[PROP_CURRENT_PORT] = g_param_spec_uint(
      "current-port", "Current port", "The port listened on (set when the server started; 0 before)", 0, 65535, 0, ro);
  properties[PROP_STREAM_KEY] = g_param_spec_string(
      "stream-key", "Stream key", "Stream to publish as (\"app/name\"; required)", "", rw);
  properties[PROP_CHUNK_SIZE] = g_param_spec_uint("chunk-size", "Chunk size", "Chunk size the server announces",
                                                  128, 65536, defaults.chunk_size, rw);
  properties[PROP_GOP_CACHE] = g_param_spec_boolean("gop-cache", "GOP cache",
                                                    "Keep the last GOP so players start at once", defaults.gop_cache, rw);
  properties[PROP_STATS] = g_param_spec_boxed(
      "stats", "Statistics",
      "Server statistics: connections, publishers, players, bytes-in, bytes-out, streams", GST_TYPE_STRUCTURE, ro);
  for (guint i = 0; i < grtmp::gst::kTlsPropCount; i++)
    properties[PROP_TLS_FIRST + i] = grtmp::gst::tls_param_spec(TlsProp(i));
  g_object_class_install_properties(gobject_class, N_PROPS, properties);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_set_static_metadata(element_class, "RTMP server sink", "Sink/Network",
                                        "Serves an FLV stream to RTMP players (an RTMP server)", "grtmp project");
}
