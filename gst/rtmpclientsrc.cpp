/**
 * SECTION:element-rtmpclientsrc
 * @title: rtmpclientsrc
 *
 * Plays a stream from an RTMP server (ours, nginx-rtmp, any) and outputs
 * live `video/x-flv` like rtmpserversrc's pads: caps with a streamheader
 * once the sequence headers arrived, the same headers in-band, then one
 * FLV tag per buffer with running-time timestamps.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e rtmpclientsrc location=rtmp://127.0.0.1/live/test ! filesink location=out.flv
 * ]|
 */
#include "rtmpclientsrc.h"

#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "elementutil.h"
#include "flvframing.h"
#include "gstlog.h"
#include "grtmp/client.h"
#include "grtmp/command.h"
#include "grtmp/error.h"
#include "grtmp/registry.h"
#include "grtmp/url.h"

#define GST_CAT_DEFAULT grtmp_clientsrc_debug

using grtmp::gst::FlvPacketizer;

namespace {

constexpr guint kDefaultTimeout = 10;  // seconds

enum { PROP_0, PROP_LOCATION, PROP_TIMEOUT, PROP_TLS_VALIDATION_FLAGS, N_PROPS };
GParamSpec* properties[N_PROPS];

GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-flv"));

struct Settings {
  grtmp::Url url;
  guint timeout = kDefaultTimeout;
  GTlsCertificateFlags tls_validation_flags = G_TLS_CERTIFICATE_VALIDATE_ALL;
  Settings() { url.scheme = "rtmp"; }
};

std::string url_string(const grtmp::Url& u) { return u.host.empty() ? std::string() : u.to_string(); }

}  // namespace

struct ClientSrcPrivate {
  std::mutex settings_mutex;
  Settings settings;

  std::mutex cancel_mutex;
  GCancellable* cancellable = nullptr;

  // Streaming thread.
  std::unique_ptr<grtmp::Client> client;
  grtmp::Url active_url;
  std::unique_ptr<FlvPacketizer> packetizer;  // per run (start)
  std::deque<FlvPacketizer::Item> queued;  // caps changes and buffers, in order
  std::string last_status;
  bool eos = false;
  void clear_queue() {
    for (auto& i : queued) {
      if (i.caps) gst_caps_unref(i.caps);
      if (i.buffer) gst_buffer_unref(i.buffer);
    }
    queued.clear();
  }
};

struct _GstGrtmpClientSrc {
  GstPushSrc parent;
  ClientSrcPrivate* priv;
};

static void uri_handler_init(gpointer g_iface, gpointer iface_data);

G_DEFINE_TYPE_WITH_CODE(GstGrtmpClientSrc, gst_grtmp_client_src, GST_TYPE_PUSH_SRC,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_URI_HANDLER, uri_handler_init))
// MARGINAL: playbin/uridecodebin keep picking rtmp2src for rtmp://.
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE(rtmpclientsrc, "rtmpclientsrc", GST_RANK_MARGINAL, GST_TYPE_GRTMP_CLIENT_SRC,
                                      grtmp::gst::log_init());

static GCancellable* get_cancellable(GstGrtmpClientSrc* src) {
  std::lock_guard lock(src->priv->cancel_mutex);
  return src->priv->cancellable ? G_CANCELLABLE(g_object_ref(src->priv->cancellable)) : nullptr;
}

// The URL in messages has its query (tokens) redacted. A certificate that
// does not validate names the flags used (the library names the cause).
static void post_error(GstGrtmpClientSrc* src, const grtmp::Url& url, const GError* err, const char* what) {
  std::string debug = std::string("domain ") + (err ? g_quark_to_string(err->domain) : "?") + ", code " +
                      std::to_string(err ? err->code : -1);
  if (url.tls()) {
    GTlsCertificateFlags flags;
    {
      std::lock_guard lock(src->priv->settings_mutex);
      flags = src->priv->settings.tls_validation_flags;
    }
    debug += ", tls-validation-flags=" + grtmp::gst::tls_flags_text(flags);
  }
  GRTMP_POST_RESOURCE_ERROR(
      src, grtmp::gst::resource_error_for(err, false),
      std::string("Could not ") + what + " " + grtmp::gst::redacted_url(url) + ": " + grtmp::gst::error_text(err),
      debug);
}

static bool cancelled(const GError* err, GCancellable* c) {
  return g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED) || (c && g_cancellable_is_cancelled(c));
}

