/**
 * SECTION:element-rtmpclientsink
 * @title: rtmpclientsink
 *
 * Publishes a `video/x-flv` stream (flvmux streamable=true, rtmpserversrc)
 * to an RTMP server. The location is rtmp[s]://host[:port]/app/stream[?query]
 * or the #host, #port, #application and #stream properties.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! flvmux streamable=true ! \
 *     rtmpclientsink location=rtmp://127.0.0.1/live/test
 * ]|
 */
#include "rtmpclientsink.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "elementutil.h"
#include "flvframing.h"
#include "gstlog.h"
#include "grtmp/client.h"
#include "grtmp/error.h"
#include "grtmp/registry.h"
#include "grtmp/url.h"

#define GST_CAT_DEFAULT grtmp_clientsink_debug

namespace {

constexpr guint kDefaultTimeout = 10;  // seconds
constexpr guint kDefaultChunkSize = 4096;
constexpr guint kDefaultReconnectInterval = 1000;  // ms

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_HOST,
  PROP_PORT,
  PROP_APPLICATION,
  PROP_STREAM,
  PROP_TIMEOUT,
  PROP_CHUNK_SIZE,
  PROP_RECONNECT,
  PROP_RECONNECT_INTERVAL,
  PROP_TLS_VALIDATION_FLAGS,
  PROP_STATS,
  N_PROPS
};
GParamSpec* properties[N_PROPS];

GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-flv"));

struct Settings {
  grtmp::Url url;
  guint timeout = kDefaultTimeout;
  guint chunk_size = kDefaultChunkSize;
  bool reconnect = false;
  guint reconnect_interval = kDefaultReconnectInterval;
  GTlsCertificateFlags tls_validation_flags = G_TLS_CERTIFICATE_VALIDATE_ALL;
  Settings() { url.scheme = "rtmp"; }
};

std::string url_string(const grtmp::Url& u) { return u.host.empty() ? std::string() : u.to_string(); }

// Output timestamps: the first frame goes out at 0; 32-bit wrap-aware.
// Metadata and sequence headers go out at the current output time: those
// of a mid-stream caps change carry timestamp 0 in the streamheader.
struct Rebaser {
  grtmp::gst::TimestampExtender ext;
  bool based = false;
  int64_t base = 0;
  uint32_t last = 0;
  uint32_t map(const grtmp::Message& m, uint8_t flags) {
    const bool frame = (flags & (grtmp::kFlagAudio | grtmp::kFlagVideo)) && !(flags & grtmp::kFlagSequenceHeader);
    if (!frame) return last;
    int64_t in = ext.extend(m.timestamp);
    if (!based) {
      base = in;
      based = true;
    }
    int64_t out = in - base;
    if (out < 0) out = 0;
    last = uint32_t(out);  // wraps with the 32-bit field, as RTMP does
    return last;
  }
  void reset() { *this = Rebaser(); }
};

}  // namespace

struct ClientSinkPrivate {
  std::mutex settings_mutex;
  Settings settings;

  std::mutex cancel_mutex;
  GCancellable* cancellable = nullptr;

  // Streaming thread.
  std::unique_ptr<grtmp::Client> client;
  grtmp::Url active_url;
  grtmp::gst::FlvDepacketizer depay;
  std::vector<grtmp::Message> pending;  // from caps, before the first buffer
  grtmp::Message metadata, video_header, audio_header;  // sent again after a reconnect
  Rebaser rebaser;
  bool need_keyframe = true;
  bool eos = false;
  std::atomic<uint64_t> messages_sent{0};  // read by the stats property
  std::atomic<uint64_t> reconnects{0};
  uint64_t bytes_sent_closed = 0;  // by clients already closed
};

struct _GstGrtmpClientSink {
  GstBaseSink parent;
  ClientSinkPrivate* priv;
};

static void uri_handler_init(gpointer g_iface, gpointer iface_data);

G_DEFINE_TYPE_WITH_CODE(GstGrtmpClientSink, gst_grtmp_client_sink, GST_TYPE_BASE_SINK,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_URI_HANDLER, uri_handler_init))
// MARGINAL: playbin/uridecodebin/encodebin keep picking rtmp2sink for rtmp://.
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE(rtmpclientsink, "rtmpclientsink", GST_RANK_MARGINAL,
                                      GST_TYPE_GRTMP_CLIENT_SINK, grtmp::gst::log_init());

