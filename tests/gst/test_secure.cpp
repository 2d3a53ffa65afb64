// Secure ingest on the elements: RTMPS on rtmpserversrc/rtmpserversink
// (tls, tls-cert-file, tls-key-file, tls-address, tls-port,
// current-tls-port) with certificate errors at the state change;
// tls-validation-flags on rtmpclientsink/rtmpclientsrc; rtmpserversrc's
// "authorize" signal answered to real clients (the library's client and
// rtmpclientsink), also on servers shared with other elements or started
// by the application. Certificates are made with openssl at test time.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "test_helpers.h"

using namespace gsttest;

namespace {

// ---------------------------------------------------------------- certificates

struct Certs {
  std::string dir, cert, key, other_key;
};
Certs* g_certs = nullptr;
Media* g_media = nullptr;

bool openssl_pair(const std::string& cert, const std::string& key) {
  const gchar* argv[] = {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                         "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout",
                         key.c_str(), "-out", cert.c_str(), nullptr};
  gint status = -1;
  GError* err = nullptr;
  bool ok = g_spawn_sync(nullptr, const_cast<gchar**>(argv), nullptr,
                         GSpawnFlags(G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL),
                         nullptr, nullptr, nullptr, nullptr, &status, &err) &&
            g_spawn_check_wait_status(status, nullptr);
  g_clear_error(&err);
  return ok;
}

Certs* make_certs() {
  gchar* dir = g_dir_make_tmp("grtmp-secure-XXXXXX", nullptr);
  if (!dir) return nullptr;
  auto* c = new Certs{dir, std::string(dir) + "/cert.pem", std::string(dir) + "/key.pem",
                      std::string(dir) + "/other-key.pem"};
  g_free(dir);
  std::string other_cert = c->dir + "/other-cert.pem";
  if (!openssl_pair(c->cert, c->key) || !openssl_pair(other_cert, c->other_key)) {
    delete c;
    return nullptr;
  }
  return c;
}

grtmp::Url parse(const std::string& s) {
  grtmp::Url u;
  GError* err = nullptr;
  EXPECT_TRUE(grtmp::parse_url(s, u, &err)) << s;
  g_clear_error(&err);
  return u;
}

std::string rtmps(uint16_t port, const std::string& key) {
  return "rtmps://127.0.0.1:" + std::to_string(port) + "/" + key;
}
std::string rtmp(uint16_t port, const std::string& key) {
  return "rtmp://127.0.0.1:" + std::to_string(port) + "/" + key;
}

// connect + publish (or play); "" on success, else the error (domain/code in `code`).
std::string try_client(const std::string& url, bool play, GTlsCertificateFlags flags = G_TLS_CERTIFICATE_NO_FLAGS,
                       std::unique_ptr<grtmp::Client>* keep = nullptr, GError** code = nullptr) {
  grtmp::ClientOptions o;
  o.timeout_ms = 5000;
  o.tls_validation_flags = flags;
  auto c = std::make_unique<grtmp::Client>(o);
  GError* err = nullptr;
  bool ok = c->connect(parse(url), nullptr, &err) && (play ? c->play(nullptr, &err) : c->publish(nullptr, &err));
  std::string text = ok ? "" : (err ? err->message : "?");
  if (code && err) *code = g_error_copy(err);
  g_clear_error(&err);
  if (ok && keep) *keep = std::move(c);
  return text;
}

bool listening(uint16_t port) {
  GSocketClient* sc = g_socket_client_new();
  GSocketConnection* conn = g_socket_client_connect_to_host(sc, "127.0.0.1", port, nullptr, nullptr);
  g_object_unref(sc);
  if (conn) g_object_unref(conn);
  return conn != nullptr;
}

// The first error on the bus: message and whether it is RESOURCE/`code`.
struct BusError {
  std::string text, debug;
  GQuark domain = 0;
  int code = -1;
};
BusError pop_error(GstBus* bus, GstClockTime wait = 0) {
  BusError e;
  if (GstMessage* m = gst_bus_timed_pop_filtered(bus, wait, GST_MESSAGE_ERROR)) {
    GError* err = nullptr;
    gchar* dbg = nullptr;
    gst_message_parse_error(m, &err, &dbg);
    e.text = err ? err->message : "";
    e.debug = dbg ? dbg : "";
    e.domain = err ? err->domain : 0;
    e.code = err ? err->code : -1;
    g_clear_error(&err);
    g_free(dbg);
    gst_message_unref(m);
  }
  return e;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class SecureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    init_gst();
    g_certs = make_certs();
    if (have_elements({"x264enc", "avenc_aac", "flvmux", "appsink"})) g_media = new Media(make_media(25));
  }
  void SetUp() override {
    if (!g_certs) GRTMP_MISSING_PEER("openssl (could not make a certificate)");
  }
  void TearDown() override {
    for (auto* e : elements) {
      gst_element_set_state(e, GST_STATE_NULL);
      gst_object_unref(e);
    }
    for (auto* b : buses) unref_bus(b);
  }
  const Certs& certs() { return *g_certs; }

