// Test driver for tests/kernels/torch_parity.py: reads q, k, v (raw little-endian fp32) and a few
// options from a directory, runs qkv::attention, writes out.bin and lse.bin there.
//   qkv_attention_io DIR B NQ NKV H HKV D DV CAUSAL KV_DTYPE(f32|f16|bf16) [WINDOW_LEFT]
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/raw_io.h"
#include "core/half.h"
#include "qkv/attention.h"
#include "qkv/error.h"

int main(int argc, char** argv) {
  if (argc < 11) {
    std::fprintf(stderr, "usage: %s DIR B NQ NKV H HKV D DV CAUSAL KV_DTYPE [WINDOW_LEFT]\n",
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
    if (argc > 11) opt.window_left = std::stoll(argv[11]);
    const qkv::DType dt = qkv::parse_dtype(argv[10]);
    auto q = qkv::test::read_raw<float>(dir + "/q.bin", B * NQ * H * D);
    auto k = qkv::test::read_raw<float>(dir + "/k.bin", B * NKV * HKV * D);
    auto v = qkv::test::read_raw<float>(dir + "/v.bin", B * NKV * HKV * DV);
    std::vector<uint16_t> kh(k.size()), vh(v.size());
    const void* kp = k.data();
    const void* vp = v.data();
    if (dt != qkv::DType::f32) {
      for (size_t i = 0; i < k.size(); ++i)
        kh[i] = dt == qkv::DType::f16 ? qkv::f32_to_f16(k[i]) : qkv::f32_to_bf16(k[i]);
      for (size_t i = 0; i < v.size(); ++i)
        vh[i] = dt == qkv::DType::f16 ? qkv::f32_to_f16(v[i]) : qkv::f32_to_bf16(v[i]);
      kp = kh.data();
      vp = vh.data();
    }
    std::vector<float> out(B * NQ * H * DV), lse(B * H * NQ);
    qkv::attention(qkv::View4::dense(q.data(), qkv::DType::f32, {B, NQ, H, D}),
                   qkv::View4::dense(kp, dt, {B, NKV, HKV, D}),
                   qkv::View4::dense(vp, dt, {B, NKV, HKV, DV}),
                   qkv::MutView4::dense(out.data(), {B, NQ, H, DV}), lse, opt);
    qkv::test::write_raw(dir + "/out.bin", out);
    qkv::test::write_raw(dir + "/lse.bin", lse);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv_attention_io: %s\n", e.what());
    return 1;
  }
  return 0;
}
