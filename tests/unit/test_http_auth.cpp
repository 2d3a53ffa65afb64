// HttpAuthorizer against a real HTTP server (libsoup's SoupServer on an
// ephemeral port, on its own thread): allow, deny, redirect-rename, an
// answer that comes too late, and a callback server that is down.
#include <gtest/gtest.h>
#include <libsoup/soup.h>

#include <future>
#include <map>
#include <mutex>

#include "http_authorizer.h"

using namespace grtmp;

namespace {

class CallbackServer {
 public:
  CallbackServer() {
    ctx_ = g_main_context_new();
    loop_ = g_main_loop_new(ctx_, FALSE);
    std::promise<void> ready;
    auto f = ready.get_future();
    thread_ = std::thread([this, &ready] {
      g_main_context_push_thread_default(ctx_);
      server_ = soup_server_new(nullptr, nullptr);
      soup_server_add_handler(server_, nullptr, handler, this, nullptr);
      GError* err = nullptr;
      soup_server_listen_local(server_, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &err);
      GSList* uris = soup_server_get_uris(server_);
      port_ = g_uri_get_port(static_cast<GUri*>(uris->data));
      g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
      ready.set_value();
      g_main_loop_run(loop_);
      // Close the listener and every kept-alive client connection, and let
      // their pending callbacks run, before the context goes away
      // (LeakSanitizer: an accepted GSocket outlived the test otherwise).
      soup_server_disconnect(server_);
      g_object_unref(server_);
      while (g_main_context_iteration(ctx_, FALSE)) {
      }
      g_main_context_pop_thread_default(ctx_);
    });
    f.wait();
  }
  ~CallbackServer() {
    g_main_loop_quit(loop_);
    thread_.join();
    g_main_loop_unref(loop_);
    g_main_context_unref(ctx_);
  }
  std::string url(const char* path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::map<std::string, std::string> last_form() {
    std::lock_guard l(mu_);
    return last_form_;
  }

 private:
  static void handler(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable*, gpointer data) {
    auto* self = static_cast<CallbackServer*>(data);
    SoupMessageBody* body = soup_server_message_get_request_body(msg);
    GBytes* b = soup_message_body_flatten(body);
    std::string text(static_cast<const char*>(g_bytes_get_data(b, nullptr)), g_bytes_get_size(b));
    g_bytes_unref(b);
    GHashTable* form = soup_form_decode(text.c_str());
    {
      std::lock_guard l(self->mu_);
      self->last_form_.clear();
      GHashTableIter it;
      gpointer k, v;
      g_hash_table_iter_init(&it, form);
      while (g_hash_table_iter_next(&it, &k, &v))
        self->last_form_[static_cast<char*>(k)] = static_cast<char*>(v);
    }
    g_hash_table_unref(form);
    std::string p = path;
    if (p == "/allow") {
      soup_server_message_set_status(msg, 200, nullptr);
    } else if (p == "/redirect") {
      soup_server_message_set_status(msg, 302, nullptr);
      soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Location",
                                   "rtmp://127.0.0.1/live/renamed");
    } else if (p == "/slow") {
      // Answer after 2 s: later than the authorizer's timeout.
      soup_server_message_pause(msg);
      g_object_ref(msg);
      GSource* t = g_timeout_source_new(2000);
      g_source_set_callback(t, [](gpointer m) -> gboolean {
        soup_server_message_set_status(SOUP_SERVER_MESSAGE(m), 200, nullptr);
        soup_server_message_unpause(SOUP_SERVER_MESSAGE(m));
        g_object_unref(m);
        return G_SOURCE_REMOVE;
      }, msg, nullptr);
      g_source_attach(t, self->ctx_);
      g_source_unref(t);
    } else {
      soup_server_message_set_status(msg, 403, nullptr);
    }
  }

