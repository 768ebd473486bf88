"""Rules for stopping the single split's walk over the caps, replayed on recorded walks.

Above 10,000 rows the default chooses its norm cap on one validation split and
walks ``_selection.MAX_NORM_GRID`` upwards. Until this study it stopped once
``_selection._PATIENCE`` (3) caps in a row failed to beat the best;
``path_cost_study.py --stop-rule patience3`` records such walks
cap by cap: the objective evaluations and seconds of each cap, its out-of-fold
balanced accuracy and ``z``, the weighted McNemar statistic of its difference
from the best cap before it (its sign is the sign of that difference). Every
rule below stops no later than patience 3, so its walk is a prefix of the
recorded one and can be replayed from the record without fitting anything:

- ``patience 3``: the recorded walks' rule (a cap that does not beat the best
  counts, ties included). Replaying it must reproduce the recorded stop and the
  cap of the recorded final fit; the script checks that it does.
- ``patience 2``: two such caps.
- ``first decline``: stop at the first cap that scores below the best (ties do
  not stop it); ``single_split.py`` measured this rule's fits
  (``SINGLE_SPLIT.md``), which broke one real split of ten.
- ``z < -k, else patience 3``: stop at the first cap whose decline from the
  best is more than ``k`` standard errors (``z < -k``), or as patience 3 does.
  ``k = 1`` is the one-standard-error convention (CART, glmnet's
  ``lambda.1se``); ``k = 2`` a 5% two-sided test. ``k = 1`` is the default
  since this study (``_lbfgs._SINGLE_SPLIT_STOP_Z``).

What a replay cannot give is the final fit and the accuracy at a different
chosen cap. Where a rule stops where ``first decline`` stops and chooses the
same cap, ``SINGLE_SPLIT.md`` has that fit measured (on fresh rows or
validation rows, never a test split): the column ``as first decline`` says so.

    python benchmarks/stop_rule_replay.py --out benchmarks/STOP_RULE_REPLAY.md

Reads ``benchmarks/PATH_COST_PATIENCE3.md`` (the synthetic shapes) and
``benchmarks/PATH_COST_CARRY_PATIENCE3.md`` (ten real problems: BANKING77 and HWU64's
full training sets pooled, IF 1 and 2). Fits nothing; seconds.
"""
import argparse
import re
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "PATH_COST_PATIENCE3.md", HERE / "PATH_COST_CARRY_PATIENCE3.md")


def read_walks(paths):
    """``{problem: {"caps": [dict per CV cap], "final": cap}}`` from the reports' tables."""
    walks = OrderedDict()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            # problem | phase | cap | evaluations | L-BFGS iterations | s | score | z
            if len(cells) != 8 or cells[1] not in ("CV", "final fit"):
                continue
            problem, phase, cap, evals, _, seconds, score, z = cells
            walk = walks.setdefault(problem, {"caps": [], "final": None})
            if phase == "final fit":
                walk["final"] = cap
                continue
            walk["caps"].append({
                "cap": cap, "evals": int(evals), "s": float(seconds), "score": float(score),
                # The first cap has no z: it is the best until one beats it.
                "z": float(z) if z else None,
                # "+0.0" is a difference too small to print (or an exact tie, which
                # the check of the replayed default against the record would show).
                "sign": -1 if z.startswith("-") else 1,
            })
    return walks


def replay(caps, patience=3, z_below=None, first_decline=False):
    """How many caps the rule walks, and the cap it chooses."""
    best, worse = None, 0
    for walked, cap in enumerate(caps, start=1):
        # The scores are printed to two decimals; z's sign settles a printed tie.
        if best is None or (cap["score"], cap["sign"]) > (best["score"], 0):
            best, worse = cap, 0
            continue
        worse += 1
        if first_decline and (cap["score"], cap["sign"]) < (best["score"], 0):
            return walked, best["cap"]
        if z_below is not None and cap["z"] < -z_below:
            return walked, best["cap"]
        if not first_decline and worse >= patience:
            return walked, best["cap"]
    return len(caps), best["cap"]


RULES = (
    ("patience 3 (recorded)", {}),
    ("patience 2", {"patience": 2}),
    ("first decline", {"first_decline": True}),
    ("z < -1, else patience 3 (default now)", {"z_below": 1.0}),
    ("z < -2, else patience 3", {"z_below": 2.0}),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(HERE / "STOP_RULE_REPLAY.md"))
    args = parser.parse_args()
    walks = read_walks(SOURCES)
    rows, summary = [], {name: [0, 0, 0.0, 0.0] for name, _ in RULES}
    for problem, walk in walks.items():
        caps = walk["caps"]
        default_walked, default_cap = replay(caps)
        if default_walked != len(caps) or default_cap != walk["final"]:
            raise SystemExit(f"{problem}: the replayed patience 3 stops after "
                             f"{default_walked} caps at {default_cap}, the record after "
                             f"{len(caps)} at {walk['final']}: the record is not a "
                             "patience-3 walk")
        total_s = sum(c["s"] for c in caps)
        decline = replay(caps, first_decline=True)
        for name, kwargs in RULES:
            walked, chosen = replay(caps, **kwargs)
            s = sum(c["s"] for c in caps[:walked])
            evals = sum(c["evals"] for c in caps[:walked])
            same = (walked, chosen) == decline
            rows.append(f"| {problem} | {name} | {walked} of {len(caps)} | {chosen} | "
                        f"{'same' if chosen == default_cap else 'moved'} | {evals} | "
                        f"{s:.2f} | {total_s - s:.2f} | {'yes' if same else ''} |")
            tally = summary[name]
            tally[0] += chosen != default_cap
            tally[1] += len(caps) - walked
            tally[2] += total_s - s
            tally[3] += total_s
    text = [
        "# Stopping the single split's walk over the caps: rules replayed on recorded walks",
        "",
        "Command: `python benchmarks/stop_rule_replay.py --out benchmarks/STOP_RULE_REPLAY.md`",
        "",
        f"- generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from "
        + " and ".join(f"`{p.name}` ({_generated(p)})" for p in SOURCES),
        "- " + " ".join(__doc__.split("\n\n")[0].split()).rstrip(".") + ": nothing is "
        "fitted. The replayed patience 3 reproduces the recorded stop and chosen cap of all "
        f"{len(walks)} walks.",
        "- `CV s`: seconds of the caps walked (their fits and the held-out predictions), "
        "as recorded; `saved s`: the recorded seconds of the caps the rule does not walk. "
        "The final fit is not in either: at a moved cap its cost is not in the record. "
        "`as first decline`: the rule stops and chooses as `first decline` does, whose fits "
        "`SINGLE_SPLIT.md` measured.",
        "",
        "## Summary",
        "",
        "| rule | walks whose chosen cap moves from patience 3's | caps not walked | "
        "CV seconds saved |",
        "|---|---|---|---|",
    ]
    for name, (moved, caps_saved, saved, total) in summary.items():
        text.append(f"| {name} | {moved} of {len(walks)} | {caps_saved} | "
                    f"{saved:.1f} of {total:.1f} ({100 * saved / total:.0f}%) |")
    text += [
        "",
        "## Every walk",
        "",
        "| problem | rule | caps walked | chosen | vs patience 3 | CV evaluations | CV s | "
        "saved s | as first decline |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print("\n".join(text[:len(summary) + 12]))


def _generated(path):
    match = re.search(r"generated (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", Path(path).read_text())
    return f"generated {match[1]} UTC" if match else "date unknown"


if __name__ == "__main__":
    main()
