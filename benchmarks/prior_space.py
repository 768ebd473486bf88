"""Where class-name embeddings land in the head's standardised space, and where
misplaced ones land: the figures behind the warning of ``warn_if_elsewhere``.

For BANKING77-LT and HWU64-LT (IF 100, seed 0) prints the distance of each
class name's embedding from the mean of X in units of the rows' root-mean-square
distance from it (the norm the head sees; the rows' own is 1 by definition):
with X as it is, with X standard-scaled but the names not, and with the names
scaled by X's scaler but X not.

    python benchmarks/prior_space.py
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prior_study  # noqa: E402

from sklearn_samn._samn import _weighted_centre_and_scale  # noqa: E402


def distances(X, E):
    shift, scale = _weighted_centre_and_scale(X, np.ones(len(X)))
    return np.linalg.norm((E - shift) / scale, axis=1)


def main():
    for dataset in ("banking77", "hwu64"):
        X, _, _, _, E = prior_study.split(dataset, 100, 0)
        scaler = StandardScaler().fit(X)
        for case, d in (("same space", distances(X, E)),
                        ("X scaled, names not", distances(scaler.transform(X), E)),
                        ("names scaled, X not", distances(X, scaler.transform(E)))):
            print(f"{dataset} {case}: median {np.median(d):.3f}, "
                  f"min {d.min():.3f}, max {d.max():.3f}")


if __name__ == "__main__":
    main()
