// Locks the compiler checks: Clang's thread-safety analysis (-Wthread-safety), as abseil and the
// Linux kernel's lockdep annotate theirs. Every mutex of foldfs is a foldfs::Mutex or
// foldfs::SharedMutex, every field a lock protects says GUARDED_BY, every function that expects a
// lock held says REQUIRES, and the order locks are taken in says ACQUIRED_BEFORE where both are
// in scope. The ThreadSanitizer build compiles with clang and -Werror=thread-safety (CMake option
// FOLDFS_THREAD_SAFETY), so a field written without its lock does not build. With gcc the
// annotations compile to nothing.
#pragma once

#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define FOLDFS_TSA(x) __attribute__((x))
#else
#define FOLDFS_TSA(x)
#endif

#define CAPABILITY(x) FOLDFS_TSA(capability(x))
#define SCOPED_CAPABILITY FOLDFS_TSA(scoped_lockable)
#define GUARDED_BY(x) FOLDFS_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) FOLDFS_TSA(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) FOLDFS_TSA(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) FOLDFS_TSA(acquired_after(__VA_ARGS__))
#define REQUIRES(...) FOLDFS_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) FOLDFS_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) FOLDFS_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) FOLDFS_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) FOLDFS_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) FOLDFS_TSA(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) FOLDFS_TSA(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) FOLDFS_TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) FOLDFS_TSA(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS FOLDFS_TSA(no_thread_safety_analysis)

namespace foldfs {

class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { m_.lock(); }
  void unlock() RELEASE() { m_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return m_.try_lock(); }

 private:
  std::mutex m_;
};

class CAPABILITY("shared mutex") SharedMutex {
 public:
  void lock() ACQUIRE() { m_.lock(); }
  void unlock() RELEASE() { m_.unlock(); }
  void lock_shared() ACQUIRE_SHARED() { m_.lock_shared(); }
  void unlock_shared() RELEASE_SHARED() { m_.unlock_shared(); }

 private:
  std::shared_mutex m_;
};

// Holds a Mutex for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m) ACQUIRE(m) : m_(m) { m_.lock(); }
  ~MutexLock() RELEASE() { m_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_;
};

}  // namespace foldfs
