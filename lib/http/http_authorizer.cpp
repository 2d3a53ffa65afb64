#include "http_authorizer.h"

#include <libsoup/soup.h>

#include "grtmp/log.h"

namespace grtmp {

namespace {
const char* call_name(AuthRequest::Action a) {
  switch (a) {
    case AuthRequest::Action::Connect: return "connect";
    case AuthRequest::Action::Publish: return "publish";
    case AuthRequest::Action::Play: return "play";
    case AuthRequest::Action::Done: return "done";
  }
  return "done";
}
}  // namespace

std::string http_auth_form(const AuthRequest& r) {
  GHashTable* form = g_hash_table_new(g_str_hash, g_str_equal);
  std::string addr = r.remote_ip;
  if (addr.size() > 2 && addr.front() == '[') addr = addr.substr(1, addr.size() - 2);
  // The stream's own query arguments first, so the fixed fields win.
  gchar** parts = g_strsplit(r.query.c_str(), "&", -1);
  std::vector<std::pair<std::string, std::string>> extra;
  for (gchar** p = parts; *p; p++) {
    if (!**p) continue;
    const char* eq = strchr(*p, '=');
    std::string k = eq ? std::string(*p, eq - *p) : std::string(*p);
    gchar* v = eq ? g_uri_unescape_string(eq + 1, nullptr) : g_strdup("");
    extra.emplace_back(k, v ? v : "");
    g_free(v);
  }
  g_strfreev(parts);
  for (auto& [k, v] : extra) g_hash_table_insert(form, (gpointer)k.c_str(), (gpointer)v.c_str());
  g_hash_table_insert(form, (gpointer) "call", (gpointer)call_name(r.action));
  g_hash_table_insert(form, (gpointer) "app", (gpointer)r.app.c_str());
  g_hash_table_insert(form, (gpointer) "name", (gpointer)r.name.c_str());
  g_hash_table_insert(form, (gpointer) "addr", (gpointer)addr.c_str());
  g_hash_table_insert(form, (gpointer) "clientid", (gpointer)r.conn_id.c_str());
  g_hash_table_insert(form, (gpointer) "tcurl", (gpointer)r.tc_url.c_str());
  gchar* encoded = soup_form_encode_hash(form);
  std::string out = encoded;
  g_free(encoded);
  g_hash_table_unref(form);
  return out;
}

struct HttpAuthorizer::Impl {
  HttpAuthorizerOptions options;
  GMainContext* context = nullptr;
  GMainLoop* loop = nullptr;
  GThread* thread = nullptr;
  SoupSession* session = nullptr;  // used on `thread` only

  struct Call {
    Impl* impl;
    AuthRequest request;
    Done done;
    std::string url;
    SoupMessage* msg = nullptr;
  };

  static gpointer run(gpointer data) {
    auto* self = static_cast<Impl*>(data);
    g_main_context_push_thread_default(self->context);
    self->session = soup_session_new_with_options("timeout", self->options.timeout_ms / 1000 + 1, "idle-timeout", 30,
                                                  nullptr);
    g_main_loop_run(self->loop);
    g_object_unref(self->session);
    g_main_context_pop_thread_default(self->context);
    return nullptr;
  }

  const std::string& url_for(AuthRequest::Action a) const {
    switch (a) {
      case AuthRequest::Action::Connect: return options.on_connect;
      case AuthRequest::Action::Publish: return options.on_publish;
      case AuthRequest::Action::Play: return options.on_play;
      case AuthRequest::Action::Done: return options.on_done;
    }
    return options.on_done;
  }

