/* The floor for the scheduling step: N runs of /usr/bin/true, at most J at once, with posix_spawn and wait and no
 * dependency graph, output, supervision or bookkeeping at all. No task runner can start the same children
 * for less; bench/run compiles it and times it beside the others. Usage: spawn-floor N J */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: spawn-floor N J\n");
        return 2;
    }
    int n = atoi(argv[1]), j = atoi(argv[2]), running = 0, started = 0;
    char *args[] = {"true", NULL};
    while (started < n || running > 0) {
        while (running < j && started < n) {
            pid_t pid;
            if (posix_spawn(&pid, "/usr/bin/true", NULL, NULL, args, environ) != 0) {
                perror("posix_spawn");
                return 1;
            }
            running++;
            started++;
        }
        int status;
        if (wait(&status) < 0) {
            perror("wait");
            return 1;
        }
        running--;
    }
    return 0;
}
