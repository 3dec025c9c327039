#!/usr/bin/env python3
"""Instructions per request by function, from one callgrind dump (`scripts/bench.sh instructions`).

    callgrind-summary.py DUMP REQUESTS [LIMIT]
    callgrind-summary.py DUMP REQUESTS --callers NAME [LIMIT]
    callgrind-summary.py DUMP REQUESTS --callees NAME [LIMIT]

Prints the LIMIT (default 40) functions with the most instructions of their own (self) and the
LIMIT with the most including their callees (inclusive; recursion is not unfolded, so a
function that calls itself counts its own calls again), each divided by REQUESTS, names
demangled with `swift demangle` when it is on PATH. With `--callers NAME`: the functions that
call a function whose symbol is NAME (e.g. `swift_retain`), by calls per request. With
`--callees NAME`: what a function whose symbol contains NAME spends, per request, in itself and
in each function it calls (inclusive), to follow one branch of the inclusive list down.
callgrind_annotate cannot be used on these dumps: a dump made after `callgrind_control -z`
charges everything to `clone`. Needs `--compress-strings=no`. Standard library only.
"""
import collections
import shutil
import subprocess
import sys


def main() -> int:
    path, requests = sys.argv[1], float(sys.argv[2])
    rest = sys.argv[3:]
    wanted = within = None
    if rest[:1] == ["--callers"]:
        wanted, rest = rest[1], rest[2:]
    elif rest[:1] == ["--callees"]:
        within, rest = rest[1], rest[2:]
    limit = int(rest[0]) if rest else 40
    own = collections.Counter()
    inclusive = collections.Counter()
    callers = collections.Counter()
    callees = collections.Counter()
    function = callee = None
    after_calls = False
    with open(path) as dump:
        for line in dump:
            if line.startswith("fn="):
                function, after_calls = line[3:].strip(), False
            elif line.startswith("cfn="):
                callee = line[4:].strip()
            elif line.startswith("calls="):
                after_calls = True
                if wanted is not None and callee == wanted and function is not None:
                    callers[function] += int(line[6:].split()[0])
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                if len(fields) < 2:
                    continue
                cost = int(fields[1])
                if after_calls:
                    if callee != function:
                        inclusive[callee] += cost
                        if within is not None and within in function:
                            callees[callee] += cost
                    after_calls = False
                elif function is not None:
                    own[function] += cost
                    if within is not None and within in function:
                        callees["(self) " + function] += cost
    for name, cost in own.items():
        inclusive[name] += cost
    total = sum(own.values())
    names = sorted(set(own) | set(inclusive) | set(callers) | {n.removeprefix("(self) ") for n in callees})
    readable = dict(zip(names, names))
    if shutil.which("swift"):
        demangled = subprocess.run(
            ["swift", "demangle", "--simplified", "--compact"], input="\n".join(names), capture_output=True, text=True
        ).stdout.splitlines()
        if len(demangled) == len(names):
            readable = dict(zip(names, demangled))
    print(f"{total / requests:,.0f} instructions per request ({total:,} over {requests:,.0f} requests)")
    if wanted is not None:
        print(f"\ncallers of {wanted}: calls per request ({sum(callers.values()) / requests:,.1f} in all)")
        for name, count in callers.most_common(limit):
            print(f"{count / requests:8,.1f}  {readable[name][:160]}")
        return 0
    if within is not None:
        print(f"\ncallees of functions whose symbol contains {within}: instructions per request, inclusive "
              f"({sum(callees.values()) / requests:,.0f} in all)")
        for name, cost in callees.most_common(limit):
            label = "(self) " + readable[name[7:]] if name.startswith("(self) ") else readable[name]
            print(f"{cost / requests:10,.0f}  {label[:160]}")
        return 0
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\n{title}: instructions per request, share of the total")
        for name, cost in counter.most_common(limit):
            print(f"{cost / requests:10,.0f}  {100 * cost / total:5.1f}%  {readable[name][:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
