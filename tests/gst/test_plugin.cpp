// The grtmp plugin as GStreamer sees it: loaded from the build directory,
// four elements with their properties (names, flags, defaults), pad
// templates, ranks, and gst-inspect-1.0 output. It must coexist with the
// rtmp and rtmp2 plugins (no GType clashes).
#include <gst/base/gstbasesrc.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_helpers.h"

using namespace gsttest;

namespace {

class PluginTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { init_gst(); }
};

TEST_F(PluginTest, LoadsFromTheBuildDirectory) {
  GstPlugin* plugin = gst_registry_find_plugin(gst_registry_get(), "grtmp");
  ASSERT_NE(plugin, nullptr);
  std::string file = gst_plugin_get_filename(plugin);
  EXPECT_NE(file.find("libgstgrtmp.so"), std::string::npos) << file;
  if (const char* build = g_getenv("GRTMP_BUILD_DIR")) {
    gchar* real_build = g_canonicalize_filename(build, nullptr);
    gchar* real_file = g_canonicalize_filename(file.c_str(), nullptr);
    EXPECT_TRUE(g_str_has_prefix(real_file, real_build)) << real_file << " not under " << real_build;
    g_free(real_build);
    g_free(real_file);
  }
  EXPECT_STREQ(gst_plugin_get_license(plugin), "LGPL");
  GError* err = nullptr;
  GstPlugin* loaded = gst_plugin_load_by_name("grtmp");
  ASSERT_NE(loaded, nullptr);
  EXPECT_TRUE(gst_plugin_is_loaded(loaded));
  gst_object_unref(loaded);
  gst_object_unref(plugin);
  g_clear_error(&err);
}

struct ElementSpec {
  const char* name;
  const char* gtype;
  guint rank;
  const char* klass;
};

TEST_F(PluginTest, FourElementsWithDistinctTypeNames) {
  const ElementSpec specs[] = {
      {"rtmpserversrc", "GstGrtmpServerSrc", GST_RANK_NONE, "Source/Network"},
      {"rtmpserversink", "GstGrtmpServerSink", GST_RANK_NONE, "Sink/Network"},
      {"rtmpclientsink", "GstGrtmpClientSink", GST_RANK_MARGINAL, "Sink/Network"},
      {"rtmpclientsrc", "GstGrtmpClientSrc", GST_RANK_MARGINAL, "Source/Network"},
  };
  GList* features = gst_registry_get_feature_list_by_plugin(gst_registry_get(), "grtmp");
  EXPECT_EQ(g_list_length(features), 4u);
  gst_plugin_feature_list_free(features);
  for (auto& s : specs) {
    GstElementFactory* f = gst_element_factory_find(s.name);
    ASSERT_NE(f, nullptr) << s.name;
    EXPECT_STREQ(gst_plugin_feature_get_plugin_name(GST_PLUGIN_FEATURE(f)), "grtmp") << s.name;
    EXPECT_EQ(gst_plugin_feature_get_rank(GST_PLUGIN_FEATURE(f)), s.rank) << s.name;
    EXPECT_STREQ(gst_element_factory_get_metadata(f, GST_ELEMENT_METADATA_KLASS), s.klass) << s.name;
    GstElement* e = gst_element_factory_create(f, nullptr);
    ASSERT_NE(e, nullptr);
    EXPECT_STREQ(G_OBJECT_TYPE_NAME(e), s.gtype);
    gst_object_unref(e);
    gst_object_unref(f);
  }
}

// One property: name, type, flags that must be set / must not, default.
struct Prop {
  const char* name;
  GType type;
  bool writable;
  const char* def;  // gst_value_serialize() of the default; nullptr = NULL string / skip
  bool mutable_ready = false;
};