  GMainContext* ctx_;
  GMainLoop* loop_;
  SoupServer* server_ = nullptr;
  std::thread thread_;
  guint port_ = 0;
  std::mutex mu_;
  std::map<std::string, std::string> last_form_;
};

AuthDecision ask(Authorizer& a, AuthRequest r) {
  std::promise<AuthDecision> p;
  auto f = p.get_future();
  a.authorize(r, [&p](AuthDecision d) { p.set_value(d); });
  return f.get();
}

AuthRequest publish_request() {
  AuthRequest r;
  r.action = AuthRequest::Action::Publish;
  r.app = "live";
  r.name = "cam";
  r.query = "token=abc&x=1";
  r.remote_ip = "127.0.0.1";
  r.conn_id = "c000007";
  r.tc_url = "rtmp://127.0.0.1/live";
  return r;
}

}  // namespace

TEST(HttpAuthorizer, AllowSendsNginxStyleForm) {
  CallbackServer srv;
  HttpAuthorizerOptions o;
  o.on_publish = srv.url("/allow");
  HttpAuthorizer auth(o);
  auto d = ask(auth, publish_request());
  EXPECT_TRUE(d.allow);
  auto form = srv.last_form();
  EXPECT_EQ(form["call"], "publish");
  EXPECT_EQ(form["app"], "live");
  EXPECT_EQ(form["name"], "cam");
  EXPECT_EQ(form["addr"], "127.0.0.1");
  EXPECT_EQ(form["clientid"], "c000007");
  EXPECT_EQ(form["token"], "abc");
  EXPECT_EQ(form["x"], "1");
}

TEST(HttpAuthorizer, NonSuccessDenies) {
  CallbackServer srv;
  HttpAuthorizerOptions o;
  o.on_play = srv.url("/deny");
  HttpAuthorizer auth(o);
  auto r = publish_request();
  r.action = AuthRequest::Action::Play;
  auto d = ask(auth, r);
  EXPECT_FALSE(d.allow);
  EXPECT_NE(d.reason.find("403"), std::string::npos);
}

TEST(HttpAuthorizer, RedirectRenamesTheStream) {
  CallbackServer srv;
  HttpAuthorizerOptions o;
  o.on_publish = srv.url("/redirect");
  HttpAuthorizer auth(o);
  auto d = ask(auth, publish_request());
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.rename, "renamed");
}

TEST(HttpAuthorizer, LateAnswerIsADenial) {
  CallbackServer srv;
  HttpAuthorizerOptions o;
  o.on_publish = srv.url("/slow");
  o.timeout_ms = 500;
  HttpAuthorizer auth(o);
  gint64 t0 = g_get_monotonic_time();
  auto d = ask(auth, publish_request());
  gint64 ms = (g_get_monotonic_time() - t0) / 1000;
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.reason, "callback timed out");
  EXPECT_LT(ms, 1500);
}

TEST(HttpAuthorizer, ServerDownDenies) {
  // A port nothing listens on: bind, read the port, close.
  GSocket* s = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
  GInetAddress* lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress* a = g_inet_socket_address_new(lo, 0);
  ASSERT_TRUE(g_socket_bind(s, a, TRUE, nullptr));
  GSocketAddress* local = g_socket_get_local_address(s, nullptr);
  guint port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
  g_object_unref(local);
  g_object_unref(a);
  g_object_unref(lo);
  g_socket_close(s, nullptr);
  g_object_unref(s);
  HttpAuthorizerOptions o;
  o.on_publish = "http://127.0.0.1:" + std::to_string(port) + "/auth";
  HttpAuthorizer auth(o);
  auto d = ask(auth, publish_request());
  EXPECT_FALSE(d.allow);
  EXPECT_NE(d.reason.find("callback failed"), std::string::npos);
}

TEST(HttpAuthorizer, EventsWithoutAUrlAreAllowed) {
  HttpAuthorizerOptions o;
  HttpAuthorizer auth(o);
  EXPECT_TRUE(ask(auth, publish_request()).allow);
}
