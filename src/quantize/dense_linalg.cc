#include "quantize/dense_linalg.h"

#include <dlfcn.h>

#include <climits>
#include <cmath>
#include <cstdlib>

#include "core/cpu_features.h"
#include "core/error.h"

namespace lowbit::quantize {

namespace {

// LAPACK's Fortran entry points as OpenBLAS implements them (32-bit integers in Debian's
// libopenblas0), opened at first use rather than linked: OpenBLAS picks its kernels when it is
// loaded, from the CPU model, and 0.3.21 (Debian 12) does not know Sapphire/Emerald Rapids, so
// it would fall back to its SSE3 "Prescott" kernels. Before loading it we name the core our
// own feature detection supports (OPENBLAS_CORETYPE; a value the user set is kept).
using Potrf = void (*)(const char* uplo, const int* n, double* a, const int* lda, int* info);
using Trtri = void (*)(const char* uplo, const char* diag, const int* n, double* a, const int* lda, int* info);
using SetThreads = void (*)(int);

struct Lapack {
  Potrf potrf = nullptr;
  Trtri trtri = nullptr;
  SetThreads set_threads = nullptr;
};

const Lapack& lapack() {
  static const Lapack l = [] {
    const CpuFeatures& cpu = cpu_features();
    if (!std::getenv("OPENBLAS_CORETYPE")) {
      if (cpu.max_isa() >= Isa::Avx512)
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
      else if (cpu.max_isa() >= Isa::Avx2)
        setenv("OPENBLAS_CORETYPE", "Haswell", 0);
    }
    void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h)
      fail("GPTQ needs OpenBLAS for its Hessian factor and could not load it ({}); install the Debian package "
           "libopenblas-dev (scripts/setup.sh does)",
           dlerror());
    Lapack r;
    r.potrf = reinterpret_cast<Potrf>(dlsym(h, "dpotrf_"));
    r.trtri = reinterpret_cast<Trtri>(dlsym(h, "dtrtri_"));
    r.set_threads = reinterpret_cast<SetThreads>(dlsym(h, "openblas_set_num_threads"));
    if (!r.potrf || !r.trtri || !r.set_threads) fail("libopenblas.so.0 lacks dpotrf_, dtrtri_ or openblas_set_num_threads");
    return r;
  }();
  return l;
}

int checked_size(int64_t k, size_t values, const char* what) {
  if (k < 0 || k > INT_MAX) fail("{}: matrix size {} out of range", what, k);
  if (int64_t(values) < k * k) fail("{}: {} values for a {}×{} matrix", what, values, k, k);
  return int(k);
}

}  // namespace

// Column-major: a row-major lower triangle is the column-major upper one, so the calls say
// 'U' (A = Uᵀ U with U = Lᵀ; inverting U in place leaves (Lᵀ)⁻¹ = (L⁻¹)ᵀ, i.e. L⁻¹ row-major).
int64_t cholesky_lower(std::vector<double>& a, int64_t k, int threads) {
  const int n = checked_size(k, a.size(), "cholesky_lower");
  if (n == 0) return -1;
  std::vector<double> diag(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) diag[size_t(j)] = a[size_t(j * k + j)];
  const Lapack& l = lapack();
  l.set_threads(threads > 0 ? threads : 1);
  int info = 0;
  l.potrf("U", &n, a.data(), &n, &info);
  if (info < 0) fail("cholesky_lower: LAPACK dpotrf rejected argument {}", -info);
  if (info > 0) return int64_t(info - 1);
  // A singular matrix can leave a pivot that is rounding residue rather than ≤ 0 (blocked
  // updates round differently from the textbook order): L_jj² below kSingular of A_jj.
  constexpr double kSingular = 1e-12;
  for (int64_t j = 0; j < k; ++j) {
    const double d = a[size_t(j * k + j)];
    if (!(d * d > kSingular * diag[size_t(j)]) || !std::isfinite(d)) return j;
  }
  return -1;
}

void invert_lower(std::vector<double>& m, int64_t k, int threads) {
  const int n = checked_size(k, m.size(), "invert_lower");
  if (n == 0) return;
  const Lapack& l = lapack();
  l.set_threads(threads > 0 ? threads : 1);
  int info = 0;
  l.trtri("U", "N", &n, m.data(), &n, &info);
  if (info < 0) fail("invert_lower: LAPACK dtrtri rejected argument {}", -info);
  if (info > 0) fail("invert_lower: the factor is singular at column {}", info - 1);
}

}  // namespace lowbit::quantize