static GstFlowReturn connect_and_play(GstGrtmpClientSrc* src, GCancellable* c) {
  ClientSrcPrivate* priv = src->priv;
  Settings s;
  {
    std::lock_guard lock(priv->settings_mutex);
    s = priv->settings;
  }
  grtmp::ClientOptions opts;
  opts.timeout_ms = s.timeout * 1000;
  opts.tls_validation_flags = s.tls_validation_flags;
  auto client = std::make_unique<grtmp::Client>(opts);
  GError* err = nullptr;
  const char* what = "connect to";
  bool ok = client->connect(s.url, c, &err);
  if (ok) {
    what = "play";
    ok = client->play(c, &err);
  }
  if (!ok) {
    GstFlowReturn ret = GST_FLOW_FLUSHING;
    if (!cancelled(err, c)) {
      post_error(src, s.url, err, what);
      ret = GST_FLOW_ERROR;
    }
    g_clear_error(&err);
    client->close();
    return ret;
  }
  GST_INFO_OBJECT(src, "playing %s", grtmp::gst::redacted_url(s.url).c_str());
  priv->client = std::move(client);
  priv->active_url = s.url;
  priv->last_status = priv->client->last_status();
  priv->packetizer->publish();
  return GST_FLOW_OK;
}

static void take_output(GstGrtmpClientSrc* src, FlvPacketizer::Output& out) {
  ClientSrcPrivate* priv = src->priv;
  for (auto& w : out.warnings)
    GST_ELEMENT_WARNING(src, STREAM, FORMAT, ("Stream %s: %s", grtmp::gst::redacted_url(priv->active_url).c_str(), w.c_str()),
                        (nullptr));
  out.warnings.clear();
  if (GST_CLOCK_TIME_IS_VALID(out.segment_base)) {
    // Stream time 0 (the first tag) plays at the running time it arrived.
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    segment.base = out.segment_base;
    gst_base_src_new_segment(GST_BASE_SRC(src), &segment);
  }
  for (auto& i : out.items) priv->queued.push_back(i);
  out.items.clear();
}

static GstFlowReturn gst_grtmp_client_src_create(GstPushSrc* psrc, GstBuffer** outbuf) {
  auto* src = GST_GRTMP_CLIENT_SRC(psrc);
  ClientSrcPrivate* priv = src->priv;
  GCancellable* c = get_cancellable(src);
  GstFlowReturn ret = GST_FLOW_OK;
  while (priv->queued.empty()) {
    if (priv->eos) {
      ret = GST_FLOW_EOS;
      break;
    }
    if (!priv->client) {
      ret = connect_and_play(src, c);
      if (ret != GST_FLOW_OK) break;
    }
    grtmp::Message m;
    GError* err = nullptr;
    FlvPacketizer::Output out;
    if (!priv->client->receive(m, c, &err)) {
      if (cancelled(err, c)) {
        g_clear_error(&err);
        ret = GST_FLOW_FLUSHING;
        break;
      }
      const std::string& st = priv->client->last_status();
      const bool unpublished = st == grtmp::status::kPlayUnpublishNotify || st == grtmp::status::kPlayStop ||
                               st == "StreamEOF" || st == "NetStream.Play.Complete";
      if (g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_CLOSED) ||
          (unpublished && g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_TIMEOUT))) {
        // Closed, or unpublished and not republished within the timeout.
        GST_INFO_OBJECT(src, "end of stream (status %s): EOS (%s)", st.c_str(), err->message);
        priv->packetizer->flush(out);
        take_output(src, out);
        priv->eos = true;
        g_clear_error(&err);
        continue;
      }
      post_error(src, priv->active_url, err, "play");
      g_clear_error(&err);
      ret = GST_FLOW_ERROR;
      break;
    }
    const std::string& status = priv->client->last_status();
    if (status != priv->last_status) {
      // A republish on the server: new timestamps, wait for a keyframe.
      if (status == grtmp::status::kPlayPublishNotify || status == grtmp::status::kPlayReset ||
          status == grtmp::status::kPlayStart) {
        GST_DEBUG_OBJECT(src, "status %s: new publish session", status.c_str());
        priv->packetizer->publish();
      }
      priv->last_status = status;
    }
    priv->packetizer->push(m, grtmp::classify_message(m), out);
    take_output(src, out);
  }
  if (c) g_object_unref(c);
  if (ret != GST_FLOW_OK) return ret;
  FlvPacketizer::Item item = priv->queued.front();
  priv->queued.pop_front();
  if (item.caps) {
    // Caps go out just before the buffers they describe.
    GST_DEBUG_OBJECT(src, "caps %" GST_PTR_FORMAT, item.caps);
    gst_base_src_set_caps(GST_BASE_SRC(src), item.caps);
    gst_caps_unref(item.caps);
    return gst_grtmp_client_src_create(psrc, outbuf);
  }
  *outbuf = item.buffer;
  return GST_FLOW_OK;
}