static GCancellable* get_cancellable(GstGrtmpClientSink* sink) {
  std::lock_guard lock(sink->priv->cancel_mutex);
  return sink->priv->cancellable ? G_CANCELLABLE(g_object_ref(sink->priv->cancellable)) : nullptr;
}

static void close_client(GstGrtmpClientSink* sink) {
  ClientSinkPrivate* priv = sink->priv;
  if (!priv->client) return;
  priv->bytes_sent_closed += priv->client->bytes_sent();
  priv->client->close();
  priv->client.reset();
}

// Sleeps `ms` unless cancelled; false when cancelled.
static bool wait_interval(GCancellable* c, guint ms) {
  gint64 end = g_get_monotonic_time() + gint64(ms) * 1000;
  while (g_get_monotonic_time() < end) {
    if (g_cancellable_is_cancelled(c)) return false;
    g_usleep(std::min<gint64>(20000, end - g_get_monotonic_time() > 0 ? end - g_get_monotonic_time() : 0));
  }
  return !g_cancellable_is_cancelled(c);
}

// The URL in messages has its query (tokens) redacted. A certificate that
// does not validate names the flags used (the library names the cause).
static void post_error(GstGrtmpClientSink* sink, const grtmp::Url& url, const GError* err, const char* what,
                       GTlsCertificateFlags validation_flags) {
  std::string debug = std::string("domain ") + (err ? g_quark_to_string(err->domain) : "?") + ", code " +
                      std::to_string(err ? err->code : -1);
  if (url.tls()) debug += ", tls-validation-flags=" + grtmp::gst::tls_flags_text(validation_flags);
  GRTMP_POST_RESOURCE_ERROR(
      sink, grtmp::gst::resource_error_for(err, true),
      std::string("Could not ") + what + " " + grtmp::gst::redacted_url(url) + ": " + grtmp::gst::error_text(err),
      debug);
}

static bool send_one(GstGrtmpClientSink* sink, const grtmp::Message& m, GCancellable* c, GError** err) {
  ClientSinkPrivate* priv = sink->priv;
  if (!priv->client->send(m, c, err)) return false;
  priv->messages_sent++;
  return true;
}

// Connects and publishes; after a reconnect, repeats metadata and sequence
// headers. Returns GST_FLOW_OK, GST_FLOW_FLUSHING (cancelled) or
// GST_FLOW_ERROR (error posted).
static GstFlowReturn ensure_connected(GstGrtmpClientSink* sink, GCancellable* c) {
  ClientSinkPrivate* priv = sink->priv;
  if (priv->client) return GST_FLOW_OK;
  Settings s;
  {
    std::lock_guard lock(priv->settings_mutex);
    s = priv->settings;
  }
  for (;;) {
    grtmp::ClientOptions opts;
    opts.timeout_ms = s.timeout * 1000;
    opts.chunk_size = s.chunk_size;
    opts.tls_validation_flags = s.tls_validation_flags;
    auto client = std::make_unique<grtmp::Client>(opts);
    GError* err = nullptr;
    const char* what = "connect to";
    bool ok = client->connect(s.url, c, &err);
    if (ok) {
      what = "publish to";
      ok = client->publish(c, &err);
    }
    if (ok) {
      priv->client = std::move(client);
      priv->active_url = s.url;
      GST_INFO_OBJECT(sink, "publishing to %s", grtmp::gst::redacted_url(s.url).c_str());
      // Headers first, at the current output time (repeated after a reconnect).
      for (grtmp::Message* h : {&priv->metadata, &priv->video_header, &priv->audio_header}) {
        if (!h->payload) continue;
        grtmp::Message m = *h;
        m.timestamp = priv->rebaser.last;
        if (!send_one(sink, m, c, &err)) {
          ok = false;
          break;
        }
      }
      if (ok) {
        priv->need_keyframe = true;
        return GST_FLOW_OK;
      }
      close_client(sink);
    }
    if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED) || g_cancellable_is_cancelled(c)) {
      g_clear_error(&err);
      return GST_FLOW_FLUSHING;
    }
    if (!s.reconnect) {
      post_error(sink, s.url, err, what, s.tls_validation_flags);
      g_clear_error(&err);
      return GST_FLOW_ERROR;
    }
    GST_ELEMENT_WARNING(sink, RESOURCE, OPEN_WRITE,
                        ("Could not %s %s: %s; retrying in %u ms", what, grtmp::gst::redacted_url(s.url).c_str(),
                         grtmp::gst::error_text(err).c_str(), s.reconnect_interval),
                        (nullptr));
    g_clear_error(&err);
    priv->reconnects++;
    if (!wait_interval(c, s.reconnect_interval)) return GST_FLOW_FLUSHING;
  }
}

