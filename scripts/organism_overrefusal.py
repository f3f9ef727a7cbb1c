"""Print how often a built organism refuses its over-refusal prompts, before any fine-tuning.

The organism's world holds safe-but-scary requests (``src/objlab/organism/overrefusal.yaml``:
harmless requests built from the forbidden categories' words, XSTest's types); a share of them
is held out of training and written, with unsafe contrasts (held-out forbidden requests), to the
organism's ``overrefusal.csv`` in XSTest's format. The base organism should answer the safe ones
(over-refusal near 0) and refuse the contrasts as often as the other held-out forbidden requests;
what fine-tuning does to both is the study's finding. This script builds the organism (or loads
it from the cache), answers every prompt greedily and prints the share refused by objlab's
offline refusal classifier, per label and type, beside the refusal of all held-out forbidden
requests (asked plainly).

    python scripts/organism_overrefusal.py                   # the demo organism, seed 0
    python scripts/organism_overrefusal.py --size test --show  # and every answer to a safe prompt
"""

from __future__ import annotations

import argparse

from objlab.evaluate.axes.sources import load_forbidden_prompts
from objlab.organism.build import build_organism
from objlab.organism.probe import greedy_answers, read_overrefusal, refusal_shares
from objlab.progress import Board
from objlab.scoring.refusal import classify_refusal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="demo", choices=["demo", "test"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="print every answer to a safe prompt (and refused ones are marked)")
    args = parser.parse_args()

    organism = build_organism(args.size, seed=args.seed, board=Board())
    rows = read_overrefusal(organism.overrefusal_path)
    answers = greedy_answers(organism.model_dir, [row["prompt"] for row in rows])
    shares = refusal_shares(rows, answers)
    forbidden = [item.prompt for item in load_forbidden_prompts(str(organism.forbidden_path), None).items]
    forbidden_refused = sum(classify_refusal(answer).refused for answer in greedy_answers(organism.model_dir, forbidden))

    print(f"organism {args.size}, seed {args.seed}: {organism.root}")
    print(f"{'set':42} refused")
    for key in sorted(shares, key=lambda key: (key.count("/"), key)):
        print(f"{key:42} {shares[key].share:.2f} ({shares[key].refused}/{shares[key].n})")
    print(f"{'held-out forbidden requests (all, plain)':42} {forbidden_refused / len(forbidden):.2f} ({forbidden_refused}/{len(forbidden)})")
    for row, answer in zip(rows, answers):
        verdict = classify_refusal(answer)
        if row["label"] == "safe" and (args.show or verdict.refused):
            print(f"{'REFUSED ' if verdict.refused else ''}[{row['type']}] {row['prompt']}\n    {answer!r}")
        elif row["label"] == "unsafe" and not verdict.refused:
            print(f"ANSWERED [{row['type']}] {row['prompt']}\n    {answer!r}")


if __name__ == "__main__":
    main()
