"""The kernel benchmark panel: does a data deviation kernel predict a trained model's drift?
(Chapter 6)

A *cell* is (task, model class, seed, profile). Dependencies run one way:

- :mod:`.design`: the tasks, model classes, sizes and cells;
- :mod:`.store`: the hashes that key the cache, and atomic writes;
- :mod:`.train`: a cell's arrays (trained and cached, or read from the store of trained runs)
  and its cheap proxy;
- :mod:`.score`: kernels scored against the observed drift, the seed-to-seed ceiling, the split
  half and the perfect-model control;
- :mod:`.tables`: leaderboards as data, their renderings and the shipped results;
- :mod:`.specs`: the kernels scored and the choices made on the tune seed;
- :mod:`.run`: one run of the panel, from cells to leaderboards
  (command line: ``benchmarks/kernel_panel.py``).
"""

from .design import (APPLIED_TASKS, CORE_TASKS, PANEL_BUDGETS, PANEL_MODELS, PANEL_SIZES,
                     PANEL_TASKS, PROFILES, Cell, PanelTask, make_task, model_config, panel_cells)
from .run import model_facts, run_panel, train_cells, train_proxies
from .score import (CEILING, SPLIT_HALF, CellScore, Context, KernelSpec, evaluate_panel,
                    is_reference, perfect_model_control, score_key, score_kernel, seed_ceiling,
                    split_half)
from .specs import (BASELINE_GRID, FAMILIES, PROXY_FRACTIONS, PROXY_KINDS, ROUTED, SHRINK_GRID,
                    SHRINK_NAMES, SOURCE_TASK, baseline_specs, before_training_specs,
                    best_kernels, best_lambda, family_specs, proxy_spec, route_by_tune_seed)
from .store import (array_digest, config_hash, remove_stale_temps, sample_code_hash,
                    save_npz, save_text, score_code_hash)
from .tables import (KERNEL_KINDS, POOLED_CEILING, RESULTS_DIR, best_of_each_kind, decompose,
                     format_leaderboard, leaderboard, markdown_leaderboard, median,
                     pooled_leaderboard, read_results, results_files)
from .train import (PANEL_VERSION, CellData, ProxyData, cache_path, cell_config, cell_sizes,
                    check_fraction, load_or_train, load_or_train_proxy, proxy_config, proxy_path,
                    proxy_seed, train_and_sample)

__all__ = [name for name in dir() if not name.startswith("_")
           and name not in ("design", "run", "score", "specs", "store", "tables", "train")]
