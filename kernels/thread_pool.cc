// Persistent workers woken per ParallelFor through a generation counter; tasks are handed
// out with an atomic counter and the caller works too. Nothing is allocated per call.
//
// Waiting. A transformer calls ParallelFor hundreds of times per token on small matrices,
// microseconds apart, so a worker that finished a job spins on the generation counter for
// a while (kSpinNs) before it sleeps on the condition variable, and the caller spins on the
// count of busy workers likewise. A wake-up from spinning costs well under a microsecond; a
// futex wake-up costs tens. Sleeping workers are only notified when there are some (the
// `sleepers` count), so a hot pool never touches the mutex.
//
// Lost wake-ups are impossible: a worker counts itself in `sleepers` and re-reads the
// generation under the mutex before it waits; the caller bumps the generation, then reads
// `sleepers` (both sequentially consistent), and notifies under the mutex if it is non-zero.
// Either the worker sees the new generation or the caller sees the sleeper.
#include "kernels/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace fk {
namespace {

// How long a waiting thread spins before it sleeps.
constexpr int64_t kSpinNs = 100'000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until pred() holds or kSpinNs passed; returns pred(). After a few hundred pauses
// it also yields, so an oversubscribed machine (more threads than cores) still progresses.
template <class Pred>
bool spin_until(Pred pred) {
  for (int i = 0; i < 256; ++i) {
    if (pred()) return true;
    cpu_relax();
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(kSpinNs);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    std::this_thread::yield();
    if (std::chrono::steady_clock::now() > deadline) return pred();
  }
}

}  // namespace

struct ThreadPool::State {
  int threads = 1;
  std::vector<std::thread> workers;

  std::atomic<uint64_t> generation{0};  // bumped once per job
  std::atomic<int> busy{0};             // workers still inside the current job
  std::atomic<int> sleepers{0};         // workers waiting (or about to) on work_cv
  std::atomic<bool> caller_sleeping{false};
  std::atomic<bool> stop{false};

  std::mutex mu;
  std::condition_variable work_cv;  // sleeping workers wait here for a new generation
  std::condition_variable done_cv;  // a sleeping caller waits here for busy == 0

  // The current job; written by the caller before the generation is bumped (release), so
  // workers that observe the new generation (acquire) see it.
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
      const auto fresh = [&] {
        return stop.load(std::memory_order_acquire) ||
               generation.load(std::memory_order_acquire) != seen;
      };
      if (!spin_until(fresh)) {
        std::unique_lock<std::mutex> lock(mu);
        sleepers.fetch_add(1);  // seq_cst: ordered before the re-check below
        work_cv.wait(lock, fresh);
        sleepers.fetch_sub(1);
      }
      if (stop.load(std::memory_order_acquire)) return;
      seen = generation.load(std::memory_order_acquire);
      RunTasks();
      // seq_cst, like the caller's store of caller_sleeping and its re-check of busy.
      if (busy.fetch_sub(1) == 1 && caller_sleeping.load()) {
        std::lock_guard<std::mutex> lock(mu);
        done_cv.notify_one();
      }
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
    state_->stop.store(true);
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
  s.fn = &fn;
  s.n_tasks = n_tasks;
  s.next.store(0, std::memory_order_relaxed);
  s.busy.store(static_cast<int>(s.workers.size()), std::memory_order_relaxed);
  s.generation.fetch_add(1);  // seq_cst: publishes the job, ordered before reading sleepers
  if (s.sleepers.load() > 0) {
    std::lock_guard<std::mutex> lock(s.mu);
    s.work_cv.notify_all();
  }
  s.RunTasks();
  const auto done = [&] { return s.busy.load() == 0; };
  if (!spin_until(done)) {
    std::unique_lock<std::mutex> lock(s.mu);
    s.caller_sleeping.store(true);  // seq_cst: ordered before the re-check below
    s.done_cv.wait(lock, done);
    s.caller_sleeping.store(false);
  }
  s.fn = nullptr;
}

}  // namespace fk
