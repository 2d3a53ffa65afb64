// rtmpserversrc: an RTMP server as a source. Every stream an RTMP client
// publishes (to the address:port this element listens on, optionally only
// one stream key) appears as a sometimes pad "src_%u" carrying live FLV.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_GRTMP_SERVER_SRC (gst_grtmp_server_src_get_type())
G_DECLARE_FINAL_TYPE(GstGrtmpServerSrc, gst_grtmp_server_src, GST, GRTMP_SERVER_SRC, GstElement)

// The pad of one published stream; its read-only "stream-key" property
// names the stream ("app/name").
#define GST_TYPE_GRTMP_SERVER_SRC_PAD (gst_grtmp_server_src_pad_get_type())
G_DECLARE_FINAL_TYPE(GstGrtmpServerSrcPad, gst_grtmp_server_src_pad, GST, GRTMP_SERVER_SRC_PAD, GstPad)

GST_ELEMENT_REGISTER_DECLARE(rtmpserversrc);

G_END_DECLS