static GstFlowReturn send_messages(GstGrtmpClientSink* sink, std::vector<grtmp::Message>& msgs) {
  ClientSinkPrivate* priv = sink->priv;
  GCancellable* c = get_cancellable(sink);
  GstFlowReturn ret = GST_FLOW_OK;
  for (auto& in : msgs) {
    uint8_t flags = grtmp::classify_message(in);
    grtmp::Message m = in;
    m.timestamp = priv->rebaser.map(in, flags);
    const bool header = flags & grtmp::kFlagSequenceHeader;
    const bool is_meta = m.type == grtmp::kMsgDataAmf0 && grtmp::gst::is_on_metadata(m.payload);
    if (is_meta || header) {
      // A caps change repeats every header of the new streamheader, and a
      // changed one also comes in-band: send each header only when it changed.
      const grtmp::Message& sent = is_meta                          ? priv->metadata
                                   : m.type == grtmp::kMsgVideo ? priv->video_header
                                                                : priv->audio_header;
      if (sent.payload && grtmp::gst::same_bytes(sent.payload, m.payload)) {
        GST_DEBUG_OBJECT(sink, "skipping an unchanged %s", is_meta ? "onMetaData" : "sequence header");
        continue;
      }
    }
    for (;;) {
      ret = ensure_connected(sink, c);
      if (ret != GST_FLOW_OK) goto done;
      if (m.type == grtmp::kMsgVideo && !header && priv->need_keyframe) {
        if (!(flags & grtmp::kFlagKeyframe)) break;  // skip until a decodable frame
        priv->need_keyframe = false;
      }
      GError* err = nullptr;
      if (send_one(sink, m, c, &err)) break;
      if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED) || g_cancellable_is_cancelled(c)) {
        g_clear_error(&err);
        ret = GST_FLOW_FLUSHING;
        goto done;
      }
      bool reconnect;
      guint interval;
      GTlsCertificateFlags flags;
      {
        std::lock_guard lock(priv->settings_mutex);
        reconnect = priv->settings.reconnect;
        interval = priv->settings.reconnect_interval;
        flags = priv->settings.tls_validation_flags;
      }
      close_client(sink);
      if (!reconnect) {
        post_error(sink, priv->active_url, err, "publish to", flags);
        g_clear_error(&err);
        ret = GST_FLOW_ERROR;
        goto done;
      }
      GST_ELEMENT_WARNING(sink, RESOURCE, WRITE,
                          ("Connection to %s lost: %s; reconnecting", grtmp::gst::redacted_url(priv->active_url).c_str(),
                           grtmp::gst::error_text(err).c_str()),
                          (nullptr));
      g_clear_error(&err);
      priv->reconnects++;
      if (!wait_interval(c, interval)) {
        ret = GST_FLOW_FLUSHING;
        goto done;
      }
    }
    if (is_meta) priv->metadata = m;
    else if (header && m.type == grtmp::kMsgVideo) priv->video_header = m;
    else if (header && m.type == grtmp::kMsgAudio) priv->audio_header = m;
  }
done:
  msgs.clear();
  if (c) g_object_unref(c);
  return ret;
}

// ---------------------------------------------------------------- GstBaseSink

static gboolean gst_grtmp_client_sink_start(GstBaseSink* bsink) {
  auto* sink = GST_GRTMP_CLIENT_SINK(bsink);
  ClientSinkPrivate* priv = sink->priv;
  grtmp::Url url;
  {
    std::lock_guard lock(priv->settings_mutex);
    url = priv->settings.url;
  }
  if (url.host.empty() || url.app.empty() || url.stream.empty()) {
    GST_ELEMENT_ERROR(sink, RESOURCE, NOT_FOUND,
                      ("No RTMP location: set location=rtmp://host[:port]/app/stream (got \"%s\")",
                       grtmp::gst::redacted_url(url).c_str()),
                      (nullptr));
    return FALSE;
  }
  {
    std::lock_guard lock(priv->cancel_mutex);
    if (priv->cancellable) g_object_unref(priv->cancellable);
    priv->cancellable = g_cancellable_new();
  }
  priv->depay.reset();
  priv->pending.clear();
  priv->metadata = priv->video_header = priv->audio_header = grtmp::Message();
  priv->rebaser.reset();
  priv->need_keyframe = true;
  priv->eos = false;
  priv->messages_sent = 0;
  priv->reconnects = 0;
  priv->bytes_sent_closed = 0;
  return TRUE;
}

