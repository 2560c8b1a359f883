#!/usr/bin/env python3
# Runs a command on a new pseudo-terminal (its stdin, stdout and stderr), answering prompts:
#   pty-run.py TIMEOUT_S PROMPT ANSWER [PROMPT ANSWER…] -- COMMAND ARG…
# Each ANSWER is written (as given, so include "\r") once PROMPT has appeared in the output
# after the previous answer. Prints a JSON object: {"transcript": everything the terminal
# showed, "code": exit status, or -signal, "timed_out": bool}. The child is killed at the deadline.
import json, os, pty, select, signal, sys, time

def main():
    args = sys.argv[1:]
    sep = args.index('--')
    timeout = float(args[0])
    pairs = args[1:sep]
    command = args[sep + 1:]
    steps = list(zip(pairs[0::2], pairs[1::2]))
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    deadline = time.monotonic() + timeout
    out = b''
    seen = 0  # output before this index was matched already
    timed_out = False
    while True:
        if steps and steps[0][0].encode() in out[seen:]:
            prompt, answer = steps.pop(0)
            seen = out.index(prompt.encode(), seen) + len(prompt.encode())
            os.write(fd, answer.encode().decode('unicode_escape').encode('latin-1'))
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break  # EIO: the child closed the terminal
            if not data:
                break
            out += data
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    print(json.dumps({'transcript': out.decode('utf-8', 'replace'), 'code': code, 'timed_out': timed_out}))

main()
