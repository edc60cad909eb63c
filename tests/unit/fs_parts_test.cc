// The parts the filesystem is made of, each on its own: node ids (and the handle codec under
// them), the kernel's cache, the index budget, listing demand, the outside-change watch and
// confinement. Each test states the part's contract from its header.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backing/file_handle.h"
#include "backing/node_id_codec.h"
#include "fs/confinement.h"
#include "fs/index_budget.h"
#include "fs/kernel_cache.h"
#include "fs/listing_demand.h"
#include "fs/node_ids.h"
#include "fs/outside_watch.h"
#include "fs/resting_dirs.h"
#include "support/fake_kernel.h"
#include "support/other_process.h"
#include "support/scratch_dir.h"

namespace foldfs::fs {
namespace {

using backing::FileHandle;
using backing::NodeIdCodec;
using backing::UniqueFd;

FileHandle raw_handle(int type, std::vector<unsigned char> bytes) {
  FileHandle h;
  h.assign_raw(type, bytes.data(), static_cast<uint32_t>(bytes.size()));
  return h;
}

using Scratch = test_support::ScratchDir;

// --- the handle codec ---------------------------------------------------------------------

TEST(NodeIdCodec, EveryKnownLayoutRoundTripsAndOnlyFittingHandlesGetIds) {
  struct Layout {
    const char* name;
    int type;
    std::vector<unsigned char> root, file, misfit;
  };
  const std::vector<Layout> layouts = {
      // ext4: inode (32), generation (32): the whole handle is the id.
      {"ext4", 1, {2, 0, 0, 0, 0, 0, 0, 0}, {12, 0, 0, 0, 7, 0, 0, 0}, {}},
      // xfs: 64-bit inode, generation; fits while the inode's high half is zero.
      {"xfs",
       0x81,
       {128, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0},
       {131, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0},
       {131, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0}},
      // tmpfs: generation, inode low, inode high.
      {"tmpfs",
       1,
       {1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
       {4, 0, 0, 0, 77, 0, 0, 0, 0, 0, 0, 0},
       {4, 0, 0, 0, 77, 0, 0, 0, 1, 0, 0, 0}},
      // btrfs: object id (64), subvolume (64), generation; fits within the root's subvolume.
      {"btrfs",
       0x4d,
       {0, 1, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
       {9, 1, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0},
       {9, 1, 0, 0, 0, 0, 0, 0, 6, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0}},
  };
  for (const auto& l : layouts) {
    SCOPED_TRACE(l.name);
    auto codec = NodeIdCodec::for_root(raw_handle(l.type, l.root));
    ASSERT_TRUE(codec.has_value());
    const FileHandle file = raw_handle(l.type, l.file);
    auto id = codec->encode(file);
    ASSERT_TRUE(id.has_value());
    EXPECT_GT(*id, 1u) << "ids 0 and 1 belong to FUSE";
    EXPECT_TRUE(codec->decode(*id) == file);
    if (!l.misfit.empty()) {
      EXPECT_FALSE(codec->encode(raw_handle(l.type, l.misfit)).has_value());
    }
    // Another layout is never squeezed into this one.
    EXPECT_FALSE(codec->encode(raw_handle(l.type + 1, l.file)).has_value());
  }
  EXPECT_FALSE(NodeIdCodec::for_root(raw_handle(0x99, std::vector<unsigned char>(24, 1))));
  EXPECT_FALSE(NodeIdCodec::for_root(FileHandle()));
}

// --- node ids -----------------------------------------------------------------------------

TEST(NodeIds, FilesOfTheRootsFilesystemHavePersistentIdsThatTurnBackIntoTheirHandles) {
  Scratch dir;
  ASSERT_FALSE(dir.path().empty());
  ASSERT_EQ(::mkdir(dir.path("sub").c_str(), 0755), 0);
  UniqueFd root(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root.valid());
  struct stat root_st, sub_st;
  ASSERT_EQ(::fstat(root.get(), &root_st), 0);
  ASSERT_EQ(::stat(dir.path("sub").c_str(), &sub_st), 0);
  FileHandle root_handle, sub_handle;
  ASSERT_EQ(root_handle.assign_from(root.get(), ""), 0);
  ASSERT_EQ(sub_handle.assign_from(root.get(), "sub"), 0);
  NodeIds ids(root_st, root_handle, std::move(root));

  EXPECT_EQ(ids.identify(root_st, root_handle).id, NodeIds::kRootId);
  const auto sub = ids.identify(sub_st, sub_handle);
  EXPECT_NE(sub.id, NodeIds::kRootId);
  if (!ids.persistent()) GTEST_SKIP() << "handles of /tmp's filesystem do not fit a node id";
  EXPECT_EQ(ids.identify(sub_st, sub_handle).id, sub.id) << "the same file, the same id";
  auto back = ids.handle_of(sub.id);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(*back == sub_handle);
  EXPECT_EQ(ids.id_of(sub_handle), sub.id);
  const int fd = ids.open(*back, sub_st.st_dev, O_PATH);
  ASSERT_GE(fd, 0) << std::strerror(-fd);
  struct stat opened;
  ASSERT_EQ(::fstat(fd, &opened), 0);
  EXPECT_EQ(opened.st_ino, sub_st.st_ino);
  ::close(fd);
}

TEST(NodeIds, OtherFilesystemsGetDeviceIdsAndTheirOwnDescriptorForHandles) {
  Scratch dir;
  UniqueFd root(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root.valid());
  struct stat root_st;
  ASSERT_EQ(::fstat(root.get(), &root_st), 0);
  FileHandle root_handle;
  root_handle.assign_from(root.get(), "");
  NodeIds ids(root_st, root_handle, std::move(root));
  struct stat foreign = root_st;
  foreign.st_dev = root_st.st_dev + 1;
  foreign.st_ino = 42;
  const auto id = ids.identify(foreign, FileHandle()).id;
  EXPECT_EQ(id >> 56, 1u) << "the first foreign device has index 1 in the top byte";
  EXPECT_EQ(id & 0xffffffffffffull, 42u);
  // No directory of that device seen yet: its handles cannot be opened (never against the root).
  EXPECT_EQ(ids.open(root_handle, foreign.st_dev, O_PATH), -ESTALE);
}

// --- the kernel's cache -------------------------------------------------------------------

using CountingNotifier = test_support::FakeKernel;

TEST(KernelCache, ForgetsEverythingOnlyWhenTheKernelMayHoldAnotherSpelling) {
  CountingNotifier notifier;
  KernelCache cache(false);
  cache.set_notifier(&notifier);
  names::KernelDentries record;
  const names::FoldRules rules;
  names::FoldedName foo("foo", rules), FOO("FOO", rules);
  cache.noted(record, foo);
  cache.forget_other_spellings(record, ~0ull, foo, "foo");
  EXPECT_EQ(notifier.invalidations(), 0) << "the kernel holds only the spelling the change used";
  cache.forget_other_spellings(record, ~0ull, FOO, "foo");
  EXPECT_EQ(notifier.invalidations(), 1) << "it holds foo, the change used FOO";
  EXPECT_EQ(cache.epoch(), 1u);
  // A listing gave the kernel every stored name at this epoch: another spelling of a stored name
  // must be forgotten although nothing was noted.
  cache.forget_other_spellings(record, cache.epoch(), FOO, "foo");
  EXPECT_EQ(notifier.invalidations(), 2);
  EXPECT_EQ(cache.forgets_sent(), 2u);
  EXPECT_EQ(cache.changes_checked(), 3u);
}

TEST(KernelCache, TheNaiveModeAndKernelsWithoutEpochsNeverForget) {
  CountingNotifier can, cannot(false);
  KernelCache naive(true), old_kernel(false);
  naive.set_notifier(&can);
  old_kernel.set_notifier(&cannot);
  EXPECT_TRUE(naive.can_forget());
  EXPECT_FALSE(naive.forgets());
  EXPECT_FALSE(old_kernel.can_forget());
  naive.forget_everything();
  old_kernel.forget_everything();
  EXPECT_EQ(can.invalidations() + cannot.invalidations(), 0);
}

// --- the index budget ---------------------------------------------------------------------

std::shared_ptr<Inode> directory_with(size_t names) {
  auto d = std::make_shared<Inode>();
  d->dir = std::make_unique<DirState>(names::FoldRules{});
  std::vector<std::string> list;
  for (size_t i = 0; i < names; ++i) list.push_back("n" + std::to_string(i));
  MutexLock lock(d->dir->index_lock);
  d->dir->index.load(list);
  return d;
}

bool loaded(Inode& d) {
  MutexLock lock(d.dir->index_lock);
  return d.dir->index.complete();
}

TEST(IndexBudget, DropsTheLeastRecentlyLoadedIndexesButNeverTheNewOneNorABusyOne) {
  IndexBudget budget(100);
  auto a = directory_with(60), b = directory_with(30), c = directory_with(50);
  budget.loaded(a, 60);
  budget.loaded(b, 30);
  EXPECT_EQ(budget.evictions(), 0u);
  // c's load takes the total to 140: a, the oldest, goes.
  budget.loaded(c, 50);
  EXPECT_FALSE(loaded(*a));
  EXPECT_TRUE(loaded(*b) && loaded(*c));
  EXPECT_EQ(budget.evictions(), 1u);
  EXPECT_EQ(budget.names(), 80);
  // Over budget again while b, the oldest, is busy: c is kept (just loaded), b is skipped.
  auto d = directory_with(60);
  b->dir->index_lock.lock();
  budget.loaded(d, 60);
  b->dir->index_lock.unlock();
  EXPECT_TRUE(loaded(*b));
  EXPECT_FALSE(loaded(*c)) << "the next victim in line";
  EXPECT_TRUE(loaded(*d));
  EXPECT_EQ(budget.evictions(), 2u);
}

// The count is the sum of what each live directory last reported: loading the same directory
// again, clearing it and forgetting its inode never leave names behind (the old count only grew
// when a forgotten directory's index went with its inode, until every load evicted another).
TEST(IndexBudget, CountsExactlyWhatLiveIndexesHoldThroughReloadsClearsAndForgottenInodes) {
  IndexBudget budget(1000);
  auto a = directory_with(300), b = directory_with(200);
  budget.loaded(a, 300);
  budget.loaded(b, 200);
  EXPECT_EQ(budget.names(), 500);
  budget.loaded(a, 300);  // loaded again (revalidated): not counted twice
  EXPECT_EQ(budget.names(), 500);
  budget.resized(*a, 301);  // a create through the mount
  {
    MutexLock lock(b->dir->index_lock);  // cleared (a flip, or watched afresh)
    b->dir->index.clear();
  }
  budget.resized(*b, 0);
  EXPECT_EQ(budget.names(), 301);
  for (int round = 0; round < 50; ++round) {  // the kernel forgets a directory, then finds it
    a.reset();
    a = directory_with(300);
    budget.loaded(a, 300);
  }
  EXPECT_EQ(budget.names(), 300);
  EXPECT_EQ(budget.evictions(), 0u) << "forgotten directories must not crowd out live ones";
  // Over budget only by live names: the oldest live index goes, then the count is exact again.
  auto c = directory_with(800);
  budget.loaded(c, 800);
  EXPECT_EQ(budget.evictions(), 1u);
  EXPECT_FALSE(loaded(*a));
  EXPECT_TRUE(loaded(*c));
  EXPECT_EQ(budget.names(), 800);
}

// --- resting directories ------------------------------------------------------------------

std::shared_ptr<Inode> directory_id(uint64_t id) {
  auto d = directory_with(1);
  d->id = id;
  return d;
}

TEST(RestingDirs, KeepsTheNewestUpToCapacityAndGivesBackWhatIsPushedOut) {
  RestingDirs resting(2);
  auto a = directory_id(10), b = directory_id(11), c = directory_id(12);
  EXPECT_TRUE(resting.rest(a).empty());
  EXPECT_TRUE(resting.rest(b).empty());
  auto out = resting.rest(c);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], a) << "the oldest goes: its mark is the caller's to remove";
  EXPECT_EQ(resting.find(11), b);
  EXPECT_EQ(resting.size(), 2u) << "find leaves it resting";
  EXPECT_EQ(resting.take(11), b);
  EXPECT_EQ(resting.take(11), nullptr);
  // A newer object for an id that rests pushes the older one out.
  auto c2 = directory_id(12);
  out = resting.rest(c2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], c);
  EXPECT_EQ(resting.find(12), c2);
  // The same object rested again pushes nothing out: its mark serves it still.
  EXPECT_TRUE(resting.rest(c2).empty());
  EXPECT_EQ(resting.size(), 1u);
  EXPECT_EQ(resting.take_all().size(), 1u);
  EXPECT_EQ(resting.size(), 0u);
  RestingDirs none(0);
  EXPECT_EQ(none.rest(a).size(), 1u) << "capacity 0: nothing rests";
}

// --- listing demand -----------------------------------------------------------------------

TEST(ListingDemand, ListingsGiveAttributesWhileLookupsFollowThem) {
  ListingDemand demand;
  DirState dir(names::FoldRules{});
  EXPECT_FALSE(demand.files_get_attributes(dir)) << "lean until programs show they want more";
  EXPECT_TRUE(dir.listed_lean);
  demand.looked_up_in(dir);  // `ls -l`: a lookup after a lean listing
  EXPECT_FALSE(dir.listed_lean);
  EXPECT_EQ(demand.score(), ListingDemand::kFull);
  int full = 0;
  for (int i = 0; i < ListingDemand::kSample; ++i) full += demand.files_get_attributes(dir);
  EXPECT_EQ(full, ListingDemand::kSample - 1) << "every kSample-th listing stays lean";
  // `find`: lean listings with no lookup after them bring the score down.
  for (int i = 0; i < 3 * ListingDemand::kMax; ++i) demand.files_get_attributes(dir);
  EXPECT_EQ(demand.score(), 0);
  EXPECT_FALSE(demand.files_get_attributes(dir));
}

// --- the outside-change watch -------------------------------------------------------------

struct Recorder : OutsideWatch::Listener {
  void names_changed(const FileHandle&, const std::string& name) override {
    std::lock_guard lock(m);
    names.push_back(name);
  }
  void attributes_changed(const FileHandle&, const std::string& name) override {
    std::lock_guard lock(m);
    attributes.push_back(name);
  }
  void lost_track() override { ++lost; }
  std::mutex m;
  std::vector<std::string> names, attributes;
  std::atomic<int> lost{0};
};

using test_support::in_other_process;  // the watch skips the daemon's own changes

TEST(OutsideWatch, ChangesOfOtherProcessesAreDeliveredBeforeDeliverQueuedReturns) {
  Scratch dir;
  UniqueFd root(::open(dir.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  Recorder recorder;
  CountingNotifier notifier;
  int err = 0;
  auto watch = OutsideWatch::start(root.get(), recorder, &notifier, &err);
  if (!watch) GTEST_SKIP() << "fanotify cannot watch /tmp here: " << std::strerror(err);
  in_other_process([&] {
    ::close(::open(dir.path("made").c_str(), O_CREAT | O_WRONLY, 0644));
    ::chmod(dir.path("made").c_str(), 0600);
  });
  watch->deliver_queued();
  {
    std::lock_guard lock(recorder.m);
    EXPECT_NE(std::find(recorder.names.begin(), recorder.names.end(), "made"),
              recorder.names.end());
    EXPECT_NE(std::find(recorder.attributes.begin(), recorder.attributes.end(), "made"),
              recorder.attributes.end());
  }
  EXPECT_GE(watch->changes_seen(), 1u);  // fanotify may merge the two into one event
  // Our own change is not reported.
  const size_t before = recorder.names.size();
  ::close(::open(dir.path("own").c_str(), O_CREAT | O_WRONLY, 0644));
  watch->deliver_queued();
  EXPECT_EQ(recorder.names.size(), before);
  // Inode invalidations go out from the watcher's thread, soon.
  watch->invalidate_inodes({7, 7, 9});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    if (notifier.invalidated_inodes().size() >= 2) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "invalidations never sent";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(notifier.invalidated_inodes(), (std::vector<uint64_t>{7, 9}));
}

// --- confinement --------------------------------------------------------------------------

TEST(Confinement, OnlyWhatLiesBelowTheBackingRootIsInside) {
  Scratch top;
  ASSERT_EQ(::mkdir(top.path("backing").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(top.path("backing/d").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(top.path("outside").c_str(), 0755), 0);
  ::close(::open(top.path("backing/d/f").c_str(), O_CREAT | O_WRONLY, 0644));
  ::close(::open(top.path("outside/f").c_str(), O_CREAT | O_WRONLY, 0644));
  struct stat root;
  ASSERT_EQ(::stat(top.path("backing").c_str(), &root), 0);
  char real[PATH_MAX];
  ASSERT_NE(::realpath(top.path("backing").c_str(), real), nullptr);
  UniqueFd root_fd(::open(real, O_PATH | O_DIRECTORY | O_CLOEXEC));
  Confinement c(real, root_fd.get(), root.st_dev, root.st_ino);
  EXPECT_FALSE(c.whole_filesystem());
  auto inside = [&](const std::string& rel, bool) {
    UniqueFd fd(::open(top.path(rel).c_str(), O_PATH | O_CLOEXEC));
    struct stat st;
    return fd.valid() && ::fstat(fd.get(), &st) == 0 && c.contains(fd.get(), st);
  };
  EXPECT_TRUE(inside("backing", true));
  EXPECT_TRUE(inside("backing/d", true));
  EXPECT_TRUE(inside("backing/d/f", false));
  EXPECT_FALSE(inside("outside", true));
  EXPECT_FALSE(inside("outside/f", false));
  EXPECT_FALSE(inside("", true)) << "the directory holding the backing tree";
  // A file whose path says nothing (here: reached through a name outside the tree, as a file
  // the backing filesystem forgot reads "/") is inside exactly when a name inside the tree
  // holds it: the search finds backing/d/f for the hard link outside/twin, nothing for
  // outside/f.
  ASSERT_EQ(::link(top.path("backing/d/f").c_str(), top.path("outside/twin").c_str()), 0);
  EXPECT_TRUE(inside("outside/twin", false));
  EXPECT_FALSE(inside("outside/f", false));
  // Searching the directories the caller names first finds it without walking the tree.
  UniqueFd d(::open(top.path("backing/d").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  UniqueFd twin(::open(top.path("outside/twin").c_str(), O_PATH | O_CLOEXEC));
  struct stat st;
  ASSERT_EQ(::fstat(twin.get(), &st), 0);
  int visited = 0;
  EXPECT_TRUE(c.contains(twin.get(), st, [&](const std::function<bool(int)>& visit) {
    ++visited;
    visit(d.get());
  }));
  EXPECT_EQ(visited, 1);
}

}  // namespace
}  // namespace foldfs::fs
