// rtmpclientsink: publishes FLV to any RTMP server (ours, nginx-rtmp, a
// CDN ingest) with the grtmp client. rtmp:// and rtmps:// URIs.
#pragma once

#include <gst/base/gstbasesink.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_GRTMP_CLIENT_SINK (gst_grtmp_client_sink_get_type())
G_DECLARE_FINAL_TYPE(GstGrtmpClientSink, gst_grtmp_client_sink, GST, GRTMP_CLIENT_SINK, GstBaseSink)

GST_ELEMENT_REGISTER_DECLARE(rtmpclientsink);

G_END_DECLS
