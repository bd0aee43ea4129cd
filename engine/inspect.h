/*
 * `valuestream inspect`: read a state directory and print what it holds, without running the
 * engine. Customer records are printed through each operator's describe callback (hex when an
 * operator has none), so the output is what the operators mean, not their bytes.
 */
#ifndef VS_ENGINE_INSPECT_H
#define VS_ENGINE_INSPECT_H

/*
 * valuestream inspect --state DIR (--user ID | --all) [--json]
 * valuestream inspect --state DIR --stats [--json]
 *
 * argv[0] is "inspect". Opens DIR read-only, with the operators of engine/registry.h. --all
 * --json prints one JSON object per line, sorted by user id:
 * {"user_id":"...","<operator>":<section>,...}. Returns 0, 1 on a runtime error (missing,
 * foreign, corrupt or newer-format directory; unknown customer), 2 on bad usage; every error is
 * one line on stderr.
 */
int vs__inspect_main(int argc, char **argv);

#endif
