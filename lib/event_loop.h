// Internal (not installed): an event loop over one epoll set, hosted as a
// single GSource in a GMainContext (its own thread's, or the caller's).
//
// A GMainContext polls every source it holds on each iteration; with
// thousands of connections that costs more than the work. Here the
// context holds one fd (the epoll set) and epoll reports only the ready
// connections. Cross-thread work arrives through post()/mark_dirty(),
// which wake the loop through an eventfd in the same set.
#pragma once

#include <glib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace grtmp {

class FdHandler {
 public:
  virtual ~FdHandler() = default;
  virtual void on_io(uint32_t epoll_events) = 0;
};

class EventLoop {
 public:
  // With `context` null the loop runs on a thread of its own (start()).
  explicit EventLoop(GMainContext* context);
  ~EventLoop();

  bool start(GError** error);  // own thread: spawns it; attached: attaches the source
  void stop();                 // quits and joins (own thread) or detaches

  GMainContext* context() const { return context_; }
  bool on_loop_thread() const;

  // Loop thread only.
  bool add_fd(int fd, uint32_t events, FdHandler* handler);
  void modify_fd(int fd, uint32_t events, FdHandler* handler);
  void remove_fd(int fd);

  // Any thread: run `fn` on the loop thread soon.
  void post(std::function<void()> fn);
  // Any thread: report `id` as having work (deduplicated per wakeup); the
  // dirty handler receives the ids on the loop thread.
  void mark_dirty(uint64_t id);
  void set_dirty_handler(std::function<void(const std::vector<uint64_t>&)> fn) { dirty_handler_ = std::move(fn); }
  // Called about once a second on the loop thread.
  void set_tick_handler(std::function<void(int64_t now_us)> fn) { tick_handler_ = std::move(fn); }

  static gboolean dispatch_cb(GSource* source, GSourceFunc, gpointer);

 private:
  struct LoopSource;
  static gboolean tick_cb(gpointer self);
  static gpointer thread_main(gpointer self);
  void dispatch();
  void wake();

  GMainContext* context_;
  bool own_context_;
  GMainLoop* main_loop_ = nullptr;
  GThread* thread_ = nullptr;
  GSource* source_ = nullptr;
  GSource* tick_source_ = nullptr;
  int epoll_fd_ = -1;
  int event_fd_ = -1;
  std::atomic<bool> wake_pending_{false};

  std::mutex mutex_;
  std::vector<std::function<void()>> posted_;
  std::vector<uint64_t> dirty_;
  std::function<void(const std::vector<uint64_t>&)> dirty_handler_;
  std::function<void(int64_t)> tick_handler_;
};

}  // namespace grtmp
