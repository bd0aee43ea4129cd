/*
 * `valuestream eval recommend`: replays an interaction log through the recommender and measures
 * it prequentially (test-then-train, Vinagre, Jorge & Gama 2014) against two baselines, recent
 * popularity and item co-occurrence, in the same run.
 */
#ifndef VS_RECOMMEND_EVAL_RECOMMEND_H
#define VS_RECOMMEND_EVAL_RECOMMEND_H

/*
 * argv[0] is "recommend"; then --input FILE --format diginetica|movielens|csv and any number
 * of --set key=value (the recommend.* config keys). Prints progress lines and, as the last line
 * of stdout, one JSON object with test_points, events_per_s, and hr@10 / ndcg@10 of the model
 * and of the baselines. Returns 0, or 1 (with a message on stderr) for bad arguments or a bad
 * input file; --help prints usage and returns 0.
 */
int vs_eval_recommend_main(int argc, char **argv);

#endif
