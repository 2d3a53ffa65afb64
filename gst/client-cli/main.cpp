// gst-rtmp-client: publish a file to an RTMP server, record or watch a
// stream, probe what a stream carries. See docs/client.md.
#include <gst/gst.h>

#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "exitcode.h"
#include "grtmp/log.h"
#include "grtmp/url.h"
#include "options.h"

namespace grtmp::cli {

bool check_url(const std::string& text, const char* command) {
  Url url;
  GError* err = nullptr;
  if (!parse_url(text, url, &err)) {
    print_error(std::string(command) + ": invalid URL " + text + ": " + (err ? err->message : "?") +
                " (expected rtmp[s]://host[:port]/app/stream)");
    g_clear_error(&err);
    return false;
  }
  if (url.stream.empty()) {
    print_error(std::string(command) + ": URL " + text + " has no stream name (expected rtmp[s]://host[:port]/app/stream)");
    return false;
  }
  return true;
}

GstElement* make_element(const char* factory, const char* name) {
  GstElement* e = gst_element_factory_make(factory, name);
  if (!e) {
    const char* hint = g_str_has_prefix(factory, "rtmpclient")
                           ? " (the grtmp plugin: set GST_PLUGIN_PATH to the directory of libgstgrtmp.so)"
                           : "";
    print_error(std::string("missing GStreamer element ") + factory + hint);
  }
  return e;
}

namespace {

// The client ships with its plugin: when GStreamer's registry does not know
// "grtmp" (not installed, GST_PLUGIN_PATH unset), load it from the build
// tree (gst/client-cli/../libgstgrtmp.so) or the install directory.
void ensure_plugin() {
  if (GstPlugin* found = gst_registry_find_plugin(gst_registry_get(), "grtmp")) {
    gst_object_unref(found);
    return;
  }
  std::vector<std::string> candidates;
  if (gchar* exe = g_file_read_link("/proc/self/exe", nullptr)) {
    gchar* dir = g_path_get_dirname(exe);
    candidates.push_back(std::string(dir) + "/../libgstgrtmp.so");
    g_free(dir);
    g_free(exe);
  }
  candidates.push_back(GRTMP_PLUGIN_INSTALL_DIR "/libgstgrtmp.so");
  for (const std::string& path : candidates) {
    if (!g_file_test(path.c_str(), G_FILE_TEST_EXISTS)) continue;
    if (GstPlugin* plugin = gst_plugin_load_file(path.c_str(), nullptr)) {
      gst_object_unref(plugin);
      return;
    }
  }
}

// The library's log records: on stderr with -v, dropped otherwise (errors
// reach the user as GErrors, in one line).
void log_sink(log::Level level, std::string_view msg, const log::Field* fields, size_t n, void* user_data) {
  int verbose = *static_cast<int*>(user_data);
  if (verbose <= 0) return;
  std::string line = std::string("grtmp ") + log::level_name(level) + ": " + std::string(msg);
  for (size_t i = 0; i < n; i++) line += std::string(" ") + fields[i].key + "=" + fields[i].value;
  fprintf(stderr, "%s\n", line.c_str());
}

int g_verbose = 0;

}  // namespace

}  // namespace grtmp::cli

int main(int argc, char** argv) {
  using namespace grtmp::cli;
  Options opts;
  int rc = parse_args(argc, argv, opts);
  if (rc >= 0) return rc;

  g_verbose = opts.verbose;
  hide_query_of(opts.url);
  grtmp::log::set_sink(log_sink, &g_verbose);
  grtmp::log::set_level(opts.verbose >= 2 ? grtmp::log::Level::Debug : grtmp::log::Level::Info);
  if (opts.command == Command::Probe) return run_probe(opts);  // no GStreamer needed

  gst_init(nullptr, nullptr);
  ensure_plugin();
  if (opts.verbose) {
    // The elements route the library's logs into these categories.
    gst_debug_set_threshold_for_name("grtmp*", opts.verbose >= 2 ? GST_LEVEL_DEBUG : GST_LEVEL_INFO);
  }
  switch (opts.command) {
    case Command::Publish: rc = run_publish(opts); break;
    case Command::Play: rc = run_play(opts); break;
    default: rc = kExitUsage; break;
  }
  fflush(stdout);
  return rc;
}
