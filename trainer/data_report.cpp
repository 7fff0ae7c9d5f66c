// Data summaries.
#include "trainer/data_report.h"

#include <fmt/format.h>

namespace qtune {

RowPlan plan_training_rows(const PreparedData& data, const TrainConfig& config) {
  return BatchSource(data.train, data.pairs, config.packing_options()).plan();
}

void print_data_report(std::ostream& out, const PreparedData& data, const RowPlan& plan, const TrainConfig& config) {
  out << fmt::format("template    {}{}\n", data.template_name, config.chat_template == "tokenizer_default" ? " (recognized from the tokenizer)" : "");
  for (const auto& d : data.datasets) {
    out << fmt::format("dataset     {}: {} {}, {} tokens, {} trained; {} skipped; {} ({:.2f} s)\n", d.path, d.samples,
                       data.pairs ? "pairs" : "samples", d.tokens, d.trained_tokens, d.skipped,
                       d.cache_file.empty() ? "no cache" : (d.cache_hit ? "cache hit " : "cached in ") + d.cache_file, d.seconds);
    for (const auto& reason : d.skip_reasons) out << "  skipped   " << reason << "\n";
  }
  out << fmt::format("split       train {}, validation {}\n", data.train.size(), data.validation.size());
  const PackingReport r = epoch_report(plan, data.pairs, config.packing_options());  // with the first epoch's padding
  const std::string batching = fmt::format("batches     {} micro-batches of up to {} {} per epoch, {:.1f}% real tokens ({} padding)\n", r.batches,
                                           config.micro_batch_size, data.pairs ? "pairs" : "rows", 100 * r.fill_ratio, r.padding_tokens);
  if (data.pairs) {
    out << fmt::format("pairs       {} pairs, each a chosen and a rejected row of up to {} tokens, {} tokens, {} answer tokens\n", r.rows,
                       config.sequence_len, r.tokens, r.trained_tokens);
    out << fmt::format("long/same   {} truncated, {} dropped as longer than sequence_len, {} dropped as the prompt fills sequence_len, "
                       "{} dropped as identical within sequence_len\n",
                       r.truncated, r.dropped_overlong, r.dropped_untrained, r.dropped_identical);
    out << batching;
    return;
  }
  out << fmt::format("rows        {} rows of up to {} tokens ({}), {} tokens, {} trained\n", r.rows, config.sequence_len,
                     config.sample_packing ? "packed" : "one sample per row", r.tokens, r.trained_tokens);
  out << fmt::format("long/empty  {} truncated, {} dropped as longer than sequence_len, {} dropped with nothing to train\n", r.truncated,
                     r.dropped_overlong, r.dropped_untrained);
  out << batching;
}

}  // namespace qtune
