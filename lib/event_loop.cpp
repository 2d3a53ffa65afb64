#include "event_loop.h"

#include <gio/gio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace grtmp {

struct EventLoop::LoopSource {
  GSource source;
  EventLoop* loop;
};

static GSourceFuncs loop_source_funcs = {
    nullptr,  // prepare: the unix fd tells readiness
    nullptr,  // check
    [](GSource* s, GSourceFunc cb, gpointer data) -> gboolean {
      return EventLoop::dispatch_cb(s, cb, data);
    },
    nullptr, nullptr, nullptr,
};

EventLoop::EventLoop(GMainContext* context)
    : context_(context ? g_main_context_ref(context) : g_main_context_new()), own_context_(context == nullptr) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // null handler = the wake eventfd
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev);
}

EventLoop::~EventLoop() {
  stop();
  if (event_fd_ >= 0) close(event_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  g_main_context_unref(context_);
}

bool EventLoop::start(GError** error) {
  if (epoll_fd_ < 0 || event_fd_ < 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "epoll/eventfd: %s", g_strerror(errno));
    return false;
  }
  source_ = g_source_new(&loop_source_funcs, sizeof(LoopSource));
  reinterpret_cast<LoopSource*>(source_)->loop = this;
  g_source_set_name(source_, "grtmp-event-loop");
  // Our dispatch never re-enters the main loop. Without this GLib blocks
  // and unblocks the epoll fd around every dispatch (two eventfd writes
  // and a read per wakeup, seen in perf traces).
  g_source_set_can_recurse(source_, TRUE);
  g_source_add_unix_fd(source_, epoll_fd_, G_IO_IN);
  g_source_attach(source_, context_);
  tick_source_ = g_timeout_source_new(1000);
  g_source_set_callback(tick_source_, tick_cb, this, nullptr);
  g_source_attach(tick_source_, context_);
  if (own_context_) {
    main_loop_ = g_main_loop_new(context_, FALSE);
    thread_ = g_thread_new("grtmp-loop", thread_main, this);
  }
  return true;
}

void EventLoop::stop() {
  if (main_loop_) {
    // Quit from inside the loop: a quit before the thread entered
    // g_main_loop_run() would be lost and the join would wait forever.
    GSource* quit = g_idle_source_new();
    g_source_set_callback(quit, [](gpointer l) -> gboolean {
      g_main_loop_quit(static_cast<GMainLoop*>(l));
      return G_SOURCE_REMOVE;
    }, main_loop_, nullptr);
    g_source_attach(quit, context_);
    g_source_unref(quit);
    if (thread_) g_thread_join(thread_);
    thread_ = nullptr;
    g_main_loop_unref(main_loop_);
    main_loop_ = nullptr;
  }
  // Work posted after the last iteration (deferred deletions) still runs.
  for (;;) {
    std::vector<std::function<void()>> posted;
    {
      std::lock_guard lock(mutex_);
      posted.swap(posted_);
    }
    if (posted.empty()) break;
    for (auto& fn : posted) fn();
  }
  if (tick_source_) {
    g_source_destroy(tick_source_);
    g_source_unref(tick_source_);
    tick_source_ = nullptr;
  }
  if (source_) {
    g_source_destroy(source_);
    g_source_unref(source_);
    source_ = nullptr;
  }
}

gpointer EventLoop::thread_main(gpointer self) {
  auto* loop = static_cast<EventLoop*>(self);
  g_main_context_push_thread_default(loop->context_);
  g_main_loop_run(loop->main_loop_);
  g_main_context_pop_thread_default(loop->context_);
  return nullptr;
}

bool EventLoop::on_loop_thread() const { return g_main_context_is_owner(context_); }

bool EventLoop::add_fd(int fd, uint32_t events, FdHandler* handler) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void EventLoop::modify_fd(int fd, uint32_t events, FdHandler* handler) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = handler;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::remove_fd(int fd) { epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::wake() {
  // One eventfd write per batch: later posts see wake_pending_ set.
  if (!wake_pending_.exchange(true)) {
    uint64_t one = 1;
    ssize_t r = write(event_fd_, &one, sizeof one);
    (void)r;
  }
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    posted_.push_back(std::move(fn));
  }
  wake();
}

void EventLoop::mark_dirty(uint64_t id) {
  {
    std::lock_guard lock(mutex_);
    dirty_.push_back(id);
  }
  wake();
}

gboolean EventLoop::dispatch_cb(GSource* source, GSourceFunc, gpointer) {
  reinterpret_cast<LoopSource*>(source)->loop->dispatch();
  return G_SOURCE_CONTINUE;
}

gboolean EventLoop::tick_cb(gpointer self) {
  auto* loop = static_cast<EventLoop*>(self);
  if (loop->tick_handler_) loop->tick_handler_(g_get_monotonic_time());
  return G_SOURCE_CONTINUE;
}

void EventLoop::dispatch() {
  struct epoll_event events[256];
  bool woken = false;
  int n = epoll_wait(epoll_fd_, events, 256, 0);
  for (int i = 0; i < n; i++) {
    auto* h = static_cast<FdHandler*>(events[i].data.ptr);
    if (!h) {
      woken = true;
      continue;
    }
    h->on_io(events[i].events);
  }
  if (woken) {
    uint64_t v;
    ssize_t r = read(event_fd_, &v, sizeof v);
    (void)r;
    wake_pending_.store(false);
  }
  // Cross-thread work, batched: everything posted since the last wakeup.
  std::vector<std::function<void()>> posted;
  std::vector<uint64_t> dirty;
  {
    std::lock_guard lock(mutex_);
    posted.swap(posted_);
    dirty.swap(dirty_);
  }
  for (auto& fn : posted) fn();
  if (!dirty.empty() && dirty_handler_) dirty_handler_(dirty);
}

}  // namespace grtmp