static gboolean gst_grtmp_client_sink_stop(GstBaseSink* bsink) {
  auto* sink = GST_GRTMP_CLIENT_SINK(bsink);
  close_client(sink);
  std::lock_guard lock(sink->priv->cancel_mutex);
  g_clear_object(&sink->priv->cancellable);
  return TRUE;
}

static gboolean gst_grtmp_client_sink_unlock(GstBaseSink* bsink) {
  auto* sink = GST_GRTMP_CLIENT_SINK(bsink);
  std::lock_guard lock(sink->priv->cancel_mutex);
  if (sink->priv->cancellable) g_cancellable_cancel(sink->priv->cancellable);
  return TRUE;
}

static gboolean gst_grtmp_client_sink_unlock_stop(GstBaseSink* bsink) {
  auto* sink = GST_GRTMP_CLIENT_SINK(bsink);
  std::lock_guard lock(sink->priv->cancel_mutex);
  if (sink->priv->cancellable && g_cancellable_is_cancelled(sink->priv->cancellable)) {
    g_object_unref(sink->priv->cancellable);
    sink->priv->cancellable = g_cancellable_new();
    // A cancelled client may have been mid-write: start a new connection.
    sink->priv->need_keyframe = true;
  }
  return TRUE;
}

static gboolean gst_grtmp_client_sink_set_caps(GstBaseSink* bsink, GstCaps* caps) {
  auto* sink = GST_GRTMP_CLIENT_SINK(bsink);
  ClientSinkPrivate* priv = sink->priv;
  GError* err = nullptr;
  std::vector<grtmp::Message> msgs;
  if (!priv->depay.set_caps(caps, msgs, &err)) {
    GST_ELEMENT_ERROR(sink, STREAM, DECODE, ("Invalid FLV streamheader in caps"), ("%s", err->message));
    g_clear_error(&err);
    return FALSE;
  }
  GST_DEBUG_OBJECT(sink, "caps %" GST_PTR_FORMAT ": %zu header messages", caps, msgs.size());
  // Sent with the first buffer: connecting here would block negotiation.
  for (auto& m : msgs) priv->pending.push_back(std::move(m));
  return TRUE;
}

static GstFlowReturn gst_grtmp_client_sink_render(GstBaseSink* bsink, GstBuffer* buf) {
  auto* sink = GST_GRTMP_CLIENT_SINK(bsink);
  ClientSinkPrivate* priv = sink->priv;
  std::vector<grtmp::Message> msgs = std::move(priv->pending);
  priv->pending.clear();
  GError* err = nullptr;
  if (!priv->depay.push(buf, msgs, &err)) {
    GST_ELEMENT_ERROR(sink, STREAM, DECODE, ("Input is not valid FLV"), ("%s", err->message));
    g_clear_error(&err);
    return GST_FLOW_ERROR;
  }
  if (msgs.empty()) return GST_FLOW_OK;
  return send_messages(sink, msgs);
}

static gboolean gst_grtmp_client_sink_event(GstBaseSink* bsink, GstEvent* event) {
  auto* sink = GST_GRTMP_CLIENT_SINK(bsink);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && sink->priv->client) {
    // FCUnpublish + deleteStream: the server ends the stream for its players.
    GST_INFO_OBJECT(sink, "EOS: closing the publishing connection after %" G_GUINT64_FORMAT " messages",
                    guint64(sink->priv->messages_sent.load()));
    close_client(sink);
  }
  return GST_BASE_SINK_CLASS(gst_grtmp_client_sink_parent_class)->event(bsink, event);
}

// ---------------------------------------------------------------- properties / URI

static bool set_location(GstGrtmpClientSink* sink, const gchar* uri, GError** error) {
  grtmp::Url url;
  if (!uri || !*uri) {
    url.scheme = "rtmp";
  } else if (!grtmp::parse_url(uri, url, error)) {
    return false;
  }
  std::lock_guard lock(sink->priv->settings_mutex);
  sink->priv->settings.url = url;
  return true;
}

