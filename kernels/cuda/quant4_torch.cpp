// ATen glue of the 4-bit CUDA kernels: tensor checks, output allocation, the current stream. Built only
// against a CUDA LibTorch (QTUNE_WITH_CUDA).
#include <ATen/cuda/CUDAContext.h>

#include "kernels/blockwise_quant.h"
#include "kernels/cuda/aten_glue.h"
#include "kernels/cuda/quant4_kernels.cuh"

namespace qtune {
namespace {

using cuda_glue::check;
using cuda_glue::element_type;

cuda::Format format_of(QuantType type) { return type == QuantType::NF4 ? cuda::Format::NF4 : cuda::Format::FP4; }

}  // namespace

Quantized4bit quantize_4bit_cuda(const at::Tensor& weight, QuantType type, int64_t blocksize, bool double_quant, const std::string& where) {
  TORCH_CHECK(weight.is_cuda(), "quantize_4bit_cuda: a CUDA tensor is required");
  const at::Tensor w = weight.contiguous();
  Quantized4bit q = describe_4bit(w, type, blocksize);
  const int64_t n = w.numel();
  const auto on_device = [&](at::ScalarType t) { return at::TensorOptions().dtype(t).device(w.device()); };
  q.packed = at::empty({(n + 1) / 2}, on_device(at::kByte));
  at::Tensor absmax = at::empty({q.blocks()}, on_device(at::kFloat));
  at::Tensor nonfinite = at::zeros({1}, on_device(at::kInt));
  check(cuda::quantize_4bit(w.data_ptr(), element_type(w.scalar_type(), "quantize_4bit_cuda"), n, static_cast<int>(blocksize), format_of(type),
                            q.packed.data_ptr<uint8_t>(), absmax.data_ptr<float>(), nonfinite.data_ptr<int>(), at::cuda::getCurrentCUDAStream()),
        "quantize_4bit");
  require_finite_weight(nonfinite.item<int>() == 0, where);
  q.scales = make_scales(absmax, double_quant);  // the second level is small: on the CPU, as the CPU path does it
  return q;
}

// The absmax of every block as float32 on the device (undoing double quantization with the kernel).
static at::Tensor device_absmax(const Quantized4bit& q) {
  if (!q.scales.nested) return q.scales.absmax.contiguous();
  at::Tensor absmax = at::empty({q.blocks()}, q.packed.options().dtype(at::kFloat));
  check(cuda::dequantize_absmax(q.scales.absmax.data_ptr<uint8_t>(), q.scales.nested_absmax.data_ptr<float>(), q.scales.nested_map.data_ptr<float>(),
                                q.blocks(), static_cast<int>(q.scales.nested_blocksize), q.scales.offset, absmax.data_ptr<float>(),
                                at::cuda::getCurrentCUDAStream()),
        "dequantize_absmax");
  return absmax;
}

at::Tensor gemv_4bit_cuda(const at::Tensor& x, const Quantized4bit& q) {
  TORCH_CHECK(x.is_cuda() && q.packed.is_cuda() && q.shape.size() == 2 && x.numel() == q.shape[1], "gemv_4bit_cuda: x [in] and W [out, in] on CUDA");
  const at::Tensor input = x.contiguous();
  at::Tensor y = at::empty({q.shape[0]}, input.options());
  const at::Tensor absmax = device_absmax(q);
  check(cuda::gemv_4bit(input.data_ptr(), q.packed.data_ptr<uint8_t>(), absmax.data_ptr<float>(), q.code_map.contiguous().data_ptr<float>(), q.shape[0],
                        q.shape[1], static_cast<int>(q.blocksize), element_type(input.scalar_type(), "gemv_4bit_cuda"), y.data_ptr(),
                        at::cuda::getCurrentCUDAStream()),
        "gemv_4bit");
  return y;
}

at::Tensor dequantize_4bit_cuda(const Quantized4bit& q, at::ScalarType dtype) {
  TORCH_CHECK(q.packed.is_cuda(), "dequantize_4bit_cuda: the codes must be on a CUDA device");
  const int64_t n = q.numel();
  const auto stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor absmax = device_absmax(q);
  at::Tensor out = at::empty(q.shape, q.packed.options().dtype(dtype));
  check(cuda::dequantize_4bit(q.packed.data_ptr<uint8_t>(), absmax.data_ptr<float>(), q.code_map.contiguous().data_ptr<float>(), n,
                              static_cast<int>(q.blocksize), element_type(dtype, "dequantize_4bit_cuda"), out.data_ptr(), stream),
        "dequantize_4bit");
  return out;
}

}  // namespace qtune
