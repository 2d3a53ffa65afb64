// rtmpclientsrc: plays a stream from any RTMP server and outputs live FLV
// exactly like rtmpserversrc's pads (streamheader caps, one tag per buffer).
#pragma once

#include <gst/base/gstpushsrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_GRTMP_CLIENT_SRC (gst_grtmp_client_src_get_type())
G_DECLARE_FINAL_TYPE(GstGrtmpClientSrc, gst_grtmp_client_src, GST, GRTMP_CLIENT_SRC, GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE(rtmpclientsrc);

G_END_DECLS