  // A server element, not started, with its own bus.
  GstElement* server_element(const char* factory, uint16_t port, GstBus** bus_out = nullptr) {
    GstElement* e = gst_element_factory_make(factory, nullptr);
    EXPECT_NE(e, nullptr);
    gst_object_ref_sink(e);
    g_object_set(e, "address", "127.0.0.1", "port", guint(port), nullptr);
    if (g_str_equal(factory, "rtmpserversink")) g_object_set(e, "stream-key", "live/out", "sync", FALSE, nullptr);
    GstBus* bus = gst_bus_new();
    gst_element_set_bus(e, bus);
    buses.push_back(bus);
    elements.push_back(e);
    if (bus_out) *bus_out = bus;
    return e;
  }
  void set_tls(GstElement* e, const std::string& cert, const std::string& key, guint tls_port = 0) {
    g_object_set(e, "tls", TRUE, "tls-cert-file", cert.c_str(), "tls-key-file", key.c_str(), "tls-port", tls_port,
                 nullptr);
  }

  std::vector<GstElement*> elements;
  std::vector<GstBus*> buses;
};

// ---------------------------------------------------------------- RTMPS on the server elements

TEST_F(SecureTest, ServerSrcServesRtmpsBesidePlainRtmp) {
  GstElement* src = server_element("rtmpserversrc", 0);
  set_tls(src, certs().cert, certs().key);
  std::atomic<int> notified{0};
  g_signal_connect(src, "notify::current-tls-port",
                   G_CALLBACK(+[](GObject*, GParamSpec*, std::atomic<int>* n) { (*n)++; }), &notified);
  std::atomic<int> pads{0};
  g_signal_connect(src, "pad-added", G_CALLBACK(+[](GstElement*, GstPad*, std::atomic<int>* n) { (*n)++; }), &pads);
  ASSERT_NE(gst_element_set_state(src, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  guint port = 0, tls_port = 0;
  g_object_get(src, "current-port", &port, "current-tls-port", &tls_port, nullptr);
  ASSERT_NE(port, 0u);
  ASSERT_NE(tls_port, 0u);
  EXPECT_NE(port, tls_port);
  EXPECT_EQ(notified.load(), 1);

  // A client that validates refuses the self-signed certificate, naming why.
  GError* code = nullptr;
  std::string text = try_client(rtmps(tls_port, "live/s"), false, G_TLS_CERTIFICATE_VALIDATE_ALL, nullptr, &code);
  EXPECT_TRUE(g_error_matches(code, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE)) << text;
  EXPECT_TRUE(has(text, "Unacceptable TLS certificate") && has(text, "unknown CA")) << text;
  g_clear_error(&code);

  // Over RTMPS (validation off): the stream gets a pad.
  std::unique_ptr<grtmp::Client> pub;
  ASSERT_EQ(try_client(rtmps(tls_port, "live/s"), false, G_TLS_CERTIFICATE_NO_FLAGS, &pub), "");
  if (g_media) {
    ASSERT_TRUE(send_all(*pub, g_media->messages()));
    EXPECT_TRUE(wait_for([&] { return pads.load() == 1; })) << "a pad for the RTMPS publisher";
  }
  pub->close();
  // Plain RTMP still on current-port.
  EXPECT_EQ(try_client(rtmp(uint16_t(port), "live/p"), false, G_TLS_CERTIFICATE_NO_FLAGS, &pub), "");
  if (pub) pub->close();
  // RTMP on the TLS port gets no answer.
  EXPECT_NE(try_client(rtmp(uint16_t(tls_port), "live/q"), false), "");

  ASSERT_EQ(gst_element_set_state(src, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  g_object_get(src, "current-tls-port", &tls_port, nullptr);
  EXPECT_EQ(tls_port, 0u);
}

TEST_F(SecureTest, ServerSinkServesPlayersOverRtmps) {
  GstElement* sink = server_element("rtmpserversink", 0);
  set_tls(sink, certs().cert, certs().key);
  ASSERT_NE(gst_element_set_state(sink, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  guint tls_port = 0;
  g_object_get(sink, "current-tls-port", &tls_port, nullptr);
  ASSERT_NE(tls_port, 0u);
  std::unique_ptr<grtmp::Client> player;
  EXPECT_EQ(try_client(rtmps(uint16_t(tls_port), "live/out"), true, G_TLS_CERTIFICATE_NO_FLAGS, &player), "");
  if (player) player->close();
}

// Every certificate problem fails READY->PAUSED with an element error, and
// nothing listens (no fallback to plain RTMP).
TEST_F(SecureTest, CertificateProblemsFailTheStateChange) {
  struct Case {
    const char* what;
    std::string cert, key;
    bool tls;
    const char* expect;
  } cases[] = {
      {"missing certificate", certs().dir + "/none.pem", certs().key, true, "Could not load TLS certificate"},
      {"key of another certificate", certs().cert, certs().other_key, true, "does not belong to certificate"},
      {"certificate as key", certs().cert, certs().cert, true, "Could not load TLS certificate"},
      {"no files", "", "", true, "tls=true needs tls-cert-file and tls-key-file"},
      {"files without tls", certs().cert, certs().key, false, "set tls=true"},
  };
  for (const char* factory : {"rtmpserversrc", "rtmpserversink"}) {
    for (auto& c : cases) {
      SCOPED_TRACE(std::string(factory) + ": " + c.what);
      uint16_t port = free_port(), tls_port = free_port();
      GstBus* bus = nullptr;
      GstElement* e = server_element(factory, port, &bus);
      g_object_set(e, "tls", gboolean(c.tls), "tls-port", guint(tls_port), nullptr);
      if (!c.cert.empty()) g_object_set(e, "tls-cert-file", c.cert.c_str(), "tls-key-file", c.key.c_str(), nullptr);
      EXPECT_EQ(gst_element_set_state(e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
      BusError err = pop_error(bus);
      EXPECT_EQ(err.domain, GST_RESOURCE_ERROR);
      EXPECT_EQ(err.code, GST_RESOURCE_ERROR_SETTINGS);
      EXPECT_TRUE(has(err.text, c.expect)) << err.text;
      EXPECT_FALSE(listening(port)) << "plain port";
      EXPECT_FALSE(listening(tls_port)) << "TLS port";
      gst_element_set_state(e, GST_STATE_NULL);
    }
  }
}

TEST_F(SecureTest, TlsOnARunningPlainServerIsAnError) {
  grtmp::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = free_port();
  GError* err = nullptr;
  auto server = grtmp::Server::acquire(cfg, &err);
  ASSERT_TRUE(server) << (err ? err->message : "");
  GstBus* bus = nullptr;
  GstElement* src = server_element("rtmpserversrc", cfg.port, &bus);
  set_tls(src, certs().cert, certs().key);
  EXPECT_EQ(gst_element_set_state(src, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  BusError e = pop_error(bus);
  EXPECT_TRUE(has(e.text, "already running without RTMPS")) << e.text;
  gst_element_set_state(src, GST_STATE_NULL);

  // Without tls it shares the server, as before.
  g_object_set(src, "tls", FALSE, "tls-cert-file", nullptr, "tls-key-file", nullptr, nullptr);
  EXPECT_NE(gst_element_set_state(src, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  EXPECT_EQ(element_port(src), cfg.port);
  gst_element_set_state(src, GST_STATE_NULL);
  server->stop();
}

// ---------------------------------------------------------------- tls-validation-flags on the clients

// A server in this process with plain RTMP and RTMPS on ephemeral ports.
std::shared_ptr<grtmp::Server> tls_server() {
  grtmp::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.tls = true;
  cfg.tls_port = 0;
  cfg.tls_cert_file = g_certs->cert;
  cfg.tls_key_file = g_certs->key;
  cfg.keep_players_on_unpublish = false;
  GError* err = nullptr;
  auto s = grtmp::Server::acquire(cfg, &err);
  EXPECT_TRUE(s) << (err ? err->message : "");
  g_clear_error(&err);
  return s;
}

GstHarness* clientsink_harness(const std::string& location, const char* flags, GstBus* bus) {
  return harness_for("rtmpclientsink", {{"location", location}, {"sync", "false"}, {"tls-validation-flags", flags}},
                     bus);
}

TEST_F(SecureTest, ClientSinkPublishesOverRtmpsWithValidationOff) {
  if (!g_media) GRTMP_MISSING_PEER("x264enc/avenc_aac/flvmux");
  auto server = tls_server();
  ASSERT_TRUE(server);
  GstBus* bus = gst_bus_new();
  buses.push_back(bus);
  GstHarness* h = clientsink_harness(rtmps(server->tls_port(), "live/cs?token=t0psecret"), "0", bus);
  gst_harness_set_src_caps_str(h, "video/x-flv");
  const auto& flv = g_media->flv;
  EXPECT_EQ(gst_harness_push(h, gst_buffer_new_memdup(flv.data(), flv.size())), GST_FLOW_OK);
  EXPECT_TRUE(wait_for([&] {
    for (auto& i : server->registry().list())
      if (i.key == "live/cs" && i.live && i.messages_in >= without_repeated_headers(g_media->tags).size())
        return true;
    return false;
  })) << "published over RTMPS";
  EXPECT_EQ(pop_error(bus).text, "");
  gst_harness_teardown(h);
  server->stop();
}

TEST_F(SecureTest, ClientSinkDefaultFlagsRefuseASelfSignedCertificate) {
  auto server = tls_server();
  ASSERT_TRUE(server);
  GstBus* bus = gst_bus_new();
  buses.push_back(bus);
  GstHarness* h = clientsink_harness(rtmps(server->tls_port(), "live/cs?token=t0psecret"), "validate-all", bus);
  guint flags = 0;
  g_object_get(h->element, "tls-validation-flags", &flags, nullptr);
  EXPECT_EQ(flags, guint(G_TLS_CERTIFICATE_VALIDATE_ALL));
  gst_harness_set_src_caps_str(h, "video/x-flv");
  auto hdr = grtmp::flv::file_header(true, true);
  EXPECT_EQ(gst_harness_push(h, gst_buffer_new_memdup(hdr.data(), hdr.size())), GST_FLOW_OK);
  auto tag = grtmp::flv::encode_tag(8, 0, reinterpret_cast<const uint8_t*>("\xaf\x01xx"), 4);
  EXPECT_EQ(gst_harness_push(h, gst_buffer_new_memdup(tag.data(), tag.size())), GST_FLOW_ERROR);
  BusError e = pop_error(bus);
  EXPECT_EQ(e.domain, GST_RESOURCE_ERROR);
  EXPECT_TRUE(has(e.text, "Unacceptable TLS certificate") && has(e.text, "unknown CA")) << e.text;
  EXPECT_TRUE(has(e.text, "rtmps://127.0.0.1:" + std::to_string(server->tls_port()) + "/live/cs?...")) << e.text;
  EXPECT_FALSE(has(e.text, "t0psecret") || has(e.debug, "t0psecret")) << "the token stays out of messages";
  EXPECT_TRUE(has(e.debug, "tls-validation-flags=validate-all")) << e.debug;
  gst_harness_teardown(h);
  server->stop();
}

TEST_F(SecureTest, ClientSrcPlaysOverRtmps) {
  if (!g_media) GRTMP_MISSING_PEER("x264enc/avenc_aac/flvmux");
  auto server = tls_server();
  ASSERT_TRUE(server);
  auto pub = publisher(server->port(), "live/cp");
  ASSERT_TRUE(pub);
  std::string desc = "rtmpclientsrc location=" + rtmps(server->tls_port(), "live/cp") +
                     " tls-validation-flags=0 timeout=5 ! appsink name=out sync=false";
  GError* err = nullptr;
  GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
  ASSERT_NE(pipe, nullptr) << (err ? err->message : "");
  elements.push_back(pipe);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipe), "out");
  log_caps(sink);
  ASSERT_NE(gst_element_set_state(pipe, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(wait_for([&] {
    auto s = server->registry().find("live/cp");
    return s && s->info().subscribers == 1;
  }));
  ASSERT_TRUE(send_all(*pub, g_media->messages()));
  pub->close();
  Collected c;
  collect(sink, c);
  EXPECT_TRUE(c.eos);
  check_flv_output(*g_media, c, from_start(*g_media));
  EXPECT_EQ(bus_error(pipe), "");
  gst_object_unref(sink);
  server->stop();
}

TEST_F(SecureTest, ClientSrcDefaultFlagsRefuseASelfSignedCertificate) {
  auto server = tls_server();
  ASSERT_TRUE(server);
  std::string desc = "rtmpclientsrc location=" + rtmps(server->tls_port(), "live/cp?token=t0psecret") +
                     " timeout=5 ! fakesink";
  GstElement* pipe = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipe, nullptr);
  elements.push_back(pipe);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  std::string text = bus_error(pipe, 10 * GST_SECOND);
  EXPECT_TRUE(has(text, "Unacceptable TLS certificate") && has(text, "unknown CA")) << text;
  EXPECT_FALSE(has(text, "t0psecret")) << text;
  server->stop();
}

// ---------------------------------------------------------------- authorize

// Records every request; denies the keys (or apps, for connect) in `deny`.
struct AuthLog {
  std::mutex mu;
  std::vector<GstStructure*> requests;
  std::set<std::string> deny;
  std::thread::id test_thread = std::this_thread::get_id();
  bool on_test_thread = false;
  ~AuthLog() {
    for (auto* s : requests) gst_structure_free(s);
  }
  size_t count(const std::string& action) {
    std::lock_guard l(mu);
    size_t n = 0;
    for (auto* s : requests) n += action == gst_structure_get_string(s, "action");
    return n;
  }
  GstStructure* last(const std::string& action) {
    std::lock_guard l(mu);
    for (auto it = requests.rbegin(); it != requests.rend(); ++it)
      if (action == gst_structure_get_string(*it, "action")) return *it;
    return nullptr;
  }
  static gboolean handler(GstElement*, GstStructure* request, AuthLog* log) {
    std::lock_guard l(log->mu);
    log->requests.push_back(gst_structure_copy(request));
    if (std::this_thread::get_id() == log->test_thread) log->on_test_thread = true;
    std::string action = gst_structure_get_string(request, "action");
    std::string what = gst_structure_get_string(request, action == "connect" ? "app" : "key");
    if (log->deny.count(what)) {
      gst_structure_set(request, "reason", G_TYPE_STRING, "refused by the test", nullptr);
      return FALSE;
    }
    return TRUE;
  }
};

TEST_F(SecureTest, AuthorizeDeniesOneKeyAndAllowsAnother) {
  AuthLog log;
  log.deny = {"live/deny"};
  GstElement* src = server_element("rtmpserversrc", 0);
  g_signal_connect(src, "authorize", G_CALLBACK(AuthLog::handler), &log);
  ASSERT_NE(gst_element_set_state(src, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  uint16_t port = element_port(src);

  GError* code = nullptr;
  std::string text = try_client(rtmp(port, "live/deny?token=abc"), false, G_TLS_CERTIFICATE_NO_FLAGS, nullptr, &code);
  EXPECT_TRUE(g_error_matches(code, GRTMP_ERROR, GRTMP_ERROR_UNAUTHORIZED)) << text;
  EXPECT_TRUE(has(text, "NetStream.Publish.Unauthorized") && has(text, "refused by the test")) << text;
  g_clear_error(&code);

  std::unique_ptr<grtmp::Client> pub;
  EXPECT_EQ(try_client(rtmp(port, "live/ok?token=abc&user=x"), false, G_TLS_CERTIFICATE_NO_FLAGS, &pub), "");
  GstStructure* r = log.last("publish");
  ASSERT_NE(r, nullptr);
  EXPECT_STREQ(gst_structure_get_name(r), "grtmp-authorize-request");
  EXPECT_STREQ(gst_structure_get_string(r, "app"), "live");
  EXPECT_STREQ(gst_structure_get_string(r, "name"), "ok");
  EXPECT_STREQ(gst_structure_get_string(r, "key"), "live/ok");
  EXPECT_STREQ(gst_structure_get_string(r, "query"), "token=abc&user=x");
  EXPECT_STREQ(gst_structure_get_string(r, "remote-ip"), "127.0.0.1");
  EXPECT_TRUE(has(gst_structure_get_string(r, "tc-url"), "rtmp://127.0.0.1:" + std::to_string(port) + "/live"));
  EXPECT_NE(std::string(gst_structure_get_string(r, "conn-id")), "");

  // Play: the same handler, the same answers.
  text = try_client(rtmp(port, "live/deny"), true, G_TLS_CERTIFICATE_NO_FLAGS, nullptr, &code);
  EXPECT_TRUE(g_error_matches(code, GRTMP_ERROR, GRTMP_ERROR_UNAUTHORIZED)) << text;
  EXPECT_TRUE(has(text, "NetStream.Play.Unauthorized")) << text;
  g_clear_error(&code);
  std::unique_ptr<grtmp::Client> player;
  EXPECT_EQ(try_client(rtmp(port, "live/ok"), true, G_TLS_CERTIFICATE_NO_FLAGS, &player), "");
  EXPECT_EQ(log.count("play"), 2u);
  EXPECT_EQ(log.count("connect"), 4u) << "one per connection";
  GstStructure* c = log.last("connect");
  ASSERT_NE(c, nullptr);
  EXPECT_STREQ(gst_structure_get_string(c, "key"), "");
  EXPECT_FALSE(log.on_test_thread) << "emitted from the authorization pool";
  if (player) player->close();
  if (pub) pub->close();

  // Counted in stats like the library's own denials.
  GstStructure* stats = nullptr;
  g_object_get(src, "stats", &stats, nullptr);
  ASSERT_NE(stats, nullptr);
  guint64 denials = 0;
  EXPECT_TRUE(gst_structure_get_uint64(stats, "auth-denials", &denials));
  EXPECT_EQ(denials, 2u);
  gst_structure_free(stats);
}

TEST_F(SecureTest, AuthorizeRefusalReachesRtmpclientsink) {
  AuthLog log;
  log.deny = {"live/deny"};
  GstElement* src = server_element("rtmpserversrc", 0);
  g_signal_connect(src, "authorize", G_CALLBACK(AuthLog::handler), &log);
  ASSERT_NE(gst_element_set_state(src, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstBus* bus = gst_bus_new();
  buses.push_back(bus);
  GstHarness* h = harness_for("rtmpclientsink", {{"location", rtmp(element_port(src), "live/deny?token=t0psecret")},
                                                 {"sync", "false"}},
                              bus);
  gst_harness_set_src_caps_str(h, "video/x-flv");
  auto hdr = grtmp::flv::file_header(true, true);
  auto tag = grtmp::flv::encode_tag(8, 0, reinterpret_cast<const uint8_t*>("\xaf\x01xx"), 4);
  std::vector<uint8_t> v(hdr.begin(), hdr.end());
  v.insert(v.end(), tag.begin(), tag.end());
  EXPECT_EQ(gst_harness_push(h, gst_buffer_new_memdup(v.data(), v.size())), GST_FLOW_ERROR);
  BusError e = pop_error(bus);
  EXPECT_EQ(e.domain, GST_RESOURCE_ERROR);
  EXPECT_EQ(e.code, GST_RESOURCE_ERROR_NOT_AUTHORIZED) << e.text;
  EXPECT_TRUE(has(e.text, "NetStream.Publish.Unauthorized (refused by the test)")) << e.text;
  EXPECT_FALSE(has(e.text, "t0psecret")) << e.text;
  EXPECT_TRUE(has(e.text, "/live/deny?...")) << e.text;
  gst_harness_teardown(h);
}

TEST_F(SecureTest, AuthorizeDetailsAndFirstRefusalWins) {
  AuthLog connect_log, publish_log, second;
  connect_log.deny = {"closed"};
  publish_log.deny = {"live/deny"};
  GstElement* src = server_element("rtmpserversrc", 0);
  g_signal_connect(src, "authorize::connect", G_CALLBACK(AuthLog::handler), &connect_log);
  g_signal_connect(src, "authorize::publish", G_CALLBACK(AuthLog::handler), &publish_log);
  g_signal_connect(src, "authorize::publish", G_CALLBACK(AuthLog::handler), &second);
  ASSERT_NE(gst_element_set_state(src, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  uint16_t port = element_port(src);

  GError* code = nullptr;
  std::string text = try_client(rtmp(port, "closed/x"), false, G_TLS_CERTIFICATE_NO_FLAGS, nullptr, &code);
  EXPECT_TRUE(has(text, "NetConnection.Connect.Rejected")) << text;
  g_clear_error(&code);
  EXPECT_EQ(publish_log.count("publish"), 0u);

  text = try_client(rtmp(port, "live/deny"), false);
  EXPECT_TRUE(has(text, "NetStream.Publish.Unauthorized")) << text;
  EXPECT_EQ(publish_log.count("publish"), 1u);
  EXPECT_EQ(second.count("publish"), 0u) << "the first FALSE ends the emission";

  std::unique_ptr<grtmp::Client> player;
  EXPECT_EQ(try_client(rtmp(port, "live/deny"), true, G_TLS_CERTIFICATE_NO_FLAGS, &player), "")
      << "no handler for play: allowed";
  if (player) player->close();
  EXPECT_EQ(publish_log.count("play"), 0u);
  EXPECT_EQ(connect_log.count("connect"), 3u);
  EXPECT_EQ(connect_log.count("publish") + connect_log.count("play"), 0u);

  std::unique_ptr<grtmp::Client> pub;
  EXPECT_EQ(try_client(rtmp(port, "live/ok"), false, G_TLS_CERTIFICATE_NO_FLAGS, &pub), "");
  EXPECT_EQ(second.count("publish"), 1u);
  if (pub) pub->close();
}

// rtmpserversink starts first (sinks do, in a pipeline) on the port;
// rtmpserversrc with a handler joins it and is still asked.
TEST_F(SecureTest, AuthorizeOnAServerStartedByRtmpserversink) {
  uint16_t port = free_port();
  GstElement* sink = server_element("rtmpserversink", port);
  ASSERT_NE(gst_element_set_state(sink, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  AuthLog log;
  log.deny = {"live/deny", "live/out"};
  GstElement* src = server_element("rtmpserversrc", port);
  g_signal_connect(src, "authorize", G_CALLBACK(AuthLog::handler), &log);
  ASSERT_NE(gst_element_set_state(src, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_EQ(element_port(src), port);
  EXPECT_TRUE(has(try_client(rtmp(port, "live/deny"), false), "NetStream.Publish.Unauthorized"));
  EXPECT_TRUE(has(try_client(rtmp(port, "live/out"), true), "NetStream.Play.Unauthorized"));
  // Back in READY, the src is no longer asked.
  gst_element_set_state(src, GST_STATE_NULL);
  std::unique_ptr<grtmp::Client> pub;
  EXPECT_EQ(try_client(rtmp(port, "live/deny"), false, G_TLS_CERTIFICATE_NO_FLAGS, &pub), "");
  if (pub) pub->close();
}

TEST_F(SecureTest, AuthorizeHandlersOnAServerOfTheApplicationAreAnError) {
  grtmp::ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = free_port();
  GError* err = nullptr;
  auto server = grtmp::Server::acquire(cfg, &err);
  ASSERT_TRUE(server) << (err ? err->message : "");
  AuthLog log;
  GstBus* bus = nullptr;
  GstElement* src = server_element("rtmpserversrc", cfg.port, &bus);
  gulong id = g_signal_connect(src, "authorize::play", G_CALLBACK(AuthLog::handler), &log);
  EXPECT_EQ(gst_element_set_state(src, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  BusError e = pop_error(bus);
  EXPECT_TRUE(has(e.text, "\"authorize\" handlers are connected") && has(e.text, "would never be asked")) << e.text;
  gst_element_set_state(src, GST_STATE_NULL);
  // Without handlers it shares the server as before.
  g_signal_handler_disconnect(src, id);
  EXPECT_NE(gst_element_set_state(src, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  gst_element_set_state(src, GST_STATE_NULL);
  server->stop();
}

}  // namespace
