// The table `neuroflux train` ends with, from hand-made reports.
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "neuroflux/report/report.h"
#include "neuroflux/report/run_summary.h"

using neuroflux::BlockReport;
using neuroflux::Report;
using neuroflux::run_summary;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

BlockReport block(int64_t first, int64_t last, int64_t batch) {
  BlockReport b;
  b.first_unit = first;
  b.last_unit = last;
  b.batch_size = batch;
  return b;
}

/// The value of the row labelled `label` (the text from the value column on); "" if absent.
std::string row(const std::vector<std::string>& lines, const std::string& label) {
  for (const auto& l : lines)
    if (l.rfind("  " + label + " ", 0) == 0) return l.substr(14);
  return "";
}

Report neuroflux_report() {
  Report r;
  r.method = "neuroflux";
  r.model = "vgg11";
  r.dataset = "fashion-mnist";
  r.device = "cpu";
  r.budget_bytes = 16 * 1024 * 1024;
  r.peak_memory_bytes = 12 * 1024 * 1024 + 512 * 1024;  // 12.5 MiB
  r.train_seconds = 125.3;
  r.eval_seconds = 4.5;
  r.epochs = 6;
  r.full_model_params = 1234567;
  r.final.test_accuracy = 0.90126;
  r.final.val_accuracy = 0.9075;
  r.final.params = 123456;
  r.final.exit_unit = 5;
  r.blocks = {block(0, 1, 64), block(2, 2, 128), block(3, 5, 256)};
  r.extra["untrained_units"] = {6, 7};
  return r;
}

}  // namespace

TEST_CASE("the run summary is an aligned table of a neuroflux run", "[report][unit]") {
  const std::string text = run_summary(neuroflux_report(), "runs/nf");
  const auto lines = lines_of(text);
  REQUIRE(text.back() == '\n');
  REQUIRE(lines.size() == 11);
  CHECK(lines[0] == "run summary");
  // Labels in this order, each value starting in column 14.
  const std::vector<std::string> labels = {"method", "test acc", "peak",    "budget", "time",
                                           "blocks", "exit",     "run dir", "report", "model"};
  for (size_t i = 0; i < labels.size(); ++i) {
    INFO(lines[i + 1]);
    CHECK(lines[i + 1].rfind("  " + labels[i], 0) == 0);
    CHECK(lines[i + 1].find_first_not_of(' ', 2 + labels[i].size()) == 14);
  }
  for (const auto& l : lines) CHECK(l.size() <= 100);

  CHECK(row(lines, "method") == "neuroflux (vgg11 on fashion-mnist, cpu)");
  CHECK(row(lines, "test acc") == "0.9013 (validation 0.9075)");
  CHECK(row(lines, "peak") == "12.5 MiB (13,107,200 bytes), 0.78 of the budget");
  CHECK(row(lines, "budget") == "16.0 MiB (16,777,216 bytes)");
  CHECK(row(lines, "time") == "125.3 s (2 min 05 s) training, 4.5 s evaluation, 6 epochs");
  CHECK(row(lines, "blocks") ==
        "3 blocks (units:batch) 0-1:64  2:128  3-5:256; units 6-7 untrained (progressive exit)");
  CHECK(row(lines, "exit") == "unit 5: 123,456 params, 0.10x the full model's 1,234,567");
  CHECK(row(lines, "run dir") == "runs/nf/");
  CHECK(row(lines, "report") == "runs/nf/report.json (history.csv, config.json beside it)");
  CHECK(row(lines, "model") == "runs/nf/model.pt (full model: full_model.pt)");
}

TEST_CASE("the run summary of backprop shows its one batch and no budget", "[report][unit]") {
  Report r;
  r.method = "backprop";
  r.model = "simplecnn";
  r.dataset = "fashion-mnist";
  r.device = "cpu";
  r.peak_memory_bytes = 900;
  r.train_seconds = 12.0;
  r.epochs = 1;
  r.full_model_params = 5000;
  r.final.params = 5000;
  r.final.exit_unit = 3;
  r.final.test_accuracy = 0.8;
  r.blocks = {block(0, 3, 128)};
  const auto lines = lines_of(run_summary(r, "runs/quick"));
  REQUIRE(lines.size() == 11);
  CHECK(row(lines, "peak") == "900 B");
  CHECK(row(lines, "budget") == "none");
  CHECK(row(lines, "time") == "12.0 s training, 1 epoch");
  CHECK(row(lines, "batch") == "128 (the whole network, units 0-3)");
  CHECK(row(lines, "blocks").empty());
  CHECK(row(lines, "exit") == "unit 3: 5,000 params (the whole network)");
  CHECK(row(lines, "model") == "runs/quick/model.pt");
}

TEST_CASE("many blocks wrap onto lines that start in the value column", "[report][unit]") {
  Report r = neuroflux_report();
  r.extra.erase("untrained_units");
  r.blocks.clear();
  for (int64_t i = 0; i < 20; ++i) r.blocks.push_back(block(i, i, 100 + i));
  const auto lines = lines_of(run_summary(r, "out"));
  size_t continuation = 0;
  for (const auto& l : lines) {
    CHECK(l.size() <= 100);
    if (l.rfind(std::string(14, ' '), 0) == 0) {
      ++continuation;
      CHECK(l[14] != ' ');
    }
  }
  CHECK(continuation >= 1);
  CHECK(lines.size() == 11 + continuation);
}

TEST_CASE("thousands groups digits", "[report][unit]") {
  CHECK(neuroflux::thousands(0) == "0");
  CHECK(neuroflux::thousands(999) == "999");
  CHECK(neuroflux::thousands(1000) == "1,000");
  CHECK(neuroflux::thousands(1234567) == "1,234,567");
  CHECK(neuroflux::thousands(-1234567) == "-1,234,567");
}
