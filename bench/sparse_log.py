#!/usr/bin/env python3
"""A sparse, review-like interaction log in the `csv` format of `valuestream eval recommend`.

    python3 bench/sparse_log.py CUSTOMERS ITEMS OUT [TASTE]    (e.g. 80000 30000 /tmp/sparse.csv)

Logs of product reviews or of purchases in a large shop are sparse: most customers have one
or two interactions, days or weeks apart, over years, and a long-term popularity leads. Here
each customer has a geometric number of interactions (mean 2.5), 1 to 60 days apart, starting at
a random time within three years (timestamps in epoch seconds). Items have a Zipf popularity
(exponent 1) and one of 500 categories. Each customer has a favourite category, that of an item
drawn by popularity. Each interaction is, with probability TASTE (default 0.5), an item of that
category (most often among its first fifth), and otherwise an item drawn by popularity from the
whole catalogue. With TASTE 0 nothing but popularity predicts. Seeded: the same arguments give
the same file.
"""
import bisect
import random
import sys


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: sparse_log.py CUSTOMERS ITEMS OUT [TASTE]")
    n_users, n_items, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    taste = float(sys.argv[4]) if len(sys.argv) == 5 else 0.5
    if not 0 <= taste <= 1:
        sys.exit("sparse_log.py: TASTE must be a share between 0 and 1")
    rng = random.Random(5)
    cats = 500
    cat_of = [rng.randrange(cats) for _ in range(n_items)]
    by_cat = [[] for _ in range(cats)]
    for i, c in enumerate(cat_of):
        by_cat[c].append(i)
    perm = list(range(n_items))
    rng.shuffle(perm)
    cum, total = [], 0.0
    for r in range(n_items):
        total += 1.0 / (r + 1)
        cum.append(total)

    def popular():
        return perm[bisect.bisect(cum, rng.random() * total)]

    rows = []
    t0, span = 1400000000, 3 * 365 * 86400
    for u in range(n_users):
        n = 1
        while rng.random() < 0.6:
            n += 1
        ts = t0 + rng.randrange(span)
        fav = by_cat[cat_of[popular()]]
        for _ in range(n):
            if rng.random() < taste and fav:
                head = fav[: max(1, len(fav) // 5)]
                item = rng.choice(head if rng.random() < 0.7 else fav)
            else:
                item = popular()
            rows.append((ts, u, item))
            ts += rng.randrange(86400, 60 * 86400)
    rows.sort()
    with open(out_path, "w") as out:
        out.write("user_id,item_id,ts\n")
        for ts, u, item in rows:
            out.write(f"A{u},B{item},{ts}\n")


if __name__ == "__main__":
    main()
