// Test driver for tests/kernels/torch_backward.py: reads q, k, v and dout (raw little-endian fp32)
// from a directory, runs qkv::attention and then qkv::attention_backward, writes dq.bin, dk.bin and
// dv.bin there.
//   qkv_attention_backward_io DIR B NQ NKV H HKV D DV CAUSAL WINDOW_LEFT BACKEND(cpu|reference)
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/raw_io.h"
#include "qkv/attention.h"
#include "qkv/error.h"

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
    const auto q = qkv::test::read_raw<float>(dir + "/q.bin", B * NQ * H * D);
    const auto k = qkv::test::read_raw<float>(dir + "/k.bin", B * NKV * HKV * D);
    const auto v = qkv::test::read_raw<float>(dir + "/v.bin", B * NKV * HKV * DV);
    const auto dout = qkv::test::read_raw<float>(dir + "/dout.bin", B * NQ * H * DV);
    const qkv::View4 qv = qkv::View4::dense(q.data(), qkv::DType::f32, {B, NQ, H, D});
    const qkv::View4 kv = qkv::View4::dense(k.data(), qkv::DType::f32, {B, NKV, HKV, D});
    const qkv::View4 vv = qkv::View4::dense(v.data(), qkv::DType::f32, {B, NKV, HKV, DV});
    std::vector<float> out(B * NQ * H * DV), lse(B * H * NQ);
    qkv::attention(qv, kv, vv, qkv::MutView4::dense(out.data(), {B, NQ, H, DV}), lse, opt);
    std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
    qkv::attention_backward(qv, kv, vv,
                            qkv::View4::dense(out.data(), qkv::DType::f32, {B, NQ, H, DV}), lse,
                            qkv::View4::dense(dout.data(), qkv::DType::f32, {B, NQ, H, DV}),
                            qkv::MutView4::dense(dq.data(), {B, NQ, H, D}),
                            qkv::MutView4::dense(dk.data(), {B, NKV, HKV, D}),
                            qkv::MutView4::dense(dv.data(), {B, NKV, HKV, DV}), opt);
    qkv::test::write_raw(dir + "/dq.bin", dq);
    qkv::test::write_raw(dir + "/dk.bin", dk);
    qkv::test::write_raw(dir + "/dv.bin", dv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv_attention_backward_io: %s\n", e.what());
    return 1;
  }
  return 0;
}
