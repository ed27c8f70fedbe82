// Persistent workers; tasks are handed out with an atomic counter and the caller works too.
// Nothing is allocated per call.
//
// Joining. A job is published as a new generation in `word` (generation << 32 | closed bit
// | count of workers inside the job). A worker joins by incrementing the count with a
// compare-and-swap that also checks the generation is the current one and still open, then
// claims tasks until none are left. The caller runs tasks as well, waits until every task
// has *completed* (not until every worker has shown up), then closes the job once no worker
// is inside it: a worker that wakes up late finds the job closed and never touches it. So a
// worker that is asleep or descheduled (2 cores shared with other processes) costs the
// caller nothing: the caller simply does the work itself.
//
// Waiting. A transformer calls ParallelFor hundreds of times per token on small matrices,
// microseconds apart, so a waiting thread spins for a while (kSpinNs) before it sleeps on a
// condition variable. Wake-up from spinning costs well under a microsecond; a futex wake-up
// tens. Sleepers are only notified when there are some, so a hot pool never takes the mutex.
// Lost wake-ups are impossible: a sleeper counts itself (sleepers, caller_sleeping) and
// re-checks its condition under the mutex before it waits; the other side changes the
// condition, then reads the count (both sequentially consistent) and notifies under the
// mutex if it is non-zero.
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

constexpr uint64_t kClosed = uint64_t{1} << 31;
constexpr uint64_t kActiveMask = kClosed - 1;

inline uint32_t generation_of(uint64_t word) { return static_cast<uint32_t>(word >> 32); }

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

  std::atomic<uint64_t> word{kClosed};  // generation << 32 | closed | workers inside
  std::atomic<int> sleepers{0};         // workers waiting (or about to) on work_cv
  std::atomic<bool> caller_sleeping{false};
  std::atomic<bool> stop{false};

  std::mutex mu;
  std::condition_variable work_cv;  // sleeping workers wait here for a new generation
  std::condition_variable done_cv;  // a sleeping caller waits here for the last task

  // The current job; written by the caller before its generation is published and read by
  // workers only after joining it.
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t n_tasks = 0;
  std::atomic<int64_t> next{0};  // next task to claim
  std::atomic<int64_t> done{0};  // tasks completed
  std::atomic<int64_t> ran_by_workers{0}, ran_all{0};  // task_counts(); all: by ParallelFor

  void RunTasks(bool worker) {
    for (;;) {
      const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_tasks) return;
      // Counted before the task is reported done, so ParallelFor's return sees it.
      if (worker) ran_by_workers.fetch_add(1, std::memory_order_relaxed);
      (*fn)(t);
      // seq_cst, like the caller's store of caller_sleeping and its re-check of done.
      if (done.fetch_add(1) + 1 == n_tasks && caller_sleeping.load()) {
        std::lock_guard<std::mutex> lock(mu);
        done_cv.notify_one();
      }
    }
  }

  void WorkerLoop() {
    uint32_t seen = 0;
    for (;;) {
      // A job to join: a generation not seen yet that is still open.
      const auto fresh = [&] {
        if (stop.load(std::memory_order_acquire)) return true;
        const uint64_t w = word.load(std::memory_order_acquire);
        if (w & kClosed) seen = generation_of(w);  // missed it: nothing left to do there
        return generation_of(w) != seen;
      };
      if (!spin_until(fresh)) {
        std::unique_lock<std::mutex> lock(mu);
        sleepers.fetch_add(1);  // seq_cst: ordered before the re-check in wait()
        work_cv.wait(lock, fresh);
        sleepers.fetch_sub(1);
      }
      if (stop.load(std::memory_order_acquire)) return;
      uint64_t w = word.load();
      bool joined = false;
      while (!(w & kClosed) && generation_of(w) != seen) {
        if (word.compare_exchange_weak(w, w + 1)) {
          joined = true;
          break;
        }
      }
      seen = generation_of(w);
      if (!joined) continue;
      RunTasks(/*worker=*/true);
      word.fetch_sub(1);
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

ThreadPool::TaskCounts ThreadPool::task_counts() const {
  TaskCounts c;
  c.by_workers = state_->ran_by_workers.load(std::memory_order_relaxed);
  c.all = state_->ran_all.load(std::memory_order_relaxed);
  return c;
}

void ThreadPool::ParallelFor(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  State& s = *state_;
  s.ran_all.fetch_add(n_tasks, std::memory_order_relaxed);
  if (s.workers.empty() || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  // The previous job is closed with no worker inside, so the job fields are ours.
  s.fn = &fn;
  s.n_tasks = n_tasks;
  s.next.store(0, std::memory_order_relaxed);
  s.done.store(0, std::memory_order_relaxed);
  const uint64_t open = static_cast<uint64_t>(generation_of(s.word.load()) + 1) << 32;
  s.word.store(open);  // seq_cst: publishes the job, ordered before reading sleepers
  if (s.sleepers.load() > 0) {
    std::lock_guard<std::mutex> lock(s.mu);
    s.work_cv.notify_all();
  }
  s.RunTasks(/*worker=*/false);
  const auto all_done = [&] { return s.done.load() == n_tasks; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lock(s.mu);
    s.caller_sleeping.store(true);  // seq_cst: ordered before the re-check in wait()
    s.done_cv.wait(lock, all_done);
    s.caller_sleeping.store(false);
  }
  // Close the job once no worker is inside it (those still inside found no task left and
  // are about to leave); late workers then find it closed.
  uint64_t w = open;
  for (int i = 0; !s.word.compare_exchange_weak(w, open | kClosed); ++i) {
    w = open;
    if (i < 256) {
      cpu_relax();
    } else {
      std::this_thread::yield();  // a worker inside was descheduled
    }
  }
  s.fn = nullptr;
}

}  // namespace fk
