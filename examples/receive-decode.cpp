// receive-decode: an RTMP server that decodes what is published to it.
//
//   rtmpserversrc ! flvdemux ! queue ! decodebin ! appsink   (per track)
//
// Publish with e.g.  ffmpeg -re -i in.flv -c copy -f flv rtmp://127.0.0.1:1935/live/test
// It prints the bound port, then the decoded frame count and resolution
// when the publisher leaves (EOS) or after --max-frames video frames.
#include <gst/gst.h>

#include <atomic>
#include <cstdio>
#include <string>

namespace {

struct App {
  GMainLoop* loop = nullptr;
  GstElement* pipeline = nullptr;
  std::atomic<guint64> video_frames{0}, audio_buffers{0};
  std::atomic<int> width{0}, height{0}, rate{0}, channels{0};
  guint64 max_frames = 0;
  int exit_code = 0;
};

// appsink "new-sample": count, and read the format from the first caps.
GstFlowReturn on_sample(GstElement* sink, App* app) {
  GstSample* sample = nullptr;
  g_signal_emit_by_name(sink, "pull-sample", &sample);
  if (!sample) return GST_FLOW_EOS;
  GstStructure* s = gst_caps_get_structure(gst_sample_get_caps(sample), 0);
  if (g_str_has_prefix(gst_structure_get_name(s), "video/")) {
    if (app->video_frames++ == 0) {
      int w = 0, h = 0;
      gst_structure_get_int(s, "width", &w);
      gst_structure_get_int(s, "height", &h);
      app->width = w;
      app->height = h;
      g_print("first video frame: %dx%d\n", w, h);
    }
    if (app->max_frames && app->video_frames == app->max_frames)
      gst_element_post_message(sink, gst_message_new_application(GST_OBJECT(sink),
                                                                  gst_structure_new_empty("max-frames")));
  } else {
    if (app->audio_buffers++ == 0) {
      int r = 0, c = 0;
      gst_structure_get_int(s, "rate", &r);
      gst_structure_get_int(s, "channels", &c);
      app->rate = r;
      app->channels = c;
    }
  }
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

// flvdemux pad -> queue ! decodebin ! <raw> ! appsink
void on_demux_pad(GstElement* demux, GstPad* pad, App* app) {
  const char* kind = g_str_has_prefix(GST_PAD_NAME(pad), "video") ? "video" : "audio";
  std::string desc = std::string("queue name=q ! decodebin ! ") +
                     (kind[0] == 'v' ? "videoconvert ! video/x-raw" : "audioconvert ! audio/x-raw") +
                     " ! appsink name=sink emit-signals=true sync=false";
  GError* err = nullptr;
  // (Not ghost_unlinked_pads: decodebin's delayed link leaves videoconvert's
  // sink unlinked too, and that one could be ghosted.)
  GstElement* branch = gst_parse_bin_from_description(desc.c_str(), FALSE, &err);
  if (!branch) {
    g_printerr("cannot build the %s branch: %s\n", kind, err->message);
    g_clear_error(&err);
    return;
  }
  GstElement* queue = gst_bin_get_by_name(GST_BIN(branch), "q");
  GstPad* qsink = gst_element_get_static_pad(queue, "sink");
  gst_element_add_pad(branch, gst_ghost_pad_new("sink", qsink));
  gst_object_unref(qsink);
  gst_object_unref(queue);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(branch), "sink");
  g_signal_connect(sink, "new-sample", G_CALLBACK(on_sample), app);
  gst_object_unref(sink);
  gst_bin_add(GST_BIN(app->pipeline), branch);
  gst_element_sync_state_with_parent(branch);
  GstPad* sinkpad = gst_element_get_static_pad(branch, "sink");
  GstPadLinkReturn lr = gst_pad_link(pad, sinkpad);
  if (lr != GST_PAD_LINK_OK) g_printerr("cannot link %s: %s\n", GST_PAD_NAME(pad), gst_pad_link_get_name(lr));
  gst_object_unref(sinkpad);
  g_print("decoding %s\n", kind);
}

// rtmpserversrc pad (one per published stream) -> flvdemux
void on_stream_pad(GstElement* src, GstPad* pad, App* app) {
  gchar* key = nullptr;
  g_object_get(pad, "stream-key", &key, nullptr);
  g_print("stream %s published\n", key);
  g_free(key);
  GstElement* demux = gst_element_factory_make("flvdemux", nullptr);
  g_signal_connect(demux, "pad-added", G_CALLBACK(on_demux_pad), app);
  gst_bin_add(GST_BIN(app->pipeline), demux);
  gst_element_sync_state_with_parent(demux);
  GstPad* sinkpad = gst_element_get_static_pad(demux, "sink");
  gst_pad_link(pad, sinkpad);
  gst_object_unref(sinkpad);
}

gboolean on_bus(GstBus*, GstMessage* msg, App* app) {
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_EOS:
      g_print("end of stream\n");
      g_main_loop_quit(app->loop);
      break;
    case GST_MESSAGE_APPLICATION:
      g_print("reached --max-frames\n");
      g_main_loop_quit(app->loop);
      break;
    case GST_MESSAGE_ERROR: {
      GError* err = nullptr;
      gchar* dbg = nullptr;
      gst_message_parse_error(msg, &err, &dbg);
      g_printerr("error from %s: %s (%s)\n", GST_OBJECT_NAME(msg->src), err->message, dbg ? dbg : "");
      g_clear_error(&err);
      g_free(dbg);
      app->exit_code = 1;
      g_main_loop_quit(app->loop);
      break;
    }
    case GST_MESSAGE_WARNING: {
      GError* err = nullptr;
      gst_message_parse_warning(msg, &err, nullptr);
      g_printerr("warning from %s: %s\n", GST_OBJECT_NAME(msg->src), err->message);
      g_clear_error(&err);
      break;
    }
    default: break;
  }
  return TRUE;
}

}  // namespace

