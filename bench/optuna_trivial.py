#!/usr/bin/python3
"""Optuna's orchestration overhead per trial, for bench_trial_overhead.

N trivial trials (no training: the objective only suggests the parameters and
returns a number computed from them) through a study stored in SQLite, the
same search space as the Baton side: lr (float, log), momentum (float),
batch_size (categorical). Prints one line:
RESULT {"trials": N, "seconds": S, "trials_per_second": R, ...}

    env -i PATH=/usr/bin:/bin /usr/bin/python3 bench/optuna_trivial.py \
        --dir DIR --trials 500 --sampler random|tpe [--seed 7] [--jobs 1]

Run with Debian's python3-optuna (scripts/install-deps with BATON_BENCH_DEPS=1).
"""
import argparse
import json
import logging
import math
import os
import time

import optuna


def objective(trial):
    lr = trial.suggest_float("lr", 1e-3, 0.3, log=True)
    momentum = trial.suggest_float("momentum", 0.5, 0.99)
    batch_size = trial.suggest_categorical("batch_size", [16, 32, 64])
    # A stand-in for val_accuracy with an optimum, so TPE has something to model.
    return 1.0 - abs(math.log10(lr) + 1.5) / 3 - abs(momentum - 0.9) / 2 - (batch_size == 64) * 0.05


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--sampler", choices=["random", "tpe"], default="random")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    db = os.path.join(args.dir, "optuna-%s-%d.db" % (args.sampler, os.getpid()))
    if os.path.exists(db):
        os.remove(db)
    if args.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=args.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=args.seed)  # n_startup_trials=10, n_ei_candidates=24

    start = time.perf_counter()
    study = optuna.create_study(storage="sqlite:///" + db, sampler=sampler, direction="maximize",
                                study_name="trivial")
    created = time.perf_counter()
    study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs)
    end = time.perf_counter()

    trials = study.get_trials(deepcopy=False)
    complete = sum(1 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    seconds = end - created
    print("RESULT " + json.dumps({
        "trials": complete,
        "seconds": seconds,
        "create_seconds": created - start,
        "trials_per_second": complete / seconds,
        "best_value": study.best_value,
        "optuna": optuna.__version__,
        "sampler": args.sampler,
        "jobs": args.jobs,
    }))
    os.remove(db)


if __name__ == "__main__":
    main()