static gboolean gst_grtmp_client_src_start(GstBaseSrc* bsrc) {
  auto* src = GST_GRTMP_CLIENT_SRC(bsrc);
  ClientSrcPrivate* priv = src->priv;
  grtmp::Url url;
  {
    std::lock_guard lock(priv->settings_mutex);
    url = priv->settings.url;
  }
  if (url.host.empty() || url.app.empty() || url.stream.empty()) {
    GST_ELEMENT_ERROR(src, RESOURCE, NOT_FOUND,
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
  priv->eos = false;
  priv->clear_queue();
  priv->packetizer = std::make_unique<FlvPacketizer>([src] { return grtmp::gst::running_time_now(GST_ELEMENT(src)); });
  return TRUE;
}

static gboolean gst_grtmp_client_src_stop(GstBaseSrc* bsrc) {
  auto* src = GST_GRTMP_CLIENT_SRC(bsrc);
  ClientSrcPrivate* priv = src->priv;
  if (priv->client) {
    priv->client->close();
    priv->client.reset();
  }
  priv->clear_queue();
  priv->packetizer.reset();
  std::lock_guard lock(priv->cancel_mutex);
  g_clear_object(&priv->cancellable);
  return TRUE;
}

static gboolean gst_grtmp_client_src_unlock(GstBaseSrc* bsrc) {
  auto* src = GST_GRTMP_CLIENT_SRC(bsrc);
  std::lock_guard lock(src->priv->cancel_mutex);
  if (src->priv->cancellable) g_cancellable_cancel(src->priv->cancellable);
  return TRUE;
}

static gboolean gst_grtmp_client_src_unlock_stop(GstBaseSrc* bsrc) {
  auto* src = GST_GRTMP_CLIENT_SRC(bsrc);
  std::lock_guard lock(src->priv->cancel_mutex);
  if (src->priv->cancellable && g_cancellable_is_cancelled(src->priv->cancellable)) {
    g_object_unref(src->priv->cancellable);
    src->priv->cancellable = g_cancellable_new();
  }
  return TRUE;
}

// Caps come with the stream's headers (create()); nothing to agree on before.
static gboolean gst_grtmp_client_src_negotiate(GstBaseSrc*) { return TRUE; }

static gboolean gst_grtmp_client_src_query(GstBaseSrc* bsrc, GstQuery* query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    gst_query_set_latency(query, TRUE, 200 * GST_MSECOND, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS(gst_grtmp_client_src_parent_class)->query(bsrc, query);
}

// ---------------------------------------------------------------- properties / URI

static bool set_location(GstGrtmpClientSrc* src, const gchar* uri, GError** error) {
  grtmp::Url url;
  if (!uri || !*uri) {
    url.scheme = "rtmp";
  } else if (!grtmp::parse_url(uri, url, error)) {
    return false;
  }
  std::lock_guard lock(src->priv->settings_mutex);
  src->priv->settings.url = url;
  return true;
}

static void gst_grtmp_client_src_set_property(GObject* object, guint prop_id, const GValue* value,
                                              GParamSpec* pspec) {
  auto* src = GST_GRTMP_CLIENT_SRC(object);
  switch (prop_id) {
    case PROP_LOCATION: {
      GError* err = nullptr;
      if (!set_location(src, g_value_get_string(value), &err)) {
        GST_WARNING_OBJECT(src, "invalid location: %s", grtmp::gst::redact_queries(err->message).c_str());
        g_clear_error(&err);
      }
      break;
    }
    case PROP_TIMEOUT: {
      std::lock_guard lock(src->priv->settings_mutex);
      src->priv->settings.timeout = g_value_get_uint(value);
      break;
    }
    case PROP_TLS_VALIDATION_FLAGS: {
      std::lock_guard lock(src->priv->settings_mutex);
      src->priv->settings.tls_validation_flags = GTlsCertificateFlags(g_value_get_flags(value));
      break;
    }
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_grtmp_client_src_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  auto* src = GST_GRTMP_CLIENT_SRC(object);
  std::lock_guard lock(src->priv->settings_mutex);
  switch (prop_id) {
    case PROP_LOCATION: g_value_set_string(value, url_string(src->priv->settings.url).c_str()); break;
    case PROP_TIMEOUT: g_value_set_uint(value, src->priv->settings.timeout); break;
    case PROP_TLS_VALIDATION_FLAGS: g_value_set_flags(value, src->priv->settings.tls_validation_flags); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static GstURIType uri_get_type(GType) { return GST_URI_SRC; }

static const gchar* const* uri_get_protocols(GType) {
  static const gchar* const protocols[] = {"rtmp", "rtmps", nullptr};
  return protocols;
}

static gchar* uri_get_uri(GstURIHandler* handler) {
  auto* src = GST_GRTMP_CLIENT_SRC(handler);
  std::lock_guard lock(src->priv->settings_mutex);
  std::string s = url_string(src->priv->settings.url);
  return s.empty() ? nullptr : g_strdup(s.c_str());
}

static gboolean uri_set_uri(GstURIHandler* handler, const gchar* uri, GError** error) {
  auto* src = GST_GRTMP_CLIENT_SRC(handler);
  GError* err = nullptr;
  if (!set_location(src, uri, &err)) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "%s", grtmp::gst::redact_queries(err->message).c_str());
    g_clear_error(&err);
    return FALSE;
  }
  g_object_notify_by_pspec(G_OBJECT(src), properties[PROP_LOCATION]);
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

static void gst_grtmp_client_src_init(GstGrtmpClientSrc* src) {
  src->priv = new ClientSrcPrivate();
  gst_base_src_set_live(GST_BASE_SRC(src), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(src), GST_FORMAT_TIME);
}

static void gst_grtmp_client_src_finalize(GObject* object) {
  auto* src = GST_GRTMP_CLIENT_SRC(object);
  src->priv->clear_queue();
  if (src->priv->cancellable) g_object_unref(src->priv->cancellable);
  delete src->priv;
  src->priv = nullptr;
  G_OBJECT_CLASS(gst_grtmp_client_src_parent_class)->finalize(object);
}

static void gst_grtmp_client_src_class_init(GstGrtmpClientSrcClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSrcClass* basesrc_class = GST_BASE_SRC_CLASS(klass);
  GstPushSrcClass* pushsrc_class = GST_PUSH_SRC_CLASS(klass);
  gobject_class->set_property = gst_grtmp_client_src_set_property;
  gobject_class->get_property = gst_grtmp_client_src_get_property;
  gobject_class->finalize = gst_grtmp_client_src_finalize;
  basesrc_class->start = gst_grtmp_client_src_start;
  basesrc_class->stop = gst_grtmp_client_src_stop;
  basesrc_class->unlock = gst_grtmp_client_src_unlock;
  basesrc_class->unlock_stop = gst_grtmp_client_src_unlock_stop;
  basesrc_class->negotiate = gst_grtmp_client_src_negotiate;
  basesrc_class->query = gst_grtmp_client_src_query;
  pushsrc_class->create = gst_grtmp_client_src_create;

  const auto rw = (GParamFlags)(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_LOCATION] = g_param_spec_string(
      "location", "Location", "RTMP URL to play: rtmp[s]://host[:port]/app/stream[?query]", nullptr, rw);
  properties[PROP_TIMEOUT] = g_param_spec_uint(
      "timeout", "Timeout",
      "Seconds to wait for the server: connect, each answer, the longest silence while playing, and how long an "
      "unpublished stream may stay away before EOS (0 = forever)", 0,
      3600, kDefaultTimeout, rw);
  properties[PROP_TLS_VALIDATION_FLAGS] = g_param_spec_flags(
      "tls-validation-flags", "TLS validation flags",
      "rtmps://: the certificate checks that must pass (0 accepts any certificate: tests only)",
      G_TYPE_TLS_CERTIFICATE_FLAGS, G_TLS_CERTIFICATE_VALIDATE_ALL, rw);
  g_object_class_install_properties(gobject_class, N_PROPS, properties);

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(element_class, "RTMP client source", "Source/Network",
                                        "Plays a stream from an RTMP server as FLV", "grtmp project");
}
