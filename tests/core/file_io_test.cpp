// OutputFile and open_input_file against real special files: device nodes, FIFOs, directories,
// read-only files, /dev/full and a full tmpfs.
#include "core/file_io.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "common/special_files.h"
#include "qkv/error.h"

namespace {

using qkv::core::OutputFile;
using qkv::core::write_output_file;
using qkv::test::ScratchDir;
using qkv::test::slurp;

size_t entries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const qkv::Error& e) {
    return e.what();
  }
  return "";
}

TEST(OutputFile, WritesANewFileAndLeavesNoTemporary) {
  ScratchDir d;
  write_output_file(d / "a.bin", std::string_view("hello"));
  EXPECT_EQ(slurp(d / "a.bin"), "hello");
  EXPECT_EQ(entries(d.path()), 1u);
}

TEST(OutputFile, ReplacingKeepsTheModeAndAnUncommittedWriteChangesNothing) {
  ScratchDir d;
  write_output_file(d / "a.bin", std::string_view("old"));
  ::chmod((d / "a.bin").c_str(), 0640);
  {
    OutputFile f(d / "a.bin");
    f.write(std::string_view("new but abandoned"));
    EXPECT_EQ(entries(d.path()), 2u);  // the temporary file sits beside the target
  }
  EXPECT_EQ(slurp(d / "a.bin"), "old");
  EXPECT_EQ(entries(d.path()), 1u);
  write_output_file(d / "a.bin", std::string_view("new"));
  EXPECT_EQ(slurp(d / "a.bin"), "new");
  struct stat st {};
  ASSERT_EQ(::stat((d / "a.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(OutputFile, FollowsASymbolicLinkAndKeepsTheLink) {
  ScratchDir d;
  write_output_file(d / "real.bin", std::string_view("old"));
  std::filesystem::create_symlink("real.bin", d / "link.bin");
  write_output_file(d / "link.bin", std::string_view("new"));
  EXPECT_TRUE(std::filesystem::is_symlink(d / "link.bin"));
  EXPECT_EQ(slurp(d / "real.bin"), "new");
}

TEST(OutputFile, DeviceNodeIsWrittenDirectlyNotReplaced) {
  ScratchDir d;
  const std::string dev = d / "fakenull";
  if (!qkv::test::make_null_device(dev)) GTEST_SKIP() << "mknod is not permitted here";
  OutputFile f(dev);
  EXPECT_TRUE(f.direct());
  f.write(std::string_view("discarded"));
  f.commit();
  EXPECT_TRUE(qkv::test::is_char_device(dev));
  EXPECT_EQ(entries(d.path()), 1u);
}

TEST(OutputFile, DevNullIsWrittenDirectly) {
  OutputFile f("/dev/null");
  EXPECT_TRUE(f.direct());
  f.write(std::string_view("x"));
  f.commit();
  EXPECT_TRUE(qkv::test::is_char_device("/dev/null"));
}

TEST(OutputFile, DevFullReportsNoSpace) {
  const std::string err = error_of([] {
    OutputFile f("/dev/full");
    f.write(std::string_view("x"));
    f.commit();
  });
  EXPECT_NE(err.find("/dev/full"), std::string::npos) << err;
  EXPECT_NE(err.find("no space left"), std::string::npos) << err;
}

TEST(OutputFile, FullFileSystemFailsAndLeavesNothing) {
  qkv::test::SmallTmpfs fs(64);
  if (!fs.ok()) GTEST_SKIP() << fs.why() << " (DevFullReportsNoSpace covers /dev/full)";
  write_output_file(fs / "keep.bin", std::string_view("previous contents"));
  fs.fill();
  const std::string big(256 * 1024, 'y');
  const std::string err = error_of([&] { write_output_file(fs / "keep.bin", big); });
  EXPECT_NE(err.find("no space left"), std::string::npos) << err;
  EXPECT_EQ(slurp(fs / "keep.bin"), "previous contents");
  const std::string err2 = error_of([&] { write_output_file(fs / "new.bin", big); });
  EXPECT_NE(err2.find("new.bin"), std::string::npos) << err2;
  EXPECT_FALSE(std::filesystem::exists(fs / "new.bin"));
  size_t parts = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::path(fs / "x").parent_path())) {
    parts += e.path().filename().string().find(".part") != std::string::npos;
  }
  EXPECT_EQ(parts, 0u);
}

TEST(OutputFile, RefusesADirectoryAReadOnlyFileAndAMissingDirectory) {
  ScratchDir d;
  std::filesystem::create_directory(d / "sub");
  EXPECT_NE(error_of([&] { OutputFile f(d / "sub"); }).find("is a directory"), std::string::npos);
  write_output_file(d / "ro.bin", std::string_view("keep"));
  ::chmod((d / "ro.bin").c_str(), 0444);
  EXPECT_NE(
      error_of([&] { write_output_file(d / "ro.bin", std::string_view("x")); }).find("read-only"),
      std::string::npos);
  EXPECT_EQ(slurp(d / "ro.bin"), "keep");
  EXPECT_NE(error_of([&] { OutputFile f(d / "no/such/dir/x.bin"); }).find("does not exist"),
            std::string::npos);
}

TEST(OutputFile, FifoWithoutReaderIsRefusedAndWithOneIsWritten) {
  ScratchDir d;
  const std::string fifo = d / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { OutputFile f(fifo); }).find("no reader"), std::string::npos);
  auto reader = std::async(std::launch::async, [&] { return slurp(fifo); });
  // The reader's open blocks until a writer comes; retry until it is there.
  std::string got_err = "start";
  for (int i = 0; i < 200 && !got_err.empty(); ++i) {
    got_err = error_of([&] { write_output_file(fifo, std::string_view("through the pipe")); });
    if (!got_err.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(got_err, "");
  EXPECT_EQ(reader.get(), "through the pipe");
}

TEST(InputFile, RefusesAFifoWithoutBlockingADirectoryAndADevice) {
  ScratchDir d;
  const std::string fifo = d / "pipe.gguf";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto fut = std::async(std::launch::async,
                        [&] { return error_of([&] { qkv::core::read_input_file(fifo); }); });
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "reading a FIFO blocked";
  EXPECT_NE(fut.get().find("FIFO"), std::string::npos);
  EXPECT_NE(error_of([&] { qkv::core::read_input_file(d.path()); }).find("directory"),
            std::string::npos);
  EXPECT_NE(error_of([] { qkv::core::read_input_file("/dev/null"); }).find("character device"),
            std::string::npos);
  EXPECT_NE(error_of([&] { qkv::core::read_input_file(d / "missing"); }).find("no such file"),
            std::string::npos);
  write_output_file(d / "ok.txt", std::string_view("text"));
  EXPECT_EQ(qkv::core::read_input_file(d / "ok.txt"), "text");
}

}  // namespace