  // On the authorizer's thread.
  static gboolean start(gpointer data) {
    auto* call = static_cast<Call*>(data);
    std::string body = http_auth_form(call->request);
    call->msg = soup_message_new("POST", call->url.c_str());
    if (!call->msg) {
      finish(call, {false, "bad callback URL " + call->url, ""});
      return G_SOURCE_REMOVE;
    }
    GBytes* bytes = g_bytes_new(body.data(), body.size());
    soup_message_set_request_body_from_bytes(call->msg, "application/x-www-form-urlencoded", bytes);
    g_bytes_unref(bytes);
    // Do not follow redirects: a 3xx is the answer (a rename).
    soup_message_add_flags(call->msg, SOUP_MESSAGE_NO_REDIRECT);
    GCancellable* cancel = g_cancellable_new();
    // The session timeout counts whole seconds; this timer is exact.
    GSource* timer = g_timeout_source_new(call->impl->options.timeout_ms);
    g_source_set_callback(timer, [](gpointer c) -> gboolean {
      g_cancellable_cancel(G_CANCELLABLE(c));
      return G_SOURCE_REMOVE;
    }, g_object_ref(cancel), g_object_unref);
    g_source_attach(timer, call->impl->context);
    struct Ctx {
      Call* call;
      GSource* timer;
      GCancellable* cancel;
    };
    auto* ctx = new Ctx{call, timer, cancel};
    soup_session_send_and_read_async(
        call->impl->session, call->msg, G_PRIORITY_DEFAULT, cancel,
        [](GObject* src, GAsyncResult* res, gpointer data) {
          auto* ctx = static_cast<Ctx*>(data);
          Call* call = ctx->call;
          GError* err = nullptr;
          GBytes* body = soup_session_send_and_read_finish(SOUP_SESSION(src), res, &err);
          g_source_destroy(ctx->timer);
          g_source_unref(ctx->timer);
          bool timed_out = g_cancellable_is_cancelled(ctx->cancel);
          g_object_unref(ctx->cancel);
          delete ctx;
          if (body) g_bytes_unref(body);
          AuthDecision d;
          if (err) {
            d = {false, timed_out ? "callback timed out" : std::string("callback failed: ") + err->message, ""};
            g_error_free(err);
          } else {
            guint status = soup_message_get_status(call->msg);
            if (status >= 200 && status < 300) {
              d = {true, "", ""};
            } else if (status >= 300 && status < 400) {
              const char* loc = soup_message_headers_get_one(soup_message_get_response_headers(call->msg), "Location");
              std::string l = loc ? loc : "";
              auto q = l.find('?');
              if (q != std::string::npos) l.resize(q);
              auto slash = l.rfind('/');
              std::string name = slash == std::string::npos ? l : l.substr(slash + 1);
              if (name.empty()) d = {false, "callback redirect without a stream name", ""};
              else d = {true, "", name};
            } else {
              d = {false, "callback answered " + std::to_string(status), ""};
            }
          }
          finish(call, d);
        },
        ctx);
    return G_SOURCE_REMOVE;
  }

  static void finish(Call* call, const AuthDecision& d) {
    if (call->request.action != AuthRequest::Action::Done)
      GRTMP_LOG(d.allow ? log::Level::Debug : log::Level::Warn, "authorization callback",
                {"conn_id", call->request.conn_id}, {"stream_key", call->request.key()},
                {"call", call_name(call->request.action)}, {"allow", d.allow ? "true" : "false"},
                {"reason", d.reason}, {"rename", d.rename});
    call->done(d);
    if (call->msg) g_object_unref(call->msg);
    delete call;
  }
};

HttpAuthorizer::HttpAuthorizer(HttpAuthorizerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->context = g_main_context_new();
  impl_->loop = g_main_loop_new(impl_->context, FALSE);
  // SoupSession's class initialisation (on the new thread, in
  // soup_session_new) registers GInetSocketAddress and friends. GLib 2.74
  // deadlocks when that races with another thread registering the same
  // types (the server's listener, created right after this): one thread
  // holds the type lock in g_type_class_ref and waits in g_once for
  // g_inet_socket_address_get_type, the other is inside that g_once and
  // waits for the type lock. Seen as a launcher with -on-connect that never
  // listened (1 start in 3 under ASan). Initialising the class here, on the
  // caller's thread before this thread starts and before the server
  // listens, takes the race away.
  g_type_class_unref(g_type_class_ref(SOUP_TYPE_SESSION));
  impl_->thread = g_thread_new("grtmp-http-auth", Impl::run, impl_.get());
}

HttpAuthorizer::~HttpAuthorizer() {
  // Quit from inside the loop: a quit before the thread entered
  // g_main_loop_run() would be lost and the join would wait forever.
  GSource* quit = g_idle_source_new();
  g_source_set_callback(quit, [](gpointer l) -> gboolean {
    g_main_loop_quit(static_cast<GMainLoop*>(l));
    return G_SOURCE_REMOVE;
  }, impl_->loop, nullptr);
  g_source_attach(quit, impl_->context);
  g_source_unref(quit);
  g_thread_join(impl_->thread);
  g_main_loop_unref(impl_->loop);
  g_main_context_unref(impl_->context);
}

void HttpAuthorizer::authorize(const AuthRequest& request, Done done) {
  const std::string& url = impl_->url_for(request.action);
  if (url.empty()) {
    done({true, "", ""});
    return;
  }
  auto* call = new Impl::Call{impl_.get(), request, std::move(done), url};
  g_main_context_invoke(impl_->context, Impl::start, call);
}

}  // namespace grtmp
