// record: an RTMP server that records every published stream to its own
// FLV file, <dir>/<app>_<name>.flv (rtmpserversrc ! queue ! filesink per
// pad). A stream's file is closed when its publisher leaves (EOS on the
// pad); the program keeps serving until --duration or Ctrl-C.
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gst/gst.h>

#include <cstdio>
#include <map>
#include <string>

namespace {

struct App {
  GMainLoop* loop = nullptr;
  GstElement* pipeline = nullptr;
  std::string dir = ".";
  int exit_code = 0;
  guint files_done = 0;
  guint max_files = 0;  // quit after this many finished recordings (0 = never)
};

struct Branch {
  App* app;
  GstElement* bin;
  std::string key, path;
};

std::string file_for(const std::string& dir, const std::string& key) {
  std::string name = key;
  for (auto& c : name)
    if (c == '/' || c == '\\' || c == '?' || c == ':') c = '_';
  return dir + "/" + name + ".flv";
}

// Main thread: the branch saw EOS, close the file and drop the branch.
gboolean finish_branch(gpointer data) {
  auto* b = static_cast<Branch*>(data);
  gst_element_set_state(b->bin, GST_STATE_NULL);
  gst_bin_remove(GST_BIN(b->app->pipeline), b->bin);
  GStatBuf st;
  long long size = g_stat(b->path.c_str(), &st) == 0 ? (long long)st.st_size : -1;
  g_print("finished %s -> %s (%lld bytes)\n", b->key.c_str(), b->path.c_str(), size);
  App* app = b->app;
  delete b;
  if (app->max_files && ++app->files_done >= app->max_files) g_main_loop_quit(app->loop);
  return G_SOURCE_REMOVE;
}

GstPadProbeReturn on_sink_event(GstPad*, GstPadProbeInfo* info, gpointer data) {
  if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS) {
    // filesink has the EOS (flushed its data); finish outside the streaming thread.
    g_idle_add(finish_branch, data);
    return GST_PAD_PROBE_REMOVE;
  }
  return GST_PAD_PROBE_OK;
}

void on_stream_pad(GstElement*, GstPad* pad, App* app) {
  gchar* key = nullptr;
  g_object_get(pad, "stream-key", &key, nullptr);
  auto* b = new Branch{app, nullptr, key ? key : "unknown", ""};
  g_free(key);
  b->path = file_for(app->dir, b->key);
  GstElement* queue = gst_element_factory_make("queue", nullptr);
  GstElement* sink = gst_element_factory_make("filesink", nullptr);
  g_object_set(sink, "location", b->path.c_str(), "async", FALSE, nullptr);
  b->bin = gst_bin_new(nullptr);
  gst_bin_add_many(GST_BIN(b->bin), queue, sink, nullptr);
  gst_element_link(queue, sink);
  GstPad* qsink = gst_element_get_static_pad(queue, "sink");
  gst_element_add_pad(b->bin, gst_ghost_pad_new("sink", qsink));
  gst_object_unref(qsink);
  GstPad* fsink = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(fsink, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_sink_event, b, nullptr);
  gst_object_unref(fsink);
  gst_bin_add(GST_BIN(app->pipeline), b->bin);
  gst_element_sync_state_with_parent(b->bin);
  GstPad* binpad = gst_element_get_static_pad(b->bin, "sink");
  if (gst_pad_link(pad, binpad) != GST_PAD_LINK_OK) g_printerr("cannot link %s\n", GST_PAD_NAME(pad));
  gst_object_unref(binpad);
  g_print("recording %s -> %s\n", b->key.c_str(), b->path.c_str());
}

