// The grtmp plugin: registration only (see the element files).
#include <gst/gst.h>

#include "gstlog.h"
#include "rtmpclientsink.h"
#include "rtmpclientsrc.h"
#include "rtmpserversink.h"
#include "rtmpserversrc.h"

static gboolean plugin_init(GstPlugin* plugin) {
  // Library logs go to the "grtmp" debug category from now on.
  grtmp::gst::log_init();
  gboolean ret = FALSE;
  ret |= GST_ELEMENT_REGISTER(rtmpserversrc, plugin);
  ret |= GST_ELEMENT_REGISTER(rtmpserversink, plugin);
  ret |= GST_ELEMENT_REGISTER(rtmpclientsink, plugin);
  ret |= GST_ELEMENT_REGISTER(rtmpclientsrc, plugin);
  return ret;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, grtmp,
                  "RTMP server and client elements: rtmpserversrc, rtmpserversink, rtmpclientsink, rtmpclientsrc",
                  plugin_init, GRTMP_VERSION, "LGPL", "grtmp", "https://example.invalid/grtmp")
