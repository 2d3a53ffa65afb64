// republish: receive a stream on this machine's RTMP server and publish it
// to another RTMP server (a CDN ingest, nginx-rtmp, ...):
//
//   rtmpserversrc stream-key=live/in ! rtmpclientsink location=rtmp://other/app/name
//
// The FLV tags pass through untouched (no decoding). The program ends when
// the publisher leaves (EOS), or on error.
#include <gst/gst.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  gint port = 1935;
  gchar* address = nullptr;
  gchar* key = nullptr;
  gchar* to = nullptr;
  gboolean reconnect = FALSE;
  GOptionEntry entries[] = {
      {"address", 'a', 0, G_OPTION_ARG_STRING, &address, "Address to listen on (default 0.0.0.0)", "ADDR"},
      {"port", 'p', 0, G_OPTION_ARG_INT, &port, "Port (default 1935, 0 = ephemeral)", "PORT"},
      {"stream-key", 'k', 0, G_OPTION_ARG_STRING, &key, "Stream to take (app/name, default live/in)", "KEY"},
      {"to", 'o', 0, G_OPTION_ARG_STRING, &to, "Where to publish: rtmp[s]://host[:port]/app/name", "URL"},
      {"reconnect", 'r', 0, G_OPTION_ARG_NONE, &reconnect, "Reconnect to the destination when it drops", nullptr},
      {nullptr}};
  GOptionContext* ctx = g_option_context_new("- relay one RTMP stream to another server");
  g_option_context_add_main_entries(ctx, entries, nullptr);
  g_option_context_add_group(ctx, gst_init_get_option_group());
  GError* err = nullptr;
  if (!g_option_context_parse(ctx, &argc, &argv, &err) || !to) {
    g_printerr("%s\n", err ? err->message : "--to is required");
    return 2;
  }
  g_option_context_free(ctx);

  GstElement* pipeline = gst_pipeline_new("republish");
  GstElement* src = gst_element_factory_make("rtmpserversrc", "src");
  GstElement* queue = gst_element_factory_make("queue", nullptr);
  GstElement* sink = gst_element_factory_make("rtmpclientsink", "sink");
  if (!src || !sink) {
    g_printerr("grtmp elements not found (set GST_PLUGIN_PATH to the build's gst/ directory)\n");
    return 1;
  }
  g_object_set(src, "address", address ? address : "0.0.0.0", "port", guint(port), "stream-key",
               key ? key : "live/in", nullptr);
  // Pass the tags on as they come: the source already timestamps them live.
  g_object_set(sink, "location", to, "reconnect", reconnect, "sync", FALSE, nullptr);
  gst_bin_add_many(GST_BIN(pipeline), src, queue, sink, nullptr);
  gst_element_link(queue, sink);
  g_signal_connect(src, "pad-added", G_CALLBACK(+[](GstElement*, GstPad* pad, GstElement* q) {
                     GstPad* sinkpad = gst_element_get_static_pad(q, "sink");
                     if (gst_pad_is_linked(sinkpad)) {
                       g_printerr("ignoring a second stream\n");
                     } else {
                       gchar* k = nullptr;
                       g_object_get(pad, "stream-key", &k, nullptr);
                       g_print("relaying %s\n", k);
                       g_free(k);
                       gst_pad_link(pad, sinkpad);
                     }
                     gst_object_unref(sinkpad);
                   }),
                   queue);

  GstBus* bus = gst_element_get_bus(pipeline);
  int code = 0;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    code = 1;
  } else {
    guint bound = 0;
    g_object_get(src, "current-port", &bound, nullptr);
    g_print("listening on port %u, publishing to %s\n", bound, to);
  }
  while (code == 0) {
    GstMessage* msg = gst_bus_timed_pop_filtered(
        bus, GST_CLOCK_TIME_NONE, GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING));
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
      g_print("end of stream\n");
      gst_message_unref(msg);
      break;
    }
    GError* e = nullptr;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      gst_message_parse_error(msg, &e, nullptr);
      g_printerr("error from %s: %s\n", GST_OBJECT_NAME(msg->src), e->message);
      code = 1;
    } else {
      gst_message_parse_warning(msg, &e, nullptr);
      g_printerr("warning from %s: %s\n", GST_OBJECT_NAME(msg->src), e->message);
    }
    g_clear_error(&e);
    gst_message_unref(msg);
  }
  if (code) {
    // A failed start leaves its error on the bus.
    while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
      GError* e = nullptr;
      gst_message_parse_error(m, &e, nullptr);
      g_printerr("error from %s: %s\n", GST_OBJECT_NAME(m->src), e->message);
      g_clear_error(&e);
      gst_message_unref(m);
    }
  }
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  g_free(address);
  g_free(key);
  g_free(to);
  return code;
}
