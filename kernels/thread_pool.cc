// Persistent workers woken per ParallelFor through a generation counter; tasks are handed
// out with an atomic counter and the caller works too. Nothing is allocated per call.
#include "kernels/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace fk {

struct ThreadPool::State {
  int threads = 1;
  std::vector<std::thread> workers;

  std::mutex mu;
  std::condition_variable work_cv;  // workers wait here for a new generation
  std::condition_variable done_cv;  // the caller waits here for the workers to finish
  uint64_t generation = 0;          // guarded by mu
  bool stop = false;                // guarded by mu
  int busy = 0;                     // workers still inside the current job; guarded by mu

  // The current job; written by the caller before the generation is bumped (under mu), so
  // workers that observe the new generation see it.
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t n_tasks = 0;
  std::atomic<int64_t> next{0};

  void RunTasks() {
    for (;;) {
      const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_tasks) return;
      (*fn)(t);
    }
  }

  void WorkerLoop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu);
        work_cv.wait(lock, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
      }
      RunTasks();
      std::lock_guard<std::mutex> lock(mu);
      if (--busy == 0) done_cv.notify_one();
    }
  }
};

ThreadPool::ThreadPool(int threads) : state_(std::make_unique<State>()) {
  state_->threads = std::max(1, threads);
  state_->workers.reserve(state_->threads - 1);
  for (int i = 1; i < state_->threads; ++i)
    state_->workers.emplace_back([s = state_.get()] { s->WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->work_cv.notify_all();
  for (std::thread& t : state_->workers) t.join();
}

int ThreadPool::size() const { return state_->threads; }

void ThreadPool::ParallelFor(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  State& s = *state_;
  if (s.workers.empty() || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.fn = &fn;
    s.n_tasks = n_tasks;
    s.next.store(0, std::memory_order_relaxed);
    s.busy = static_cast<int>(s.workers.size());
    ++s.generation;
  }
  s.work_cv.notify_all();
  s.RunTasks();
  std::unique_lock<std::mutex> lock(s.mu);
  s.done_cv.wait(lock, [&] { return s.busy == 0; });
  s.fn = nullptr;
}

}  // namespace fk
