#!/usr/bin/env python3
"""Groups the allocation stacks of `ALLOC_PROBE_TRACE=1 alloc-probe 2>stacks.txt` by the first
frame in authgate's own sources (else the first frame outside the Swift runtime), symbolised with
addr2line and `swift demangle`. Usage: scripts/alloc-sites.py BINARY stacks.txt"""
import collections, re, subprocess, sys

binary, path = sys.argv[1], sys.argv[2]
stacks, current = [], []
for line in open(path):
    if line.startswith('----'):
        if current: stacks.append(current)
        current = []
        continue
    m = re.search(r'alloc-probe\(\+(0x[0-9a-f]+)\)', line)
    current.append(m.group(1) if m else line.strip().split('(')[-1].split('+')[0])
if current: stacks.append(current)

offsets = sorted({f for s in stacks for f in s if f.startswith('0x')})
out = subprocess.run(['addr2line', '-f', '-e', binary] + offsets, capture_output=True, text=True).stdout.splitlines()
names = {}
for i, off in enumerate(offsets):
    func, loc = out[2 * i], out[2 * i + 1]
    names[off] = (func, loc)
mangled = sorted({v[0] for v in names.values()})
demangled = subprocess.run(['swift', 'demangle', '--simplified', '--compact'], input='\n'.join(mangled), capture_output=True, text=True).stdout.splitlines()
dem = dict(zip(mangled, demangled))

sites = collections.Counter()
for stack in stacks:
    frames = [names.get(f, (f, '?')) for f in stack if f.startswith('0x')]
    ours = [(dem.get(fn, fn), loc) for fn, loc in frames if '/Sources/Gateway/' in loc]
    if ours:
        fn, loc = ours[0]
        sites['authgate ' + loc.split('/Sources/')[-1] + '  ' + fn[:110]] += 1
    else:
        rest = [(dem.get(fn, fn), loc) for fn, loc in frames if 'counter.c' not in loc]
        fn, loc = rest[0] if rest else ('?', '?')
        sites['other    ' + loc.split('/')[-1] + '  ' + fn[:110]] += 1
for site, n in sites.most_common(60):
    print(f'{n:5d}  {site}')