void check_props(const char* element, const std::vector<Prop>& props) {
  GstElement* e = gst_element_factory_make(element, nullptr);
  ASSERT_NE(e, nullptr) << element;
  for (auto& p : props) {
    GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), p.name);
    ASSERT_NE(spec, nullptr) << element << "::" << p.name;
    EXPECT_EQ(G_PARAM_SPEC_VALUE_TYPE(spec), p.type) << element << "::" << p.name;
    EXPECT_TRUE(spec->flags & G_PARAM_READABLE) << element << "::" << p.name;
    EXPECT_EQ(bool(spec->flags & G_PARAM_WRITABLE), p.writable) << element << "::" << p.name;
    if (p.mutable_ready) {
      EXPECT_TRUE(spec->flags & GST_PARAM_MUTABLE_READY) << element << "::" << p.name;
    }
    GValue v = G_VALUE_INIT;
    g_value_init(&v, p.type);
    g_object_get_property(G_OBJECT(e), p.name, &v);
    if (p.type == G_TYPE_STRING) {
      const char* s = g_value_get_string(&v);
      if (p.def) {
        EXPECT_STREQ(s, p.def) << element << "::" << p.name;
      } else {
        EXPECT_TRUE(!s || !*s) << element << "::" << p.name << " = " << s;
      }
    } else if (p.def) {
      gchar* ser = gst_value_serialize(&v);
      EXPECT_STREQ(ser, p.def) << element << "::" << p.name;
      g_free(ser);
      // The param spec default agrees with the instance.
      const GValue* d = g_param_spec_get_default_value(spec);
      EXPECT_EQ(gst_value_compare(d, &v), GST_VALUE_EQUAL) << element << "::" << p.name;
    }
    g_value_unset(&v);
  }
  gst_object_unref(e);
}

TEST_F(PluginTest, RtmpServerSrcProperties) {
  check_props("rtmpserversrc", {
                                   {"address", G_TYPE_STRING, true, "0.0.0.0", true},
                                   {"port", G_TYPE_UINT, true, "1935", true},
                                   {"current-port", G_TYPE_UINT, false, "0"},
                                   {"stream-key", G_TYPE_STRING, true, nullptr, true},
                                   {"chunk-size", G_TYPE_UINT, true, "4096", true},
                                   {"gop-cache", G_TYPE_BOOLEAN, true, "true", true},
                                   {"handshake-timeout", G_TYPE_UINT, true, "10000", true},
                                   {"idle-timeout", G_TYPE_UINT, true, "60000", true},
                                   {"publisher-timeout", G_TYPE_UINT, true, "15000", true},
                                   {"max-connections", G_TYPE_UINT, true, "10000", true},
                                   {"max-message-size", G_TYPE_UINT, true, "16777216", true},
                                   {"eos-on-unpublish", G_TYPE_BOOLEAN, true, "true"},
                                   {"latency", G_TYPE_UINT, true, "200", true},
                                   {"stats", GST_TYPE_STRUCTURE, false, nullptr},
                                   {"tls", G_TYPE_BOOLEAN, true, "false", true},
                                   {"tls-cert-file", G_TYPE_STRING, true, nullptr, true},
                                   {"tls-key-file", G_TYPE_STRING, true, nullptr, true},
                                   {"tls-address", G_TYPE_STRING, true, nullptr, true},
                                   {"tls-port", G_TYPE_UINT, true, "1936", true},
                                   {"current-tls-port", G_TYPE_UINT, false, "0"},
                               });
  // The sometimes pad template and its pad type.
  GstElementFactory* f = gst_element_factory_find("rtmpserversrc");
  const GList* templates = gst_element_factory_get_static_pad_templates(f);
  ASSERT_EQ(g_list_length(const_cast<GList*>(templates)), 1u);
  auto* t = static_cast<GstStaticPadTemplate*>(templates->data);
  EXPECT_STREQ(t->name_template, "src_%u");
  EXPECT_EQ(t->direction, GST_PAD_SRC);
  EXPECT_EQ(t->presence, GST_PAD_SOMETIMES);
  EXPECT_STREQ(t->static_caps.string, "video/x-flv");
  gst_object_unref(f);
  GType pad_type = g_type_from_name("GstGrtmpServerSrcPad");
  ASSERT_NE(pad_type, G_TYPE_INVALID);
  GObjectClass* klass = G_OBJECT_CLASS(g_type_class_ref(pad_type));
  GParamSpec* key = g_object_class_find_property(klass, "stream-key");
  ASSERT_NE(key, nullptr);
  EXPECT_TRUE(key->flags & G_PARAM_READABLE);
  EXPECT_FALSE(key->flags & G_PARAM_WRITABLE);
  g_type_class_unref(klass);

  // Empty stats before the server runs.
  GstElement* e = gst_element_factory_make("rtmpserversrc", nullptr);
  GstStructure* stats = nullptr;
  g_object_get(e, "stats", &stats, nullptr);
  ASSERT_NE(stats, nullptr);
  for (const char* field : {"connections", "publishers", "players", "bytes-in", "bytes-out", "auth-denials", "tls-failures",
                            "slow-players-closed", "streams"})
    EXPECT_TRUE(gst_structure_has_field(stats, field)) << field;
  gst_structure_free(stats);
  gst_object_unref(e);
}

