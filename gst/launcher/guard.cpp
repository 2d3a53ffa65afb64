#include "guard.h"

#include <atomic>
#include <mutex>

namespace grtmp::launcher {
namespace {

GST_DEBUG_CATEGORY_STATIC(guard_debug);
#define GST_CAT_DEFAULT guard_debug

struct GuardPrivate {
  std::mutex mutex;
  GuardCallbacks callbacks;
  GuardStats stats;
  bool accepted_done = false;
  bool failure_reported = false;
};

struct GrtmpBranchGuard {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;
  GuardPrivate* priv;
};

struct GrtmpBranchGuardClass {
  GstElementClass parent_class;
};

GType grtmp_branch_guard_get_type();
#define GRTMP_BRANCH_GUARD(obj) (reinterpret_cast<GrtmpBranchGuard*>(obj))

G_DEFINE_TYPE(GrtmpBranchGuard, grtmp_branch_guard, GST_TYPE_ELEMENT)

GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

GstFlowReturn guard_chain(GstPad* pad, GstObject* parent, GstBuffer* buf) {
  auto* self = GRTMP_BRANCH_GUARD(parent);
  GuardPrivate* priv = self->priv;
  {
    std::lock_guard lock(priv->mutex);
    if (priv->stats.failed) {
      gst_buffer_unref(buf);
      return GST_FLOW_OK;  // the branch is dead: drop quietly until it is removed
    }
    GstClockTime ts = GST_BUFFER_DTS_OR_PTS(buf);
    if (GST_CLOCK_TIME_IS_VALID(ts)) {
      if (!GST_CLOCK_TIME_IS_VALID(priv->stats.first_ts)) priv->stats.first_ts = ts;
      priv->stats.last_ts = ts;
    }
    priv->stats.bytes += gst_buffer_get_size(buf);
    priv->stats.buffers++;
  }
  GstFlowReturn ret = gst_pad_push(self->srcpad, buf);
  if (ret == GST_FLOW_OK) {
    bool ask;
    GuardCallbacks cb;
    {
      std::lock_guard lock(priv->mutex);
      ask = !priv->accepted_done && priv->callbacks.on_accepted;
      cb = priv->callbacks;
    }
    if (ask && cb.on_accepted(cb.user_data)) {
      std::lock_guard lock(priv->mutex);
      priv->accepted_done = true;
    }
    return GST_FLOW_OK;
  }
  if (ret == GST_FLOW_FLUSHING || ret == GST_FLOW_EOS) {
    // Being torn down, or the sink finished: nothing upstream must care.
    GST_DEBUG_OBJECT(self, "downstream returned %s: swallowed", gst_flow_get_name(ret));
    return GST_FLOW_OK;
  }
  GuardCallbacks cb;
  bool report;
  {
    std::lock_guard lock(priv->mutex);
    priv->stats.failed = true;
    report = !priv->failure_reported;
    priv->failure_reported = true;
    cb = priv->callbacks;
  }
  GST_INFO_OBJECT(self, "branch failed: %s (upstream is not told)", gst_flow_get_name(ret));
  if (report && cb.on_failed) cb.on_failed(cb.user_data, ret);
  return GST_FLOW_OK;
}

gboolean guard_sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  auto* self = GRTMP_BRANCH_GUARD(parent);
  // Forward, but never report a refusal upstream: the tee would take it as
  // the whole stream's failure.
  gboolean ok = gst_pad_push_event(self->srcpad, event);
  if (!ok) GST_DEBUG_OBJECT(self, "downstream refused an event: ignored");
  return TRUE;
}

gboolean guard_sink_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_CAPS: {
      // A branch never constrains the stream: accept anything, the sink
      // reports what it cannot handle as an error of this branch only.
      GstCaps* filter = nullptr;
      gst_query_parse_caps(query, &filter);
      gst_query_set_caps_result(query, filter ? filter : GST_CAPS_ANY);
      return TRUE;
    }
    case GST_QUERY_ACCEPT_CAPS:
      gst_query_set_accept_caps_result(query, TRUE);
      return TRUE;
    default: return gst_pad_query_default(pad, parent, query);
  }
}

void grtmp_branch_guard_init(GrtmpBranchGuard* self) {
  self->priv = new GuardPrivate();
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, guard_chain);
  gst_pad_set_event_function(self->sinkpad, guard_sink_event);
  gst_pad_set_query_function(self->sinkpad, guard_sink_query);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  GST_PAD_SET_PROXY_SCHEDULING(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}

void grtmp_branch_guard_finalize(GObject* object) {
  auto* self = GRTMP_BRANCH_GUARD(object);
  delete self->priv;
  self->priv = nullptr;
  G_OBJECT_CLASS(grtmp_branch_guard_parent_class)->finalize(object);
}

void grtmp_branch_guard_class_init(GrtmpBranchGuardClass* klass) {
  G_OBJECT_CLASS(klass)->finalize = grtmp_branch_guard_finalize;
  auto* element_class = GST_ELEMENT_CLASS(klass);
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(element_class, "grtmp branch guard", "Generic",
                                        "Isolates a launcher branch: flow errors stop here",
                                        "grtmp project");
}

}  // namespace

void guard_register() {
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    GST_DEBUG_CATEGORY_INIT(guard_debug, "grtmpbranchguard", 0, "gst-rtmp-server branch guard");
    gst_element_register(nullptr, "grtmpbranchguard", GST_RANK_NONE, grtmp_branch_guard_get_type());
    g_once_init_leave(&once, 1);
  }
}

GstElement* guard_new(const char* name) {
  guard_register();
  return gst_element_factory_make("grtmpbranchguard", name);
}

void guard_set_callbacks(GstElement* guard, const GuardCallbacks& callbacks) {
  auto* self = GRTMP_BRANCH_GUARD(guard);
  std::lock_guard lock(self->priv->mutex);
  self->priv->callbacks = callbacks;
}

GuardStats guard_stats(GstElement* guard) {
  auto* self = GRTMP_BRANCH_GUARD(guard);
  std::lock_guard lock(self->priv->mutex);
  return self->priv->stats;
}

}  // namespace grtmp::launcher
