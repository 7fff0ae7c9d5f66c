// The code books of bitsandbytes' 4-bit and 8-bit blockwise formats: the 16 NF4 and FP4 values, their
// decision boundaries, and the signed 8-bit "dynamic" map used to double-quantize the absmax.
#pragma once

#include <array>
#include <cstdint>

#include "core/torch.h"

namespace qtune {

enum class QuantType { NF4, FP4 };

// Value of each 4-bit code, in units of the block's absmax (code 7 of NF4 is 0; FP4's bit 3 is the sign).
const std::array<float, 16>& nf4_values();
const std::array<float, 16>& fp4_values();
inline const std::array<float, 16>& code_values(QuantType type) { return type == QuantType::NF4 ? nf4_values() : fp4_values(); }

// The 4-bit code of x (already divided by the block's absmax). Boundaries are bitsandbytes': a value
// strictly above the boundary between two neighbours takes the upper one. NaN (from a block whose absmax
// is 0, since bitsandbytes multiplies by 1/absmax) gives code 0, as there.
uint8_t quantize_nf4(float x);
uint8_t quantize_fp4(float x);

// The 256-value signed dynamic map (bitsandbytes create_dynamic_map(signed=True)): sorted, float32.
const at::Tensor& dynamic_map_signed();

// The 8-bit code of x (already divided by its block's absmax) in a sorted 256-value `map`: the nearest
// value; a tie goes to the upper value.
uint8_t quantize_to_map(float x, const float* map);

}  // namespace qtune