int main(int argc, char** argv) {
  gint port = 1935, timeout = 0;
  gint64 max_frames = 0;
  gchar* address = nullptr;
  gchar* key = nullptr;
  GOptionEntry entries[] = {
      {"address", 'a', 0, G_OPTION_ARG_STRING, &address, "Address to listen on (default 0.0.0.0)", "ADDR"},
      {"port", 'p', 0, G_OPTION_ARG_INT, &port, "Port (default 1935, 0 = ephemeral)", "PORT"},
      {"stream-key", 'k', 0, G_OPTION_ARG_STRING, &key, "Only this stream (app/name)", "KEY"},
      {"max-frames", 'n', 0, G_OPTION_ARG_INT64, &max_frames, "Stop after this many video frames", "N"},
      {"timeout", 't', 0, G_OPTION_ARG_INT, &timeout, "Give up after this many seconds", "S"},
      {nullptr}};
  GOptionContext* ctx = g_option_context_new("- decode what RTMP publishers send");
  g_option_context_add_main_entries(ctx, entries, nullptr);
  g_option_context_add_group(ctx, gst_init_get_option_group());
  GError* err = nullptr;
  if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
    g_printerr("%s\n", err->message);
    return 2;
  }
  g_option_context_free(ctx);

  App app;
  app.max_frames = guint64(max_frames);
  app.loop = g_main_loop_new(nullptr, FALSE);
  app.pipeline = gst_pipeline_new("receive-decode");
  GstElement* src = gst_element_factory_make("rtmpserversrc", nullptr);
  if (!src) {
    g_printerr("rtmpserversrc not found (set GST_PLUGIN_PATH to the build's gst/ directory)\n");
    return 1;
  }
  g_object_set(src, "address", address ? address : "0.0.0.0", "port", guint(port), "stream-key", key ? key : "",
               nullptr);
  gst_bin_add(GST_BIN(app.pipeline), src);
  g_signal_connect(src, "pad-added", G_CALLBACK(on_stream_pad), &app);
  GstBus* bus = gst_element_get_bus(app.pipeline);
  gst_bus_add_watch(bus, reinterpret_cast<GstBusFunc>(on_bus), &app);
  gst_object_unref(bus);

  if (gst_element_set_state(app.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    // The error (e.g. "Could not listen on 0.0.0.0:1935: ...") is on the bus.
    GstBus* b = gst_element_get_bus(app.pipeline);
    if (GstMessage* m = gst_bus_pop_filtered(b, GST_MESSAGE_ERROR)) {
      on_bus(b, m, &app);
      gst_message_unref(m);
    }
    gst_object_unref(b);
    gst_element_set_state(app.pipeline, GST_STATE_NULL);
    return 1;
  }
  guint bound = 0;
  g_object_get(src, "current-port", &bound, nullptr);
  g_print("listening on port %u\n", bound);
  if (timeout > 0)
    g_timeout_add_seconds(guint(timeout), [](gpointer d) {
      g_print("timeout\n");
      static_cast<App*>(d)->exit_code = 3;
      g_main_loop_quit(static_cast<App*>(d)->loop);
      return G_SOURCE_REMOVE;
    }, &app);
  g_main_loop_run(app.loop);
  gst_element_set_state(app.pipeline, GST_STATE_NULL);

  g_print("video: %" G_GUINT64_FORMAT " frames %dx%d\n", app.video_frames.load(), app.width.load(),
          app.height.load());
  g_print("audio: %" G_GUINT64_FORMAT " buffers %d Hz %d ch\n", app.audio_buffers.load(), app.rate.load(),
          app.channels.load());
  gst_object_unref(app.pipeline);
  g_main_loop_unref(app.loop);
  g_free(address);
  g_free(key);
  return app.exit_code;
}