TEST_F(PluginTest, RtmpServerSinkProperties) {
  check_props("rtmpserversink", {
                                    {"address", G_TYPE_STRING, true, "0.0.0.0", true},
                                    {"port", G_TYPE_UINT, true, "1935", true},
                                    {"current-port", G_TYPE_UINT, false, "0"},
                                    {"stream-key", G_TYPE_STRING, true, nullptr, true},
                                    {"chunk-size", G_TYPE_UINT, true, "4096", true},
                                    {"gop-cache", G_TYPE_BOOLEAN, true, "true", true},
                                    {"stats", GST_TYPE_STRUCTURE, false, nullptr},
                                    {"tls", G_TYPE_BOOLEAN, true, "false", true},
                                    {"tls-cert-file", G_TYPE_STRING, true, nullptr, true},
                                    {"tls-key-file", G_TYPE_STRING, true, nullptr, true},
                                    {"tls-address", G_TYPE_STRING, true, nullptr, true},
                                    {"tls-port", G_TYPE_UINT, true, "1936", true},
                                    {"current-tls-port", G_TYPE_UINT, false, "0"},
                                });
  GstElement* e = gst_element_factory_make("rtmpserversink", nullptr);
  gboolean sync = FALSE, async = TRUE;
  g_object_get(e, "sync", &sync, "async", &async, nullptr);
  EXPECT_TRUE(sync) << "paces files in real time";
  EXPECT_FALSE(async) << "publishing does not wait for preroll";
  gst_object_unref(e);
}

TEST_F(PluginTest, RtmpClientSinkProperties) {
  check_props("rtmpclientsink", {
                                    {"location", G_TYPE_STRING, true, nullptr, true},
                                    {"host", G_TYPE_STRING, true, nullptr, true},
                                    {"port", G_TYPE_UINT, true, "1935", true},
                                    {"application", G_TYPE_STRING, true, nullptr, true},
                                    {"stream", G_TYPE_STRING, true, nullptr, true},
                                    {"timeout", G_TYPE_UINT, true, "10", true},
                                    {"chunk-size", G_TYPE_UINT, true, "4096", true},
                                    {"reconnect", G_TYPE_BOOLEAN, true, "false"},
                                    {"reconnect-interval", G_TYPE_UINT, true, "1000"},
                                    {"tls-validation-flags", G_TYPE_TLS_CERTIFICATE_FLAGS, true, nullptr, true},
                                    {"stats", GST_TYPE_STRUCTURE, false, nullptr},
                                });
}

TEST_F(PluginTest, RtmpClientSrcProperties) {
  check_props("rtmpclientsrc", {
                                   {"location", G_TYPE_STRING, true, nullptr, true},
                                   {"timeout", G_TYPE_UINT, true, "10", true},
                                   {"tls-validation-flags", G_TYPE_TLS_CERTIFICATE_FLAGS, true, nullptr, true},
                               });
  GstElement* e = gst_element_factory_make("rtmpclientsrc", nullptr);
  EXPECT_TRUE(gst_base_src_is_live(GST_BASE_SRC(e)));
  gst_object_unref(e);
}

TEST_F(PluginTest, ClientTlsValidationFlagsDefaultToValidateAll) {
  for (const char* name : {"rtmpclientsink", "rtmpclientsrc"}) {
    GstElement* e = gst_element_factory_make(name, nullptr);
    ASSERT_NE(e, nullptr);
    guint flags = 0;
    g_object_get(e, "tls-validation-flags", &flags, nullptr);
    EXPECT_EQ(flags, guint(G_TLS_CERTIFICATE_VALIDATE_ALL)) << name;
    GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), "tls-validation-flags");
    EXPECT_EQ(G_PARAM_SPEC_FLAGS(spec)->default_value, guint(G_TLS_CERTIFICATE_VALIDATE_ALL)) << name;
    gst_util_set_object_arg(G_OBJECT(e), "tls-validation-flags", "unknown-ca+expired");
    g_object_get(e, "tls-validation-flags", &flags, nullptr);
    EXPECT_EQ(flags, guint(G_TLS_CERTIFICATE_UNKNOWN_CA | G_TLS_CERTIFICATE_EXPIRED)) << name;
    gst_object_unref(e);
  }
}