gboolean on_bus(GstBus*, GstMessage* msg, App* app) {
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError* err = nullptr;
    gst_message_parse_error(msg, &err, nullptr);
    g_printerr("error from %s: %s\n", GST_OBJECT_NAME(msg->src), err->message);
    g_clear_error(&err);
    app->exit_code = 1;
    g_main_loop_quit(app->loop);
  } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING) {
    GError* err = nullptr;
    gst_message_parse_warning(msg, &err, nullptr);
    g_printerr("warning from %s: %s\n", GST_OBJECT_NAME(msg->src), err->message);
    g_clear_error(&err);
  }
  return TRUE;
}

}  // namespace

int main(int argc, char** argv) {
  gint port = 1935, duration = 0, max_files = 0;
  gchar* address = nullptr;
  gchar* dir = nullptr;
  GOptionEntry entries[] = {
      {"address", 'a', 0, G_OPTION_ARG_STRING, &address, "Address to listen on (default 0.0.0.0)", "ADDR"},
      {"port", 'p', 0, G_OPTION_ARG_INT, &port, "Port (default 1935, 0 = ephemeral)", "PORT"},
      {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &dir, "Directory for the recordings (default .)", "DIR"},
      {"duration", 't', 0, G_OPTION_ARG_INT, &duration, "Stop after this many seconds (0 = run until Ctrl-C)", "S"},
      {"max-files", 'n', 0, G_OPTION_ARG_INT, &max_files, "Stop after this many finished recordings", "N"},
      {nullptr}};
  GOptionContext* ctx = g_option_context_new("- record every RTMP stream published to this server");
  g_option_context_add_main_entries(ctx, entries, nullptr);
  g_option_context_add_group(ctx, gst_init_get_option_group());
  GError* err = nullptr;
  if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
    g_printerr("%s\n", err->message);
    return 2;
  }
  g_option_context_free(ctx);

  App app;
  if (dir) app.dir = dir;
  app.max_files = guint(max_files);
  app.loop = g_main_loop_new(nullptr, FALSE);
  app.pipeline = gst_pipeline_new("record");
  GstElement* src = gst_element_factory_make("rtmpserversrc", nullptr);
  if (!src) {
    g_printerr("rtmpserversrc not found (set GST_PLUGIN_PATH to the build's gst/ directory)\n");
    return 1;
  }
  g_object_set(src, "address", address ? address : "0.0.0.0", "port", guint(port), nullptr);
  gst_bin_add(GST_BIN(app.pipeline), src);
  g_signal_connect(src, "pad-added", G_CALLBACK(on_stream_pad), &app);
  GstBus* bus = gst_element_get_bus(app.pipeline);
  gst_bus_add_watch(bus, reinterpret_cast<GstBusFunc>(on_bus), &app);
  if (gst_element_set_state(app.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    if (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
      on_bus(bus, m, &app);
      gst_message_unref(m);
    }
    gst_object_unref(bus);
    gst_element_set_state(app.pipeline, GST_STATE_NULL);
    return 1;
  }
  gst_object_unref(bus);
  guint bound = 0;
  g_object_get(src, "current-port", &bound, nullptr);
  g_print("listening on port %u, recording to %s\n", bound, app.dir.c_str());
  g_unix_signal_add(SIGINT, [](gpointer d) {
    g_main_loop_quit(static_cast<App*>(d)->loop);
    return G_SOURCE_REMOVE;
  }, &app);
  g_unix_signal_add(SIGTERM, [](gpointer d) {
    g_main_loop_quit(static_cast<App*>(d)->loop);
    return G_SOURCE_REMOVE;
  }, &app);
  if (duration > 0)
    g_timeout_add_seconds(guint(duration), [](gpointer d) {
      g_main_loop_quit(static_cast<App*>(d)->loop);
      return G_SOURCE_REMOVE;
    }, &app);
  g_main_loop_run(app.loop);
  // Streams still live: their files end here (FLV needs no trailer).
  gst_element_set_state(app.pipeline, GST_STATE_NULL);
  gst_object_unref(app.pipeline);
  g_main_loop_unref(app.loop);
  g_free(address);
  g_free(dir);
  return app.exit_code;
}
