// Single-threaded tokenization throughput of qtune's tokenizer on a text file, line by line, timed after
// loading and a warm-up pass: the counterpart of bench/tokenize_hf.py (same output fields).
// Usage: qtune_bench_tokenize TEXT_FILE TOKENIZER_JSON_OR_DIR
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: qtune_bench_tokenize TEXT_FILE TOKENIZER_JSON_OR_DIR\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) lines.push_back(text.substr(start, nl - start));
  if (start < text.size()) lines.push_back(text.substr(start));

  auto tokenizer = qtune::load_tokenizer(argv[2]);
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < lines.size() && i < 2000; ++i) tokenizer->encode(lines[i]);  // warm-up, as the HF bench
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& line : lines) tokens += tokenizer->encode(line).size();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"impl\":\"qtune\",\"file\":\"%s\",\"bytes\":%zu,\"lines\":%zu,\"tokens\":%zu,\"seconds\":%.3f,\"mb_per_s\":%.3f}\n", argv[1],
              text.size(), lines.size(), tokens, seconds, text.size() / seconds / 1e6);
  return 0;
}
