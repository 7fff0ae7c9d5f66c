// CudaEvent: an owned cudaEvent_t for ordering streams and timing them (the layer and activation
// streaming). Only for CUDA builds (QTUNE_WITH_CUDA).
#pragma once

#include <c10/cuda/CUDAException.h>
#include <cuda_runtime_api.h>

namespace qtune {

// An owned cudaEvent_t; a timing one can measure the time since another.
class CudaEvent {
 public:
  explicit CudaEvent(bool timing = false) { C10_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming)); }
  ~CudaEvent() { cudaEventDestroy(event_); }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  void record(cudaStream_t stream) { C10_CUDA_CHECK(cudaEventRecord(event_, stream)); }
  // The stream waits for the last record (not at all before the first: CUDA treats it as complete).
  void block(cudaStream_t stream) const { C10_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }
  double seconds_since(const CudaEvent& start) const {
    C10_CUDA_CHECK(cudaEventSynchronize(event_));
    float ms = 0;
    C10_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
    return ms / 1000.0;
  }

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace qtune