TEST_F(PluginTest, RtmpServerSrcAuthorizeSignal) {
  GType type = g_type_from_name("GstGrtmpServerSrc");
  ASSERT_NE(type, G_TYPE_INVALID);
  guint id = g_signal_lookup("authorize", type);
  ASSERT_NE(id, 0u);
  GSignalQuery q;
  g_signal_query(id, &q);
  EXPECT_EQ(q.return_type, G_TYPE_BOOLEAN);
  ASSERT_EQ(q.n_params, 1u);
  EXPECT_EQ(q.param_types[0] & ~G_SIGNAL_TYPE_STATIC_SCOPE, GST_TYPE_STRUCTURE);
  EXPECT_TRUE(q.signal_flags & G_SIGNAL_DETAILED) << "authorize::connect / ::publish / ::play";
  EXPECT_TRUE(q.signal_flags & G_SIGNAL_RUN_LAST);
  // The sink has no such signal (its players are authorized by the source's handlers).
  EXPECT_EQ(g_signal_lookup("authorize", g_type_from_name("GstGrtmpServerSink")), 0u);
}

// Counts GLib criticals/warnings (a duplicate GType registration is one).
struct LogCounter {
  int count = 0;
  std::string last;
  static void handler(const gchar* domain, GLogLevelFlags, const gchar* msg, gpointer data) {
    auto* self = static_cast<LogCounter*>(data);
    self->count++;
    self->last = std::string(domain ? domain : "") + ": " + msg;
  }
};

TEST_F(PluginTest, CoexistsWithRtmpAndRtmp2Plugins) {
  LogCounter counter;
  guint h1 = g_log_set_handler("GLib-GObject", GLogLevelFlags(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING),
                               LogCounter::handler, &counter);
  guint h2 = g_log_set_handler("GStreamer", GLogLevelFlags(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING),
                               LogCounter::handler, &counter);
  std::vector<GstElement*> elements;
  for (const char* n : {"rtmpserversrc", "rtmpclientsink", "rtmpclientsrc", "rtmpserversink", "rtmp2src",
                        "rtmp2sink", "rtmpsrc", "rtmpsink"}) {
    GstElement* e = gst_element_factory_make(n, nullptr);
    if (e) elements.push_back(e);
  }
  EXPECT_GE(elements.size(), 4u);
  EXPECT_EQ(counter.count, 0) << counter.last;
  for (auto* e : elements) gst_object_unref(e);
  g_log_remove_handler("GLib-GObject", h1);
  g_log_remove_handler("GStreamer", h2);
  // Our types are ours; rtmp2's (if loaded) are not registered by us.
  EXPECT_NE(g_type_from_name("GstGrtmpServerSrc"), G_TYPE_INVALID);
  GstPlugin* grtmp = gst_registry_find_plugin(gst_registry_get(), "grtmp");
  for (const char* foreign : {"GstRtmpConnection", "GstRtmpMeta", "GstRtmpScheme", "GstRtmp2Src"}) {
    GType t = g_type_from_name(foreign);
    if (t == G_TYPE_INVALID) continue;
    GTypePlugin* tp = g_type_get_plugin(t);
    (void)tp;  // static types have no GTypePlugin; what matters is no clash (counted above)
  }
  gst_object_unref(grtmp);
}

