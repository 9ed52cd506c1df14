// Test driver for tests/kernels/torch_backward.py: reads q, k, v and dout (raw little-endian fp32)
// from a directory, runs qkv::attention and then qkv::attention_backward, writes dq.bin, dk.bin and
// dv.bin there.
//   qkv_attention_backward_io DIR B NQ NKV H HKV D DV CAUSAL WINDOW_LEFT BACKEND(cpu|reference)
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "qkv/attention.h"
#include "qkv/error.h"

namespace {
std::vector<float> read_floats(const std::string& path, size_t n) {
  std::vector<float> v(n);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * 4));
  if (!f) throw qkv::Error("cannot read " + std::to_string(n) + " floats from " + path);
  return v;
}
void write_floats(const std::string& path, const std::vector<float>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 12) {
    std::fprintf(stderr,
                 "usage: %s DIR B NQ NKV H HKV D DV CAUSAL WINDOW_LEFT BACKEND(cpu|reference)\n",
                 argv[0]);
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const int64_t B = std::stoll(argv[2]), NQ = std::stoll(argv[3]), NKV = std::stoll(argv[4]);
    const int64_t H = std::stoll(argv[5]), HKV = std::stoll(argv[6]), D = std::stoll(argv[7]);
    const int64_t DV = std::stoll(argv[8]);
    qkv::AttentionOptions opt;
    opt.causal = std::string(argv[9]) == "1";
    opt.window_left = std::stoll(argv[10]);
    const std::string backend = argv[11];
    if (backend != "cpu" && backend != "reference")
      throw qkv::InvalidArgument("BACKEND must be cpu or reference, got " + backend);
    opt.backend = backend == "cpu" ? qkv::Backend::cpu : qkv::Backend::reference;
    const auto q = read_floats(dir + "/q.bin", B * NQ * H * D);
    const auto k = read_floats(dir + "/k.bin", B * NKV * HKV * D);
    const auto v = read_floats(dir + "/v.bin", B * NKV * HKV * DV);
    const auto dout = read_floats(dir + "/dout.bin", B * NQ * H * DV);
    const qkv::View4 qv = qkv::View4::dense(q.data(), qkv::DType::f32, {B, NQ, H, D});
    const qkv::View4 kv = qkv::View4::dense(k.data(), qkv::DType::f32, {B, NKV, HKV, D});
    const qkv::View4 vv = qkv::View4::dense(v.data(), qkv::DType::f32, {B, NKV, HKV, DV});
    std::vector<float> out(B * NQ * H * DV), lse(B * H * NQ);
    qkv::attention(qv, kv, vv, qkv::MutView4::dense(out.data(), {B, NQ, H, DV}), lse.data(), opt);
    std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
    qkv::attention_backward(
        qv, kv, vv, qkv::View4::dense(out.data(), qkv::DType::f32, {B, NQ, H, DV}), lse.data(),
        qkv::View4::dense(dout.data(), qkv::DType::f32, {B, NQ, H, DV}),
        qkv::MutView4::dense(dq.data(), {B, NQ, H, D}),
        qkv::MutView4::dense(dk.data(), {B, NKV, HKV, D}),
        qkv::MutView4::dense(dv.data(), {B, NKV, HKV, DV}), opt);
    write_floats(dir + "/dq.bin", dq);
    write_floats(dir + "/dk.bin", dk);
    write_floats(dir + "/dv.bin", dv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv_attention_backward_io: %s\n", e.what());
    return 1;
  }
  return 0;
}
