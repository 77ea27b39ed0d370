#!/usr/bin/env python3
"""Train a regression on scikit-learn's bundled diabetes data (no download).

Writes, under --out (default: $MLSTAGE_OUTPUTS_DIR, else ./outputs):
  model/model.pkl     the fitted estimator (pickle)
  model/model.json    what the scoring script needs to know (features, params, versions)
  metrics.json        held-out metrics: rmse, mae, r2 (+ sizes)
  params.json         the parameters this run used
"""
import argparse
import json
import os
import pickle
import platform
import sys
import time

import numpy as np
import sklearn
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso, Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["ridge", "lasso"], default="ridge",
                   help="estimator (default: ridge)")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="regularisation strength (default: 0.5)")
    p.add_argument("--test-size", type=float, default=0.2,
                   help="held-out fraction (default: 0.2)")
    p.add_argument("--seed", type=int, default=42, help="split seed (default: 42)")
    p.add_argument("--out", default=os.environ.get("MLSTAGE_OUTPUTS_DIR", "outputs"),
                   help="output folder (default: $MLSTAGE_OUTPUTS_DIR or ./outputs)")
    p.add_argument("--fail", action="store_true",
                   help="fail on purpose after loading the data (to test failure handling)")
    args = p.parse_args(argv)
    if args.alpha < 0:
        p.error("--alpha must be >= 0")
    if not 0.05 <= args.test_size <= 0.5:
        p.error("--test-size must be between 0.05 and 0.5")
    return args


def log(msg):
    print(f"[train] {msg}", flush=True)


def main(argv):
    args = parse_args(argv)
    started = time.time()
    data = load_diabetes()
    X, y = data.data, data.target
    log(f"loaded diabetes data: {X.shape[0]} rows, {X.shape[1]} features")
    if args.fail:
        log("failing on purpose (--fail)")
        return 3
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, random_state=args.seed)
    est = (Ridge if args.model == "ridge" else Lasso)(alpha=args.alpha)
    log(f"fitting {args.model} with alpha={args.alpha} on {len(y_train)} rows")
    est.fit(X_train, y_train)
    pred = est.predict(X_test)
    metrics = {
        "rmse": float(np.sqrt(mean_squared_error(y_test, pred))),
        "mae": float(mean_absolute_error(y_test, pred)),
        "r2": float(r2_score(y_test, pred)),
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
    }
    log("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                  if isinstance(v, float)))

    model_dir = os.path.join(args.out, "model")
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "model.pkl"), "wb") as f:
        pickle.dump(est, f)
    params = {"model": args.model, "alpha": args.alpha, "test_size": args.test_size,
              "seed": args.seed}
    with open(os.path.join(model_dir, "model.json"), "w") as f:
        json.dump({"features": list(data.feature_names), "params": params,
                   "target": "disease progression one year after baseline",
                   "sklearn": sklearn.__version__, "python": platform.python_version()},
                  f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(args.out, "params.json"), "w") as f:
        json.dump(params, f, indent=2, sort_keys=True)
        f.write("\n")
    log(f"wrote {model_dir} and metrics.json in {time.time() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
