// What the CPU and the operating system support, read once with cpuid/xgetbv.
#pragma once

#include <string>

namespace qkv::core {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  // 8-bit integer dot products (vpdpbusd, vpdpwssd; Ice Lake, Zen 4 and later).
  bool avx512_vnni = false;
  // AMX tiles with bf16 dot products (Sapphire Rapids and later), with the OS managing tile
  // state; Linux also wants each process to ask for it first (enable_amx).
  bool amx_bf16 = false;
  std::string vendor;
  int family = 0;
  int model = 0;

  // AVX2 + FMA + F16C, with the OS saving YMM state.
  bool has_avx2_target() const { return avx2 && fma && f16c; }
  // AVX-512 F/BW/DQ/VL, with the OS saving ZMM state.
  bool has_avx512_target() const {
    return has_avx2_target() && avx512f && avx512bw && avx512dq && avx512vl;
  }
};

const CpuFeatures& cpu_features();

// Asks the OS, once per process, for permission to use AMX tile data (Linux arch_prctl
// ARCH_REQ_XCOMP_PERM); true when the CPU has AMX-BF16 and the permission is granted. Until then
// the first tile instruction would fault.
bool enable_amx();

}  // namespace qkv::core
