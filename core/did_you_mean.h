// closest_name(): the "did you mean ...?" hint for unknown config keys and names (edit distance).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace qtune {

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions, each costing 1),
// compared case-insensitively for ASCII letters.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `name` if it is close enough to be a typo of it (distance at most a third of
// the longer name, and at least 1 edit allowed), else "". Ties go to the earlier candidate.
std::string closest_name(std::string_view name, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" for the closest candidate, or "" when none is close: append it to a message.
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace qtune
