// sparsimix experiment: budgets, the demo's experiment, statistics, reports (JSON, CSV, SVG).
#pragma once
#include "experiment/budget.hpp"
#include "experiment/experiment.hpp"
#include "experiment/avit_sweep.hpp"
#include "experiment/halting_report.hpp"
#include "experiment/svg.hpp"
#include "experiment/report.hpp"
#include "experiment/statistics.hpp"
