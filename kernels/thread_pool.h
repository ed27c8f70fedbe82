// A small fixed thread pool owned by the caller: threads are created once, never per call.
// The calling thread takes part in the work, so ThreadPool(1) runs everything inline.
#ifndef KERNELS_THREAD_POOL_H_
#define KERNELS_THREAD_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>

namespace fk {

class ThreadPool {
 public:
  // `threads` >= 1 workers in total, the caller included (threads - 1 are spawned).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;

  // Runs fn(task) for every task in [0, n_tasks) across the pool and returns when all are
  // done. Tasks are handed out dynamically; fn must not depend on which thread runs it.
  // Not reentrant: one ParallelFor at a time per pool.
  void ParallelFor(int64_t n_tasks, const std::function<void(int64_t task)>& fn);

  // Tasks of ParallelFor run since the pool was made: by the spawned workers, and by every
  // thread (the caller included). A worker that is not scheduled leaves its tasks to the
  // caller, so the difference between two readings tells whether the workers took part.
  struct TaskCounts {
    int64_t by_workers = 0;
    int64_t all = 0;
  };
  TaskCounts task_counts() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace fk

#endif  // KERNELS_THREAD_POOL_H_
