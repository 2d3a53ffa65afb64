#include "gstlog.h"

#include <string>

#include "grtmp/log.h"

GST_DEBUG_CATEGORY(grtmp_lib_debug);
GST_DEBUG_CATEGORY(grtmp_serversrc_debug);
GST_DEBUG_CATEGORY(grtmp_serversink_debug);
GST_DEBUG_CATEGORY(grtmp_clientsink_debug);
GST_DEBUG_CATEGORY(grtmp_clientsrc_debug);

namespace grtmp::gst {
namespace {

GstDebugLevel gst_level(log::Level l) {
  switch (l) {
    case log::Level::Trace: return GST_LEVEL_LOG;
    case log::Level::Debug: return GST_LEVEL_DEBUG;
    case log::Level::Info: return GST_LEVEL_INFO;
    case log::Level::Warn: return GST_LEVEL_WARNING;
    case log::Level::Error: return GST_LEVEL_ERROR;
  }
  return GST_LEVEL_INFO;
}

// Formats "msg key=value ..." once, only when the category wants the level.
void gst_sink(log::Level level, std::string_view msg, const log::Field* fields, size_t n,
              void* /*user_data*/) {
#ifndef GST_DISABLE_GST_DEBUG
  GstDebugLevel gl = gst_level(level);
  if (gl > gst_debug_category_get_threshold(grtmp_lib_debug)) return;
  std::string text(msg);
  for (size_t i = 0; i < n; i++) {
    text += ' ';
    text += fields[i].key;
    text += '=';
    text += fields[i].value;
  }
  gst_debug_log(grtmp_lib_debug, gl, "grtmp", "", 0, nullptr, "%s", text.c_str());
#endif
}

// The library skips formatting below its level: follow the category's
// threshold as it is when the plugin loads (GST_DEBUG is read at init).
log::Level lib_level() {
  switch (gst_debug_category_get_threshold(grtmp_lib_debug)) {
    case GST_LEVEL_NONE:
    case GST_LEVEL_ERROR: return log::Level::Error;
    case GST_LEVEL_WARNING:
    case GST_LEVEL_FIXME: return log::Level::Warn;
    case GST_LEVEL_INFO: return log::Level::Info;
    case GST_LEVEL_DEBUG: return log::Level::Debug;
    default: return log::Level::Trace;
  }
}

}  // namespace

void log_init() {
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    GST_DEBUG_CATEGORY_INIT(grtmp_lib_debug, "grtmp", 0, "grtmp RTMP library");
    GST_DEBUG_CATEGORY_INIT(grtmp_serversrc_debug, "grtmpserversrc", 0, "grtmp rtmpserversrc");
    GST_DEBUG_CATEGORY_INIT(grtmp_serversink_debug, "grtmpserversink", 0, "grtmp rtmpserversink");
    GST_DEBUG_CATEGORY_INIT(grtmp_clientsink_debug, "grtmpclientsink", 0, "grtmp rtmpclientsink");
    GST_DEBUG_CATEGORY_INIT(grtmp_clientsrc_debug, "grtmpclientsrc", 0, "grtmp rtmpclientsrc");
    log::set_level(lib_level());
    log::set_sink(gst_sink, nullptr);
    g_once_init_leave(&once, 1);
  }
}

}  // namespace grtmp::gst
