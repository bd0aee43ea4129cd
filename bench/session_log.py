#!/usr/bin/env python3
"""A session log shaped like Diginetica, at any size, in the `diginetica` format of
`valuestream eval recommend`.

    python3 bench/session_log.py VIEWS ITEMS OUT [RELATED CATEGORY REPEAT SKEW]
        (e.g. 1235000 123000 /tmp/sessions.csv, or 1235000 123000 /tmp/hard.csv 0.15 0.55 0.15 0.6)

The full Diginetica log (1.2M views, 310k sessions, 123k items) is what the sample in
../shared/data/diginetica is cut from. This log has roughly its shape, so that the recommender
can be tried at that size: sessions of about four views, about one view in seven repeating an
item of its session, most items seen once or twice.

Items fall into categories of Zipf-distributed sizes (exponent 0.8). Each item has a
popularity within its category (Zipf, exponent 1) and five related items drawn from its
category by that popularity. A session (geometric length, mean 4) starts at an item of a
category drawn by size. Each next view is a related item of the current one (40 %), another
item of the category by popularity (35 %), the current item again (10 %), or an item of the
whole catalogue by popularity (15 %), whose category the session then browses. Browsing in a
category makes co-occurrence the strongest baseline and recent popularity weak, as on the
sample. Seeded: the same arguments give the same file.

RELATED, CATEGORY, REPEAT and SKEW replace the 40 %, 35 % and 10 % and the in-category
exponent 1. With 0.15 0.55 0.15 0.6 (fewer related items, flatter categories), the hit rates
come down to about the real sample's (HR@10 near 0.05).
"""
import bisect
import random
import sys


def zipf_cum(n, s):
    cum, total = [], 0.0
    for r in range(n):
        total += 1.0 / (r + 1) ** s
        cum.append(total)
    return cum


def draw(rng, cum):
    return bisect.bisect(cum, rng.random() * cum[-1])


def main():
    if len(sys.argv) not in (4, 8):
        sys.exit("usage: session_log.py VIEWS ITEMS OUT [RELATED CATEGORY REPEAT SKEW]")
    n_views, n_items, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    related_p, category_p, repeat_p, skew = 0.40, 0.35, 0.10, 1.0
    if len(sys.argv) == 8:
        related_p, category_p, repeat_p, skew = (float(a) for a in sys.argv[4:8])
        shares = (related_p, category_p, repeat_p)
        if min(shares) < 0 or sum(shares) > 1 or skew < 0:
            sys.exit("session_log.py: RELATED, CATEGORY and REPEAT must be shares adding up to "
                     "1 at most (the whole catalogue takes the rest); SKEW must be >= 0")
    rng = random.Random(11)
    # Categories of Zipf-distributed sizes, about 120 items each on average.
    n_cats = max(1, n_items // 120)
    weights = [1.0 / (c + 1) ** 0.8 for c in range(n_cats)]
    scale = n_items / sum(weights)
    sizes = [max(2, int(w * scale)) for w in weights]
    cats, start = [], 0
    for size in sizes:
        if start >= n_items:
            break
        cats.append((start, min(size, n_items - start)))
        start += size
    if start < n_items:
        cats[-1] = (cats[-1][0], cats[-1][1] + n_items - start)
    cat_cum = []
    acc = 0
    for _, size in cats:
        acc += size
        cat_cum.append(acc)
    in_cat = {size: zipf_cum(size, skew) for size in set(s for _, s in cats)}
    # A global popularity: a random permutation of a Zipf ranking.
    global_cum = zipf_cum(n_items, 0.9)
    rank_item = list(range(n_items))
    rng.shuffle(rank_item)
    # Item ids: shuffled so that neighbouring ids are not related.
    ids = list(range(1, n_items + 1))
    rng.shuffle(ids)
    cat_of = [0] * n_items
    for c, (first, size) in enumerate(cats):
        for i in range(first, first + size):
            cat_of[i] = c
    related = {}

    def related_of(i):
        r = related.get(i)
        if r is None:
            first, size = cats[cat_of[i]]
            r = [first + draw(rng, in_cat[size]) for _ in range(5)]
            related[i] = r
        return r

    day0 = 16801  # 2016-01-01 in days since the epoch
    days = 150
    n, session = 0, 0
    per_day = max(1, n_views // days)
    with open(out_path, "w") as out:
        out.write("session_id;user_id;item_id;timeframe;eventdate\n")
        while n < n_views:
            session += 1
            c = min(bisect.bisect(cat_cum, rng.random() * cat_cum[-1]), len(cats) - 1)
            first, size = cats[c]
            cur = first + draw(rng, in_cat[size])
            length = 1
            while rng.random() < 0.75:
                length += 1
            day = day0 + min(days - 1, n // per_day)
            y, m, d = civil(day)
            tf = 0
            for _ in range(min(length, n_views - n)):
                out.write(f"{session};NA;{ids[cur]};{tf};{y:04d}-{m:02d}-{d:02d}\n")
                n += 1
                tf += rng.randint(5000, 120000)
                u = rng.random()
                if u < related_p:
                    cur = rng.choice(related_of(cur))
                elif u < related_p + category_p:
                    cur = first + draw(rng, in_cat[size])
                elif u < related_p + category_p + repeat_p:
                    pass
                else:
                    cur = rank_item[draw(rng, global_cum)]
                    first, size = cats[cat_of[cur]]


def civil(z):
    """Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


if __name__ == "__main__":
    main()
