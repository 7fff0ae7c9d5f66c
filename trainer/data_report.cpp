// Data summaries.
#include "trainer/data_report.h"

#include <fmt/format.h>

namespace qtune {

PackingOptions packing_options(const TrainConfig& config) {
  PackingOptions options;
  options.sequence_len = static_cast<std::size_t>(config.sequence_len);
  options.sample_packing = config.sample_packing;
  options.overlong = parse_overlong_policy(config.overlong_samples, config.source);
  options.micro_batch_size = static_cast<std::size_t>(config.micro_batch_size);
  options.seed = static_cast<uint64_t>(config.seed);
  options.pad_to_sequence_len = config.pad_to_sequence_len;
  return options;
}

RowPlan plan_training_rows(const PreparedData& data, const TrainConfig& config) {
  const SampleSet& train = data.train;
  if (data.pairs) return plan_pair_rows(train.size(), [&](std::size_t i, int part) { return train.get(i, part); }, packing_options(config));
  return plan_rows(train.size(), [&](std::size_t i) { return train.get(i); }, packing_options(config));
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
  // The first epoch's micro-batches, for the padding they cost.
  PackingReport r = plan.report;
  const PackingOptions options = packing_options(config);
  const auto batches = plan_batches(plan.row_lengths, options, 0);
  if (data.pairs) account_pair_batches(r, batches, plan, options);
  else account_batches(r, batches, plan.row_lengths, options);
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