// What playbin and gst_element_make_from_uri do with rtmp:// URIs: the
// highest-ranked handler wins, so with GStreamer's rtmp2 (PRIMARY + 1) or
// librtmp's rtmpsrc (PRIMARY) installed, our MARGINAL elements are never
// picked behind a user's back; without them, ours serve the URI.
TEST_F(PluginTest, UriLookupPrefersInstalledRtmpElements) {
  const bool have_rtmp2 = gst_registry_check_feature_version(gst_registry_get(), "rtmp2src", 1, 0, 0);
  const bool have_librtmp = gst_registry_check_feature_version(gst_registry_get(), "rtmpsrc", 1, 0, 0);
  if (!have_rtmp2 && !have_librtmp) GRTMP_MISSING_PEER("rtmp2src/rtmpsrc");
  for (GstURIType type : {GST_URI_SRC, GST_URI_SINK}) {
    GstElement* e = gst_element_make_from_uri(type, "rtmp://127.0.0.1/live/x", nullptr, nullptr);
    ASSERT_NE(e, nullptr);
    GstElementFactory* f = gst_element_get_factory(e);
    const std::string name = GST_OBJECT_NAME(f);
    EXPECT_NE(name.rfind("rtmpclient", 0), 0u) << "rtmp:// resolved to our " << name;
    EXPECT_GT(gst_plugin_feature_get_rank(GST_PLUGIN_FEATURE(f)), guint(GST_RANK_MARGINAL)) << name;
    gst_object_unref(e);
  }
  // Asked for by name, ours take the URI.
  GstElement* ours = gst_element_factory_make("rtmpclientsrc", nullptr);
  ASSERT_NE(ours, nullptr);
  EXPECT_TRUE(gst_uri_handler_set_uri(GST_URI_HANDLER(ours), "rtmp://127.0.0.1/live/x", nullptr));
  gst_object_unref(ours);
}

// Runs gst-inspect-1.0 with the test environment.
std::string inspect(const std::vector<std::string>& args, int& status) {
  std::vector<gchar*> argv;
  argv.push_back(const_cast<gchar*>("gst-inspect-1.0"));
  for (auto& a : args) argv.push_back(const_cast<gchar*>(a.c_str()));
  argv.push_back(nullptr);
  gchar* out = nullptr;
  gchar* err = nullptr;
  GError* error = nullptr;
  status = -1;
  // scripts/sanitize.sh: gst-inspect-1.0 is not built with ASan; it loads
  // the sanitized plugin only with the runtime preloaded (as the e2e tests
  // do for gst-launch-1.0, tests/interop/rtmptest.py gst_env). Leaks are
  // checked in our own executables, not in this one.
  gchar** envp = g_get_environ();
  if (const gchar* preload = g_getenv("GRTMP_ASAN_PRELOAD"); preload && *preload) {
    envp = g_environ_setenv(envp, "LD_PRELOAD", preload, TRUE);
    const gchar* asan = g_environ_getenv(envp, "ASAN_OPTIONS");
    std::string opts = std::string(asan ? asan : "") + ":detect_leaks=0";
    envp = g_environ_setenv(envp, "ASAN_OPTIONS", opts.c_str(), TRUE);
    envp = g_environ_setenv(envp, "GIO_USE_PROXY_RESOLVER", "dummy", TRUE);
  }
  bool ok = g_spawn_sync(nullptr, argv.data(), envp, G_SPAWN_SEARCH_PATH, nullptr, nullptr, &out, &err, &status,
                         &error);
  g_strfreev(envp);
  EXPECT_TRUE(ok) << (error ? error->message : "");
  g_clear_error(&error);
  std::string text = std::string(out ? out : "") + std::string(err ? err : "");
  g_free(out);
  g_free(err);
  return text;
}

TEST_F(PluginTest, GstInspectSucceeds) {
  int status = -1;
  std::string text = inspect({"grtmp"}, status);
  EXPECT_TRUE(g_spawn_check_wait_status(status, nullptr)) << text;
  for (const char* s : {"rtmpserversrc", "rtmpserversink", "rtmpclientsink", "rtmpclientsrc", "4 elements",
                        "libgstgrtmp.so"})
    EXPECT_NE(text.find(s), std::string::npos) << s << " in:\n" << text;

  text = inspect({"rtmpserversrc"}, status);
  EXPECT_TRUE(g_spawn_check_wait_status(status, nullptr)) << text;
  for (const char* s : {"src_%u", "Availability: Sometimes", "video/x-flv", "eos-on-unpublish", "current-port",
                        "tls-cert-file", "current-tls-port", "\"authorize\""})
    EXPECT_NE(text.find(s), std::string::npos) << s << " in:\n" << text;

  text = inspect({"rtmpclientsink"}, status);
  EXPECT_TRUE(g_spawn_check_wait_status(status, nullptr)) << text;
  EXPECT_NE(text.find("URI handling capabilities"), std::string::npos) << text;
  EXPECT_NE(text.find("rtmps"), std::string::npos) << text;
}

}  // namespace
