// rtmpserversink: publishes FLV (from flvmux streamable=true, or from
// rtmpserversrc) as a stream of an in-process RTMP server that RTMP
// players (ffmpeg, ffplay, rtmpdump, VLC) connect to.
#pragma once

#include <gst/base/gstbasesink.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_GRTMP_SERVER_SINK (gst_grtmp_server_sink_get_type())
G_DECLARE_FINAL_TYPE(GstGrtmpServerSink, gst_grtmp_server_sink, GST, GRTMP_SERVER_SINK, GstBaseSink)

GST_ELEMENT_REGISTER_DECLARE(rtmpserversink);

G_END_DECLS