static void gst_grtmp_client_sink_set_property(GObject* object, guint prop_id, const GValue* value,
                                               GParamSpec* pspec) {
  auto* sink = GST_GRTMP_CLIENT_SINK(object);
  if (prop_id == PROP_LOCATION) {
    GError* err = nullptr;
    if (!set_location(sink, g_value_get_string(value), &err)) {
      GST_WARNING_OBJECT(sink, "invalid location: %s", grtmp::gst::redact_queries(err->message).c_str());
      g_clear_error(&err);
    }
    return;
  }
  std::lock_guard lock(sink->priv->settings_mutex);
  Settings& s = sink->priv->settings;
  const gchar* str = G_VALUE_HOLDS_STRING(value) ? g_value_get_string(value) : nullptr;
  switch (prop_id) {
    case PROP_HOST: s.url.host = str ? str : ""; break;
    case PROP_PORT: s.url.port = uint16_t(g_value_get_uint(value)); break;
    case PROP_APPLICATION: s.url.app = str ? str : ""; break;
    case PROP_STREAM: {
      // "name?query" like in a URL.
      std::string v = str ? str : "";
      auto q = v.find('?');
      s.url.stream = v.substr(0, q);
      s.url.query = q == std::string::npos ? "" : v.substr(q + 1);
      break;
    }
    case PROP_TIMEOUT: s.timeout = g_value_get_uint(value); break;
    case PROP_CHUNK_SIZE: s.chunk_size = g_value_get_uint(value); break;
    case PROP_RECONNECT: s.reconnect = g_value_get_boolean(value); break;
    case PROP_RECONNECT_INTERVAL: s.reconnect_interval = g_value_get_uint(value); break;
    case PROP_TLS_VALIDATION_FLAGS: s.tls_validation_flags = GTlsCertificateFlags(g_value_get_flags(value)); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_grtmp_client_sink_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  auto* sink = GST_GRTMP_CLIENT_SINK(object);
  if (prop_id == PROP_STATS) {
    // Read from the application thread while streaming: counters only.
    ClientSinkPrivate* priv = sink->priv;
    g_value_take_boxed(value, gst_structure_new("grtmp-client-stats", "messages-sent", G_TYPE_UINT64,
                                                guint64(priv->messages_sent.load()), "reconnects", G_TYPE_UINT64,
                                                guint64(priv->reconnects.load()), nullptr));
    return;
  }
  std::lock_guard lock(sink->priv->settings_mutex);
  const Settings& s = sink->priv->settings;
  switch (prop_id) {
    case PROP_LOCATION: g_value_set_string(value, url_string(s.url).c_str()); break;
    case PROP_HOST: g_value_set_string(value, s.url.host.c_str()); break;
    case PROP_PORT: g_value_set_uint(value, s.url.port); break;
    case PROP_APPLICATION: g_value_set_string(value, s.url.app.c_str()); break;
    case PROP_STREAM: g_value_set_string(value, s.url.stream_with_query().c_str()); break;
    case PROP_TIMEOUT: g_value_set_uint(value, s.timeout); break;
    case PROP_CHUNK_SIZE: g_value_set_uint(value, s.chunk_size); break;
    case PROP_RECONNECT: g_value_set_boolean(value, s.reconnect); break;
    case PROP_RECONNECT_INTERVAL: g_value_set_uint(value, s.reconnect_interval); break;
    case PROP_TLS_VALIDATION_FLAGS: g_value_set_flags(value, s.tls_validation_flags); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static GstURIType uri_get_type(GType) { return GST_URI_SINK; }

static const gchar* const* uri_get_protocols(GType) {
  static const gchar* const protocols[] = {"rtmp", "rtmps", nullptr};
  return protocols;
}

static gchar* uri_get_uri(GstURIHandler* handler) {
  auto* sink = GST_GRTMP_CLIENT_SINK(handler);
  std::lock_guard lock(sink->priv->settings_mutex);
  std::string s = url_string(sink->priv->settings.url);
  return s.empty() ? nullptr : g_strdup(s.c_str());
}

static gboolean uri_set_uri(GstURIHandler* handler, const gchar* uri, GError** error) {
  auto* sink = GST_GRTMP_CLIENT_SINK(handler);
  GError* err = nullptr;
  if (!set_location(sink, uri, &err)) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "%s", grtmp::gst::redact_queries(err->message).c_str());
    g_clear_error(&err);
    return FALSE;
  }
  g_object_notify_by_pspec(G_OBJECT(sink), properties[PROP_LOCATION]);
  return TRUE;
}

static void uri_handler_init(gpointer g_iface, gpointer) {
  auto* iface = static_cast<GstURIHandlerInterface*>(g_iface);
  iface->get_type = uri_get_type;
  iface->get_protocols = uri_get_protocols;
  iface->get_uri = uri_get_uri;
  iface->set_uri = uri_set_uri;
}

// ---------------------------------------------------------------- GObject

static void gst_grtmp_client_sink_init(GstGrtmpClientSink* sink) { sink->priv = new ClientSinkPrivate(); }

static void gst_grtmp_client_sink_finalize(GObject* object) {
  auto* sink = GST_GRTMP_CLIENT_SINK(object);
  if (sink->priv->cancellable) g_object_unref(sink->priv->cancellable);
  delete sink->priv;
  sink->priv = nullptr;
  G_OBJECT_CLASS(gst_grtmp_client_sink_parent_class)->finalize(object);
}

static void gst_grtmp_client_sink_class_init(GstGrtmpClientSinkClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSinkClass* basesink_class = GST_BASE_SINK_CLASS(klass);
  gobject_class->set_property = gst_grtmp_client_sink_set_property;
  gobject_class->get_property = gst_grtmp_client_sink_get_property;
  gobject_class->finalize = gst_grtmp_client_sink_finalize;
  basesink_class->start = gst_grtmp_client_sink_start;
  basesink_class->stop = gst_grtmp_client_sink_stop;
  basesink_class->unlock = gst_grtmp_client_sink_unlock;
  basesink_class->unlock_stop = gst_grtmp_client_sink_unlock_stop;
  basesink_class->set_caps = gst_grtmp_client_sink_set_caps;
  basesink_class->render = gst_grtmp_client_sink_render;
  basesink_class->event = gst_grtmp_client_sink_event;

  const auto rw = (GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_LOCATION] = g_param_spec_string(
      "location", "Location", "RTMP URL to publish to: rtmp[s]://host[:port]/app/stream[?query]", nullptr, rw);
  properties[PROP_HOST] = g_param_spec_string("host", "Host", "Server host name or address", nullptr, rw);
  properties[PROP_PORT] = g_param_spec_uint("port", "Port", "Server port", 1, 65535, 1935, rw);
  properties[PROP_APPLICATION] = g_param_spec_string("application", "Application", "RTMP application", nullptr, rw);
  properties[PROP_STREAM] = g_param_spec_string("stream", "Stream", "Stream name (may carry ?query)", nullptr, rw);
  properties[PROP_TIMEOUT] = g_param_spec_uint(
      "timeout", "Timeout", "Seconds to wait for the server (connect, each answer, each blocked write; 0 = forever)",
      0, 3600, kDefaultTimeout, rw);
  properties[PROP_CHUNK_SIZE] = g_param_spec_uint("chunk-size", "Chunk size", "Outgoing chunk size", 128, 65536,
                                                  kDefaultChunkSize, rw);
  properties[PROP_RECONNECT] = g_param_spec_boolean(
      "reconnect", "Reconnect", "On a lost or refused connection, warn and retry instead of failing", FALSE,
      (GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  properties[PROP_RECONNECT_INTERVAL] =
      g_param_spec_uint("reconnect-interval", "Reconnect interval", "Milliseconds between connection attempts", 0,
                        600000, kDefaultReconnectInterval,
                        (GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  properties[PROP_TLS_VALIDATION_FLAGS] = g_param_spec_flags(
      "tls-validation-flags", "TLS validation flags",
      "rtmps://: the certificate checks that must pass (0 accepts any certificate: tests only)",
      G_TYPE_TLS_CERTIFICATE_FLAGS, G_TLS_CERTIFICATE_VALIDATE_ALL, rw);
  properties[PROP_STATS] = g_param_spec_boxed("stats", "Statistics", "messages-sent, reconnects", GST_TYPE_STRUCTURE,
                                              (GParamFlags)(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties(gobject_class, N_PROPS, properties);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_set_static_metadata(element_class, "RTMP client sink", "Sink/Network",
                                        "Publishes an FLV stream to an RTMP server", "grtmp project");
}
